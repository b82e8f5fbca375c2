"""KuCoinClient.prefetch against the simulator (one subscribe for a universe, one wait, never an
error for data that is late) and the warm get_ohlcv row memo (rebuilt exactly when the cached
series changes; a caller's changes to its rows never reach the next caller)."""
from __future__ import annotations

import math
import time
from typing import Any

import pytest

from kucoin_futures.protocol.candles import CandleSeries
from kucoin_client import KuCoinClient, PrefetchResult
from kucoin_futures.client.facade import FIRST_READ_WAIT_S
from kucoin_futures.errors import InvalidArgument
from kucoin_futures.protocol.types import Candle
from kucoin_sim import Simulator
from kucoin_websocket import KuCoinWebSocket
from kucoin_websocket import State as WsState
from tests.helpers import TIMEOUT_S, wait_until

BTC, ETH, SOL, XRP = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "XRP/USDT:USDT"
IDS = {BTC: "XBTUSDTM", ETH: "ETHUSDTM", SOL: "SOLUSDTM", XRP: "XRPUSDTM"}
MARKET_PATHS = ("/api/v1/ticker", "/api/v1/level2/snapshot", "/api/v1/kline/query")
SLACK_S = 0.25 * TIMEOUT_S / 5.0  # scheduling slack of a timing bound (scales with TEST_TIMEOUT_FACTOR)


def make_client(sim: Simulator, **kwargs: Any) -> KuCoinClient:
    creds = sim.credentials
    return KuCoinClient(creds.api_key, creds.api_secret, creds.api_passphrase, futures_url=sim.url, **kwargs)


def quiet_client(sim: Simulator) -> KuCoinClient:
    """A client whose WebSocket makes no REST call of its own after each series' history (no
    closed-candle re-reads), so the simulator's request counts show the reads' calls alone."""
    ws = KuCoinWebSocket(rest_url=sim.url, confirm_closed_candles_after_s=None)
    return make_client(sim, websocket=ws)


def topics(symbol: str, *, candles: tuple[str, ...] = ("1min",), book: bool = False) -> set[str]:
    kid = IDS[symbol]
    found = {f"/contractMarket/tickerV2:{kid}", f"/contractMarket/ticker:{kid}"}
    found |= {f"/contractMarket/limitCandle:{kid}_{kind}" for kind in candles}
    return found | ({f"/contractMarket/level2:{kid}"} if book else set())


def market_requests(sim: Simulator) -> tuple[int, ...]:
    return sim.call(lambda: tuple(sim.requests[("GET", path)] for path in MARKET_PATHS))


# -- prefetch ----------------------------------------------------------------------------------
def test_prefetch_subscribes_every_series_then_reads_are_served_from_the_cache(sim: Simulator) -> None:
    symbols = [BTC, ETH, SOL, ETH]  # a repeat is prefetched once
    with quiet_client(sim) as client:
        result = client.prefetch(symbols, timeframes=("1m", "5m"), order_books=True, timeout_s=TIMEOUT_S)
        subscribed = sim.subscriptions
        before = market_requests(sim)
        reads = [(client.get_ticker(s)["source"], client.get_ohlcv(s, "1m", 100).source,
                  client.get_ohlcv(s, "5m", 100).source, client.get_order_book(s)["source"]) for s in symbols[:3]]
        after = market_requests(sim)
        counts = client.source_counts
    assert result == PrefetchResult(ready=(BTC, ETH, SOL), missing=())
    assert subscribed == set().union(*(topics(s, candles=("1min", "5min"), book=True) for s in (BTC, ETH, SOL)))
    assert (reads, after, counts) == ([("websocket",) * 4] * 3, before, {"websocket": 12, "rest": 0})


def test_prefetch_that_times_out_reports_missing_and_first_reads_do_not_wait(sim: Simulator) -> None:
    """With every WebSocket upgrade refused nothing can arrive: the prefetch returns after its
    timeout without raising, and the first reads go straight to REST (no FIRST_READ_WAIT_S)."""
    sim.refuse_ws(10_000)
    with make_client(sim) as client:
        started = time.monotonic()
        result = client.prefetch([BTC, ETH], timeout_s=0.2)
        waited_s = time.monotonic() - started
        started = time.monotonic()
        sources = (client.get_ticker(BTC)["source"], client.get_ohlcv(ETH, "1m", 100).source)
        reads_s = time.monotonic() - started
    assert result == PrefetchResult(ready=(), missing=(BTC, ETH))
    assert 0.2 <= waited_s < 0.2 + SLACK_S
    assert (sources, reads_s < FIRST_READ_WAIT_S / 2, sim.subscriptions) == (("rest", "rest"), True, frozenset())


