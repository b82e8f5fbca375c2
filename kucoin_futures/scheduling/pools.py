"""Decide when a call may start under KuCoin-style resource-pool rate limits (pure, no I/O).

The model follows KuCoin's "Rate Limit" docs (protocol notes §5): each pool has a quota of weight
units per window (30 s). The window opens at the first call, every call deducts its weight, and
the whole quota comes back when the window ends. The server reports its own count in the
``gw-ratelimit-limit`` / ``-remaining`` / ``-reset`` headers (reset = milliseconds until the window
ends) and answers HTTP 429 when a call does not fit.

Our policy on top of that:

- A reserve (a fraction of each pool) that only CRITICAL calls may spend, so that an order or a
  cancel can still go out after market scans have drained the pool.
- A 429 with headers means the quota is exhausted: the pool is empty until the reset, for every
  priority (the server would refuse an order too).
- A 429 without headers means the server is overloaded, not that our quota is spent: non-CRITICAL
  calls back off exponentially; CRITICAL calls may still try.

Nothing here reads a clock, takes a lock or logs: time is passed in as ``now`` (monotonic
seconds). ``PriorityExecutor`` in api_priority.py owns a ``ResourcePools`` under its lock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum

# -- Constants ---------------------------------------------------------------------------------

DEFAULT_WINDOW_S = 30.0  # KuCoin resource pools: one quota per 30 s window (protocol notes §5.1)
WINDOW_MATCH_SLACK_S = 1.0  # header reset vs our window end: same window within this
DEFAULT_RESERVE_FRACTION = 0.1  # share of each pool kept for CRITICAL calls
OVERLOAD_BACKOFF_INITIAL_S = 0.5  # first pause after a 429 that carries no rate-limit headers
OVERLOAD_BACKOFF_CAP_S = 8.0


class Priority(IntEnum):
    """How urgent a call is; a lower value is more urgent."""

    CRITICAL = 0  # orders, cancels, closes
    HIGH = 1  # positions, balance
    NORMAL = 2  # market scans, REST fallback for market data
    LOW = 3  # analytics, history


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One resource pool: ``limit`` weight units per ``window_s`` seconds."""

    pool: str
    limit: int
    window_s: float = DEFAULT_WINDOW_S

    def __post_init__(self) -> None:
        if not isinstance(self.pool, str) or not self.pool:
            raise ValueError(f"pool must be a non-empty string, got {self.pool!r}")
        _check_int("limit", self.limit, minimum=1)
        if not self.window_s > 0:
            raise ValueError(f"window_s must be > 0, got {self.window_s!r}")


@dataclass(frozen=True, slots=True)
class PoolState:
    """What we believe about one pool at some instant (monotonic seconds)."""

    limit: int
    window_s: float
    reserve_fraction: float
    remaining: int
    window_end: float | None = None  # None: no window open; the next call opens one
    overload_until: float = 0.0  # a 429 without headers: non-CRITICAL calls wait until then
    overload_strikes: int = 0  # consecutive overload 429s, for the exponential backoff

    @property
    def reserve(self) -> int:
        """Return the weight units only CRITICAL calls may spend."""
        return int(self.limit * self.reserve_fraction)


def _check_int(name: str, value: object, *, minimum: int) -> None:
    # bool is an int subclass; True as a weight is a caller bug, not 1.
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def new_pool_state(limit: RateLimit, *, reserve_fraction: float = DEFAULT_RESERVE_FRACTION) -> PoolState:
    """Return the state of a pool that has not been used yet."""
    if not 0.0 <= reserve_fraction < 1.0:
        raise ValueError(f"reserve_fraction must be in [0, 1), got {reserve_fraction!r}")
    return PoolState(
        limit=limit.limit,
        window_s=limit.window_s,
        reserve_fraction=reserve_fraction,
        remaining=limit.limit,
    )


def roll_window(state: PoolState, now: float) -> PoolState:
    """Return ``state`` with an ended window closed and its quota given back."""
    if state.window_end is not None and now >= state.window_end:
        return dataclasses.replace(state, remaining=state.limit, window_end=None)
    return state


def pool_delay(state: PoolState, priority: Priority, cost: int, now: float) -> float:
    """Return how long a call of ``cost`` units must wait in this pool (0.0 = start now)."""
    state = roll_window(state, now)
    overload_wait = 0.0
    if priority != Priority.CRITICAL:
        overload_wait = max(0.0, state.overload_until - now)
    if state.window_end is None:
        # A fresh window always admits its first call, even one heavier than the non-reserved
        # share: otherwise such a call could never start. The server stays the judge.
        return overload_wait
    floor = 0 if priority == Priority.CRITICAL else state.reserve
    if state.remaining - cost >= floor:
        return overload_wait
    return max(overload_wait, state.window_end - now)


def delay_until_allowed(
    state: Mapping[str, PoolState], priority: Priority, pool: str | None, cost: int, now: float
) -> float:
    """Return how long a call must wait before it may start (0.0 = start now).

    Args:
        state: pool name -> its ``PoolState``.
        priority: only CRITICAL may spend the reserve or ignore an overload backoff.
        pool: the call's pool; ``None`` means the call is not rate-limited.
        cost: the call's weight in that pool.
        now: monotonic seconds.
    """
    if pool is None:
        return 0.0
    try:
        pool_state = state[pool]
    except KeyError:
        raise ValueError(f"unknown rate-limit pool {pool!r}") from None
    return pool_delay(pool_state, priority, cost, now)


