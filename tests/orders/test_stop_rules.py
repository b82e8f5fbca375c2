"""Pure stop-order rules: the direction follows the stop price against the current price, never
the side (ccxt#14956), and every argument is checked before the current price is even read."""
from __future__ import annotations

from decimal import Decimal

import pytest

from kucoin_futures.errors import InvalidArgument
from kucoin_futures.orders.rules import OrderType, build_stop_request, stop_direction
from tests.orders.test_rules import BTC_MARKET


class PriceRead:
    """The injected current price; records whether it was asked."""

    def __init__(self, price: float) -> None:
        self.price, self.asked = price, 0

    def __call__(self) -> float:
        self.asked += 1
        return self.price


def stop(side: str, stop_price, *, current: float = 100.0, **kwargs):
    read = PriceRead(current)
    args = {"amount": 3, "price_type": "mark", "reduce_only": True, "close_order": False, "limit_price": None,
            "client_oid": "sl-1", **kwargs}
    return build_stop_request(BTC_MARKET, side=side, stop_price=stop_price, current_price=read, **args), read


@pytest.mark.parametrize(("side", "stop_price", "direction", "meaning"), [
    ("sell", 95.0, "down", "a long's stop-loss"),
    ("sell", 105.0, "up", "a long's take-profit"),
    ("buy", 105.0, "up", "a short's stop-loss"),
    ("buy", 95.0, "down", "a short's take-profit"),
])
def test_the_direction_follows_the_price_whatever_the_side(side, stop_price, direction, meaning):
    request, _ = stop(side, stop_price)
    params = request.ccxt_params()
    assert (request.stop.direction, params["stop"], params["triggerPrice"], params["stopPriceType"]) == (
        direction, direction, str(Decimal(str(stop_price))), "MP"), meaning


def test_a_stop_on_the_current_price_is_refused():
    with pytest.raises(InvalidArgument, match="equal to the current mark price"):
        stop_direction(Decimal("100"), Decimal("100"), "mark")


@pytest.mark.parametrize(("price_type", "wire"), [("last", "TP"), ("mark", "MP"), ("index", "IP")])
def test_price_types_map_to_kucoin_stop_price_types(price_type, wire):
    request, _ = stop("sell", 95.0, price_type=price_type)
    assert (request.stop.price_type, request.ccxt_params()["stopPriceType"]) == (price_type, wire)


def test_close_order_and_limit_price_reach_the_params():
    request, _ = stop("sell", 95.0, close_order=True, limit_price=94.5, reduce_only=False)
    params = request.ccxt_params()
    assert (request.order_type, request.price, params["closeOrder"], params["reduceOnly"]) == (
        OrderType.LIMIT, Decimal("94.5"), True, True)


@pytest.mark.parametrize("bad", [
    {"stop_price": 95.05},  # off the 0.1 tick
    {"stop_price": -1.0},
    {"stop_price": float("nan")},
    {"price_type": "MP"},  # our names, not KuCoin's codes
    {"price_type": None},
    {"side": "long"},
    {"amount": 0},
    {"amount": 1.5},
    {"close_order": "yes"},
    {"reduce_only": 1},
    {"limit_price": 94.55},
    {"client_oid": "no spaces allowed"},
])
def test_bad_arguments_are_refused_before_the_price_is_read(bad):
    args = {"side": "sell", "stop_price": 95.0, **bad}
    read = PriceRead(100.0)
    rest = {"amount": 3, "price_type": "mark", "reduce_only": True, "close_order": False, "limit_price": None,
            "client_oid": "sl-1"}
    rest.update({k: v for k, v in args.items() if k in rest})
    with pytest.raises(InvalidArgument):
        build_stop_request(BTC_MARKET, side=args["side"], stop_price=args["stop_price"], current_price=read, **rest)
    assert read.asked == 0


def test_a_valid_stop_reads_the_price_once():
    _, read = stop("sell", 95.0)
    assert read.asked == 1


def test_an_expected_direction_the_price_contradicts_is_refused():
    """A long's stop-loss (expect "down") the mark already fell through would trigger on a rise."""
    request, _ = stop("sell", 95.0, current=100.0, expect_direction="down")
    assert request.stop.direction == "down"
    with pytest.raises(InvalidArgument, match="already below it, so this stop would trigger on a rise"):
        stop("sell", 95.0, current=94.0, expect_direction="down")
    with pytest.raises(InvalidArgument, match="expect_direction"):
        stop("sell", 95.0, expect_direction="DOWN")
