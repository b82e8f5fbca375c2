"""Loopback tests: the KuCoinClient facade against the simulator — the WebSocket and REST paths
return ccxt's shapes and the simulator's values; bad input, lifecycle, health, settings, and the
one host a client talks to."""
from __future__ import annotations

import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import ccxt
import pytest
from ccxt.test.exchange.base.test_ohlcv import test_ohlcv as ccxt_ohlcv_check
from ccxt.test.exchange.base.test_order_book import test_order_book as ccxt_order_book_check
from ccxt.test.exchange.base.test_ticker import test_ticker as ccxt_ticker_check

from config import load_settings
from kucoin_client import KuCoinClient
from kucoin_futures.errors import ClientClosed, InvalidArgument
from kucoin_futures.rest.gateway import ENDPOINTS, build_exchange
from kucoin_sim import Simulator
from kucoin_futures.client.ccxt_shapes import iso8601
from tests.helpers import ccxt_config, wait_until

BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"
TICKER_KEYS = ("symbol", "bid", "bidVolume", "ask", "askVolume", "last", "close")
# ccxt turns KuCoin's ns timestamps into ms by a float product and truncates, so its timestamp
# is sometimes 1 ms below the exact ts // 1_000_000 (1795596918065000000 * 1e-6 -> ...064.9998).
CCXT_TS_SLACK_MS = 1
# What ccxt calls on KuCoin's spot, margin and unified-account hosts (protocol notes section 8.1).
FOREIGN_PATHS = {"/api/v3/currencies", "/api/ua/v1/market/position-tiers", "/api/ua/v1/account/mode",
                 "/api/v3/margin/symbols", "/api/v1/isolated/symbols", "/api/v1/hf/accounts/opened"}


def make_client(sim: Simulator, **kwargs: Any) -> KuCoinClient:
    creds = sim.credentials
    return KuCoinClient(creds.api_key, creds.api_secret, creds.api_passphrase, futures_url=sim.url, **kwargs)


def plain_ccxt(sim: Simulator) -> ccxt.kucoinfutures:
    """ccxt as a user would point it at the simulator: the reference for REST values."""
    exchange = ccxt.kucoinfutures(ccxt_config(sim, credentials=False, enableRateLimit=False))
    exchange.load_markets()
    return exchange


def total_requests(sim: Simulator) -> int:
    return sim.call(lambda: sum(sim.requests.values()))


def served_from_websocket(read: Callable[[], Any]) -> Any:
    """Repeat read() until the value it returns came from the WebSocket cache; return it."""
    def attempt() -> Any:
        value = read()
        source = value.source if isinstance(value, list) else value["source"]
        return value if source == "websocket" else None
    return wait_until(attempt, what="a read served from the WebSocket cache")


# -- the WebSocket path ------------------------------------------------------------------------
def test_client_websocket_reads_have_ccxt_shapes(sim: Simulator) -> None:
    exchange = build_exchange(sim.url)
    with KuCoinClient(exchange=exchange, futures_url=sim.url) as client:
        ticker = served_from_websocket(lambda: client.get_ticker(BTC))
        candles = served_from_websocket(lambda: client.get_ohlcv(BTC, "1m", limit=100))
        book = served_from_websocket(lambda: client.get_order_book(BTC, limit=20))
        now_ms = exchange.milliseconds()
        ccxt_ticker_check(exchange, {}, "fetchTicker", ticker, BTC)
        ccxt_order_book_check(exchange, {}, "fetchOrderBook", book, BTC)
        for row in candles:
            ccxt_ohlcv_check(exchange, {}, "fetchOHLCV", row, BTC, now_ms)
    starts = [row[0] for row in candles]
    numbers = [ticker[k] for k in ("bid", "bidVolume", "ask", "askVolume")] + [n for side in ("bids", "asks")
                                                                               for level in book[side] for n in level]
    assert (ticker["source"], candles.source, book["source"]) == ("websocket",) * 3
    assert {type(n) for n in numbers} == {float}  # ccxt's prices and amounts; sizes are not ints
    assert (type(candles).__bases__, len(candles), starts == sorted(set(starts))) == ((list,), 100, True)
    assert {b - a for a, b in zip(starts, starts[1:])} == {60_000}
    assert (len(book["bids"]), len(book["asks"]), book["bids"][0][0] < book["asks"][0][0]) == (20, 20, True)


