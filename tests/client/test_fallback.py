"""Loopback tests: KuCoinClient's market data falls back to REST when the WebSocket cache is
stale, the WebSocket is down, or a first read finds nothing within its wait — and returns to the
cache when fresh data flows again.

Freshness is driven by a fake clock shared by the client and an injected KuCoinWebSocket; the
simulator advertises a long ping interval so that moving the fake clock does not make the
WebSocket think its connection died.
"""
from __future__ import annotations

import time
from typing import Any

import pytest

from kucoin_client import KuCoinClient
from kucoin_futures.client.facade import BOOK_MAX_AGE_S, FIRST_READ_WAIT_S, TICKER_MAX_AGE_S
from kucoin_sim import Simulator
from kucoin_websocket import KuCoinWebSocket
from tests.helpers import TIMEOUT_S, FakeClock, wait_until
from tests.sim.wsclient import http

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
CANDLE_MAX_AGE_S = 30.0  # half a 1m candle
QUIET_PING_MS = 600_000  # ping interval and timeout advertised: far beyond any fake-clock jump
SLACK_S = 0.25 * TIMEOUT_S / 5.0  # scheduling slack of a timing bound (scales with TEST_TIMEOUT_FACTOR)
PATH_TICKER, PATH_BOOK, PATH_KLINES = "/api/v1/ticker", "/api/v1/level2/snapshot", "/api/v1/kline/query"


def make_client(sim: Simulator, **kwargs: Any) -> KuCoinClient:
    creds = sim.credentials
    return KuCoinClient(creds.api_key, creds.api_secret, creds.api_passphrase, futures_url=sim.url, **kwargs)


def fake_clock_client(sim: Simulator, clock: FakeClock) -> KuCoinClient:
    # No closed-candle confirmation: its delayed REST re-read would refresh the series at a
    # moment the test does not control.
    ws = KuCoinWebSocket(rest_url=sim.url, clock=clock, backoff_initial_s=0.05, backoff_cap_s=0.2,
                         confirm_closed_candles_after_s=None)
    return make_client(sim, websocket=ws, clock=clock)


@pytest.fixture
def quiet_sim():
    with Simulator(seed=7, ping_interval_ms=QUIET_PING_MS, ping_timeout_ms=QUIET_PING_MS) as sim:
        yield sim


def sources(client: KuCoinClient) -> tuple[str, str, str]:
    return (client.get_ticker(BTC)["source"], client.get_order_book(BTC)["source"],
            client.get_ohlcv(BTC, "1m", limit=50).source)


def counts(sim: Simulator) -> tuple[int, int, int]:
    return sim.call(lambda: tuple(sim.requests[("GET", path)] for path in (PATH_TICKER, PATH_BOOK, PATH_KLINES)))


def rest_top(sim: Simulator) -> tuple:
    _, _, ticker = http(sim, "GET", "/api/v1/ticker?symbol=XBTUSDTM")
    _, _, book = http(sim, "GET", "/api/v1/level2/snapshot?symbol=XBTUSDTM")
    data = ticker["data"]
    return (float(data["bestBidPrice"]), float(data["bestAskPrice"]), float(data["price"]), book["data"]["sequence"])


def cached_top(client: KuCoinClient) -> tuple:
    ticker, book = client.get_ticker(BTC), client.get_order_book(BTC)
    return (ticker["bid"], ticker["ask"], ticker["last"], book["nonce"])


def settle(client: KuCoinClient, sim: Simulator) -> None:
    """Pause the market and wait until the caches hold its final state (nothing more in flight)."""
    wait_until(lambda: client.get_ticker(BTC)["last"] is not None, what="a trade in the cached ticker")
    sim.pause_market()
    final = rest_top(sim)
    wait_until(lambda: cached_top(client) == final, what="the caches == the paused market")


