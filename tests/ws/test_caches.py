"""Component tests: the lock-guarded caches with a fake clock (no sockets)."""
from __future__ import annotations

import threading

import pytest

from kucoin_futures.ws.caches import CandleCache, OrderBookCache, TickerCache
from kucoin_futures.protocol.candles import CandleSeries
from kucoin_futures.errors import InvalidArgument
from kucoin_futures.protocol.types import Candle, OrderBook, Ticker
from tests.helpers import TIMEOUT_S, FakeClock

SYMBOL = "BTC/USDT:USDT"
MINUTE_MS = 60_000
T0_MS = 1_731_898_200_000


def ticker(received_at: float, *, bid: float = 100.0, symbol: str = SYMBOL) -> Ticker:
    return Ticker(symbol, bid, 5, bid + 0.1, 7, None, None, 1_731_665_526_461, received_at, "websocket", 1)


def candle(minute: int, close: float, received_at: float, source: str = "websocket") -> Candle:
    return Candle(T0_MS + minute * MINUTE_MS, 100.0, max(100.0, close), min(100.0, close), close, 3.0,
                  received_at, source)


def book(received_at: float, levels: int = 3) -> OrderBook:
    bids = tuple((100.0 - i, i + 1) for i in range(levels))
    asks = tuple((100.5 + i, i + 1) for i in range(levels))
    return OrderBook(SYMBOL, bids, asks, 42, 1_731_897_467_182, received_at, "websocket")


# -- tickers ---------------------------------------------------------------------------------
def test_ticker_cache_serves_fresh_and_refuses_stale():
    clock = FakeClock()
    cache = TickerCache(clock=clock)
    value = ticker(clock.now)
    cache.put(value)
    clock.advance(2.0)
    fresh = cache.get(SYMBOL, max_age_s=2.0)
    clock.advance(0.001)
    stale = cache.get(SYMBOL, max_age_s=2.0)
    assert (fresh, stale, cache.get("ETH/USDT:USDT", max_age_s=9.0)) == (value, None, None)


def test_ticker_cache_discard_and_keys():
    clock = FakeClock()
    cache = TickerCache(clock=clock)
    cache.put(ticker(clock.now))
    cache.put(ticker(clock.now, symbol="ETH/USDT:USDT"))
    cache.discard(SYMBOL)
    assert (cache.keys(), cache.get(SYMBOL, max_age_s=9.0)) == (["ETH/USDT:USDT"], None)


def test_ticker_wait_returns_a_fresh_value_at_once():
    clock = FakeClock()
    cache = TickerCache(clock=clock)
    value = ticker(clock.now)
    cache.put(value)
    assert cache.wait(SYMBOL, timeout_s=0.0, max_age_s=1.0) == value


def test_ticker_wait_times_out_with_none():
    cache = TickerCache(clock=FakeClock())
    assert cache.wait(SYMBOL, timeout_s=0.05) is None
    assert cache._waiters == {}  # the timed-out waiter was forgotten


def test_ticker_wait_wakes_on_put_from_another_thread():
    clock = FakeClock()
    cache = TickerCache(clock=clock)
    stale = ticker(clock.now - 10.0, bid=1.0)
    cache.put(stale)
    fresh = ticker(clock.now, bid=2.0)
    results: list[Ticker | None] = []
    waiter = threading.Thread(target=lambda: results.append(cache.wait(SYMBOL, timeout_s=TIMEOUT_S, max_age_s=1.0)))
    waiter.start()
    cache.put(fresh)
    waiter.join(TIMEOUT_S)
    assert results == [fresh]


# -- order books -----------------------------------------------------------------------------
def test_order_book_cache_cuts_depth_and_ages_out():
    clock = FakeClock()
    cache = OrderBookCache(clock=clock)
    full = book(clock.now, levels=5)
    cache.put(full)
    top2 = cache.get(SYMBOL, max_age_s=1.0, depth=2)
    whole = cache.get(SYMBOL, max_age_s=1.0)
    clock.advance(1.5)
    assert top2 == OrderBook(SYMBOL, full.bids[:2], full.asks[:2], 42, full.ts_ms, full.received_at, "websocket")
    assert (whole, cache.get(SYMBOL, max_age_s=1.0)) == (full, None)


def test_order_book_cache_rejects_bad_depth():
    cache = OrderBookCache(clock=FakeClock())
    cache.put(book(1000.0, levels=5))
    with pytest.raises(InvalidArgument):
        cache.get(SYMBOL, max_age_s=1.0, depth=0)


# -- candles ---------------------------------------------------------------------------------
def test_candle_push_replaces_the_same_period_and_appends_a_new_one():
    clock = FakeClock()
    cache = CandleCache(clock=clock, max_candles=500)
    cache.update(SYMBOL, "1m", candle(0, 101.0, 1.0))
    cache.update(SYMBOL, "1m", candle(0, 102.0, 2.0))
    cache.update(SYMBOL, "1m", candle(1, 103.0, 3.0))
    assert cache.peek((SYMBOL, "1m")) == CandleSeries.from_candles((candle(0, 102.0, 2.0), candle(1, 103.0, 3.0)), 3.0)


