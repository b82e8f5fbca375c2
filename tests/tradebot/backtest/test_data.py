"""The backtest's history: downloaded from the simulator once, then offline; gaps reported."""
from __future__ import annotations

import numpy as np
import pytest

from kucoin_client import KuCoinClient
from tests.tradebot.backtest.conftest import SPAN, T0
from tradebot.backtest.data import Gap, HistoryCache, find_gaps, load_history, load_markets, missing_ranges

DAY = 86_400_000
SYMBOLS = ["BTC/USDT:USDT", "ETH/USDT:USDT"]


def _offline():
    raise AssertionError("the cache should have answered: nothing may be fetched")


def test_a_rerun_reads_the_cache_and_sends_no_request(sim, tmp_path):
    now_ms = int(sim.now_ms())
    since = now_ms - now_ms % DAY - 3 * DAY
    cache = HistoryCache(tmp_path, source="simulator-seed7")
    with KuCoinClient(futures_url=sim.url, enable_websocket=False) as client:
        markets = load_markets(cache, lambda: client, now_s=now_ms / 1000)
        first = load_history(cache, lambda: client, SYMBOLS, "5m", since_ms=since, until_ms=since + DAY,
                             now_ms=now_ms, markets=markets)
    sent = sum(sim.requests.values())
    markets_again = load_markets(cache, _offline, now_s=now_ms / 1000 + 60)
    again = load_history(cache, _offline, SYMBOLS, "5m", since_ms=since, until_ms=since + DAY, now_ms=now_ms + 60_000,
                         markets=markets_again)
    part = load_history(cache, _offline, SYMBOLS[:1], "5m", since_ms=since + DAY // 2, until_ms=since + DAY,
                        now_ms=now_ms, markets=markets_again)
    assert sim.requests[("GET", "/api/v1/kline/query")] >= 2 and sim.requests[("GET", "/api/v1/contract/funding-rates")] >= 2
    assert sum(sim.requests.values()) == sent  # not one request more
    assert (first.fetched_ranges, again.fetched_ranges) == (4, 0) and markets_again == markets
    for symbol in SYMBOLS:
        rows = first.series[symbol].rows
        assert len(rows) == 288 and np.all(np.diff(rows[:, 0]) == SPAN) and rows[0, 0] == since
        assert np.array_equal(again.series[symbol].rows, rows)
        assert np.array_equal(again.series[symbol].funding, first.series[symbol].funding)
        assert list(first.series[symbol].funding[:, 0] % (8 * 3_600_000)) == [4 * 3_600_000] * 3  # 04, 12, 20 UTC
    assert np.array_equal(part.series[SYMBOLS[0]].rows, first.series[SYMBOLS[0]].rows[144:])
    assert first.gaps == ()


def test_the_simulators_history_of_a_fixed_range_is_the_same_whenever_it_is_asked(tmp_path):
    """Two simulators of one seed started days apart serve one history of a fixed past range."""
    from kucoin_sim import Simulator

    since = 1_790_000_000_000 - 1_790_000_000_000 % DAY
    answers = []
    for start_ms in (since + 3 * DAY + 123_456, since + 9 * DAY + 7_654_321):
        with Simulator(seed=3, clock_ms=lambda t=start_ms: t, rate_limits=False) as simulator, \
                KuCoinClient(futures_url=simulator.url, enable_websocket=False) as client:
            answers.append((client.fetch_ohlcv_history("ETH/USDT:USDT", "15m", since_ms=since, until_ms=since + DAY),
                            client.fetch_funding_rate_history("ETH/USDT:USDT", since_ms=since, until_ms=since + DAY)))
    assert len(answers[0][0]) == 96 and len(answers[0][1]) == 3
    assert answers[0] == answers[1]


class _Gappy:
    """A client whose exchange lacks candles 100-119 of the range (and has no funding)."""

    def __init__(self) -> None:
        self.calls = 0

    def fetch_ohlcv_history(self, symbol, timeframe, *, since_ms, until_ms, on_page=None):
        self.calls += 1
        rows = [[t, 1.0, 1.0, 1.0, 1.0, 1.0] for t in range(since_ms, until_ms, SPAN)]
        if on_page is not None:
            on_page(1, 1)
        return [r for r in rows if not T0 + 100 * SPAN <= r[0] < T0 + 120 * SPAN]

    def fetch_funding_rate_history(self, symbol, *, since_ms, until_ms):
        return []


def test_gaps_are_reported_and_not_refetched(tmp_path):
    client, pages = _Gappy(), []
    cache = HistoryCache(tmp_path, source="fake")
    args = dict(since_ms=T0, until_ms=T0 + 300 * SPAN, now_ms=T0 + 10 * DAY, markets={})
    first = load_history(cache, lambda: client, ["X"], "5m", on_page=lambda *a: pages.append(a), **args)
    again = load_history(cache, _offline, ["X"], "5m", **args)
    assert first.gaps == again.gaps == (Gap("X", T0 + 100 * SPAN, T0 + 120 * SPAN, 20),)
    assert len(first.series["X"].rows) == 280 and client.calls == 1 and pages == [("X", 1, 1)]


def test_find_gaps_at_the_edges_and_inside():
    ts = np.array([T0 + k * SPAN for k in (2, 3, 7, 8)])
    assert find_gaps("X", ts, SPAN, T0, T0 + 10 * SPAN) == (
        Gap("X", T0, T0 + 2 * SPAN, 2), Gap("X", T0 + 4 * SPAN, T0 + 7 * SPAN, 3),
        Gap("X", T0 + 9 * SPAN, T0 + 10 * SPAN, 1))
    assert find_gaps("X", np.array([], dtype=np.int64), SPAN, T0 + 1, T0 + 3 * SPAN) == (
        Gap("X", T0 + SPAN, T0 + 3 * SPAN, 2),)


@pytest.mark.parametrize("covered, expected", [
    ([], [(0, 100)]),
    ([(0, 100)], []),
    ([(10, 20), (50, 60)], [(0, 10), (20, 50), (60, 100)]),
    ([(-5, 30), (25, 200)], []),
])
def test_missing_ranges(covered, expected):
    assert missing_ranges(covered, 0, 100) == expected


def test_the_candle_in_progress_is_never_history(tmp_path):
    client = _Gappy()
    history = load_history(HistoryCache(tmp_path, source="fake"), lambda: client, ["X"], "5m", since_ms=T0,
                           until_ms=T0 + 50 * SPAN, now_ms=T0 + 10 * SPAN + 1, markets={})
    assert history.until_ms == T0 + 10 * SPAN and history.series["X"].rows[-1, 0] == T0 + 9 * SPAN
