"""RestGateway against the simulator on loopback: hosts, rate limits, priorities, error mapping."""
from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from dataclasses import dataclass
from operator import methodcaller
from typing import Any

import pytest

from api_priority import Priority, PriorityExecutor
from kucoin_futures.errors import OrderNotFound
from kucoin_futures.orders.manager import OrderManager
from kucoin_futures.errors import (
    AuthError,
    ClientClosed,
    ExchangeRejected,
    InsufficientFunds,
    InvalidArgument,
    InvalidOrder,
    KuCoinError,
    OrderOutcomeUnknown,
    RateLimited,
    TransportError,
)
from kucoin_futures.rest.gateway import DEFAULT_LIMITS, ENDPOINTS, URL_KEYS, RestGateway, build_exchange
from kucoin_sim import Simulator
from kucoin_sim.auth import Credentials
from tests.helpers import TIMEOUT_S, StartLog, start_gateway, wait_until

BTC = "BTC/USDT:USDT"


def _requests(sim: Simulator) -> dict[tuple[str, str], int]:
    return sim.call(lambda: dict(sim.requests))


def test_build_exchange_talks_to_futures_url_only(sim):
    """load_markets asks for the contracts only; later calls stay on futures paths of that host."""
    creds = sim.credentials
    exchange = build_exchange(sim.url, api_key=creds.api_key, api_secret=creds.api_secret,
                              api_passphrase=creds.api_passphrase)
    gateway = RestGateway(exchange)
    urls = dict(exchange.urls["api"])
    gateway.start()
    at_start = _requests(sim)
    try:
        gateway.fetch_ticker(BTC)
        manager = OrderManager(gateway)
        manager.get_balance()
        manager.get_positions()
        manager.create_market_order(BTC, "buy", 1)
    finally:
        gateway.close()
    assert {key: urls[key] for key in URL_KEYS} == {key: sim.url for key in URL_KEYS}
    assert at_start == {("GET", "/api/v1/contracts/active"): 1}
    assert set(_requests(sim)) == {
        ("GET", "/api/v1/contracts/active"), ("GET", "/api/v1/ticker"), ("GET", "/api/v1/account-overview"),
        ("GET", "/api/v1/positions"), ("POST", "/api/v1/orders"),
    }


@pytest.mark.parametrize("read", ["ccxt", "lean"])
def test_gateway_adopts_the_rate_limit_headers(sim, read):
    gateway = start_gateway(sim)
    try:
        if read == "ccxt":
            gateway.fetch_ticker(BTC)
        else:
            gateway.rest_get("/api/v1/ticker", {"symbol": "XBTUSDTM"})
        budget = gateway.health()["rate_limit"]
    finally:
        gateway.close()
    # contracts/active (3) + ticker (2) of the simulator's 2000; the futures pool untouched.
    assert (budget["public"]["limit"], budget["public"]["remaining"]) == (2000, 1995)
    assert (budget["futures"]["limit"], budget["futures"]["remaining"]) == (2000, 2000)
    assert 29.0 < budget["public"]["reset_in_s"] <= 30.0


def test_scan_of_every_contract_never_meets_a_429(sim):
    """Three NORMAL rounds of fetch_ticker over all contracts, four workers at once."""
    gateway = start_gateway(sim)
    try:
        symbols = list(gateway.markets)
        futures = [gateway.submit(Priority.NORMAL, "fetch_ticker", methodcaller("fetch_ticker", s))
                   for _ in range(3) for s in symbols]
        tickers = [f.result(TIMEOUT_S) for f in futures]
    finally:
        gateway.close()
    assert [t["symbol"] for t in tickers] == symbols * 3
    assert sim.call(lambda: sim.limiter.rejections) == 0