def test_client_websocket_values_equal_the_simulators_rest(sim: Simulator) -> None:
    """With the market paused, the cached ticker, book and candles converge on what ccxt's
    fetch_ticker / fetch_order_book / fetch_ohlcv read from the same simulator."""
    reference = plain_ccxt(sim)
    with make_client(sim) as client:
        served_from_websocket(lambda: client.get_order_book(BTC, limit=20))
        served_from_websocket(lambda: client.get_ohlcv(BTC, "1m", limit=50))
        wait_until(lambda: client.get_ticker(BTC)["last"] is not None, what="a trade in the cached ticker")
        sim.pause_market()
        rest_ticker = reference.fetch_ticker(BTC)
        rest_book = reference.fetch_order_book(BTC, limit=20)
        rest_rows = reference.fetch_ohlcv(BTC, "1m", limit=50)

        def ticker_view() -> dict:
            ticker = client.get_ticker(BTC)
            return {key: ticker[key] for key in (*TICKER_KEYS, "source")}
        wait_until(lambda: ticker_view() == {**{k: rest_ticker[k] for k in TICKER_KEYS}, "source": "websocket"},
                   what="the cached ticker == ccxt's")
        ticker = client.get_ticker(BTC)
        wait_until(lambda: client.get_order_book(BTC, limit=20)["bids"] == rest_book["bids"],
                   what="the cached book == ccxt's")
        book = client.get_order_book(BTC, limit=20)
        wait_until(lambda: client.get_ohlcv(BTC, "1m", limit=50)[-1] == rest_rows[-1], what="newest candle")
        candles = client.get_ohlcv(BTC, "1m", limit=50)
    assert 0 <= ticker["timestamp"] - rest_ticker["timestamp"] <= CCXT_TS_SLACK_MS
    assert (book["asks"], book["nonce"], book["source"]) == (rest_book["asks"], rest_book["nonce"], "websocket")
    assert (list(candles), candles.source) == (rest_rows, "websocket")


# -- the REST path -----------------------------------------------------------------------------
def test_client_without_websocket_serves_rest_only_and_never_connects(sim: Simulator) -> None:
    reference = plain_ccxt(sim)
    sim.pause_market()
    with make_client(sim, enable_websocket=False) as client:
        ticker = client.get_ticker(BTC)
        book = client.get_order_book(BTC, limit=20)
        candles = client.get_ohlcv(ETH, "5m", limit=30)
        again = client.get_ticker(BTC)
        rest_ticker = reference.fetch_ticker(BTC)
        rest_book = reference.fetch_order_book(BTC, limit=20)
        rest_rows = reference.fetch_ohlcv(ETH, "5m", limit=30)
        health = client.health()
    rest_ts_ms = rest_ticker.pop("timestamp")
    [rest_ticker.pop(key) for key in ("info", "datetime")]
    rest_book.pop("timestamp"), rest_book.pop("datetime")  # depth20 and snapshot stamp their own ts
    assert 0 <= ticker.pop("timestamp") - rest_ts_ms <= CCXT_TS_SLACK_MS
    assert ticker.pop("datetime") == iso8601(again["timestamp"])
    assert ticker == {**rest_ticker, "info": {}, "source": "rest"} == {k: again[k] for k in ticker}
    assert {k: v for k, v in book.items() if k not in ("timestamp", "datetime")} == {**rest_book, "source": "rest"}
    assert (list(candles), candles.source) == (rest_rows, "rest")
    assert (client.websocket, health["websocket"], health["source_counts"]) == (
        None, {"enabled": False}, {"websocket": 0, "rest": 4})
    assert (sim.connections_total, sim.request_count("POST", "/api/v1/bullet-public")) == (0, 0)


def test_client_rest_candles_of_the_largest_limit_end_at_the_period_in_progress(sim: Simulator) -> None:
    """500 rows from REST, contiguous and ending with the candle in progress, in as few requests as
    the server's row cap allows (KuCoin documents 200 and 500; fetch_klines adapts to either)."""
    with make_client(sim, enable_websocket=False) as client:
        before = sim.request_count("GET", "/api/v1/kline/query")
        called_ms = int(time.time() * 1000)
        candles = client.get_ohlcv(BTC, "1m", limit=500)
        returned_ms = int(time.time() * 1000)
        requests = sim.request_count("GET", "/api/v1/kline/query") - before
    starts = [row[0] for row in candles]
    assert (len(candles), candles.source) == (500, "rest") and 1 <= requests <= 3
    assert {b - a for a, b in zip(starts, starts[1:])} == {60_000}
    assert starts[-1] <= returned_ms and called_ms < starts[-1] + 60_000  # the period in progress


