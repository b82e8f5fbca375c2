"""Getting alerts to a receiver in the background: a bounded queue per receiver, retries with
backoff, failures logged once per outage, HTTP with a timeout and no secret in any error.

    courier = Courier("webhook", lambda body: post(url, body, timeout_s=5), shown="https://hooks.example")
    courier.start()
    courier.offer(payload)   # never blocks: a full queue drops the item (counted)
    courier.close(flush_s=2) # deliver what it can in 2 s, then leave

`Courier.step(now)` is the whole decision (what is due, what to retry when): the thread only
calls it and waits on a Condition, so tests drive it with a fake clock and no thread at all.
"""
from __future__ import annotations

import collections
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Courier", "DeliveryFailed", "http_request", "redact", "retry_delay_s", "shown_url"]

log = logging.getLogger(__name__)

FIRST_RETRY_S = 1.0
MAX_RETRY_S = 300.0
MAX_ATTEMPTS = 6  # 1 + 5 retries over ~31 s, then the item is dropped (the next one tries again)
MAX_QUEUE = 200
HTTP_TIMEOUT_S = 10.0
USER_AGENT = "kucoin-futures-bot"
CLOSE_SLACK_S = 0.2  # past its flush deadline, a courier's thread gets this long to notice


class DeliveryFailed(Exception):
    """A delivery did not go through. `reason` is safe to log (no URL, no token); `retry_after_s`
    is the receiver's own wish (a 429); `permanent` is a refusal a retry cannot fix (a 4xx)."""

    def __init__(self, reason: str, *, retry_after_s: float | None = None, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.retry_after_s, self.permanent = reason, retry_after_s, permanent


def retry_delay_s(failures: int, *, first_s: float = FIRST_RETRY_S, max_s: float = MAX_RETRY_S) -> float:
    """Seconds to wait after the `failures`-th failure in a row: first_s, doubling, capped."""
    return min(max_s, first_s * 2 ** max(0, failures - 1))


def shown_url(url: str) -> str:
    """What a log may say about a URL: scheme, host and port only (paths carry tokens:
    /bot<token>/ at Telegram, /services/T../B../secret at Slack, a UUID at healthchecks.io)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{'' if parts.port is None else f':{parts.port}'}"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def http_request(url: str, *, body: Any = None, timeout_s: float = HTTP_TIMEOUT_S) -> Any:
    """GET `url`, or POST `body` as JSON; return the decoded JSON answer (None if not JSON).

    Raises:
        DeliveryFailed: with a reason naming the failure's kind only (never the URL).
    """
    data = None if body is None else json.dumps(body, allow_nan=False, default=str).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST",
                                     headers={"Content-Type": "application/json", "User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (http(s) only: config)
            raw = response.read(65536)
    except urllib.error.HTTPError as exc:
        answer = _json_or_none(exc.read(65536) if exc.fp is not None else b"")
        retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None, answer)
        raise DeliveryFailed(f"HTTP {exc.code}", retry_after_s=retry_after,
                             permanent=400 <= exc.code < 500 and exc.code not in (408, 429)) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        what = getattr(reason, "strerror", None) or type(reason).__name__
        raise DeliveryFailed(f"unreachable ({what})") from None
    except TimeoutError:
        raise DeliveryFailed(f"no answer within {timeout_s:g}s") from None
    except OSError as exc:  # a reset connection, a broken pipe, http.client's errors
        raise DeliveryFailed(f"connection failed ({exc.strerror or type(exc).__name__})") from None
    except ValueError as exc:  # http.client.InvalidURL and friends: name only, they quote the URL
        raise DeliveryFailed(f"bad request ({type(exc).__name__})", permanent=True) from None
    return _json_or_none(raw)


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _retry_after(header: str | None, answer: Any) -> float | None:
    # Telegram says {"parameters": {"retry_after": 5}}; others the Retry-After header (seconds).
    if isinstance(answer, dict) and isinstance(answer.get("parameters"), dict):
        value = answer["parameters"].get("retry_after")
        if isinstance(value, int | float) and value >= 0:
            return float(value)
    return float(header) if header and header.strip().isdigit() else None


@dataclass(slots=True)
class _Item:
    payload: Any
    attempts: int = 0


class Courier:
    """One receiver: a bounded queue, one thread, retries with backoff, failures logged once."""

    def __init__(self, name: str, send: Callable[[Any], Any], *, shown: str, max_queue: int = MAX_QUEUE,
                 max_attempts: int = MAX_ATTEMPTS, clock: Callable[[], float] = time.monotonic) -> None:
        self.name, self.shown = name, shown
        self._send = send
        self._max_attempts = max_attempts
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: collections.deque[_Item] = collections.deque()
        self._max_queue = max_queue
        self._next_attempt_at = 0.0
        self._failures = 0  # in a row: the current outage
        self._full_logged = False
        self._closing = False
        self._flush_deadline = 0.0
        self._thread: threading.Thread | None = None
        self.delivered = self.dropped = self.failed_attempts = 0

    def offer(self, payload: Any) -> bool:
        """Queue `payload`; False (and counted as dropped) when the queue is full. Never blocks
        beyond a short lock, never raises."""
        with self._cond:
            if len(self._queue) >= self._max_queue:
                self.dropped += 1
                if not self._full_logged:  # once until a delivery goes through again
                    self._full_logged = True
                    log.warning("alerts: %s queue full (%d waiting): dropping new alerts", self.name, len(self._queue))
                return False
            self._queue.append(_Item(payload))
            self._cond.notify()
        return True

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def step(self, now: float) -> float | None:
        """Try the head item if it is due; return the seconds until the next try (0: go on at
        once), or None when nothing is queued."""
        with self._cond:
            if not self._queue:
                return None
            if now < self._next_attempt_at:
                return self._next_attempt_at - now
            item = self._queue[0]
        try:
            self._send(item.payload)  # outside the lock: offer() never waits on a receiver
        except DeliveryFailed as exc:
            return self._failed(item, exc, now)
        with self._cond:
            self._queue.popleft()
            if self._failures:
                log.warning("alerts: %s delivers again after %d failed attempts", self.name, self._failures)
            self._failures, self._next_attempt_at, self._full_logged = 0, 0.0, False
            self.delivered += 1
            return 0.0 if self._queue else None

    def _failed(self, item: _Item, exc: DeliveryFailed, now: float) -> float | None:
        with self._cond:
            self.failed_attempts += 1
            self._failures += 1
            item.attempts += 1
            if self._failures == 1:  # once per outage, never per retry
                log.warning("alerts: %s (%s) failed: %s; retrying with backoff, not logged again until it "
                            "delivers", self.name, self.shown, exc.reason)
            if exc.permanent or item.attempts >= self._max_attempts:
                self._queue.popleft()
                self.dropped += 1
            delay = exc.retry_after_s if exc.retry_after_s is not None else retry_delay_s(self._failures)
            self._next_attempt_at = now + delay
            return delay if self._queue else None

    # -- the thread ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"bot-alerts-{self.name}", daemon=True)
        self._thread.start()

    def close(self, flush_s: float = 2.0, *, wait: bool = True) -> None:
        """Deliver what can be in `flush_s` (no retry waits past it), then stop; a receiver that
        hangs is left behind (the thread is a daemon). `wait=False` only starts closing (join later)."""
        with self._cond:
            self._closing = True
            self._flush_deadline = self._clock() + flush_s
            self._cond.notify()
        if wait:
            self.join(flush_s + CLOSE_SLACK_S)

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("alerts: %s still busy at shutdown: %d alerts not delivered", self.name, self.pending())

    def _run(self) -> None:
        while True:
            try:
                self.step(self._clock())
            except Exception:  # the thread's boundary: a bug in a sender must not end the alerts
                log.exception("alerts: %s failed", self.name)
                with self._cond:
                    if self._queue:
                        self._queue.popleft()
            with self._cond:
                now = self._clock()
                if self._closing and (not self._queue or now >= self._flush_deadline
                                      or self._next_attempt_at > self._flush_deadline):
                    return  # delivered, out of time, or the next retry falls after the deadline
                wait_s = None if not self._queue else self._next_attempt_at - now
                if self._closing:
                    wait_s = min(self._flush_deadline - now, wait_s if wait_s is not None else float("inf"))
                if wait_s is None or wait_s > 0:
                    self._cond.wait(wait_s)
