"""Candles of the simulated market: REST klines paging, history shape, live updates."""
from __future__ import annotations

from random import Random

import pytest

from kucoin_sim.candle_history import (
    DAY, H1, H4, LEVEL_MS, M1, M15, MINUTE_MS, WEEK, WEEK_MS, CandleHistory, week_floor,
)
from kucoin_sim.candles import GRANULARITIES, period_start
from kucoin_sim.contracts import default_contracts
from kucoin_sim.errors import SimError
from kucoin_sim.events import CandleUpdate, Trade
from kucoin_sim.market import Market

NOW = 1_795_000_123_456  # 2026-11-18 11:08:43.456 UTC
ANCHOR = NOW - NOW % MINUTE_MS
SYMBOL = "XBTUSDTM"


@pytest.fixture(scope="module")
def market() -> Market:
    """One market for the read-only tests (history generation is lazy and deterministic)."""
    return Market(seed=11, now_ms=NOW)


def _xbt() -> list:
    return [s for s in default_contracts(NOW) if s.base_currency == "XBT"]


def _aligned(t_ms: int, granularity: int) -> bool:
    return period_start(t_ms, granularity) == t_ms


@pytest.mark.parametrize("granularity", sorted(GRANULARITIES))
def test_klines_newest_page_is_full_ascending_aligned_and_ends_now(market, granularity):
    rows = market.klines(SYMBOL, granularity, None, None, NOW)
    starts = [r[0] for r in rows]
    span = granularity * MINUTE_MS
    assert len(rows) == 500
    assert starts == list(range(starts[0], starts[0] + 500 * span, span))
    assert all(_aligned(t, granularity) for t in starts)
    assert starts[-1] == period_start(NOW, granularity)  # the in-progress candle is included
    assert all(r[3] <= min(r[1], r[4]) and r[2] >= max(r[1], r[4]) for r in rows)
    assert all(isinstance(r[5], int) and r[5] >= 0 for r in rows)
    assert all(isinstance(v, float) for r in rows for v in r[1:5])


def test_klines_rows_join_each_other_and_the_live_start_price(market):
    rows = market.klines(SYMBOL, 1, None, ANCHOR - 1, NOW)
    assert rows[-1][0] == ANCHOR - MINUTE_MS
    assert rows[-1][4] == market.last_price(SYMBOL)  # last history close = live start
    assert all(a[4] == b[1] for a, b in zip(rows, rows[1:]))  # each candle opens at the last close


def test_klines_weekly_history_reaches_back_ten_years_but_not_before_first_open(market):
    spec = market.spec(SYMBOL)
    rows = market.klines(SYMBOL, 10080, None, None, NOW)
    oldest = market.klines(SYMBOL, 10080, 0, None, NOW)
    assert rows[0][0] <= NOW - 500 * WEEK_MS + WEEK_MS
    assert oldest[0][0] == spec.first_open_ms  # a Monday, the first week of the contract
    assert oldest[0][0] == week_floor(oldest[0][0])


def test_klines_minute_pages_exist_days_back(market):
    to_ms = NOW - 3 * 86_400_000
    rows = market.klines(SYMBOL, 1, None, to_ms, NOW)
    assert len(rows) == 500
    assert rows[-1][0] == period_start(to_ms, 1)


def test_klines_from_and_to_select_the_documented_windows(market):
    span = 60 * MINUTE_MS
    start = period_start(NOW, 60) - 1000 * span
    only_from = market.klines(SYMBOL, 60, start, None, NOW)
    both = market.klines(SYMBOL, 60, start, start + 10 * span, NOW)
    wide = market.klines(SYMBOL, 60, start - 5000 * span, start, NOW)
    unaligned = market.klines(SYMBOL, 60, start + 1, start + 3 * span, NOW)
    assert [r[0] for r in only_from] == [start + i * span for i in range(500)]
    assert [r[0] for r in both] == [start + i * span for i in range(11)]
    assert [r[0] for r in wide] == [start - i * span for i in range(499, -1, -1)]
    assert [r[0] for r in unaligned] == [start + span, start + 2 * span, start + 3 * span]
    assert market.klines(SYMBOL, 60, NOW + span, None, NOW) == []
    assert market.klines(SYMBOL, 60, start, start - 1, NOW) == []
    assert both == only_from[:11]  # the same candles whichever way they are asked for


@pytest.mark.parametrize("granularity", [3, 0, 2880, "1min", "abc", None, 1.5])
def test_klines_reject_unknown_granularities(market, granularity):
    with pytest.raises(SimError) as info:
        market.klines(SYMBOL, granularity, None, None, NOW)
    assert (info.value.http_status, info.value.code) == (400, "400100")


def test_klines_accept_numeric_strings_and_reject_unknown_symbols(market):
    assert market.klines(SYMBOL, "60", None, None, NOW) == market.klines(SYMBOL, 60, None, None, NOW)
    with pytest.raises(SimError) as info:
        market.klines("NOPEUSDTM", 1, None, None, NOW)
    assert info.value.code == "200003"


def _aggregate(rows: list[list]) -> list:
    return [rows[0][0], rows[0][1], max(r[2] for r in rows), min(r[3] for r in rows),
            rows[-1][4], sum(r[5] for r in rows)]