def test_candle_push_older_observation_of_a_period_is_ignored():
    cache = CandleCache(clock=FakeClock())
    cache.update(SYMBOL, "1m", candle(0, 102.0, 2.0))
    cache.update(SYMBOL, "1m", candle(0, 101.0, 1.0))
    assert tuple(cache.peek((SYMBOL, "1m"))) == (candle(0, 102.0, 2.0),)


def test_candle_series_keeps_max_candles_newest():
    cache = CandleCache(clock=FakeClock(), max_candles=3)
    for minute in range(5):
        cache.update(SYMBOL, "1m", candle(minute, 100.0 + minute, float(minute)))
    assert [c.ts_ms for c in cache.peek((SYMBOL, "1m"))] == [T0_MS + m * MINUTE_MS for m in (2, 3, 4)]


def test_candle_out_of_order_push_is_merged_in_place():
    cache = CandleCache(clock=FakeClock())
    cache.update(SYMBOL, "1m", candle(0, 100.0, 1.0))
    cache.update(SYMBOL, "1m", candle(2, 102.0, 2.0))
    cache.update(SYMBOL, "1m", candle(1, 101.0, 3.0))
    assert tuple(cache.peek((SYMBOL, "1m"))) == (candle(0, 100.0, 1.0), candle(1, 101.0, 3.0), candle(2, 102.0, 2.0))


def test_candle_rest_merge_fills_gaps_without_duplicates_newest_observation_wins():
    """A REST refill after a reconnect overlaps what the socket delivered: one candle per period."""
    cache = CandleCache(clock=FakeClock())
    cache.update(SYMBOL, "1m", candle(0, 100.0, 1.0))
    cache.update(SYMBOL, "1m", candle(1, 101.0, 5.0))  # pushed after the REST request started
    rest = [candle(0, 99.0, 4.0, "rest"), candle(1, 100.5, 4.0, "rest"), candle(2, 102.0, 4.0, "rest")]
    merged = cache.merge(SYMBOL, "1m", rest, received_at=4.0)
    assert merged == CandleSeries.from_candles((rest[0], candle(1, 101.0, 5.0), rest[2]), 5.0)


def test_candle_merge_of_nothing_keeps_the_candles_and_shows_the_series():
    """A contract without history: the empty REST answer still completes the series."""
    cache = CandleCache(clock=FakeClock(10.0))
    cache.update(SYMBOL, "1m", candle(0, 100.0, 1.0))
    hidden = cache.get(SYMBOL, "1m", max_age_s=60)
    merged = cache.merge(SYMBOL, "1m", [], received_at=9.0)
    assert (hidden, merged) == (None, CandleSeries.from_candles((candle(0, 100.0, 1.0),), 9.0))
    assert tuple(cache.get(SYMBOL, "1m", max_age_s=60)) == (candle(0, 100.0, 1.0),)


def test_candle_series_is_hidden_until_its_history_is_merged():
    """Pushes that beat the REST backfill are kept, but nobody reads a lone candle as history."""
    clock = FakeClock(10.0)
    cache = CandleCache(clock=clock)
    results: list = []
    waiter = threading.Thread(target=lambda: results.append(cache.wait(SYMBOL, "1m", timeout_s=TIMEOUT_S)))
    waiter.start()
    cache.update(SYMBOL, "1m", candle(5, 105.0, 10.0))
    early = cache.get(SYMBOL, "1m", max_age_s=60)
    history = [candle(m, 100.0 + m, 9.0, "rest") for m in range(5)]
    cache.merge(SYMBOL, "1m", history, received_at=9.0)
    waiter.join(TIMEOUT_S)
    assert early is None
    assert [tuple(series) for series in results] == [tuple(history) + (candle(5, 105.0, 10.0),)]
    cache.discard((SYMBOL, "1m"))
    cache.update(SYMBOL, "1m", candle(6, 106.0, 10.0))
    assert cache.get(SYMBOL, "1m", max_age_s=60) is None  # discarded: hidden again until history


def test_candle_get_limit_staleness_and_last_start():
    clock = FakeClock(10.0)
    cache = CandleCache(clock=clock)
    cache.merge(SYMBOL, "1m", [], received_at=10.0)
    for minute in range(4):
        cache.update(SYMBOL, "1m", candle(minute, 100.0, 10.0))
    last_two = cache.get(SYMBOL, "1m", max_age_s=1.0, limit=2)
    clock.advance(2.0)
    assert tuple(last_two) == (candle(2, 100.0, 10.0), candle(3, 100.0, 10.0))
    assert cache.get(SYMBOL, "1m", max_age_s=1.0) is None
    assert cache.last_start_ms(SYMBOL, "1m") == T0_MS + 3 * MINUTE_MS
    assert cache.last_start_ms(SYMBOL, "5m") is None


