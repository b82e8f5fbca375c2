"""The WebSocket client's REST side: kline paging (fake fetcher), the stdlib fetcher against the
simulator, and the worker thread's priorities and shutdown."""
from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from kucoin_futures.errors import RateLimited, TransportError
from kucoin_futures.protocol.types import WsEndpoint
from kucoin_futures.rest.public import PublicRest, RestWorker, fetch_klines, fetch_order_book
from kucoin_sim import Simulator
from tests.helpers import TIMEOUT_S, wait_until

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


# -- the worker thread ------------------------------------------------------------------------
def test_rest_worker_runs_the_most_urgent_first():
    worker = RestWorker(name="test-rest")
    gate = threading.Event()
    order: list[str] = []
    blocker = worker.submit(0, gate.wait, TIMEOUT_S)
    worker.start()
    low = worker.submit(2, order.append, "candles")
    high = worker.submit(0, order.append, "token")
    middle = worker.submit(1, order.append, "snapshot")
    gate.set()
    concurrent.futures.wait([blocker, low, high, middle], timeout=TIMEOUT_S)
    failing = worker.submit(1, int, "not a number")
    with pytest.raises(ValueError):
        failing.result(TIMEOUT_S)
    assert worker.close(TIMEOUT_S) is True
    assert order == ["token", "snapshot", "candles"]


def test_rest_worker_runs_calls_at_once_on_its_threads_and_close_joins_them_all():
    worker = RestWorker(name="test-rest-pool", threads=3)
    barrier = threading.Barrier(3, timeout=TIMEOUT_S)  # passes only if all three run together
    worker.start()
    futures = [worker.submit(1, barrier.wait) for _ in range(3)]
    done, _ = concurrent.futures.wait(futures, timeout=TIMEOUT_S)
    names = {t.name for t in threading.enumerate() if t.name.startswith("test-rest-pool")}
    assert (sorted(f.result() for f in done), worker.close(TIMEOUT_S), worker.is_alive) == ([0, 1, 2], True, False)
    assert names == {"test-rest-pool", "test-rest-pool-1", "test-rest-pool-2"}
    assert worker.submit(0, str, "late").cancelled()


def test_rest_worker_refuses_a_bad_thread_count():
    with pytest.raises(ValueError):
        RestWorker(threads=0)


def test_rest_worker_close_cancels_queued_calls_and_refuses_new_ones():
    worker = RestWorker(name="test-rest")
    started, gate = threading.Event(), threading.Event()

    def busy() -> str:
        started.set()
        gate.wait(TIMEOUT_S)
        return "done"

    worker.start()
    running = worker.submit(0, busy)
    queued = worker.submit(2, str, "never")
    assert started.wait(TIMEOUT_S)
    closer = threading.Thread(target=worker.close, args=(TIMEOUT_S,))
    closer.start()
    wait_until(lambda: worker.closed, what="close() called")
    gate.set()
    closer.join(TIMEOUT_S)
    assert (running.result(0), queued.cancelled(), worker.submit(0, int).cancelled()) == ("done", True, True)
    assert worker.is_alive is False