@pytest.mark.parametrize("coarse, fine", [
    (5, 1), (15, 5), (30, 15), (60, 15), (120, 60), (240, 60), (480, 240), (720, 240),
    (1440, 240), (1440, 720), (10080, 1440),
])
def test_history_candles_aggregate_their_finer_candles_exactly(market, coarse, fine):
    to_ms = ANCHOR - 7 * 86_400_000 - 1  # well inside the history
    big = market.klines(SYMBOL, coarse, None, to_ms, NOW)[-3:]
    for row in big:
        parts = market.klines(SYMBOL, fine, row[0], row[0] + coarse * MINUTE_MS - 1, NOW)
        assert len(parts) == coarse // fine
        assert _aggregate(parts) == row


def test_history_is_deterministic_per_seed_and_differs_between_seeds():
    a, b, c = (Market(seed=s, now_ms=NOW) for s in (5, 5, 6))
    pages = [m.klines("ETHUSDTM", 15, None, None, NOW) for m in (a, b, c)]
    assert pages[0] == pages[1]
    assert pages[0] != pages[2]


def test_candle_tree_children_honour_their_parent():
    history = CandleHistory(key="t", start_ms=ANCHOR - 30 * WEEK_MS, anchor_ms=ANCHOR,
                            level_ticks=50_000, daily_vol=0.05, daily_lots=1e6)
    rng = Random(3)
    parents = history.weeks()
    for level in (WEEK, DAY, H4, H1, M15):
        parent = rng.choice(parents) if level else parents[-1]  # the current week (whole) too
        kids = history.children(level, parent)
        t0, t1, o, h, low, c, volume, _, _ = parent
        assert [k[0] for k in kids] == list(range(t0, t1, LEVEL_MS[level + 1]))
        assert (kids[0][2], kids[-1][5], kids[-1][1]) == (o, c, t1)
        assert (max(k[3] for k in kids), min(k[4] for k in kids)) == (h, low)
        assert sum(k[6] for k in kids) == volume
        parents = kids
    assert all(k[1] - k[0] == LEVEL_MS[M1] for k in history.children(M15, parents[0]))


def test_live_trade_updates_every_in_progress_candle_and_emits_candle_updates():
    market = Market(seed=11, now_ms=NOW, contracts=_xbt())
    market.advance(NOW + 2000)
    market.drain_events()
    t = NOW + 2000
    price = market.book(SYMBOL).best("sell") + 200_000  # above every candle so far
    market.record_trade(SYMBOL, taker_side="buy", price_ticks=price, size=7, maker_order_id="m",
                        taker_order_id="t", now_ms=t + 1500)
    updates = [e for e in market.drain_events() if isinstance(e, CandleUpdate)]
    price_str = market.fmt(SYMBOL).to_str(price)
    assert sorted(u.granularity_min for u in updates) == sorted(GRANULARITIES)
    for granularity in GRANULARITIES:
        row = market.klines(SYMBOL, granularity, None, None, t + 1500)[-1]
        assert (row[2], row[4]) == (float(price_str), float(price_str))
        update = next(u for u in updates if u.granularity_min == granularity)
        assert update.start_s * 1000 == row[0] == period_start(t + 1500, granularity)
        assert (update.high, update.close, update.volume) == (price_str, price_str, row[5])


def test_live_candles_roll_over_by_time():
    market = Market(seed=11, now_ms=NOW, contracts=_xbt())
    next_minute = ANCHOR + MINUTE_MS
    market.advance(next_minute + 5000)
    trades = [e for e in market.drain_events() if isinstance(e, Trade) and e.symbol == SYMBOL]
    rows = market.klines(SYMBOL, 1, None, None, next_minute + 5000)
    in_first = [t for t in trades if t.ts_ns < next_minute * 1_000_000]
    in_second = [t for t in trades if t.ts_ns >= next_minute * 1_000_000]
    assert [r[0] for r in rows[-3:]] == [ANCHOR - MINUTE_MS, ANCHOR, next_minute]
    assert rows[-2][4] == float(in_first[-1].price)
    assert rows[-2][5] == sum(t.size for t in in_first)
    assert rows[-1][1] == float(in_second[0].price) if in_second else rows[-1][5] == 0


def test_history_of_a_fixed_past_range_does_not_depend_on_when_the_simulator_started():
    """One seed, one history: a backtest over a fixed absolute range reads the same candles from a
    simulator started at any later time (the anchor only bounds what is served)."""
    lo = period_start(ANCHOR - 20 * 86_400_000, 1440)
    hi = lo + 86_400_000
    starts = (NOW, NOW + 3 * 86_400_000 + 7 * MINUTE_MS, NOW + 40 * 86_400_000)
    pages = [Market(seed=5, now_ms=now, contracts=_xbt()).klines(SYMBOL, 5, lo, hi, now) for now in starts]
    other_seed = Market(seed=6, now_ms=NOW, contracts=_xbt()).klines(SYMBOL, 5, lo, hi, NOW)
    assert len(pages[0]) == 288 + 1 and pages[0] == pages[1] == pages[2]
    assert other_seed != pages[0]
    # a simulator started inside the range serves its first part alike, cut at its start
    mid = lo + 13 * 3_600_000 + 37 * MINUTE_MS
    cut = Market(seed=5, now_ms=mid, contracts=_xbt()).klines(SYMBOL, 5, lo, mid - 1, mid)
    assert cut[:-1] == pages[0][:len(cut) - 1]
    started = Market(seed=5, now_ms=mid, contracts=_xbt())
    assert cut[-1][0] == period_start(mid, 5) and cut[-1][4] == started.last_price(SYMBOL)