# -- bad input ---------------------------------------------------------------------------------
BAD_CALLS = [
    ("get_ticker", ("BTC/USDT",), {}),  # a spot symbol
    ("get_ticker", ("NOPE/USDT:USDT",), {}),
    ("get_ticker", (42,), {}),
    ("get_ticker", (["BTC/USDT:USDT"],), {}),
    ("get_ohlcv", (BTC, "7m"), {}),
    ("get_ohlcv", (BTC, "1m"), {"limit": 0}),
    ("get_ohlcv", (BTC, "1m"), {"limit": 501}),
    ("get_ohlcv", (BTC, "1m"), {"limit": True}),
    ("get_ohlcv", (BTC, "1m"), {"limit": 10.0}),
    ("get_ohlcv", ("XBTUSDTM", "1m"), {}),  # a KuCoin id, not a unified symbol
    ("get_order_book", (BTC,), {"limit": 0}),
    ("get_order_book", (BTC,), {"limit": "20"}),
]


@pytest.fixture(scope="module")
def started_client():
    with Simulator(seed=7) as sim, make_client(sim) as client:
        client.get_ticker(BTC)  # the WebSocket up and one subscription made
        yield sim, client


@pytest.mark.parametrize(("method", "args", "kwargs"), BAD_CALLS)
def test_client_bad_input_raises_before_any_request(started_client, method, args, kwargs) -> None:
    sim, client = started_client
    requests, topics = total_requests(sim), sim.subscriptions
    with pytest.raises(InvalidArgument) as caught:
        getattr(client, method)(*args, **kwargs)
    assert (isinstance(caught.value, ValueError), total_requests(sim), sim.subscriptions) == (True, requests, topics)


def test_client_bad_timeframe_needs_no_markets(sim: Simulator) -> None:
    """Arguments that need no market list are refused before start() loads one."""
    client = make_client(sim)
    with pytest.raises(InvalidArgument):
        client.get_ohlcv(BTC, "3m")
    assert (total_requests(sim), client.health()["started"]) == (0, False)
    client.close()


# -- lifecycle ---------------------------------------------------------------------------------
def test_client_close_is_idempotent_and_leaves_no_threads(sim: Simulator) -> None:
    before = set(threading.enumerate())
    client = make_client(sim)
    client.get_ticker(BTC)
    client.get_order_book(BTC)
    running = set(threading.enumerate()) - before
    client.close()
    client.close()
    left = set(threading.enumerate()) - before
    calls = [lambda: client.get_ticker(BTC), lambda: client.get_ohlcv(BTC), lambda: client.get_order_book(BTC),
             client.get_balance, client.get_positions, lambda: client.create_market_order(BTC, "buy", 1),
             client.start]
    refused = []
    for call in calls:
        with pytest.raises(ClientClosed) as caught:
            call()
        refused.append(type(caught.value))
    assert len(running) >= 3  # the WebSocket thread, its REST worker and the executor's workers
    assert (left, refused) == (set(), [ClientClosed] * len(calls))
    assert repr(client) == f"KuCoinClient(futures_url={sim.url!r}, websocket=True, state=closed)"


def test_client_context_manager_starts_and_closes(sim: Simulator) -> None:
    before = set(threading.enumerate())
    with make_client(sim) as client:
        opened = client.health()
        balance = client.get_balance()
    closed = client.health()
    assert (opened["started"], opened["closed"], closed["closed"]) == (True, False, True)
    assert (balance["free"]["USDT"] > 0, set(threading.enumerate()) - before) == (True, set())


def test_client_close_before_start_does_no_io(sim: Simulator) -> None:
    before = set(threading.enumerate())
    client = make_client(sim)
    client.close()
    with pytest.raises(ClientClosed):
        client.get_ticker(BTC)
    assert (total_requests(sim), set(threading.enumerate()) - before) == (0, set())


# -- health ------------------------------------------------------------------------------------
def test_client_health_reports_websocket_ages_budget_and_queues(sim: Simulator) -> None:
    with make_client(sim) as client:
        served_from_websocket(lambda: client.get_ticker(BTC))
        wait_until(client.websocket.is_healthy, what="every subscription acknowledged")
        client.get_ticker(SOL)
        health = client.health()
    ws = health["websocket"]
    ages = ws["data_ages_s"]
    assert set(health) == {"started", "closed", "source_counts", "rate_limit", "queue_depths", "in_flight",
                           "calls_started", "websocket", "private_websocket"}
    assert (health["started"], health["closed"], health["in_flight"]) == (True, False, 0)
    assert health["queue_depths"] == {"CRITICAL": 0, "HIGH": 0, "NORMAL": 0, "LOW": 0}
    assert set(health["rate_limit"]) == {"public", "futures"}
    assert 0 < health["rate_limit"]["public"]["remaining"] < health["rate_limit"]["public"]["limit"] == 2000
    assert {k: ws[k] for k in ("enabled", "state", "connections", "reconnects", "malformed")} == {
        "enabled": True, "state": "RUNNING", "connections": 1, "reconnects": 0, "malformed": 0}
    assert set(ages) == {f"/contractMarket/{t}:{s}" for t in ("tickerV2", "ticker") for s in ("XBTUSDTM", "SOLUSDTM")}
    assert 0 <= ages["/contractMarket/tickerV2:XBTUSDTM"] < 10
    assert sum(health["source_counts"].values()) >= 2


