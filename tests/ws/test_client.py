"""Loopback tests: KuCoinWebSocket against the simulator over real sockets (normal operation)."""
from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from kucoin_futures.protocol.types import OrderBook, Ticker
from kucoin_sim import Simulator
from kucoin_websocket import KuCoinWebSocket, State
from tests.helpers import TIMEOUT_S, wait_until
from tests.sim.wsclient import http

BTC, ETH, SOL, XRP = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "XRP/USDT:USDT"
T_V2, T_V1 = "/contractMarket/tickerV2:", "/contractMarket/ticker:"
# The tests that exercise a real connection run over both transports (ws/transports.py).
BOTH_TRANSPORTS = pytest.mark.parametrize("transport", ["picows", "websocket-client"])


def make_ws(sim: Simulator, **kwargs: Any) -> KuCoinWebSocket:
    options: dict[str, Any] = dict(rest_url=sim.url, backoff_initial_s=0.05, backoff_cap_s=0.4)
    options.update(kwargs)
    return KuCoinWebSocket(**options)


def rest_book(sim: Simulator, kucoin_id: str) -> dict:
    status, _, body = http(sim, "GET", f"/api/v1/level2/snapshot?symbol={kucoin_id}")
    assert status == 200, body
    return body["data"]


def same_book(book: OrderBook | None, rest: dict) -> bool:
    return (book is not None and book.sequence == rest["sequence"]
            and list(book.bids) == [tuple(level) for level in rest["bids"]]
            and list(book.asks) == [tuple(level) for level in rest["asks"]])


@BOTH_TRANSPORTS
def test_ws_serves_ticker_candles_and_book(sim: Simulator, transport: str) -> None:
    with make_ws(sim, transport=transport, max_candles=300) as ws:
        ws.subscribe_ticker(BTC)
        ws.subscribe_candles(BTC, "1m")
        ws.subscribe_order_book(ETH)
        ticker = ws.wait_for_ticker(BTC, timeout_s=TIMEOUT_S)
        candles = ws.wait_for_candles(BTC, "1m", timeout_s=TIMEOUT_S)
        book = ws.wait_for_order_book(ETH, timeout_s=TIMEOUT_S, depth=5)
        wait_until(ws.is_healthy, what="all acks")
        stats = ws.stats()
    starts = list(candles.ts_ms)
    assert (ticker.symbol, ticker.source, ticker.bid < ticker.ask) == (BTC, "websocket", True)
    assert (len(candles), starts == sorted(set(starts))) == (300, True)
    assert {b - a for a, b in zip(starts, starts[1:])} == {60_000}
    assert (book.symbol, len(book.bids), len(book.asks), book.bids[0][0] < book.asks[0][0]) == (ETH, 5, 5, True)
    assert [p for p, _ in book.bids] == sorted((p for p, _ in book.bids), reverse=True)
    assert (stats.state, stats.connections, stats.reconnects, stats.malformed) == (State.RUNNING, 1, 0, 0)
    assert set(stats.topics) == {T_V2 + "XBTUSDTM", T_V1 + "XBTUSDTM",
                                 "/contractMarket/limitCandle:XBTUSDTM_1min", "/contractMarket/level2:ETHUSDTM"}
    assert stats.topics[T_V2 + "XBTUSDTM"].messages + stats.topics[T_V1 + "XBTUSDTM"].messages >= 1


@BOTH_TRANSPORTS
def test_ws_order_book_equals_the_simulators(sim: Simulator, transport: str) -> None:
    with make_ws(sim, transport=transport) as ws:
        ws.subscribe_order_book(BTC)
        assert ws.wait_for_order_book(BTC, timeout_s=TIMEOUT_S) is not None
        sim.pause_market()
        rest = rest_book(sim, "XBTUSDTM")
        wait_until(lambda: same_book(ws.get_order_book(BTC, max_age_s=60), rest), what="book == simulator's")
        assert ws.stats().resyncs == {BTC: 0}


@BOTH_TRANSPORTS
def test_ws_unsubscribe_removes_topics_and_values(sim: Simulator, transport: str) -> None:
    with make_ws(sim, transport=transport) as ws:
        ws.subscribe_ticker(BTC)
        ws.subscribe_order_book(BTC)
        assert ws.wait_for_ticker(BTC, timeout_s=TIMEOUT_S) is not None
        assert ws.wait_for_order_book(BTC, timeout_s=TIMEOUT_S) is not None
        ws.unsubscribe_ticker(BTC)
        ws.unsubscribe_order_book(BTC)
        assert sim.wait_until(lambda: not sim.subscriptions, TIMEOUT_S)
        assert (ws.get_ticker(BTC, max_age_s=60), ws.get_order_book(BTC, max_age_s=60)) == (None, None)
        assert ws.stats().topics == {}


