"""Pure rate-limit decisions of ratelimit_pools: no threads, no clock, explicit ``now``."""

import pytest

from kucoin_futures.scheduling.pools import (
    PoolState,
    Priority,
    RateLimit,
    ResourcePools,
    apply_headers,
    apply_rate_limited,
    delay_until_allowed,
    new_pool_state,
    overload_backoff_s,
    pool_budget,
    pool_delay,
    roll_window,
    start_call,
)

T0 = 1000.0  # an arbitrary monotonic instant


def fresh(limit=100, *, reserve_fraction=0.1, window_s=30.0):
    return new_pool_state(RateLimit("futures", limit, window_s), reserve_fraction=reserve_fraction)


def open_window(remaining, *, limit=100, window_end=T0 + 20.0):
    return PoolState(
        limit=limit, window_s=30.0, reserve_fraction=0.1, remaining=remaining, window_end=window_end
    )


def test_new_pool_state_is_full_with_no_window():
    assert fresh(2000) == PoolState(limit=2000, window_s=30.0, reserve_fraction=0.1, remaining=2000)
    assert fresh(2000).reserve == 200


def test_start_call_opens_window_at_first_call():
    """KuCoin: the window starts at the first request, not at a fixed clock boundary."""
    state = start_call(fresh(), cost=2, now=T0)
    assert state == PoolState(
        limit=100, window_s=30.0, reserve_fraction=0.1, remaining=98, window_end=T0 + 30.0
    )


def test_start_call_within_window_keeps_window_end():
    state = start_call(start_call(fresh(), cost=2, now=T0), cost=5, now=T0 + 10.0)
    assert (state.remaining, state.window_end) == (93, T0 + 30.0)


def test_pool_delay_fresh_pool_is_zero():
    assert pool_delay(fresh(), Priority.LOW, 5, T0) == 0.0


def test_pool_delay_exhausted_waits_for_window_end():
    state = open_window(remaining=1)
    assert pool_delay(state, Priority.CRITICAL, 2, T0) == 20.0
    assert pool_delay(state, Priority.CRITICAL, 1, T0) == 0.0


@pytest.mark.parametrize(
    ("priority", "cost", "expected"),
    [
        # remaining 12 of 100, reserve 10: only CRITICAL may go below 10.
        (Priority.CRITICAL, 12, 0.0),
        (Priority.CRITICAL, 3, 0.0),
        (Priority.HIGH, 2, 0.0),
        (Priority.HIGH, 3, 20.0),
        (Priority.NORMAL, 3, 20.0),
        (Priority.LOW, 3, 20.0),
        (Priority.CRITICAL, 13, 20.0),
    ],
)
def test_pool_delay_reserve_only_for_critical(priority, cost, expected):
    assert pool_delay(open_window(remaining=12), priority, cost, T0) == expected


def test_pool_delay_zero_reserve_lets_everyone_drain_the_pool():
    state = PoolState(limit=100, window_s=30.0, reserve_fraction=0.0, remaining=3, window_end=T0 + 5.0)
    assert pool_delay(state, Priority.LOW, 3, T0) == 0.0


def test_pool_delay_fresh_window_admits_call_heavier_than_unreserved_share():
    """A call heavier than limit - reserve would otherwise wait forever."""
    assert pool_delay(fresh(100), Priority.NORMAL, 95, T0) == 0.0
    assert start_call(fresh(100), cost=95, now=T0).remaining == 5


def test_roll_window_gives_quota_back_at_window_end():
    state = open_window(remaining=0, window_end=T0 + 20.0)
    assert roll_window(state, T0 + 19.999) == state
    assert roll_window(state, T0 + 20.0) == PoolState(
        limit=100, window_s=30.0, reserve_fraction=0.1, remaining=100, window_end=None
    )
    assert pool_delay(state, Priority.LOW, 50, T0 + 20.0) == 0.0


def test_start_call_after_window_end_opens_new_window():
    state = start_call(open_window(remaining=0, window_end=T0 + 20.0), cost=4, now=T0 + 25.0)
    assert (state.remaining, state.window_end) == (96, T0 + 55.0)


def test_apply_headers_replaces_our_numbers_with_the_servers():
    """gw-ratelimit-reset is milliseconds until the window resets."""
    ours = start_call(fresh(2000), cost=2, now=T0)
    state = apply_headers(ours, limit=4000, remaining=37, reset_ms=12500, now=T0 + 1.0)
    assert state == PoolState(
        limit=4000, window_s=30.0, reserve_fraction=0.1, remaining=37, window_end=T0 + 13.5
    )
    assert state.reserve == 400
    assert pool_delay(state, Priority.CRITICAL, 37, T0 + 1.0) == 0.0
    assert pool_delay(state, Priority.CRITICAL, 38, T0 + 1.0) == 12.5


def test_apply_headers_opens_window_on_unused_pool():
    state = apply_headers(fresh(2000), limit=2000, remaining=1997, reset_ms=29990, now=T0)
    assert (state.remaining, state.window_end) == (1997, T0 + 29.99)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0, "remaining": 0, "reset_ms": 0},
        {"limit": 10, "remaining": -1, "reset_ms": 0},
        {"limit": 10, "remaining": 1, "reset_ms": -5},
        {"limit": "10", "remaining": 1, "reset_ms": 5},
    ],
)
def test_apply_headers_rejects_invalid_values(kwargs):
    with pytest.raises(ValueError):
        apply_headers(fresh(), now=T0, **kwargs)


