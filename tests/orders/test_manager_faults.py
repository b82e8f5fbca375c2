"""Ambiguous order outcomes against the simulator's faults: after each one the simulator holds
exactly the orders that we returned, and none that we said were not placed."""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
import traceback
from operator import methodcaller

import pytest

from api_priority import Priority
from kucoin_futures.errors import OrderNotPlaced
from kucoin_futures.orders.rules import ResolvePolicy
from kucoin_futures.orders.manager import OrderManager
from kucoin_futures.errors import AuthError, InsufficientFunds, InvalidArgument, OrderOutcomeUnknown
from kucoin_sim import Simulator
from kucoin_sim.auth import Credentials
from tests.helpers import TIMEOUT_S, start_gateway

BTC = "BTC/USDT:USDT"
SCALE = TIMEOUT_S / 5.0  # TEST_TIMEOUT_FACTOR stretches every duration below alike
TIMEOUT_MS = int(300 * SCALE)  # ccxt's request timeout in these tests
DELAY_S = 0.6 * SCALE  # a request held this long before the simulator acts on it (> the timeout)
# The bound must exceed the longest time the exchange may still act on a request (here DELAY_S).
# Production keeps the default: KuCoin's 5 s timestamp window + 1 s.
POLICY = ResolvePolicy(in_flight_s=1.0 * SCALE, first_wait_s=0.05, max_wait_s=0.4, max_lookup_failures=3,
                       deadline_s=10.0 * SCALE)
# Where nothing is ever placed the bound only sets how long the proof takes: keep it short.
QUICK_POLICY = ResolvePolicy(in_flight_s=0.4 * SCALE, first_wait_s=0.05, max_wait_s=0.4,
                             deadline_s=10.0 * SCALE)


@pytest.fixture(scope="module")
def shared_sim():
    with Simulator(seed=7) as simulator:
        # The simulator's first answers are its slowest (under CI load a first markets load
        # outlasted the tests' 300 ms timeout once): pay for them with a generous timeout.
        start_gateway(simulator, timeout_ms=10_000).close()
        yield simulator


@pytest.fixture
def gateway(shared_sim):
    gateway = start_gateway(shared_sim, timeout_ms=TIMEOUT_MS)
    try:
        yield gateway
    finally:
        gateway.close()


@pytest.fixture
def trading(shared_sim, gateway):
    """A fresh gateway and manager on the module's simulator; tests use their own clientOids."""
    manager = OrderManager(gateway, policy=POLICY)
    try:
        yield Counts(shared_sim), manager
    finally:
        manager.close()


