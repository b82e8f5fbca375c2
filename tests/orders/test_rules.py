"""Pure order rules (request building, clientOids, the resolution rule) with plain data, and the
resolution loop with a fake clock and a scripted lookup."""
from __future__ import annotations

from decimal import Decimal

import pytest

from kucoin_futures.orders.rules import (
    OrderRequest,
    OrderType,
    ResolvePolicy,
    Verdict,
    Wait,
    build_order_request,
    format_client_oid,
    resolve_step,
)
from kucoin_futures.errors import OrderNotPlaced
from kucoin_futures.orders.manager import Attempt, OutcomeResolver
from kucoin_futures.errors import (
    AuthError,
    InvalidArgument,
    KuCoinError,
    OrderOutcomeUnknown,
    RateLimited,
    TransportError,
)
from kucoin_futures.protocol.types import Side
from tests.helpers import FakeClock

# The fields of ccxt's market for KuCoin's XBTUSDTM that the checks read.
BTC_MARKET = {
    "symbol": "BTC/USDT:USDT",
    "precision": {"amount": 1.0, "price": 0.1},
    "limits": {"amount": {"min": 1.0, "max": 1_000_000.0}, "price": {"min": 0.1, "max": 1_000_000.0},
               "leverage": {"min": 1.0, "max": 125.0}},
}
SMALL_TICK_MARKET = {**BTC_MARKET, "symbol": "DOGE/USDT:USDT", "precision": {"amount": 1.0, "price": 1e-05},
                     "limits": {**BTC_MARKET["limits"], "price": {"min": 1e-05, "max": 100.0}}}
POLICY = ResolvePolicy(in_flight_s=6.0, first_wait_s=0.05, max_wait_s=1.0, max_lookup_failures=3,
                       deadline_s=30.0)


def test_build_order_request_normalises_and_maps_to_ccxt_params():
    request = build_order_request(BTC_MARKET, side="sell", order_type=OrderType.LIMIT, amount=3.0,
                                  price=60000.1, leverage=5.0, post_only=True, reduce_only=True,
                                  margin_mode="cross", client_oid="c-1")
    assert request == OrderRequest("BTC/USDT:USDT", Side.SELL, OrderType.LIMIT, 3, Decimal("60000.1"), 5,
                                   post_only=True, reduce_only=True, margin_mode="cross", client_oid="c-1")
    assert request.ccxt_params() == {"clientOid": "c-1", "leverage": 5, "postOnly": True, "reduceOnly": True,
                                     "marginMode": "cross"}


def test_market_order_ignores_price_and_sends_only_what_was_asked():
    request = build_order_request(BTC_MARKET, side=Side.BUY, order_type=OrderType.MARKET, amount=2,
                                  price="ignored for market orders", client_oid="c-2")
    assert (request.price, request.ccxt_params()) == (None, {"clientOid": "c-2"})


@pytest.mark.parametrize(("price", "ok"), [(0.00012, True), (0.000125, False), (Decimal("0.09999"), True),
                                           (100.00001, False)])
def test_tick_grid_is_checked_in_decimal(price, ok):
    def build():
        return build_order_request(SMALL_TICK_MARKET, side="buy", order_type=OrderType.LIMIT, amount=1,
                                   price=price, client_oid="c-3")
    if ok:
        assert build().price == (Decimal(repr(price)) if isinstance(price, float) else price)
    else:
        with pytest.raises(InvalidArgument, match="price="):
            build()


def test_format_client_oid():
    assert format_client_oid("kc", 1795594581476, "a1b2c3d4", 7) == "kc-1795594581476-a1b2c3d4-7"
    assert format_client_oid("", 1, "n", 2) == "1-n-2"
    with pytest.raises(InvalidArgument, match="client_oid_prefix"):
        format_client_oid("has space", 1, "n", 2)


@pytest.mark.parametrize("kwargs", [
    {"first_wait_s": 0.0}, {"first_wait_s": 2.0, "max_wait_s": 1.0}, {"in_flight_s": 30.0, "deadline_s": 30.0},
    {"max_lookup_failures": 0}, {"max_lookup_failures": True},
])
def test_resolve_policy_refuses_nonsense(kwargs):
    with pytest.raises(InvalidArgument):
        ResolvePolicy(**kwargs)