def test_client_stale_cache_falls_back_to_rest_per_kind(quiet_sim: Simulator) -> None:
    """Ticker and book: 10 s; 1m candles: 30 s (half a candle). Each boundary from both sides."""
    sim, clock = quiet_sim, FakeClock()
    with fake_clock_client(sim, clock) as client:
        wait_until(lambda: sources(client) == ("websocket",) * 3, what="every read from the cache")
        settle(client, sim)
        cached_rows = list(client.get_ohlcv(BTC, "1m", limit=50))
        cached_ticker = client.get_ticker(BTC)
        clock.advance(TICKER_MAX_AGE_S - 0.1)
        before, fresh = counts(sim), sources(client)
        clock.advance(0.2)
        ticker, book = client.get_ticker(BTC), client.get_order_book(BTC)
        candles_at_10s = client.get_ohlcv(BTC, "1m", limit=50).source
        after_10s = counts(sim)
        clock.advance(CANDLE_MAX_AGE_S - TICKER_MAX_AGE_S - 0.2)
        candles_at_29s = client.get_ohlcv(BTC, "1m", limit=50).source
        clock.advance(0.2)
        candles = client.get_ohlcv(BTC, "1m", limit=50)
        after_30s = counts(sim)
        sim.pause_market(False)  # new pushes are stamped with the fake clock's now: fresh again
        # (candles would need a trade and the next once-a-second candle push; the WebSocket-down
        # test sees them come back)
        wait_until(lambda: sources(client)[:2] == ("websocket",) * 2, what="the cache again")
    assert BOOK_MAX_AGE_S == TICKER_MAX_AGE_S == 10.0
    assert fresh == ("websocket",) * 3  # at 9.9 s; these reads are inside the deltas below
    assert (ticker["source"], book["source"], candles_at_10s, candles_at_29s, candles.source) == (
        "rest", "rest", "websocket", "websocket", "rest")
    assert [b - a for a, b in zip(before, after_10s)] == [1, 1, 0]
    assert [b - a for a, b in zip(after_10s, after_30s)] == [0, 0, 1]
    assert {k: ticker[k] for k in ("bid", "ask", "last", "timestamp")} == {
        k: cached_ticker[k] for k in ("bid", "ask", "last", "timestamp")}
    common = {row[0] for row in candles} & {row[0] for row in cached_rows}
    assert len(common) >= 49  # a minute boundary may pass between the two reads
    # closed periods must agree; the period in progress may not: candle pushes are throttled to
    # one a second, so a trade just before the pause can be in REST's row and not yet pushed
    closed = common - {max(common)}
    assert [r for r in candles if r[0] in closed] == [r for r in cached_rows if r[0] in closed]


def test_client_serves_rest_while_the_websocket_is_down_then_the_cache_again(quiet_sim: Simulator) -> None:
    sim, clock = quiet_sim, FakeClock()
    with fake_clock_client(sim, clock) as client:
        wait_until(lambda: sources(client) == ("websocket",) * 3, what="every read from the cache")
        wait_until(client.websocket.is_healthy, what="every subscription acknowledged")
        sim.refuse_ws(10_000)
        assert sim.drop_ws() == 1
        wait_until(lambda: client.health()["websocket"]["state"] == "RECONNECTING", what="the drop noticed")
        down_book = client.get_order_book(BTC)["source"]  # a book that lost its feed is never served
        clock.advance(CANDLE_MAX_AGE_S + 0.1)  # the ticker and the candles age out while down
        down = sources(client)
        sim.refuse_ws(0)
        wait_until(lambda: sources(client) == ("websocket",) * 3, what="the cache after the reconnect")
        health = client.health()["websocket"]
    assert (down_book, down) == ("rest", ("rest",) * 3)
    assert (health["state"], health["connections"], health["reconnects"] >= 1) == ("RUNNING", 1, True)


def test_client_default_websocket_recovers_through_the_gateway(sim: Simulator) -> None:
    """The client's own KuCoinWebSocket fetches each token through the client's REST gateway."""
    with make_client(sim) as client:
        wait_until(lambda: client.get_order_book(ETH)["source"] == "websocket", what="the cached book")
        tokens_before = sim.request_count("POST", "/api/v1/bullet-public")
        sim.refuse_ws(10_000)
        sim.drop_ws()
        wait_until(lambda: client.health()["websocket"]["state"] == "RECONNECTING", what="the drop noticed")
        down = client.get_order_book(ETH)["source"]
        sim.refuse_ws(0)
        wait_until(lambda: client.get_order_book(ETH)["source"] == "websocket", what="the book after the reconnect")
        tokens_after = sim.request_count("POST", "/api/v1/bullet-public")
    assert (down, tokens_before, tokens_after > tokens_before) == ("rest", 1, True)


READS = {
    "ticker": lambda client: client.get_ticker(BTC)["source"],
    "ohlcv": lambda client: client.get_ohlcv(BTC, "5m", limit=20).source,
    "order_book": lambda client: client.get_order_book(BTC)["source"],
}


@pytest.mark.parametrize("kind", list(READS))
def test_client_first_read_waits_at_most_half_a_second_then_uses_rest(sim: Simulator, kind: str) -> None:
    """With the WebSocket refused, the first read of a symbol gives up after FIRST_READ_WAIT_S;
    later reads do not wait again."""
    read = READS[kind]
    sim.refuse_ws(10_000)
    with make_client(sim) as client:
        started = time.monotonic()
        first = read(client)
        first_s = time.monotonic() - started
        started = time.monotonic()
        second = read(client)
        second_s = time.monotonic() - started
    assert (first, second, FIRST_READ_WAIT_S) == ("rest", "rest", 0.5)
    assert FIRST_READ_WAIT_S - 0.01 <= first_s < FIRST_READ_WAIT_S + second_s + SLACK_S
    assert second_s < FIRST_READ_WAIT_S / 2