@pytest.mark.parametrize(("workers", "quota", "scan"), [(1, 100, 60), (4, 400, 240)])
def test_scan_waits_at_the_reserve_instead_of_meeting_a_429(workers, quota, scan):
    """A scan bigger than the public quota stops short of it; the reserve still serves CRITICAL."""
    with Simulator(seed=7, rate_limit_quotas={"public": quota}) as sim:
        executor = PriorityExecutor(limits=DEFAULT_LIMITS, workers=workers)  # believes 2000 until told
        gateway = start_gateway(sim, executor=executor)
        try:
            calls = [gateway.submit(Priority.NORMAL, "fetch_ticker", methodcaller("fetch_ticker", BTC))
                     for _ in range(scan)]
            wait_until(lambda: executor.wait_until_settled(TIMEOUT_S) and executor.in_flight() == 0,
                       what="the scan to stop")
            done = sum(f.done() for f in calls)
            queued = gateway.health()["queue_depths"]["NORMAL"]
            critical = gateway.fetch_ticker(BTC, priority=Priority.CRITICAL)
            remaining = gateway.health()["rate_limit"]["public"]["remaining"]
        finally:
            gateway.close()
            executor.close()
        rejections = sim.call(lambda: sim.limiter.rejections)
    reserve_calls = quota // 10 // 2  # the reserve (10%) in tickers of weight 2
    assert (rejections, critical["symbol"], done + queued) == (0, BTC, scan)
    if workers == 1:
        # 100 - 3 (contracts) - 10 (reserve) leaves 87: 43 tickers, then the CRITICAL one spends
        # 2 of the reserve.
        assert (done, queued, remaining) == (43, 17, 100 - 3 - 44 * 2)
    else:
        # A header does not count the calls in flight when it was written, and concurrent answers
        # may be adopted out of order, so concurrent workers overshoot by a few calls; the
        # reserve absorbs that (see the report on apply_headers).
        assert (quota - 3 - 40) // 2 <= done < (quota - 3) // 2 - reserve_calls // 2


def test_critical_order_starts_at_once_with_the_routine_worker_busy_and_200_normal_calls_queued(sim):
    """Two workers, one kept for CRITICAL/HIGH: a NORMAL call blocks the other, 200 NORMAL
    tickers are queued; an order is placed on the reserved worker while that call still runs,
    and no queued NORMAL call starts before the blocked one ends."""
    starts = StartLog()
    gateway = start_gateway(sim, workers=2, on_start=starts)
    manager = OrderManager(gateway)
    gate, entered = threading.Event(), threading.Semaphore(0)

    def blocked(exchange: Any) -> None:
        entered.release()
        gate.wait(TIMEOUT_S)

    try:
        mark = len(starts.snapshot())
        running = gateway.submit(Priority.NORMAL, "fetch_ticker", blocked)
        assert entered.acquire(timeout=TIMEOUT_S)
        symbols = list(gateway.markets)
        queued = [gateway.submit(Priority.NORMAL, "fetch_ticker", methodcaller("fetch_ticker", symbols[i % len(symbols)]))
                  for i in range(200)]
        order = manager.create_market_order(BTC, "buy", 1)  # returns while `blocked` still runs
        during = (running.done(), sum(f.done() for f in queued), gateway.health()["queue_depths"])
        gate.set()
        concurrent.futures.wait(queued, timeout=TIMEOUT_S)
    finally:
        gate.set()
        gateway.close()
    assert during == (False, 0, {"CRITICAL": 0, "HIGH": 0, "NORMAL": 200, "LOW": 0})
    assert [label for _, label in starts.snapshot()[mark:mark + 2]] == ["fetch_ticker", "create_order"]
    assert [o["clientOid"] for o in sim.orders()] == [order["clientOrderId"]]


def test_gateway_refuses_use_outside_its_lifecycle(sim):
    gateway = RestGateway(build_exchange(sim.url))
    with pytest.raises(ClientClosed):
        gateway.fetch_ticker(BTC)
    gateway.start()
    with pytest.raises(InvalidArgument, match="operation='fetch_everything'"):
        gateway.submit(Priority.LOW, "fetch_everything", methodcaller("fetch_time"))
    gateway.close()
    with pytest.raises(ClientClosed):
        gateway.fetch_ticker(BTC)
    with pytest.raises(ClientClosed):
        gateway.start()


def test_rest_get_returns_the_envelope_through_the_scheduler(sim):
    starts = StartLog()
    gateway = start_gateway(sim, on_start=starts)
    try:
        payload = gateway.rest_get("/api/v1/ticker", {"symbol": "XBTUSDTM"})
        with pytest.raises(InvalidArgument, match="/api/v1/orders"):
            gateway.rest_get("/api/v1/orders", {})
    finally:
        gateway.close()
    assert (payload["code"], payload["data"]["symbol"]) == ("200000", "XBTUSDTM")
    assert starts.snapshot()[-1] == (Priority.NORMAL, "fetch_ticker")


