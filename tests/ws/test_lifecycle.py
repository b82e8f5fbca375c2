"""Loopback tests: KuCoinWebSocket start/stop — no I/O before start, stop within 2 s from any
state, and nothing (thread, socket) left behind."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from kucoin_futures.errors import ClientClosed
from kucoin_sim import Simulator
from kucoin_websocket import KuCoinWebSocket, State
from tests.helpers import TIMEOUT_S, open_fd_count, wait_until

BTC = "BTC/USDT:USDT"
BULLET = ("POST", "/api/v1/bullet-public")
STOP_LIMIT_S = 2.0
# The tests that exercise a real connection run over both transports (ws/transports.py).
BOTH_TRANSPORTS = pytest.mark.parametrize("transport", ["picows", "websocket-client"])


def make_ws(sim: Simulator, **kwargs: Any) -> KuCoinWebSocket:
    options: dict[str, Any] = dict(rest_url=sim.url, backoff_initial_s=0.05, backoff_cap_s=0.4)
    options.update(kwargs)
    return KuCoinWebSocket(**options)


def our_threads(name: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(name)]


def timed_stop(ws: KuCoinWebSocket) -> float:
    started = time.monotonic()
    ws.stop()
    return time.monotonic() - started


def test_ws_constructor_does_no_io_and_stop_before_start_is_fine(sim: Simulator) -> None:
    threads = set(threading.enumerate())
    ws = make_ws(sim)
    ws.subscribe_ticker(BTC)
    assert (ws.state, ws.is_healthy(), ws.get_ticker(BTC, max_age_s=60)) == (State.NEW, False, None)
    assert (sim.request_count(*BULLET), set(threading.enumerate())) == (0, threads)
    ws.stop()
    ws.stop()  # idempotent
    assert ws.state is State.CLOSED
    with pytest.raises(ClientClosed):
        ws.start()
    with pytest.raises(ClientClosed):
        ws.subscribe_ticker(BTC)


@BOTH_TRANSPORTS
def test_ws_cannot_start_twice_or_restart(sim: Simulator, caplog: pytest.LogCaptureFixture, transport: str) -> None:
    ws = make_ws(sim, transport=transport).start()
    with pytest.raises(RuntimeError):
        ws.start()
    with caplog.at_level(logging.INFO, logger="kucoin_futures.ws.client"):
        ws.stop()
        ws.stop()  # the second call returns at once: nothing left to shut down
    with pytest.raises(ClientClosed):
        ws.start()
    assert [r.getMessage() for r in caplog.records if "stopped" in r.getMessage()] == [f"= stopped {ws._name}"]


@BOTH_TRANSPORTS
def test_ws_stop_during_backoff_returns_in_time(sim: Simulator, transport: str) -> None:
    sim.refuse_ws(1000)
    ws = make_ws(sim, transport=transport, name="kws-backoff", backoff_initial_s=1.0, backoff_cap_s=10.0).start()
    assert sim.wait_until(lambda: sim.faults.ws_refused >= 2, TIMEOUT_S)  # now waiting ~2 s to retry
    assert ws.state is State.CONNECTING
    elapsed_s = timed_stop(ws)
    assert (elapsed_s < STOP_LIMIT_S, our_threads("kws-backoff"), ws.state) == (True, [], State.CLOSED)


def test_ws_stop_during_a_slow_token_fetch_returns_in_time(sim: Simulator) -> None:
    with sim.delay_rest(30.0, *BULLET):
        ws = make_ws(sim, name="kws-slow").start()
        wait_until(lambda: sim.request_count(*BULLET) == 1, what="the bullet request in flight")
        elapsed_s = timed_stop(ws)
    assert (elapsed_s < STOP_LIMIT_S, our_threads("kws-slow")) == (True, [])


@BOTH_TRANSPORTS
def test_ws_stop_while_connected_and_mid_reconnect(sim: Simulator, transport: str) -> None:
    ws = make_ws(sim, transport=transport, name="kws-mid").start()
    ws.subscribe_order_book(BTC)
    assert ws.wait_for_order_book(BTC, timeout_s=TIMEOUT_S) is not None
    sim.refuse_ws(1000)
    sim.drop_ws()
    assert sim.wait_until(lambda: sim.faults.ws_refused >= 1, TIMEOUT_S)
    elapsed_s = timed_stop(ws)
    assert (elapsed_s < STOP_LIMIT_S, our_threads("kws-mid")) == (True, [])


@BOTH_TRANSPORTS
def test_ws_100_start_stop_cycles_leave_no_thread_or_socket(sim: Simulator, transport: str) -> None:
    threads = set(threading.enumerate())
    fds = open_fd_count()
    slowest_s = 0.0
    for cycle in range(100):
        ws = make_ws(sim, transport=transport, name="kws-cycle")
        ws.subscribe_ticker(BTC, last_trade=False)
        ws.start()
        if cycle % 10 == 0:  # every tenth cycle gets all the way to data
            assert ws.wait_for_ticker(BTC, timeout_s=TIMEOUT_S) is not None
        slowest_s = max(slowest_s, timed_stop(ws))
    assert (set(threading.enumerate()) - threads, slowest_s < STOP_LIMIT_S) == (set(), True)
    # The simulator runs in this process too; it closes its ends of our sockets asynchronously.
    wait_until(lambda: open_fd_count() <= fds, what=f"file descriptors back to {fds}")


@BOTH_TRANSPORTS
def test_ws_stop_from_a_callback_does_not_deadlock(sim: Simulator, transport: str) -> None:
    stopped = threading.Event()
    holder: list[KuCoinWebSocket] = []

    def on_ticker(ticker: object) -> None:
        if not stopped.is_set():
            holder[0].stop()
            stopped.set()

    ws = make_ws(sim, transport=transport, name="kws-self", on_ticker=on_ticker)
    holder.append(ws)
    ws.subscribe_ticker(BTC, last_trade=False)
    ws.start()
    assert stopped.wait(TIMEOUT_S)
    wait_until(lambda: not our_threads("kws-self"), what="threads gone")
    assert ws.state is State.CLOSED