def test_rate_limited_with_reset_blocks_every_priority_until_reset():
    state = apply_rate_limited(start_call(fresh(), cost=1, now=T0), reset_ms=7000, now=T0 + 2.0)
    assert (state.remaining, state.window_end) == (0, T0 + 9.0)
    assert [pool_delay(state, p, 1, T0 + 2.0) for p in Priority] == [7.0, 7.0, 7.0, 7.0]
    assert [pool_delay(state, p, 1, T0 + 9.0) for p in Priority] == [0.0, 0.0, 0.0, 0.0]


def test_rate_limited_without_headers_backs_off_exponentially_for_non_critical():
    state = fresh()
    delays = []
    for _ in range(6):
        state = apply_rate_limited(state, reset_ms=None, now=T0)
        delays.append(pool_delay(state, Priority.NORMAL, 1, T0))
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert pool_delay(state, Priority.CRITICAL, 1, T0) == 0.0
    assert pool_delay(state, Priority.HIGH, 1, T0 + 8.0) == 0.0


def test_rate_limited_overload_does_not_touch_quota():
    state = apply_rate_limited(open_window(remaining=40), reset_ms=None, now=T0)
    assert (state.remaining, state.window_end, state.overload_until) == (40, T0 + 20.0, T0 + 0.5)


def test_headers_end_overload_backoff():
    state = apply_rate_limited(apply_rate_limited(fresh(), reset_ms=None, now=T0), reset_ms=None, now=T0)
    state = apply_headers(state, limit=100, remaining=90, reset_ms=10000, now=T0 + 0.1)
    assert (state.overload_until, state.overload_strikes) == (0.0, 0)
    assert pool_delay(state, Priority.LOW, 1, T0 + 0.1) == 0.0
    assert apply_rate_limited(state, reset_ms=None, now=T0 + 1.0).overload_until == T0 + 1.5


def test_overload_backoff_s_doubles_to_cap():
    assert [overload_backoff_s(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_delay_until_allowed_looks_up_pool():
    state = {"futures": open_window(remaining=0), "public": fresh()}
    assert delay_until_allowed(state, Priority.CRITICAL, "futures", 1, T0) == 20.0
    assert delay_until_allowed(state, Priority.LOW, "public", 1, T0) == 0.0
    assert delay_until_allowed(state, Priority.LOW, None, 10**9, T0) == 0.0
    with pytest.raises(ValueError, match="unknown rate-limit pool 'spot'"):
        delay_until_allowed(state, Priority.LOW, "spot", 1, T0)


def test_pool_budget_reports_limit_remaining_and_reset():
    state = open_window(remaining=42, window_end=T0 + 20.0)
    assert pool_budget(state, T0 + 5.0) == {"limit": 100, "remaining": 42, "reset_in_s": 15.0}
    assert pool_budget(state, T0 + 20.0) == {"limit": 100, "remaining": 100, "reset_in_s": 0.0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", 10), "pool must be a non-empty string"),
        (("futures", 0), "limit must be an int >= 1"),
        (("futures", 2.5), "limit must be an int >= 1"),
        (("futures", 10, 0.0), "window_s must be > 0"),
    ],
)
def test_rate_limit_rejects_invalid_values(args, message):
    with pytest.raises(ValueError, match=message):
        RateLimit(*args)


def test_resource_pools_rejects_duplicate_pool_and_bad_reserve():
    with pytest.raises(ValueError, match="declared twice"):
        ResourcePools([RateLimit("futures", 10), RateLimit("futures", 20)])
    with pytest.raises(ValueError, match="reserve_fraction"):
        ResourcePools([RateLimit("futures", 10)], reserve_fraction=1.0)


@pytest.mark.parametrize(
    ("pool", "cost", "message"),
    [
        ("futures", 0, "cost must be an int >= 1"),
        ("futures", True, "cost must be an int >= 1"),
        ("futures", 2001, "exceeds the whole quota 2000"),
        ("spot", 1, "unknown rate-limit pool 'spot'"),
        (None, 0, "cost must be an int >= 1"),
    ],
)
def test_resource_pools_check_call_rejects_bad_calls(pool, cost, message):
    pools = ResourcePools([RateLimit("futures", 2000)])
    with pytest.raises(ValueError, match=message):
        pools.check_call(pool, cost)


def test_resource_pools_tracks_each_pool_independently():
    pools = ResourcePools([RateLimit("futures", 2000), RateLimit("public", 100, 10.0)], reserve_fraction=0.0)
    pools.start("futures", 2, T0)
    pools.start("public", 100, T0 + 1.0)
    pools.start(None, 5, T0)
    pools.observe_rate_limited("futures", reset_ms=None, now=T0 + 2.0)
    assert pools.budget(T0 + 2.0) == {
        "futures": {"limit": 2000, "remaining": 1998, "reset_in_s": 28.0},
        "public": {"limit": 100, "remaining": 0, "reset_in_s": 9.0},
    }
    assert pools.delay(Priority.NORMAL, "public", 1, T0 + 2.0) == 9.0
    assert pools.delay(Priority.NORMAL, "futures", 1, T0 + 2.0) == 0.5


def test_apply_headers_within_our_window_keeps_the_lower_count():
    """Answers of concurrent calls arrive out of order: a stale, higher remaining must not win."""
    state = apply_headers(fresh(2000), limit=2000, remaining=100, reset_ms=20_000, now=T0)
    stale = apply_headers(state, limit=2000, remaining=400, reset_ms=19_500, now=T0 + 0.5)
    assert stale.remaining == 100
    lower = apply_headers(state, limit=2000, remaining=60, reset_ms=19_000, now=T0 + 1.0)
    assert lower.remaining == 60
    new_window = apply_headers(state, limit=2000, remaining=1990, reset_ms=29_000, now=T0 + 1.0)
    assert new_window.remaining == 1990