# -- settings and hosts ------------------------------------------------------------------------
def test_client_from_settings(sim: Simulator) -> None:
    creds = sim.credentials
    settings = load_settings({"KUCOIN_API_KEY": creds.api_key, "KUCOIN_API_SECRET": creds.api_secret,
                              "KUCOIN_API_PASSPHRASE": creds.api_passphrase, "KUCOIN_FUTURES_URL": sim.url,
                              "ENABLE_WEBSOCKET": "false"}, dotenv_path=None)
    with KuCoinClient.from_settings(settings) as client:
        ticker = client.get_ticker(ETH)
        balance = client.get_balance("USDT")
    assert (client.futures_url, client.websocket, ticker["source"]) == (sim.url, None, "rest")
    assert balance["free"]["USDT"] > 0


def test_client_from_settings_sets_the_gil_switch_interval_while_the_feed_runs(sim: Simulator) -> None:
    before = sys.getswitchinterval()
    settings = load_settings({"KUCOIN_FUTURES_URL": sim.url, "GIL_SWITCH_INTERVAL_MS": "0.25"}, dotenv_path=None)
    with KuCoinClient.from_settings(settings) as client:
        client.get_ticker(ETH)
        during = sys.getswitchinterval()
    off = load_settings({"KUCOIN_FUTURES_URL": sim.url, "GIL_SWITCH_INTERVAL_MS": "0"}, dotenv_path=None)
    with KuCoinClient.from_settings(off) as client:
        client.get_ticker(ETH)
        untouched = sys.getswitchinterval()
    assert (during, sys.getswitchinterval(), untouched) == (0.00025, before, before)


class ConnectAudit:
    """Every outgoing socket connect and name lookup of this process while armed.

    An audit hook cannot be removed once added (sys.addaudithook), so one instance is installed
    for the process and armed only inside the test that reads it.
    """

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.armed = False
        self._lock = threading.Lock()

    def __call__(self, event: str, args: tuple) -> None:
        if self.armed and event in ("socket.connect", "socket.getaddrinfo"):
            address = args[1] if event == "socket.connect" else args[:2]
            with self._lock:
                self.seen.append((event, address))


_AUDIT: ConnectAudit | None = None


def connect_audit() -> ConnectAudit:
    global _AUDIT
    if _AUDIT is None:
        _AUDIT = ConnectAudit()
        sys.addaudithook(_AUDIT)
    return _AUDIT


def _pattern(path: str) -> re.Pattern:
    return re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)) + "$")


def test_client_with_only_futures_url_talks_to_that_host_alone(sim: Simulator) -> None:
    """Market data over WebSocket and REST, account reads and an order round trip: every
    connection goes to the simulator's address, and every request is a futures endpoint."""
    audit = connect_audit()
    audit.seen.clear()
    audit.armed = True
    try:
        with make_client(sim) as client:
            served_from_websocket(lambda: client.get_ticker(BTC))
            client.get_ohlcv(ETH, "15m", limit=20)
            client.get_order_book(SOL)
            client.get_balance()
            client.create_market_order(BTC, "buy", 1)
            client.get_positions()
            client.close_position(BTC)
            client.get_open_orders()
    finally:
        audit.armed = False
    requested = sim.call(lambda: set(sim.requests))
    allowed = [_pattern(endpoint.path) for endpoint in ENDPOINTS.values()]
    unexpected = {(m, p) for m, p in requested if not any(a.match(p) for a in allowed)}
    addresses = {address for event, address in audit.seen}
    assert (unexpected, {p for _, p in requested} & FOREIGN_PATHS) == (set(), set())
    assert addresses == {("127.0.0.1", sim.port)}
    assert sim.connections_total >= 1


def test_connect_audit_sees_a_connection() -> None:
    """The audit above can fail: it records a plain socket connect."""
    audit = connect_audit()
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    audit.seen.clear()
    audit.armed = True
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        audit.armed = False
        server.close()
    assert ("socket.connect", ("127.0.0.1", port)) in audit.seen

