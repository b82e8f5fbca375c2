"""The WebSocket client's REST side: kline paging (fake fetcher), the stdlib fetcher against the
simulator, and the one seam (LocalRest's priorities and shutdown; a client's one scheduler)."""
from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from kucoin_futures.errors import RateLimited, TransportError
from kucoin_futures.protocol.types import WsEndpoint
from kucoin_client import KuCoinClient
from kucoin_futures.rest.public import PublicRest, fetch_klines, fetch_order_book
from kucoin_futures.scheduling.executor import SchedulerClosed
from kucoin_futures.scheduling.pools import Priority
from kucoin_futures.ws.rest_port import PRIORITY_CANDLES, PRIORITY_SNAPSHOT, LocalRest
from kucoin_sim import Simulator
from tests.helpers import TIMEOUT_S, StartLog, start_gateway, wait_until

MINUTE_MS = 60_000
T0_MS = 1_731_898_200_000  # a minute boundary


class FakeKlines:
    """Serves minute rows for periods 0..999 after T0; answers at most `cap` rows, keeping the
    newest or the oldest; `from`/`to` inclusive or exclusive."""

    def __init__(self, *, cap: int, keep: str, inclusive: bool) -> None:
        self.cap, self.keep, self.inclusive = cap, keep, inclusive
        self.requests: list[Mapping[str, Any]] = []

    def __call__(self, path: str, params: Mapping[str, Any]) -> Any:
        self.requests.append(dict(params))
        lo, hi = params["from"], params["to"]
        starts = [T0_MS + m * MINUTE_MS for m in range(1000)]
        if self.inclusive:
            starts = [s for s in starts if lo <= s <= hi]
        else:
            starts = [s for s in starts if lo < s < hi]
        starts = starts[-self.cap:] if self.keep == "newest" else starts[:self.cap]
        return {"code": "200000", "data": [[s, 1.0, 2.0, 0.5, 1.5, 10] for s in starts]}


@pytest.mark.parametrize("cap, keep, inclusive, requests", [
    (500, "newest", True, 1), (500, "oldest", False, 1),
    (200, "newest", True, 3), (200, "oldest", True, 3), (200, "newest", False, 3),
])
def test_fetch_klines_covers_the_window_whatever_the_cap(cap, keep, inclusive, requests):
    fake = FakeKlines(cap=cap, keep=keep, inclusive=inclusive)
    first, last = T0_MS + 100 * MINUTE_MS, T0_MS + 599 * MINUTE_MS  # 500 periods
    candles = fetch_klines(fake, "XBTUSDTM", "1m", from_ms=first, to_ms=last, received_at=7.0)
    assert [c.ts_ms for c in candles] == [T0_MS + m * MINUTE_MS for m in range(100, 600)]
    assert (len(fake.requests), fake.requests[0]) == (requests, {
        "symbol": "XBTUSDTM", "granularity": 1, "from": first - 1, "to": last + 1})
    assert {(c.received_at, c.source) for c in candles} == {(7.0, "rest")}


def test_fetch_klines_short_history_takes_one_request():
    fake = FakeKlines(cap=200, keep="newest", inclusive=True)
    candles = fetch_klines(fake, "XBTUSDTM", "1m", from_ms=T0_MS + 990 * MINUTE_MS,
                           to_ms=T0_MS + 2000 * MINUTE_MS, received_at=1.0)
    assert (len(candles), len(fake.requests)) == (10, 1)


# -- the stdlib fetcher against the simulator -------------------------------------------------
def test_public_rest_fetches_bullet_klines_and_snapshot(sim: Simulator) -> None:
    rest = PublicRest(sim.url, timeout_s=TIMEOUT_S)
    endpoint = rest.bullet_public()
    now_ms = int(time.time() * 1000)
    candles = fetch_klines(rest.get, "XBTUSDTM", "1h", from_ms=now_ms - 24 * 3_600_000, to_ms=now_ms,
                           received_at=1.0)
    book = fetch_order_book(rest.get, "XBTUSDTM", received_at=2.0)
    rest.close()
    assert isinstance(endpoint, WsEndpoint) and endpoint.url == sim.ws_url
    assert len(candles) in (24, 25)  # the hour in progress may or may not have started its row
    assert (book.symbol, book.source, book.bids[0][0] < book.asks[0][0]) == ("BTC/USDT:USDT", "rest", True)


def test_public_rest_maps_a_rate_limit(sim: Simulator) -> None:
    sim.fail_next("GET", "/api/v1/level2/snapshot", status=429, code="429000")
    rest = PublicRest(sim.url, timeout_s=TIMEOUT_S)
    with pytest.raises(RateLimited) as caught:
        fetch_order_book(rest.get, "XBTUSDTM", received_at=0.0)
    rest.close()
    assert (caught.value.code, caught.value.http_status) == ("429000", 429)


@pytest.mark.parametrize("callers", [1, 2])
def test_public_rest_close_aborts_the_requests_in_flight(sim: Simulator, callers: int) -> None:
    rest = PublicRest(sim.url, timeout_s=30.0)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            rest.post("/api/v1/bullet-public")
        except TransportError as exc:
            errors.append(exc)

    with sim.delay_rest(20.0, "POST", "/api/v1/bullet-public"):
        threads = [threading.Thread(target=call) for _ in range(callers)]
        for thread in threads:
            thread.start()
        wait_until(lambda: sim.request_count("POST", "/api/v1/bullet-public") == callers, what="requests in flight")
        started = time.monotonic()
        rest.close()
        for thread in threads:
            thread.join(TIMEOUT_S)
    assert ([t.is_alive() for t in threads], len(errors), time.monotonic() - started < 1.0) == (
        [False] * callers, callers, True)
    with pytest.raises(TransportError):
        rest.get("/api/v1/timestamp", {})


