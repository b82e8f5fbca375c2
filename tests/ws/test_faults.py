"""Loopback tests: KuCoinWebSocket under each simulator fault (drops, half-open sockets, lost
level-2 deltas, malformed frames, expired tokens, refused connections)."""
from __future__ import annotations

import os
import time
from typing import Any

import pytest

from kucoin_sim import Simulator
from kucoin_websocket import KuCoinWebSocket
from tests.helpers import TIMEOUT_S, wait_until
from tests.sim.wsclient import http

BTC = "BTC/USDT:USDT"
TICKER_TOPIC = "/contractMarket/tickerV2:XBTUSDTM"
BULLET = ("POST", "/api/v1/bullet-public")
SLACK_S = 0.3 * float(os.environ.get("TEST_TIMEOUT_FACTOR", "1"))  # scheduling noise on a busy box
SLOW_S = 3 * TIMEOUT_S  # the 30x-fast simulator shares our GIL: on a busy box it takes its time
# The tests that exercise a real connection run over both transports (ws/transports.py).
BOTH_TRANSPORTS = pytest.mark.parametrize("transport", ["picows", "websocket-client"])


def make_ws(sim: Simulator, **kwargs: Any) -> KuCoinWebSocket:
    options: dict[str, Any] = dict(rest_url=sim.url, backoff_initial_s=0.05, backoff_cap_s=0.4)
    options.update(kwargs)
    return KuCoinWebSocket(**options)


def ticker_after(ws: KuCoinWebSocket, moment: float) -> bool:
    ticker = ws.get_ticker(BTC, max_age_s=60)
    return ticker is not None and ticker.received_at > moment


@pytest.mark.parametrize(("confirm_after_s", "transport"),
                         [(0.2, "picows"), (None, "picows"), (0.2, "websocket-client")],
                         ids=["confirmed-picows", "unconfirmed-picows", "confirmed-websocket-client"])
