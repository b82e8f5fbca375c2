"""The transport seam: choosing the WebSocket library by name (KuCoinWebSocket's ``transport``,
KuCoinClient's ``ws_transport``, the WS_TRANSPORT setting), refusing bad names before anything
starts, and "auto" falling back to websocket-client where picows does not import. Behaviour over
a real connection is tested for both transports in the other test_websocket*.py files."""
from __future__ import annotations

import logging
import sys
import threading
from typing import Any

import pytest

from config import Settings
from kucoin_client import KuCoinClient
from kucoin_futures.errors import InvalidArgument
from kucoin_futures.ws.transports import TRANSPORT_NAMES, resolve_transport
from kucoin_sim import Simulator
from kucoin_websocket import KuCoinWebSocket
from tests.helpers import TIMEOUT_S, wait_until

BTC = "BTC/USDT:USDT"
BAD_NAMES = ["", "PICOWS", "websockets", "websocket_client", None, 1, ["picows"]]


@pytest.fixture
def without_picows(monkeypatch: pytest.MonkeyPatch) -> None:
    """A platform without a picows wheel: importing picows raises ImportError."""
    monkeypatch.setitem(sys.modules, "picows", None)
    monkeypatch.delitem(sys.modules, "kucoin_futures.ws.transport_picows", raising=False)


@pytest.mark.parametrize(("name", "expected"), [("auto", "picows"), ("picows", "picows"),
                                                ("websocket-client", "websocket-client")])
def test_transport_names_pick_a_library(name: str, expected: str) -> None:
    assert (KuCoinWebSocket(transport=name).transport, resolve_transport(name).NAME) == (expected, expected)


def test_transport_auto_falls_back_to_websocket_client_without_picows(without_picows: None) -> None:
    assert KuCoinWebSocket().transport == "websocket-client"
    with pytest.raises(InvalidArgument, match="transport='picows'"):
        KuCoinWebSocket(transport="picows")


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_transport_bad_names_are_refused_before_anything_starts(bad: Any) -> None:
    threads = set(threading.enumerate())
    with pytest.raises(InvalidArgument, match="transport"):
        KuCoinWebSocket(transport=bad)
    with pytest.raises(InvalidArgument, match="ws_transport"):
        KuCoinClient(ws_transport=bad)
    with pytest.raises(InvalidArgument, match="ws_transport"):
        KuCoinClient(ws_transport=bad, enable_websocket=False)  # refused even when unused
    assert set(threading.enumerate()) == threads


def test_transport_choice_is_logged_once_at_start(sim: Simulator, without_picows: None,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    ws = KuCoinWebSocket(rest_url=sim.url, name="kws-choice")
    with caplog.at_level(logging.INFO, logger="kucoin_futures.ws.client"):
        with ws:
            ws.subscribe_ticker(BTC, last_trade=False)
            assert ws.wait_for_ticker(BTC, timeout_s=TIMEOUT_S) is not None
    choices = [r.args for r in caplog.records if r.levelno == logging.INFO and "transport" in r.msg]
    assert choices == [("kws-choice", "websocket-client (auto)")]


@pytest.mark.parametrize("transport", ["picows", "websocket-client"])
def test_transport_delivers_a_burst_of_frames_in_order_and_whole(sim: Simulator, transport: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """2,000 bad frames in two server writes (text, and binary that is not UTF-8): each one is
    counted once and the connection carries on; websocket-client's reader is held back by a short
    queue limit on the way (its backpressure path), and nothing is lost."""
    from kucoin_futures.ws import transport_wsclient

    monkeypatch.setattr(transport_wsclient, "MAX_QUEUED_FRAMES", 50)
    with KuCoinWebSocket(rest_url=sim.url, transport=transport, backoff_initial_s=0.05) as ws:
        ws.subscribe_ticker(BTC, last_trade=False)
        assert ws.wait_for_ticker(BTC, timeout_s=TIMEOUT_S) is not None
        assert sim.send_raw([b"not json %d" % i for i in range(1500)]) == 1
        assert sim.send_raw([b"\xff\xfe not utf-8"] * 500, binary=True) == 1
        wait_until(lambda: ws.stats().malformed == 2000, what="2,000 malformed frames counted")
        after = ws.get_ticker(BTC, max_age_s=60).received_at
        wait_until(lambda: ws.get_ticker(BTC, max_age_s=60).received_at > after, what="tickers after the burst")
        assert (ws.stats().reconnects, sim.connections_total) == (0, 1)


@pytest.mark.parametrize("name", ["picows", "websocket-client"])
def test_client_passes_ws_transport_to_its_websocket(sim: Simulator, name: str) -> None:
    creds = sim.credentials
    with KuCoinClient(creds.api_key, creds.api_secret, creds.api_passphrase, futures_url=sim.url,
                      ws_transport=name) as client:
        ticker = client.get_ticker(BTC)
        assert (client.websocket.transport, ticker["symbol"]) == (name, BTC)


@pytest.mark.parametrize(("setting", "expected"), [("auto", "picows"), ("websocket-client", "websocket-client")])
def test_client_from_settings_takes_ws_transport(setting: str, expected: str) -> None:
    client = KuCoinClient.from_settings(Settings(ws_transport=setting))  # built, never started: no I/O
    try:
        assert client.websocket.transport == expected
    finally:
        client.close()


def test_config_knows_the_same_transport_names() -> None:
    import config

    assert config.WS_TRANSPORTS == TRANSPORT_NAMES