def _step(**kwargs):
    args = {"sent_at": 100.0, "resolving_since": 110.0, "lookup_sent_at": 110.0, "found": False, "lookups": 1,
            "failures": 0, "now": 110.01, **kwargs}
    return resolve_step(POLICY, **args)


@pytest.mark.parametrize(("kwargs", "expected"), [
    # A timeout of 10 s: the first lookup is already past sent_at + 6 s.
    ({"found": True}, Verdict.PLACED),
    ({"found": False}, Verdict.NOT_PLACED),
    # A reset 0.2 s after sending: not found yet proves nothing; look again, sooner then later.
    ({"resolving_since": 100.2, "lookup_sent_at": 100.2, "now": 100.21}, Wait(0.05)),
    ({"resolving_since": 100.2, "lookup_sent_at": 101.0, "now": 101.01, "lookups": 4}, Wait(0.4)),
    ({"resolving_since": 100.2, "lookup_sent_at": 104.0, "now": 104.01, "lookups": 9}, Wait(1.0)),
    # ... and the last look happens exactly at the bound.
    ({"resolving_since": 100.2, "lookup_sent_at": 105.5, "now": 105.6, "lookups": 12},
     Wait(pytest.approx(0.4))),
    ({"resolving_since": 100.2, "lookup_sent_at": 106.0, "now": 106.01, "lookups": 13}, Verdict.NOT_PLACED),
    # A failed lookup proves nothing either way: back off, honour a 429's reset, give up at the limits.
    ({"found": None, "failures": 1}, Wait(0.05)),
    ({"found": None, "failures": 1, "retry_after_s": 2.5}, Wait(2.5)),
    ({"found": None, "failures": 3}, Verdict.UNKNOWN),
    ({"found": None, "failures": 1, "now": 140.0}, Verdict.UNKNOWN),
    ({"found": None, "failures": 1, "now": 139.9, "retry_after_s": 5.0}, Wait(pytest.approx(0.1))),
])
def test_resolve_step(kwargs, expected):
    assert _step(**kwargs) == expected


# -- The resolution loop with a fake clock and a scripted lookup -------------------------------------
class ScriptedLookup:
    """Answers lookups from a script: an order, None (not found) or an exception to raise."""

    def __init__(self, clock: FakeClock, script: list) -> None:
        self.clock, self.script, self.calls = clock, list(script), []

    def __call__(self, client_oid: str, symbol: str):
        self.calls.append(round(self.clock.now - 1000.0, 3))
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _resolve(script: list, *, sent_ago_s: float = 0.0):
    clock = FakeClock()
    lookup = ScriptedLookup(clock, script)
    resolver = OutcomeResolver(lookup, POLICY, clock=clock, closing=clock)
    request = build_order_request(BTC_MARKET, side="buy", order_type=OrderType.MARKET, amount=1,
                                  client_oid="c-9")
    cause = OrderOutcomeUnknown("create_order: RequestTimeout, no response", client_oid="c-9")
    try:
        return resolver.resolve(Attempt(request, sent_at=clock.now - sent_ago_s), cause), lookup.calls
    except KuCoinError as exc:
        return exc, lookup.calls


def test_resolver_keeps_looking_until_the_order_appears():
    order = {"id": "42", "clientOrderId": "c-9"}
    result, calls = _resolve([None, None, None, order], sent_ago_s=0.5)
    assert (result, calls) == (order, [0.0, 0.05, 0.15, 0.35])


def test_resolver_concludes_not_placed_at_the_in_flight_bound():
    result, calls = _resolve([None], sent_ago_s=0.5)
    assert (type(result), result.client_oid) == (OrderNotPlaced, "c-9")
    assert calls[-1] == 5.5  # sent 0.5 s before the first lookup; bound 6 s after sending
    assert calls == [0.0, 0.05, 0.15, 0.35, 0.75, 1.55, 2.55, 3.55, 4.55, 5.5]


def test_resolver_retries_failed_lookups_then_gives_up():
    limited = RateLimited("429", retry_after_s=2.0)
    result, calls = _resolve([TransportError("reset"), limited, TransportError("reset")], sent_ago_s=10.0)
    assert (type(result), result.client_oid, calls) == (OrderOutcomeUnknown, "c-9", [0.0, 0.05, 2.05])


def test_resolver_gives_up_at_once_when_the_lookup_cannot_be_made():
    result, calls = _resolve([AuthError("400005")])
    assert (type(result), result.client_oid, calls) == (OrderOutcomeUnknown, "c-9", [0.0])