def test_public_rest_serves_threads_at_once_on_their_own_connections(sim: Simulator) -> None:
    rest = PublicRest(sim.url, timeout_s=TIMEOUT_S)
    ids = ["XBTUSDTM", "ETHUSDTM", "SOLUSDTM", "XRPUSDTM"] * 5
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        books = list(pool.map(lambda i: fetch_order_book(rest.get, i, received_at=0.0), ids))
    rest.close()
    assert [b.symbol.split("/")[0] for b in books] == [{"XBT": "BTC"}.get(i[:3], i[:-5]) for i in ids]


def test_public_rest_rejects_a_bad_url():
    with pytest.raises(ValueError):
        PublicRest("ftp://example.invalid")


# -- the seam: LocalRest for a standalone WebSocket, the client's gateway otherwise -----------
def _blocking_port(threads: int = 1) -> tuple[LocalRest, threading.Event, list[str]]:
    """A LocalRest whose GETs and tokens record their order; the first GET of "/block" waits."""
    gate, order = threading.Event(), []

    def get(path: str, params: Mapping[str, Any]) -> Any:
        if path == "/block":
            assert gate.wait(TIMEOUT_S)
        order.append(params["what"])
        return params["what"]

    def token() -> str:
        order.append("token")
        return "a token"

    return LocalRest(rest_url="http://127.0.0.1:9", rest_get=get, token_provider=token, timeout_s=1.0,
                     threads=threads, name="test-local-rest"), gate, order


def test_local_rest_runs_the_token_then_snapshots_then_history():
    port, gate, order = _blocking_port()
    blocker = port.submit_get("/block", {"what": "blocker"}, PRIORITY_SNAPSHOT)
    wait_until(blocker.running, what="the one worker is busy")
    history = port.submit_get("/k", {"what": "candles"}, PRIORITY_CANDLES)
    snapshot = port.submit_get("/s", {"what": "snapshot"}, PRIORITY_SNAPSHOT)
    token = port.submit_token()
    gate.set()
    results = [f.result(TIMEOUT_S) for f in (blocker, history, snapshot, token)]
    port.close(TIMEOUT_S)
    assert (order, results) == (["blocker", "token", "snapshot", "candles"],
                                ["blocker", "candles", "snapshot", "a token"])
    assert [t.name for t in threading.enumerate() if t.name.startswith("test-local-rest")] == []


def test_local_rest_runs_calls_at_once_on_its_threads():
    barrier = threading.Barrier(3, timeout=TIMEOUT_S)  # passes only if all three run together
    port = LocalRest(rest_url="http://127.0.0.1:9", rest_get=lambda path, params: barrier.wait(),
                     token_provider=lambda: None, timeout_s=1.0, threads=3, name="test-local-pool")
    futures = [port.submit_get("/x", {}, PRIORITY_SNAPSHOT) for _ in range(3)]
    assert sorted(f.result(TIMEOUT_S) for f in futures) == [0, 1, 2]
    port.close(TIMEOUT_S)


def test_local_rest_close_fails_queued_calls_and_refuses_new_ones():
    port, gate, order = _blocking_port()
    running = port.submit_get("/block", {"what": "running"}, PRIORITY_SNAPSHOT)
    wait_until(running.running, what="the first call runs")
    queued = port.submit_get("/k", {"what": "never"}, PRIORITY_CANDLES)
    closer = threading.Thread(target=port.close, args=(TIMEOUT_S,))
    closer.start()
    with pytest.raises(SchedulerClosed):
        queued.result(TIMEOUT_S)
    gate.set()
    closer.join(TIMEOUT_S)
    assert (running.result(0), order, closer.is_alive()) == ("running", ["running"], False)
    with pytest.raises(SchedulerClosed):
        port.submit_token()


def test_a_clients_websocket_runs_its_rest_on_the_clients_one_scheduler(sim: Simulator) -> None:
    """No second pool: the feed's token, snapshot and history go through the gateway's
    scheduler (token HIGH, snapshot NORMAL, history LOW), and no thread of its own exists."""
    log = StartLog()
    gateway = start_gateway(sim, on_start=log)
    client = KuCoinClient(futures_url=sim.url, gateway=gateway, first_read_wait_s=TIMEOUT_S)
    try:
        client.get_order_book("BTC/USDT:USDT")
        client.get_ohlcv("BTC/USDT:USDT", "1m", limit=50)
        wait_until(lambda: {"bullet_public", "fetch_order_book", "fetch_ohlcv"} <= {label for _, label in log.snapshot()},
                   what="the feed's calls on the gateway's scheduler")
        threads = [t.name for t in threading.enumerate() if t.name.startswith("kucoin-ws-rest")]
    finally:
        client.close()
    first = {label: priority for priority, label in reversed(log.snapshot())}
    assert (first["bullet_public"], first["fetch_order_book"], first["fetch_ohlcv"], threads) == (
        Priority.HIGH, Priority.NORMAL, Priority.LOW, [])