def test_candle_wait_gets_the_first_series():
    clock = FakeClock()
    cache = CandleCache(clock=clock)
    results: list = []
    waiter = threading.Thread(target=lambda: results.append(cache.wait(SYMBOL, "1m", timeout_s=TIMEOUT_S)))
    waiter.start()
    cache.merge(SYMBOL, "1m", [candle(0, 100.0, clock.now, "rest")], received_at=clock.now)
    waiter.join(TIMEOUT_S)
    assert [tuple(series) for series in results] == [(candle(0, 100.0, clock.now, "rest"),)]


def test_candle_concurrent_merges_lose_nothing():
    """Merges from two threads (REST worker and WS thread) compare-and-swap: both sets survive."""
    cache = CandleCache(clock=FakeClock(), max_candles=2000)
    start = threading.Barrier(2)

    def writer(first: int) -> None:
        start.wait()
        for minute in range(first, first + 400, 2):
            cache.merge(SYMBOL, "1m", [candle(minute, 100.0, 1.0, "rest")], received_at=1.0)

    threads = [threading.Thread(target=writer, args=(first,)) for first in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S)
    assert list(cache.peek((SYMBOL, "1m")).ts_ms) == [T0_MS + m * MINUTE_MS for m in range(400)]


def test_candle_cache_rejects_bad_arguments():
    with pytest.raises(InvalidArgument):
        CandleCache(clock=FakeClock(), max_candles=0)
    cache = CandleCache(clock=FakeClock())
    cache.merge(SYMBOL, "1m", [candle(0, 100.0, 1.0)], received_at=1.0)
    with pytest.raises(InvalidArgument):
        cache.get(SYMBOL, "1m", max_age_s=9e9, limit=0)


# -- the compact series ----------------------------------------------------------------------
def test_candle_series_reads_back_equal_candles_and_columns():
    candles = [candle(0, 101.0, 1.0, "rest"), candle(1, 99.0, 2.0), candle(2, 100.0, 3.0)]
    series = CandleSeries.from_candles(candles, received_at=3.0)
    assert (list(series), series[1], tuple(series[1:]), len(series)) == (candles, candles[1], tuple(candles[1:]), 3)
    assert (list(series.closes), list(series.ts_ms), series.last_start_ms) == (
        [101.0, 99.0, 100.0], [c.ts_ms for c in candles], candles[-1].ts_ms)
    assert series.ohlcv() == [[c.ts_ms, c.open, c.high, c.low, c.close, c.volume] for c in candles]
    with pytest.raises(TypeError):
        series.closes[0] = 1.0  # read-only view: a shared snapshot cannot be changed


def merged(existing: list[Candle], incoming: list[Candle], max_len: int = 100) -> tuple[Candle, ...]:
    return tuple(CandleSeries.from_candles(existing, received_at=0.0).merged(incoming, max_len, received_at=0.0))


def test_candle_series_merge_ws_candle_replaces_rest_row_of_same_period():
    rest = [candle(0, 101.0, 10.0, "rest"), candle(1, 102.0, 10.0, "rest")]
    ws = candle(1, 102.5, 11.0)
    assert merged(rest, [ws]) == (rest[0], ws)


def test_candle_series_merge_appends_new_period():
    rest = [candle(0, 101.0, 10.0, "rest")]
    ws = candle(1, 103.0, 11.0)
    assert merged(rest, [ws]) == (rest[0], ws)


def test_candle_series_merge_later_rest_row_replaces_earlier_push():
    """After the period closed, a freshly fetched REST row beats the last (possibly early) push."""
    rest = [candle(0, 101.5, 70.0, "rest"), candle(1, 102.0, 70.0, "rest")]
    assert merged([candle(0, 101.4, 10.0)], rest) == tuple(rest)


def test_candle_series_merge_older_push_does_not_override_newer_observation():
    newer = candle(0, 101.5, 20.0)
    assert merged([newer], [candle(0, 101.0, 19.0, "rest")]) == (newer,)


def test_candle_series_merge_sorts_trims_breaks_ties_to_incoming_and_keeps_the_newer_receipt_time():
    existing = [candle(m, 100.0 + m, float(m)) for m in range(0, 6)]  # minute m received at m
    incoming = {m: candle(m, 200.0 + m, 3.0, "rest") for m in (8, 3, 7, 4, 6, 5)}
    series = CandleSeries.from_candles(existing, received_at=5.0).merged(incoming.values(), 7, received_at=3.0)
    assert (tuple(series), series.received_at) == (
        (existing[2], incoming[3], existing[4], existing[5], incoming[6], incoming[7], incoming[8]), 5.0)


def test_candle_series_merge_rejects_bad_max_len():
    with pytest.raises(InvalidArgument):
        merged([], [], max_len=0)


def test_candle_series_empty():
    series = CandleSeries.from_candles((), received_at=1.0)
    assert (len(series), list(series), series.last_start_ms) == (0, [], None)
    assert tuple(series.pushed(candle(0, 100.0, 2.0), 5)) == (candle(0, 100.0, 2.0),)