class Counts:
    """The simulator, with request counts taken relative to the start of the test."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._base = sim.call(lambda: dict(sim.requests))

    def __getattr__(self, name: str):
        return getattr(self.sim, name)

    def request_count(self, method: str, path: str) -> int:
        return self.sim.request_count(method, path) - self._base.get((method, path), 0)


def _with_client_oid(sim: Simulator, client_oid: str) -> list[dict]:
    return [o for o in sim.orders() if o["clientOid"] == client_oid]


def _posts(sim: Simulator) -> int:
    return sim.request_count("POST", "/api/v1/orders")


@pytest.mark.parametrize("mode", ["timeout", "reset"])
def test_lost_response_resolves_to_the_placed_order(trading, mode):
    """The simulator places the order, then withholds the answer or resets the connection."""
    sim, manager = trading
    sim.lose_response("POST", "/api/v1/orders", mode=mode)
    order = manager.create_market_order(BTC, "buy", 1, client_oid=f"lost-{mode}")
    [placed] = _with_client_oid(sim, f"lost-{mode}")
    assert (order["id"], order["clientOrderId"], order["status"], order["amount"]) == (
        placed["id"], f"lost-{mode}", "closed", 1.0)
    assert _posts(sim) == 1  # looked up, never sent again


def test_5xx_resolves_to_not_placed(trading, gateway):
    """A 503/500000 is not a refusal: only the lookups, up to the in-flight bound, prove nothing was placed."""
    sim, _ = trading
    manager = OrderManager(gateway, policy=QUICK_POLICY)
    sim.fail_next("POST", "/api/v1/orders", status=503, code="500000", msg="Internal error", rate_headers=False)
    started = time.monotonic()
    with pytest.raises(OrderNotPlaced) as caught:
        manager.create_market_order(BTC, "buy", 1, client_oid="five-hundred")
    elapsed = time.monotonic() - started
    assert caught.value.client_oid == "five-hundred"
    assert isinstance(caught.value.__cause__, OrderOutcomeUnknown)
    assert _with_client_oid(sim, "five-hundred") == []
    assert sim.request_count("GET", "/api/v1/orders/byClientOid") >= 2
    assert QUICK_POLICY.in_flight_s <= elapsed < QUICK_POLICY.in_flight_s + 0.5 * SCALE
    with pytest.raises(InvalidArgument):  # an ambiguous clientOid stays burnt, even once resolved
        manager.create_market_order(BTC, "buy", 1, client_oid="five-hundred")


def test_delayed_request_is_found_after_the_timeout(trading):
    """The request is held 0.6 s before the exchange acts on it; ccxt gives up at 0.3 s. The
    first lookups find nothing, a later one finds the order: "not found" was not concluded early."""
    sim, manager = trading
    with sim.delay_rest(DELAY_S, "POST", "/api/v1/orders"):
        order = manager.create_market_order(BTC, "sell", 2, client_oid="delayed-1")
    [placed] = _with_client_oid(sim, "delayed-1")
    assert (order["id"], order["status"], order["amount"]) == (placed["id"], "closed", 2.0)
    assert sim.request_count("GET", "/api/v1/orders/byClientOid") >= 2
    assert _posts(sim) == 1


def test_lookups_that_keep_failing_raise_outcome_unknown(trading):
    sim, manager = trading
    sim.lose_response("POST", "/api/v1/orders", mode="reset")
    sim.fail_next("GET", "/api/v1/orders/byClientOid", status=503, code="500000", msg="Internal error",
                  rate_headers=False, count=POLICY.max_lookup_failures)
    with pytest.raises(OrderOutcomeUnknown) as caught:
        manager.create_market_order(BTC, "buy", 1, client_oid="unknowable-1")
    later = manager.get_order(client_oid="unknowable-1")  # what the caller does next
    [placed] = _with_client_oid(sim, "unknowable-1")
    assert caught.value.client_oid == "unknowable-1"
    assert sim.request_count("GET", "/api/v1/orders/byClientOid") == POLICY.max_lookup_failures + 1
    assert later["id"] == placed["id"]
    assert _posts(sim) == 1


def test_rate_limited_lookup_is_retried(trading):
    sim, manager = trading
    sim.lose_response("POST", "/api/v1/orders", mode="reset")
    sim.fail_next("GET", "/api/v1/orders/byClientOid", status=429, rate_headers=False)
    order = manager.create_market_order(BTC, "buy", 1, client_oid="slow-lookup-1")
    [placed] = _with_client_oid(sim, "slow-lookup-1")
    assert order["id"] == placed["id"]
    assert sim.request_count("GET", "/api/v1/orders/byClientOid") == 2


def test_close_interrupts_a_resolution(trading):
    sim, manager = trading
    sim.fail_next("POST", "/api/v1/orders", status=503, code="500000", msg="Internal error", rate_headers=False)
    manager.close()
    started = time.monotonic()
    with pytest.raises(OrderOutcomeUnknown) as caught:
        manager.create_market_order(BTC, "buy", 1, client_oid="closing-1")
    assert caught.value.client_oid == "closing-1"
    assert time.monotonic() - started < POLICY.in_flight_s


def test_ambiguous_cancel_is_resolved_by_looking_the_order_up(trading, gateway):
    sim, manager = trading
    ticker = gateway.fetch_ticker(BTC)
    order = manager.create_limit_order(BTC, "buy", 1, round(ticker["bid"] * 0.9, 1), client_oid="to-cancel")
    sim.lose_response("DELETE", f"/api/v1/orders/{order['id']}", mode="reset")
    cancelled = manager.cancel_order(order["id"], BTC)
    [placed] = _with_client_oid(sim, "to-cancel")
    assert (cancelled["id"], cancelled["status"]) == (order["id"], "canceled")
    assert (placed["isActive"], placed["cancelExist"]) == (False, True)
    assert sim.request_count("DELETE", f"/api/v1/orders/{order['id']}") == 1


def _passphrase_header(creds: Credentials) -> str:
    # KC-API-PASSPHRASE of a v2 key: base64(HMAC-SHA256(secret, passphrase)) (protocol notes section 4)
    digest = hmac.new(creds.api_secret.encode(), creds.api_passphrase.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def test_secrets_never_reach_logs_output_or_exceptions(caplog, capsys):
    """Succeeding, refused, ambiguous and unauthenticated paths and a private WebSocket token, with
    ccxt logging at DEBUG."""
    creds = Credentials("key-5b0c9e1d7a", "secret-0f4e8a2b6c", "pass-9d3a7c1e5f")
    wrong = Credentials(creds.api_key, creds.api_secret, "pass-wrong-2c8e4a")
    hmacs = [_passphrase_header(c) for c in (creds, wrong)]
    secrets = [creds.api_key, creds.api_secret, creds.api_passphrase, wrong.api_passphrase, *hmacs]
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)
    with Simulator(seed=3, api_key=creds.api_key, api_secret=creds.api_secret,
                   api_passphrase=creds.api_passphrase) as sim:
        # No timeout is exercised here (the lost response is a reset): a cold simulator's first
        # load_markets may take longer than the short TIMEOUT_MS on a loaded machine.
        gateway = start_gateway(sim, credentials=creds)
        intruder = start_gateway(sim, credentials=wrong)
        manager = OrderManager(gateway, policy=POLICY)
        try:
            bullet = gateway.call(Priority.HIGH, "bullet_private", methodcaller("futuresPrivatePostBulletPrivate"))
            secrets.append(bullet["data"]["token"])  # a WebSocket token is a credential too
            manager.create_market_order(BTC, "buy", 1)
            sim.lose_response("POST", "/api/v1/orders", mode="reset")
            manager.create_market_order(BTC, "buy", 1)
            for act in (lambda: manager.create_market_order(BTC, "buy", 900_000),
                        lambda: OrderManager(intruder).get_balance()):
                with pytest.raises((InsufficientFunds, AuthError)) as caught:
                    act()
                error = caught.value
                texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
            texts += [repr(gateway), repr(manager), str(gateway.health())]
        finally:
            intruder.close()
            gateway.close()
    ours = [r for r in caplog.records if not r.name.startswith("kucoin_sim")]
    texts += [r.getMessage() for r in ours]
    output = capsys.readouterr()
    texts += [output.out, output.err]
    assert any("Request:" in r.getMessage() and "***" in r.getMessage() for r in ours)  # ccxt did log
    leaks = [(secret, text[:120]) for text in texts for secret in secrets if secret in text]
    assert leaks == []
