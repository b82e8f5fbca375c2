"""Reconnect delays: pure policy, no clock reads (``now`` is passed in), no I/O.

``backoff()`` yields the delays of successive failed attempts; ``ReconnectDelays`` decides the
delay before each reconnect of one connection slot:

- a connection that was healthy (every subscribe acknowledged) is lost: reconnect at once, as
  python-websockets does. A server that accepts, acknowledges and drops again and again would
  turn that into a storm, so at most ``fast_limit`` immediate reconnects are made within any
  ``fast_window_s``; beyond that, the backoff sequence goes on growing;
- a connect attempt failed (network, refused upgrade, no welcome): the next backoff delay;
- the failure is fatal (a configuration error the server will repeat): ``cap_s``, so a bad setup
  is retried slowly rather than stormed or given up (the caller serves REST meanwhile).
"""
from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator

from kucoin_futures.errors import InvalidArgument

__all__ = ["ReconnectDelays", "backoff"]

FAST_LIMIT = 5  # immediate reconnects after a healthy connection...
FAST_WINDOW_S = 60.0  # ...within this many seconds


def backoff(
    *,
    initial_s: float = 0.5,
    factor: float = 2.0,
    cap_s: float = 30.0,
    jitter: float = 0.2,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Yield reconnect delays in seconds: uniform in [0, initial_s) first, then exponential.

    After the first delay: ``initial_s * factor**n``, capped at ``cap_s``, each shortened by a
    random fraction up to ``jitter`` so that many clients do not reconnect in step. Create a new
    generator after a successful (re)subscribe to start over.
    """
    if not (initial_s > 0 and factor >= 1 and cap_s >= initial_s and 0 <= jitter < 1):
        raise InvalidArgument("backoff needs initial_s > 0, factor >= 1, cap_s >= initial_s, 0 <= jitter < 1")
    rng = rng if rng is not None else random.Random()
    yield rng.uniform(0, initial_s)
    delay = initial_s
    while True:
        delay = min(cap_s, delay * factor)
        yield delay * (1 - jitter * rng.random())


class ReconnectDelays:
    """The delay before each reconnect of one connection slot (see the module docstring)."""

    def __init__(self, *, initial_s: float, cap_s: float, rng: random.Random,
                 fast_limit: int = FAST_LIMIT, fast_window_s: float = FAST_WINDOW_S) -> None:
        self._initial_s = initial_s
        self._cap_s = cap_s
        self._rng = rng
        self._fast_limit = fast_limit
        self._fast_window_s = fast_window_s
        self._fast_at: deque[float] = deque()
        self._delays = self._new_sequence()

    def _new_sequence(self) -> Iterator[float]:
        return backoff(initial_s=self._initial_s, cap_s=self._cap_s, rng=self._rng)

    def after_loss(self, now: float, *, healthy: bool) -> float:
        """Delay after an established connection was lost (``healthy``: it had all its acks)."""
        if not healthy:
            return next(self._delays)
        while self._fast_at and now - self._fast_at[0] >= self._fast_window_s:
            self._fast_at.popleft()
        if len(self._fast_at) < self._fast_limit:
            self._fast_at.append(now)
            self._delays = self._new_sequence()  # should this attempt fail, start over
            return 0.0
        return next(self._delays)  # flapping: keep growing

    def after_failure(self, *, fatal: bool) -> float:
        """Delay after a connect attempt failed."""
        return self._cap_s if fatal else next(self._delays)