def test_prefetch_reports_each_symbol_and_a_late_one_arrives_later(sim: Simulator) -> None:
    """ETH's kline history is held back past the timeout: ETH is missing, BTC (already cached)
    ready; timeout_s=0 only looks at the cache; a later prefetch finds ETH once its history is in."""
    with quiet_client(sim) as client:
        first = client.prefetch([BTC], timeout_s=TIMEOUT_S)
        with sim.delay_rest(0.6, "GET", "/api/v1/kline/query"):
            partial = client.prefetch([BTC, ETH], timeout_s=0.1)
        look = client.prefetch([BTC], timeout_s=0)
        later = client.prefetch([ETH], timeout_s=TIMEOUT_S)
    assert (first, partial) == (PrefetchResult(ready=(BTC,), missing=()), PrefetchResult(ready=(BTC,), missing=(ETH,)))
    assert (look, later) == (PrefetchResult(ready=(BTC,), missing=()), PrefetchResult(ready=(ETH,), missing=()))


BAD_PREFETCHES = [
    (([BTC, "NOPE/USDT:USDT"],), {}),
    (([BTC, "BTC/USDT"],), {}),  # a spot symbol
    (([BTC, "XBTUSDTM"],), {}),  # a KuCoin id, not a unified symbol
    (([BTC, 42],), {}),
    ((BTC,), {}),  # one symbol, not a collection
    (([[BTC]],), {}),
    ((42,), {}),
    (([BTC],), {"timeframes": (1,)}),
    (([BTC],), {"timeframes": ("1m", "7m")}),
    (([BTC],), {"timeframes": "1m"}),
    (([BTC],), {"timeout_s": -1}),
    (([BTC],), {"timeout_s": True}),
    (([BTC],), {"timeout_s": math.nan}),
    (([BTC],), {"timeout_s": math.inf}),
]


def test_prefetch_bad_input_raises_and_subscribes_nothing(sim: Simulator) -> None:
    """Every bad call raises InvalidArgument; then a good prefetch of XRP (its subscribe goes out
    on the same connection after anything the bad calls could have sent) finds XRP's topics alone."""
    with make_client(sim) as client:
        client.get_ticker(SOL)
        wait_until(lambda: sim.subscriptions == topics(SOL, candles=()), what="SOL's ticker topics")
        before = sim.subscriptions
        refused = []
        for args, kwargs in BAD_PREFETCHES:
            with pytest.raises(InvalidArgument) as caught:
                client.prefetch(*args, **kwargs)
            refused.append(type(caught.value))
        barrier = client.prefetch([XRP], timeout_s=TIMEOUT_S)
        wait_until(lambda: topics(XRP) <= sim.subscriptions, what="XRP's topics")
        after = sim.subscriptions
    assert refused == [InvalidArgument] * len(BAD_PREFETCHES)
    assert (barrier, after - before) == (PrefetchResult(ready=(XRP,), missing=()), topics(XRP))


def test_prefetch_bad_timeframe_needs_no_markets(sim: Simulator) -> None:
    client = make_client(sim)
    with pytest.raises(InvalidArgument):
        client.prefetch([BTC], timeframes=("3m",))
    assert (sim.call(lambda: sum(sim.requests.values())), client.health()["started"]) == (0, False)
    client.close()


def test_prefetch_without_websocket_is_a_no_op(sim: Simulator) -> None:
    with make_client(sim, enable_websocket=False) as client:
        result = client.prefetch([BTC, ETH], order_books=True)
        with pytest.raises(InvalidArgument):
            client.prefetch(["NOPE/USDT:USDT"])
        requests = market_requests(sim)
    assert result == PrefetchResult(ready=(), missing=(BTC, ETH))
    assert (requests, sim.connections_total, sim.request_count("POST", "/api/v1/bullet-public")) == ((0, 0, 0), 0, 0)