def test_close_fails_queued_calls_with_client_closed(sim):
    gateway = start_gateway(sim, workers=1)
    gate, entered = threading.Event(), threading.Event()

    def blocked(exchange: Any) -> None:
        entered.set()
        gate.wait(TIMEOUT_S)

    gateway.submit(Priority.NORMAL, "fetch_ticker", blocked)
    assert entered.wait(TIMEOUT_S)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        queued = pool.submit(gateway.fetch_ticker, BTC)
        wait_until(lambda: gateway.health()["queue_depths"]["NORMAL"] == 1, what="the ticker queued")
        closer = threading.Thread(target=gateway.close)
        closer.start()
        with pytest.raises(ClientClosed):
            queued.result(TIMEOUT_S)
        gate.set()
        closer.join(TIMEOUT_S)
    assert _requests(sim).get(("GET", "/api/v1/ticker"), 0) == 0


# -- Error mapping against the simulator's real answers ------------------------------------------
@dataclass(frozen=True)
class ErrorCase:
    name: str
    act: Callable[[Simulator, RestGateway], object]
    error: type[KuCoinError]
    attrs: dict[str, Any]


def _raw_order(gateway: RestGateway, *args: Any, params: dict[str, Any]) -> Any:
    # Bypasses OrderManager's checks on purpose: these inputs must reach the exchange.
    return gateway.call(Priority.CRITICAL, "create_order", methodcaller("create_order", BTC, *args, params),
                        places_order=True, client_oid=params["clientOid"])


def _wrong_secret(sim: Simulator, gateway: RestGateway) -> object:
    wrong = Credentials(sim.credentials.api_key, "not-the-secret", sim.credentials.api_passphrase)
    other = start_gateway(sim, credentials=wrong)
    try:
        return OrderManager(other).get_balance()
    finally:
        other.close()


def _repeated_client_oid(sim: Simulator, gateway: RestGateway) -> object:
    price = round(gateway.fetch_ticker(BTC)["bid"] * 0.9, 1)
    _raw_order(gateway, "limit", "buy", 1, price, params={"clientOid": "dup-1"})
    return _raw_order(gateway, "limit", "buy", 1, price, params={"clientOid": "dup-1"})


Act = Callable[[Simulator, RestGateway], object]


def _fail_then(method: str, path: str, act: Act, **fault: Any) -> Act:
    def run(sim: Simulator, gateway: RestGateway) -> object:
        sim.fail_next(method, path, **fault)
        return act(sim, gateway)
    return run


def _lose_then(method: str, path: str, act: Act, mode: str) -> Act:
    def run(sim: Simulator, gateway: RestGateway) -> object:
        sim.lose_response(method, path, mode=mode)
        return act(sim, gateway)
    return run


def _ticker(sim: Simulator, gateway: RestGateway) -> object:
    return gateway.fetch_ticker(BTC)


def _snapshot(sim: Simulator, gateway: RestGateway) -> object:
    return gateway.rest_get("/api/v1/level2/snapshot", {"symbol": "XBTUSDTM"})  # the lean GET path


SNAPSHOT = ("GET", "/api/v1/level2/snapshot")


def _market_buy(amount: int, client_oid: str) -> Act:
    return lambda sim, gateway: _raw_order(gateway, "market", "buy", amount, None,
                                           params={"clientOid": client_oid})


def _limit_buy(**params: Any) -> Act:
    return lambda sim, gateway: _raw_order(gateway, "limit", "buy", 1, 50_000, params=params)


def _order_not_found(sim: Simulator, gateway: RestGateway) -> object:
    return OrderManager(gateway).get_order("999")