def test_ws_drop_reconnects_resubscribes_and_loses_no_candle(confirm_after_s: float | None, transport: str) -> None:
    """A drop long enough for whole 1m periods to pass while disconnected (the simulator runs
    30x fast): while offline the series is not served; after the reconnect the gap is refilled
    from REST, one candle per minute, and the periods that passed offline equal the simulator's
    kline history. With closed candles
    confirmed from REST, every closed candle equals it. (Like KuCoin, the simulator pushes a
    candle at most once a second, so without confirmation the last trades of a period may be
    missing; the period in progress is never compared.)"""
    speed = 30
    start_ms = time.time_ns() // 1_000_000

    def sim_ms() -> int:
        return start_ms + (time.time_ns() // 1_000_000 - start_ms) * speed

    # One market step per real second (30 simulated seconds): little CPU, so the simulated
    # market keeps within a step of its clock on a busy machine.
    with Simulator(seed=7, clock_ms=sim_ms, tick_ms=1000, ping_interval_ms=18_000 * speed,
                   ping_timeout_ms=10_000 * speed) as sim:
        with make_ws(sim, transport=transport, wall_clock=lambda: sim_ms() / 1000, max_candles=40,
                     confirm_closed_candles_after_s=confirm_after_s) as ws:
            ws.subscribe_candles(BTC, "1m")
            ws.subscribe_ticker(BTC, last_trade=False)
            assert ws.wait_for_candles(BTC, "1m", timeout_s=TIMEOUT_S) is not None
            with sim.delay_rest(5.0, *BULLET):  # 5 s without a socket: 150 simulated seconds
                dropped_at_ms = sim_ms()
                assert sim.drop_ws() == 1
                wait_until(lambda: ws.get_candles(BTC, "1m", max_age_s=60) is None, what="series held back")
                assert sim.wait_until(lambda: sim.connections_total == 2, 3 * TIMEOUT_S)
                reconnected_ms = sim_ms()
            assert sim.wait_for_subscription("/contractMarket/limitCandle:XBTUSDTM_1min", TIMEOUT_S)
            reconnected = time.monotonic()
            wait_until(lambda: ticker_after(ws, reconnected), SLOW_S, what="tickers after the reconnect")
            wait_until(lambda: (ws.get_candles(BTC, "1m", max_age_s=60) or ()) and
                       ws.get_candles(BTC, "1m", max_age_s=60).last_start_ms > reconnected_ms,
                       SLOW_S, what="candles refilled and past the reconnect")
            sim.pause_market()
            # Whole periods between the drop and a market step before the reconnect: nothing of
            # them reached the socket, only the REST refill can have brought them.
            offline = range(dropped_at_ms + 60_000 - dropped_at_ms % 60_000, reconnected_ms - 90_000, 60_000)

            def as_expected() -> bool:
                # The simulator's REST fills periods its (stepping or paused) market has not
                # reached with flat rows at the close of the moment; only periods before the
                # market's last traded one are final on both sides.
                cached = ws.get_candles(BTC, "1m", max_age_s=60).ohlcv()
                rest = _rest_klines(sim, cached[0][0], cached[-1][0])
                horizon = max((row[0] for row in rest if row[5] > 0), default=cached[-1][0])
                closed = [c for c in cached if c[0] < horizon]
                expected = [row for row in rest if row[0] < horizon]
                mismatch[:] = [(c, r) for c, r in zip(closed, expected) if c != r][:3]
                if confirm_after_s is not None:
                    return closed == expected
                return ([c[0] for c in closed] == [r[0] for r in expected]
                        and [c for c in closed if c[0] in offline] == [r for r in expected if r[0] in offline])

            mismatch: list[tuple[list[float], list[float]]] = []
            try:
                wait_until(as_expected, SLOW_S, what="cached candles == REST history")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; first (cached, REST) differences: {mismatch}") from None
            candles = ws.get_candles(BTC, "1m", max_age_s=60)
            stats = ws.stats()
    assert len(offline) >= 1 and set(offline) <= set(candles.ts_ms)
    starts = list(candles.ts_ms)
    assert {b - a for a, b in zip(starts, starts[1:])} == {60_000}
    assert (stats.reconnects, len(candles)) == (1, 40)


def _rest_klines(sim: Simulator, from_ms: int, to_ms: int) -> list[list[float]]:
    status, _, body = http(sim, "GET", f"/api/v1/kline/query?symbol=XBTUSDTM&granularity=1&from={from_ms}&to={to_ms}")
    assert status == 200, body
    return [[row[0], float(row[1]), float(row[2]), float(row[3]), float(row[4]), float(row[5])]
            for row in body["data"]]


@BOTH_TRANSPORTS
def test_ws_detects_a_half_open_socket_within_ping_interval_plus_timeout(transport: str) -> None:
    with Simulator(seed=7, ping_interval_ms=500, ping_timeout_ms=500) as sim:
        with make_ws(sim, transport=transport) as ws:
            ws.subscribe_ticker(BTC, last_trade=False)
            wait_until(ws.is_healthy, what="subscribed")
            assert ws.wait_for_ticker(BTC, timeout_s=TIMEOUT_S) is not None
            silenced_at = time.monotonic()
            assert sim.half_open() == 1
            wait_until(lambda: ws.stats().reconnects == 1, what="the dead socket noticed")
            detected_s = time.monotonic() - silenced_at
            assert sim.wait_until(lambda: sim.connections_total == 2, TIMEOUT_S)
            wait_until(lambda: ticker_after(ws, silenced_at + detected_s), what="tickers again")
    assert detected_s <= 0.5 + 0.5 + SLACK_S


@BOTH_TRANSPORTS
def test_ws_resyncs_the_book_after_a_skipped_sequence(sim: Simulator, transport: str) -> None:
    with make_ws(sim, transport=transport) as ws:
        ws.subscribe_order_book(BTC)
        assert ws.wait_for_order_book(BTC, timeout_s=TIMEOUT_S) is not None
        sim.skip_level2_sequence("XBTUSDTM")
        wait_until(lambda: ws.stats().resyncs[BTC] == 1, what="a resync")
        assert ws.wait_for_order_book(BTC, timeout_s=TIMEOUT_S) is not None
        sim.pause_market()
        status, _, body = http(sim, "GET", "/api/v1/level2/snapshot?symbol=XBTUSDTM")
        rest = body["data"]

        def equal() -> bool:
            book = ws.get_order_book(BTC, max_age_s=60)
            return book is not None and (book.sequence, list(book.bids), list(book.asks)) == (
                rest["sequence"], [tuple(x) for x in rest["bids"]], [tuple(x) for x in rest["asks"]])

        wait_until(equal, what="book == simulator's after the resync")
        assert (ws.stats().resyncs, ws.stats().reconnects, sim.connections_total) == ({BTC: 1}, 0, 1)


@BOTH_TRANSPORTS
def test_ws_ignores_a_malformed_frame_and_carries_on(sim: Simulator, transport: str) -> None:
    with make_ws(sim, transport=transport) as ws:
        ws.subscribe_ticker(BTC, last_trade=False)
        assert ws.wait_for_ticker(BTC, timeout_s=TIMEOUT_S) is not None
        assert sim.send_malformed() == 1
        wait_until(lambda: ws.stats().malformed == 1, what="the malformed frame counted")
        after = time.monotonic()
        wait_until(lambda: ticker_after(ws, after), what="tickers after the malformed frame")
        assert (ws.stats().reconnects, sim.connections_total) == (0, 1)


@BOTH_TRANSPORTS
def test_ws_expired_token_reconnects_with_a_new_token(sim: Simulator, transport: str) -> None:
    with make_ws(sim, transport=transport) as ws:
        ws.subscribe_ticker(BTC, last_trade=False)
        assert ws.wait_for_ticker(BTC, timeout_s=TIMEOUT_S) is not None
        bullets = sim.request_count(*BULLET)
        sim.expire_tokens()
        assert sim.wait_until(lambda: sim.connections_total == 2 and TICKER_TOPIC in sim.subscriptions, TIMEOUT_S)
        after = time.monotonic()
        wait_until(lambda: ticker_after(ws, after), what="tickers on the new connection")
        assert (bullets, sim.request_count(*BULLET), ws.stats().reconnects) == (1, 2, 1)


@BOTH_TRANSPORTS
def test_ws_backs_off_while_connections_are_refused(sim: Simulator, transport: str) -> None:
    sim.refuse_ws(3)
    with make_ws(sim, transport=transport, backoff_initial_s=0.05, backoff_cap_s=1.0) as ws:
        ws.subscribe_ticker(BTC, last_trade=False)
        wait_until(ws.is_healthy, what="connected after the refusals")
        delays = ws.stats().reconnect_delays_s
        stats = ws.stats()
    assert (sim.faults.ws_refused, sim.connections_total, sim.request_count(*BULLET)) == (3, 1, 4)
    assert len(delays) == 3 and delays[0] < 0.05 and delays[0] < delays[1] < delays[2] <= 0.2
    assert (stats.reconnects, stats.connect_failures) == (0, 3)  # never connected: no reconnect


@BOTH_TRANSPORTS
def test_ws_reconnects_at_once_after_losing_a_healthy_connection(sim: Simulator, transport: str) -> None:
    with make_ws(sim, transport=transport, backoff_initial_s=5.0, backoff_cap_s=10.0) as ws:  # a backoff would show
        ws.subscribe_ticker(BTC, last_trade=False)
        wait_until(ws.is_healthy, what="subscribed")
        dropped_at = time.monotonic()
        assert sim.drop_ws() == 1
        wait_until(lambda: ws.stats().reconnects == 1 and ws.is_healthy(), what="subscribed again")
        back_s = time.monotonic() - dropped_at
        stats = ws.stats()
    assert (stats.reconnect_delays_s, stats.connect_failures, back_s < 2.0) == ((0.0,), 0, True)