def test_ws_replays_subscriptions_made_before_start(sim: Simulator) -> None:
    ws = make_ws(sim)
    ws.subscribe_ticker(ETH, last_trade=False)
    assert (ws.state, ws.get_ticker(ETH, max_age_s=60)) == (State.NEW, None)
    with ws:
        assert ws.wait_for_ticker(ETH, timeout_s=TIMEOUT_S).symbol == ETH
    assert sim.connections_total == 1


@BOTH_TRANSPORTS
def test_ws_spreads_topics_over_connections_at_the_topic_limit(sim: Simulator, transport: str) -> None:
    with make_ws(sim, transport=transport, max_topics_per_connection=3) as ws:
        for symbol in (BTC, ETH, SOL, XRP):
            ws.subscribe_ticker(symbol)
        wait_until(ws.is_healthy, what="three subscribed connections")
        per_connection = sim.call(lambda: sorted(len(conn.topics) for conn in sim.hub.conns))
        assert (sim.connection_count, per_connection) == (3, [2, 3, 3])
        assert sim.subscriptions == {prefix + kid for prefix in (T_V2, T_V1)
                                     for kid in ("XBTUSDTM", "ETHUSDTM", "SOLUSDTM", "XRPUSDTM")}
        assert all(ws.wait_for_ticker(symbol, timeout_s=TIMEOUT_S) for symbol in (BTC, ETH, SOL, XRP))


def test_ws_stays_running_while_a_new_connection_opens_for_more_topics(sim: Simulator) -> None:
    """Only a lost connection makes the state RECONNECTING (the bot pauses entries then), not a
    connection opened for topics beyond the per-connection limit."""
    with make_ws(sim, max_topics_per_connection=2) as ws:
        ws.subscribe_ticker(BTC)
        wait_until(ws.is_healthy, what="the first connection subscribed")
        seen: set[State] = set()

        def second_connection_up() -> bool:
            seen.add(ws.state)
            return sim.connection_count == 2 and ws.is_healthy()

        with sim.delay_rest(0.3, "POST", "/api/v1/bullet-public"):  # a long "pending" window
            ws.subscribe_ticker(ETH)
            wait_until(lambda: not ws.is_healthy(), what="the new connection pending")
            wait_until(second_connection_up, what="the second connection subscribed")
        assert (seen, ws.stats().reconnects) == ({State.RUNNING}, 0)


@BOTH_TRANSPORTS
def test_ws_renews_connections_before_the_token_expires(sim: Simulator, transport: str) -> None:
    """With renew_after_s short, the client reconnects with new tokens, make-before-break."""
    topics = {T_V2 + "XBTUSDTM", "/contractMarket/level2:XBTUSDTM"}
    lost_topics = threading.Event()

    def watch() -> bool:  # called on every simulator change, from the waiting thread
        if not topics <= sim.subscriptions:
            lost_topics.set()
        return sim.connections_total >= 3 and sim.connection_count == 1

    with make_ws(sim, transport=transport, renew_after_s=0.3) as ws:
        ws.subscribe_ticker(BTC, last_trade=False)
        ws.subscribe_order_book(BTC)
        assert ws.wait_for_order_book(BTC, timeout_s=TIMEOUT_S) is not None
        assert sim.wait_until(watch, 3 * TIMEOUT_S)
        renewed_at = time.monotonic()
        wait_until(lambda: (ws.get_ticker(BTC, max_age_s=60) or _OLD).received_at > renewed_at, what="ticker after")
        wait_until(lambda: ws.get_order_book(BTC, max_age_s=60) is not None, what="book after renewal")
        stats = ws.stats()
    assert not lost_topics.is_set()
    assert (stats.reconnects, stats.connections_opened >= 3) == (0, True)


_OLD = Ticker(BTC, 0.0, 0, 0.0, 0, None, None, 0, float("-inf"), "websocket", 0)


@BOTH_TRANSPORTS
def test_ws_getters_return_none_once_stale(sim: Simulator, transport: str) -> None:
    clock = _FakeClock(time.monotonic())
    with make_ws(sim, transport=transport, clock=clock) as ws:
        ws.subscribe_ticker(BTC)
        ws.subscribe_candles(BTC, "1m")
        ws.subscribe_order_book(BTC)
        assert ws.wait_for_ticker(BTC, timeout_s=TIMEOUT_S) is not None
        assert ws.wait_for_candles(BTC, "1m", timeout_s=TIMEOUT_S) is not None
        assert ws.wait_for_order_book(BTC, timeout_s=TIMEOUT_S) is not None
        sim.pause_market()  # nothing new is sent from here on
        wait_until(_quiet(ws), what="frames in flight drained")
        fresh = (ws.get_ticker(BTC, max_age_s=1.0), ws.get_candles(BTC, "1m", max_age_s=1.0),
                 ws.get_order_book(BTC, max_age_s=1.0))
        clock.advance(1.5)
        stale = (ws.get_ticker(BTC, max_age_s=1.0), ws.get_candles(BTC, "1m", max_age_s=1.0),
                 ws.get_order_book(BTC, max_age_s=1.0))
        waited = ws.wait_for_ticker(BTC, timeout_s=0.05, max_age_s=1.0)
    assert all(value is not None for value in fresh)
    assert (stale, waited) == ((None, None, None), None)