def start_call(state: PoolState, cost: int, now: float) -> PoolState:
    """Return the state after a call of ``cost`` units starts (opening a window if none is)."""
    state = roll_window(state, now)
    if state.window_end is None:
        state = dataclasses.replace(state, remaining=state.limit, window_end=now + state.window_s)
    return dataclasses.replace(state, remaining=max(0, state.remaining - cost))


def apply_headers(state: PoolState, *, limit: int, remaining: int, reset_ms: int, now: float) -> PoolState:
    """Return the state corrected by the server's gw-ratelimit-* headers.

    A header that belongs to a new window (ours ended, or never started) is adopted as it is.
    Within the window we track, the lower of the two counts wins: the server's ``remaining``
    does not include calls still in flight when its response left, and answers of concurrent
    calls can arrive out of order, so adopting it blindly would overshoot into the reserve. Any
    response with headers ends an overload backoff.
    """
    _check_int("limit", limit, minimum=1)
    _check_int("remaining", remaining, minimum=0)
    _check_int("reset_ms", reset_ms, minimum=0)
    server_remaining = min(remaining, limit)
    server_end = now + reset_ms / 1000.0
    # same window: ours is open and the server's ends when ours does (1 s of clock slack)
    same_window = (state.window_end is not None and now < state.window_end
                   and server_end <= state.window_end + WINDOW_MATCH_SLACK_S)
    return dataclasses.replace(
        state,
        limit=limit,
        remaining=min(server_remaining, state.remaining) if same_window else server_remaining,
        window_end=server_end,
        overload_until=0.0,
        overload_strikes=0,
    )


def overload_backoff_s(strikes: int) -> float:
    """Return the pause after the ``strikes``-th consecutive overload 429 (1-based)."""
    return min(OVERLOAD_BACKOFF_CAP_S, OVERLOAD_BACKOFF_INITIAL_S * 2.0 ** (strikes - 1))


def apply_rate_limited(state: PoolState, *, reset_ms: int | None, now: float) -> PoolState:
    """Return the state after the server answered 429 for this pool.

    Args:
        reset_ms: ``gw-ratelimit-reset`` of the 429 response, or ``None`` if it had none.
    """
    if reset_ms is not None:
        # Quota exhausted: nothing fits until the server's window ends.
        _check_int("reset_ms", reset_ms, minimum=0)
        return dataclasses.replace(state, remaining=0, window_end=now + reset_ms / 1000.0)
    strikes = state.overload_strikes + 1
    return dataclasses.replace(
        state, overload_strikes=strikes, overload_until=now + overload_backoff_s(strikes)
    )


def pool_budget(state: PoolState, now: float) -> dict[str, float]:
    """Return ``{"limit", "remaining", "reset_in_s"}`` for a health report."""
    state = roll_window(state, now)
    reset_in_s = 0.0 if state.window_end is None else state.window_end - now
    return {"limit": state.limit, "remaining": state.remaining, "reset_in_s": reset_in_s}


class ResourcePools:
    """Hold the state of every pool in a table; not thread-safe (the executor locks it)."""

    def __init__(
        self, limits: Iterable[RateLimit] = (), *, reserve_fraction: float = DEFAULT_RESERVE_FRACTION
    ) -> None:
        self._state: dict[str, PoolState] = {}
        for limit in limits:
            if limit.pool in self._state:
                raise ValueError(f"pool {limit.pool!r} is declared twice")
            self._state[limit.pool] = new_pool_state(limit, reserve_fraction=reserve_fraction)

    @property
    def state(self) -> Mapping[str, PoolState]:
        """Return the current state of each pool (a copy; the values are immutable)."""
        return dict(self._state)

    def check_call(self, pool: str | None, cost: int) -> None:
        """Raise ``ValueError`` unless ``cost`` is a valid weight for ``pool``."""
        _check_int("cost", cost, minimum=1)
        if pool is None:
            return
        state = self._get(pool)
        if cost > state.limit:
            raise ValueError(f"cost {cost} exceeds the whole quota {state.limit} of pool {pool!r}")

    def delay(self, priority: Priority, pool: str | None, cost: int, now: float) -> float:
        """Return how long the call must wait (see ``delay_until_allowed``)."""
        return delay_until_allowed(self._state, priority, pool, cost, now)

    def start(self, pool: str | None, cost: int, now: float) -> None:
        """Charge a starting call to its pool."""
        if pool is not None:
            self._state[pool] = start_call(self._get(pool), cost, now)

    def observe_headers(self, pool: str, *, limit: int, remaining: int, reset_ms: int, now: float) -> None:
        """Adopt the server's gw-ratelimit-* numbers for ``pool``."""
        self._state[pool] = apply_headers(
            self._get(pool), limit=limit, remaining=remaining, reset_ms=reset_ms, now=now
        )

    def observe_rate_limited(self, pool: str, *, reset_ms: int | None, now: float) -> PoolState:
        """Record a 429 for ``pool``; return the new state."""
        self._state[pool] = apply_rate_limited(self._get(pool), reset_ms=reset_ms, now=now)
        return self._state[pool]

    def budget(self, now: float) -> dict[str, dict[str, float]]:
        """Return ``pool -> {"limit", "remaining", "reset_in_s"}``."""
        return {pool: pool_budget(state, now) for pool, state in self._state.items()}

    def _get(self, pool: str) -> PoolState:
        try:
            return self._state[pool]
        except KeyError:
            raise ValueError(f"unknown rate-limit pool {pool!r}") from None
