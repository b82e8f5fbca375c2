"""The trading loop's outage log: which line to log about an unreachable exchange, and when."""
from __future__ import annotations

import threading


class OutageLog:
    """When to log an exchange outage: its start (with the reason), reminders at a doubling
    interval while it lasts, and its end (with the downtime and the failures counted). Thread-safe;
    `now` is a monotonic time passed in."""

    def __init__(self, first_reminder_s: float = 30.0, max_reminder_s: float = 900.0) -> None:
        self._lock = threading.Lock()
        self._first, self._max = first_reminder_s, max_reminder_s
        self._since: float | None = None
        self._next_reminder = 0.0
        self._interval = first_reminder_s
        self._failures = 0

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, reason: str, now: float) -> str | None:
        """Record one failed call; return the line to log now, if any."""
        with self._lock:
            self._failures += 1
            if self._since is None:
                self._since, self._interval = now, self._first
                self._next_reminder = now + self._interval
                return f"exchange unreachable ({reason}); retrying, protection keeps running"
            if now < self._next_reminder:
                return None
            self._interval = min(self._interval * 2, self._max)
            self._next_reminder = now + self._interval
            return (f"exchange still unreachable after {_duration(now - self._since)} "
                    f"({self._failures} failed calls; last: {reason})")

    def recovered(self, now: float) -> str | None:
        """Record a successful round; return the line to log if it ends an outage."""
        with self._lock:
            if self._since is None:
                return None
            line = (f"exchange reachable again after {_duration(now - self._since)} "
                    f"({self._failures} failed calls)")
            self._since, self._failures = None, 0
            return line


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