def _quiet(ws: KuCoinWebSocket) -> Any:
    """A predicate true once the message count held still over five polls (~50 ms)."""
    counts: list[int] = []

    def still() -> bool:
        counts.append(ws.stats().messages)
        return len(counts) >= 5 and len(set(counts[-5:])) == 1
    return still


class _FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_ws_wait_for_times_out_without_data(sim: Simulator) -> None:
    sim.pause_market()
    with make_ws(sim) as ws:
        ws.subscribe_ticker(SOL)
        started = time.monotonic()
        value = ws.wait_for_ticker(SOL, timeout_s=0.2)
        waited_s = time.monotonic() - started
    assert value is None
    assert waited_s >= 0.2


@BOTH_TRANSPORTS
def test_ws_callbacks_that_raise_do_not_kill_the_feed(sim: Simulator, transport: str) -> None:
    calls: list[Ticker] = []

    def on_ticker(ticker: Ticker) -> None:
        calls.append(ticker)
        raise RuntimeError("a bug in the user's callback")

    with make_ws(sim, transport=transport, on_ticker=on_ticker, on_order_book=lambda book: 1 / 0) as ws:
        ws.subscribe_ticker(BTC)
        ws.subscribe_order_book(BTC)
        wait_until(lambda: len(calls) >= 5, what="five ticker callbacks")
        assert ws.wait_for_order_book(BTC, timeout_s=TIMEOUT_S) is not None
        sim.pause_market()
        wait_until(lambda: ws.get_ticker(BTC, max_age_s=60) == calls[-1], what="the last callback's ticker cached")
        assert (ws.is_healthy(), sim.connections_total, ws.stats().reconnects) == (True, 1, 0)


@pytest.mark.parametrize("bad", ["BTC/USDT", "BTCUSDTM", ""])
def test_ws_rejects_bad_symbols_at_once(sim: Simulator, bad: str) -> None:
    from kucoin_futures.errors import InvalidArgument

    ws = make_ws(sim)
    with pytest.raises(InvalidArgument):
        ws.subscribe_ticker(bad)
    with pytest.raises(InvalidArgument):
        ws.subscribe_candles(BTC, "2m")


@BOTH_TRANSPORTS
def test_ws_refused_topic_is_dropped_and_reported(sim: Simulator, transport: str) -> None:
    """A contract the exchange does not know: error 404 for its subscribe; the rest carries on."""
    with make_ws(sim, transport=transport) as ws:
        ws.subscribe_ticker("FOO/USDT:USDT", last_trade=False)
        ws.subscribe_ticker(BTC, last_trade=False)
        wait_until(lambda: ws.stats().refused_topics, what="the refusal")
        wait_until(ws.is_healthy, what="healthy without the refused topic")
        assert ws.wait_for_ticker(BTC, timeout_s=TIMEOUT_S) is not None
        stats = ws.stats()
    assert set(stats.refused_topics) == {T_V2 + "FOOUSDTM"}
    assert stats.refused_topics[T_V2 + "FOOUSDTM"].startswith("404")
    assert set(stats.topics) == {T_V2 + "XBTUSDTM"}


def test_ws_unsubscribe_candles_forgets_the_series(sim: Simulator) -> None:
    with make_ws(sim, max_candles=20) as ws:
        ws.subscribe_candles(BTC, "5m")
        assert len(ws.wait_for_candles(BTC, "5m", timeout_s=TIMEOUT_S)) == 20
        ws.unsubscribe_candles(BTC, "5m")
        assert sim.wait_until(lambda: not sim.subscriptions, TIMEOUT_S)
        assert ws.get_candles(BTC, "5m", max_age_s=60) is None


def test_ws_sets_and_restores_the_gil_switch_interval(sim: Simulator) -> None:
    import sys

    before = sys.getswitchinterval()
    ws = make_ws(sim, gil_switch_interval_s=0.001).start()
    during = sys.getswitchinterval()
    ws.stop()
    assert (during, sys.getswitchinterval()) == (0.001, before)