# -- warm get_ohlcv ----------------------------------------------------------------------------
class SeriesFeed:
    """Stands in for KuCoinWebSocket's candle reads: serves whatever series the test set last."""

    state = WsState.RUNNING

    def __init__(self, series: CandleSeries) -> None:
        self.series = series

    def subscribe_candles(self, symbol: str, timeframe: str) -> None:
        pass

    def wait_for_candles(self, symbol: str, timeframe: str, **_: float) -> CandleSeries:
        return self.series

    def get_candles(self, symbol: str, timeframe: str, **_: float) -> CandleSeries:
        return self.series

    def stop(self) -> None:
        pass


def candle(k: int, close: float, *, received_at: float = 1.0) -> Candle:
    return Candle(ts_ms=k * 60_000, open=100.0 + k, high=200.0 + k, low=50.0 + k, close=close, volume=float(k),
                  received_at=received_at, source="websocket")


def expected(series: CandleSeries, limit: int) -> list[list[float]]:
    """The rows computed the long way, from the series' Candle values."""
    return [[c.ts_ms, c.open, c.high, c.low, c.close, c.volume] for c in series][-limit:]


def test_get_ohlcv_rows_follow_every_change_of_the_cached_series(sim: Simulator) -> None:
    s1 = CandleSeries.from_candles([candle(k, 150.0 + k) for k in range(120)], received_at=1.0)
    s2 = s1.pushed(candle(119, 999.0, received_at=2.0), 500)  # the period in progress moves
    s3 = s2.pushed(candle(120, 7.0, received_at=3.0), 500)  # a new period
    s4 = s3.touched(4.0)  # same candles, a new series object
    s5 = s4.merged([candle(115, 1.5, received_at=5.0)], 500, received_at=5.0)  # a closed candle corrected
    feed = SeriesFeed(s1)
    seen = []
    with make_client(sim, websocket=feed) as client:
        for series in (s1, s1, s2, s3, s4, s5):
            feed.series = series
            seen.append([list(client.get_ohlcv(BTC, "1m", 100)), list(client.get_ohlcv(BTC, "1m", 30))])
        wide = client.get_ohlcv(BTC, "1m", 121)  # more rows than the memo holds: rebuilt
        short = client.get_ohlcv(BTC, "1m", 120)
    assert seen == [[expected(s, 100), expected(s, 30)] for s in (s1, s1, s2, s3, s4, s5)]
    assert seen[2][0][-1][4] == 999.0 and seen[3][0][-1][:2] == [120 * 60_000, 100.0 + 120]
    assert (list(wide), wide.source, list(short)) == (expected(s5, 121), "websocket", expected(s5, 120))


def test_get_ohlcv_callers_own_their_rows(sim: Simulator) -> None:
    series = CandleSeries.from_candles([candle(k, 150.0 + k) for k in range(120)], received_at=1.0)
    with make_client(sim, websocket=SeriesFeed(series)) as client:
        first = client.get_ohlcv(BTC, "1m", 100)
        first[-1][4] = -1.0
        first[0].append(123.0)
        first.append([0, 0.0, 0.0, 0.0, 0.0, 0.0])
        del first[1]
        second = client.get_ohlcv(BTC, "1m", 100)
        third = client.get_ohlcv(BTC, "1m", 100)
    assert (type(second), second.source, list(second)) == (type(first), "websocket", expected(series, 100))
    assert (second is not third, second[0] is not third[0], third == second) == (True, True, True)


def test_get_ohlcv_rows_equal_the_live_cache(sim: Simulator) -> None:
    """Against the real WebSocket cache: with the market paused, the rows equal the cached
    series' own conversion, read after read."""
    with make_client(sim) as client:
        wait_until(lambda: client.get_ohlcv(BTC, "1m", 100).source == "websocket", what="candles from the cache")
        sim.pause_market()

        def reads_of_one_series() -> Any:  # a push still in flight may land between two reads
            before = client.websocket.get_candles(BTC, "1m", max_age_s=math.inf)
            reads = [client.get_ohlcv(BTC, "1m", 100) for _ in range(3)]
            return client.websocket.get_candles(BTC, "1m", max_age_s=math.inf) is before and (before, reads)
        cached, reads = wait_until(reads_of_one_series, what="three reads of one cached series")
    assert [(list(rows), rows.source) for rows in reads] == [(cached.ohlcv()[-100:], "websocket")] * 3