INTERNAL = {"status": 503, "code": "500000", "msg": "Internal", "rate_headers": False}
ERROR_CASES = [
    ErrorCase("auth: wrong secret", _wrong_secret, AuthError, {"code": "400004", "http_status": 401}),
    ErrorCase("insufficient funds", _market_buy(100_000, "big-1"), InsufficientFunds, {"code": "300003"}),
    ErrorCase("invalid order: clientOid repeated", _repeated_client_oid, InvalidOrder, {"code": "300018"}),
    ErrorCase("invalid order: leverage too high", _limit_buy(clientOid="lev-1", leverage=500), InvalidOrder,
              {"code": "300016"}),
    ErrorCase("rejected: bad parameter", _limit_buy(clientOid="tif-1", timeInForce="XYZ"), ExchangeRejected,
              {"code": "400100", "http_status": 400}),
    ErrorCase("order not found", _order_not_found, OrderNotFound, {"code": "100001", "http_status": 404}),
    ErrorCase("429 with headers", _fail_then("GET", "/api/v1/ticker", _ticker, status=429, rate_headers=True),
              RateLimited, {"code": "429000", "http_status": 429}),
    ErrorCase("429 without headers", _fail_then("GET", "/api/v1/ticker", _ticker, status=429,
                                                rate_headers=False),
              RateLimited, {"code": "429000", "http_status": 429, "retry_after_s": None}),
    ErrorCase("read: 5xx", _fail_then("GET", "/api/v1/ticker", _ticker, **INTERNAL),
              TransportError, {"code": "500000", "http_status": 503}),
    ErrorCase("read: connection reset", _lose_then("GET", "/api/v1/ticker", _ticker, "reset"),
              TransportError, {"code": None, "http_status": None}),
    ErrorCase("lean GET: 429 with headers", _fail_then(*SNAPSHOT, _snapshot, status=429, rate_headers=True),
              RateLimited, {"code": "429000", "http_status": 429}),
    ErrorCase("lean GET: 5xx", _fail_then(*SNAPSHOT, _snapshot, **INTERNAL),
              TransportError, {"code": "500000", "http_status": 503}),
    ErrorCase("lean GET: connection reset", _lose_then(*SNAPSHOT, _snapshot, "reset"),
              TransportError, {"code": None, "http_status": None}),
    ErrorCase("order: 5xx is no answer",
              _fail_then("POST", "/api/v1/orders", _market_buy(1, "x-5xx"), **INTERNAL),
              OrderOutcomeUnknown, {"client_oid": "x-5xx"}),
]


@pytest.fixture(scope="module")
def shared_sim():
    with Simulator(seed=11) as simulator:
        yield simulator


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c.name for c in ERROR_CASES])
def test_errors_map_onto_our_tree(shared_sim, case):
    gateway = start_gateway(shared_sim)  # fresh: a 429 empties the pool of the gateway that saw it
    try:
        with pytest.raises(KuCoinError) as caught:
            case.act(shared_sim, gateway)
        budget = gateway.health()["rate_limit"]["public"]
    finally:
        gateway.close()
    assert type(caught.value) is case.error
    assert {name: getattr(caught.value, name) for name in case.attrs} == case.attrs
    if case.name.endswith("429 with headers"):
        assert 25.0 < caught.value.retry_after_s <= 30.0
        assert budget["remaining"] == 0


def test_every_endpoint_of_the_table_is_served_by_the_simulator():
    """The weight table names real paths (the simulator's route table is the independent check)."""
    from kucoin_sim.rest import BULLETS
    from kucoin_sim.routes import PRIVATE, PUBLIC

    served = {(r.method, r.path): r.weight for r in [*BULLETS, *PUBLIC, *PRIVATE]}
    assert {(e.method, e.path): e.weight for e in ENDPOINTS.values()}.items() <= served.items()


def test_an_order_call_failing_before_any_request_left_is_not_an_unknown_outcome(sim):
    # "outcome unknown" means a request may have left; a failure before that sent nothing.
    def fails_before_sending(exchange: Any) -> None:
        raise AttributeError("'int' object has no attribute 'encode'")

    def fails_after_sending(exchange: Any) -> None:
        exchange.fetch_time()  # a request leaves (and is answered)
        raise KeyError("orderId")  # then the answer cannot be read

    gateway = start_gateway(sim)
    try:
        with pytest.raises(InvalidArgument, match="before sending") as before:
            gateway.call(Priority.CRITICAL, "create_order", fails_before_sending, places_order=True,
                         client_oid="cid-before")
        with pytest.raises(OrderOutcomeUnknown) as after:
            gateway.call(Priority.CRITICAL, "create_order", fails_after_sending, places_order=True,
                         client_oid="cid-after")
    finally:
        gateway.close()
    assert isinstance(before.value.__cause__, AttributeError)
    assert after.value.client_oid == "cid-after" and isinstance(after.value.__cause__, KeyError)
    assert sim.request_count("POST", "/api/v1/orders") == 0
