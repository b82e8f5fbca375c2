"""How the private feed hands its events over: a callback on the WebSocket thread and a queue.

Internal to the private feed (ws/private_feed.py). ``EventQueue`` is bounded: when it is full
the oldest event is dropped and counted (``dropped``), so a caller that never drains it costs a
fixed amount of memory and the WebSocket thread never blocks on it. ``drain`` hands over
everything queued, waiting up to ``timeout_s`` for the first event.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from kucoin_futures.errors import InvalidArgument

__all__ = ["EventQueue", "EventSink"]

log = logging.getLogger(__name__)


class EventQueue:
    """A bounded, thread-safe FIFO of events that drops the oldest when full."""

    def __init__(self, max_size: int) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise InvalidArgument(f"the event queue size must be an int >= 1, not {max_size!r}")
        self._items: deque[Any] = deque()
        self._max_size = max_size
        self._cond = threading.Condition()
        self.queued = 0  # put so far
        self.dropped = 0  # dropped for room so far

    def put(self, event: Any) -> None:
        with self._cond:
            if len(self._items) >= self._max_size:
                self._items.popleft()
                self.dropped += 1
            self._items.append(event)
            self.queued += 1
            self._cond.notify_all()

    def drain(self, timeout_s: float = 0.0) -> list[Any]:
        """Return every queued event, oldest first, waiting up to ``timeout_s`` for the first."""
        with self._cond:
            if not self._items and timeout_s > 0:
                self._cond.wait_for(lambda: bool(self._items), timeout_s)
            items = list(self._items)
            self._items.clear()
            return items

    def __len__(self) -> int:
        return len(self._items)


class EventSink:
    """Deliver each event to the user's callback (exceptions logged and ignored), then queue it."""

    def __init__(self, *, on_event: Callable[[Any], object] | None, max_queued: int) -> None:
        if on_event is not None and not callable(on_event):
            raise InvalidArgument(f"on_account_event must be callable, not {type(on_event).__name__}")
        self._on_event = on_event
        self.queue = EventQueue(max_queued)
        self.callback_errors = 0

    def emit(self, event: Any) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a user bug must not kill the feed
                self.callback_errors += 1
                log.exception("callback %r raised; the feed continues", self._on_event)
        self.queue.put(event)
