"""OrderManager against the simulator: every order path, account reads, and bad input that must
never reach the network."""
from __future__ import annotations

import math
from decimal import Decimal
from operator import methodcaller

import pytest

from api_priority import Priority
from kucoin_futures.errors import OrderNotFound
from kucoin_futures.orders.manager import OrderManager
from kucoin_futures.errors import NoPosition
from kucoin_futures.errors import ExchangeRejected, InsufficientFunds, InvalidArgument, InvalidOrder
from kucoin_sim import Simulator
from tests.helpers import start_gateway

BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"
XRP, DOGE = "XRP/USDT:USDT", "DOGE/USDT:USDT"


@pytest.fixture(scope="module")
def env():
    """One simulator, gateway and manager for the module; each test trades its own symbol or ids."""
    with Simulator(seed=7) as sim:
        gateway = start_gateway(sim)
        try:
            yield sim, gateway, OrderManager(gateway)
        finally:
            gateway.close()


def _sim_order(sim: Simulator, client_oid: str) -> dict:
    [order] = [o for o in sim.orders() if o["clientOid"] == client_oid]
    return order


def _requests(sim: Simulator) -> dict:
    return sim.call(lambda: dict(sim.requests))


def _position(gateway, symbol: str) -> dict:
    return gateway.call(Priority.HIGH, "fetch_position", methodcaller("fetch_position", symbol))


def _below_bid(gateway, symbol: str, factor: float = 0.9) -> Decimal:
    market = gateway.market(symbol)
    tick = Decimal(repr(market["precision"]["price"]))
    bid = Decimal(repr(gateway.fetch_ticker(symbol)["bid"])) * Decimal(repr(factor))
    return (bid / tick).to_integral_value() * tick


def test_market_order_carries_our_client_oid(env):
    sim, gateway, manager = env
    order = manager.create_market_order(BTC, "buy", 2, leverage=5)
    placed = _sim_order(sim, order["clientOrderId"])
    assert order["clientOrderId"].startswith("kc-")
    assert {k: order[k] for k in ("id", "symbol", "type", "side", "amount", "price", "reduceOnly")} == {
        "id": placed["id"], "symbol": BTC, "type": "market", "side": "buy", "amount": 2.0, "price": None,
        "reduceOnly": False}
    assert {k: placed[k] for k in ("symbol", "type", "side", "size", "leverage", "reduceOnly", "status")} == {
        "symbol": "XBTUSDTM", "type": "market", "side": "buy", "size": 2, "leverage": "5", "reduceOnly": False,
        "status": "done"}


def test_post_only_limit_order_rests_and_is_listed_then_cancelled(env):
    sim, gateway, manager = env
    price = _below_bid(gateway, ETH)
    order = manager.create_limit_order(ETH, "buy", 3, price, post_only=True, client_oid="limit-eth-1")
    open_ids = [o["id"] for o in manager.get_open_orders(ETH)]
    all_open_ids = [o["id"] for o in manager.get_open_orders()]
    by_id = manager.get_order(order["id"], ETH)
    by_cid = manager.get_order(client_oid="limit-eth-1")
    cancelled = manager.cancel_order(order["id"], ETH)
    after = manager.get_order(order["id"])
    placed = _sim_order(sim, "limit-eth-1")
    assert (order["clientOrderId"], order["price"], order["postOnly"]) == ("limit-eth-1", float(price), True)
    assert order["id"] in open_ids and order["id"] in all_open_ids
    assert (by_id["id"], by_id["status"], by_id["price"], by_id["amount"]) == (
        order["id"], "open", float(price), 3.0)
    assert by_cid["id"] == order["id"]
    assert (cancelled["id"], cancelled["status"], after["status"]) == (order["id"], "canceled", "canceled")
    assert {k: placed[k] for k in ("size", "postOnly", "isActive", "cancelExist")} == {
        "size": 3, "postOnly": True, "isActive": False, "cancelExist": True}
    assert float(placed["price"]) == float(price)  # KuCoin writes 3092.7 for a price of 3092.70


def test_cancel_of_a_finished_order_is_a_definitive_refusal(env):
    sim, gateway, manager = env
    order = manager.create_market_order(BTC, "sell", 1)
    with pytest.raises(ExchangeRejected) as caught:
        manager.cancel_order(order["id"], BTC)
    assert caught.value.code == "100004"


def test_reduce_only_order_reduces_the_position(env):
    sim, gateway, manager = env
    manager.create_market_order(SOL, "buy", 3)
    reduced = manager.create_market_order(SOL, "sell", 1, reduce_only=True)
    position = _position(gateway, SOL)
    assert _sim_order(sim, reduced["clientOrderId"])["reduceOnly"] is True
    assert (position["side"], position["contracts"]) == ("long", 2.0)


@pytest.mark.parametrize(("symbol", "side", "held"), [(XRP, "buy", "long"), (DOGE, "sell", "short")])
def test_close_position_closes_the_whole_position(env, symbol, side, held):
    sim, gateway, manager = env
    manager.create_market_order(symbol, side, 4)
    before = _position(gateway, symbol)
    closing = manager.close_position(symbol)
    after = _position(gateway, symbol)
    placed = _sim_order(sim, closing["clientOrderId"])
    assert (before["side"], before["contracts"]) == (held, 4.0)
    assert (closing["id"], closing["reduceOnly"]) == (placed["id"], True)
    assert (placed["closeOrder"], placed["status"]) == (True, "done")
    assert after["contracts"] == 0


def test_close_position_when_flat_says_so_and_sends_no_order(env):
    sim, gateway, manager = env
    before = _requests(sim)
    with pytest.raises(NoPosition, match="no position, nothing sent") as caught:
        manager.close_position("LINK/USDT:USDT")
    assert isinstance(caught.value, InvalidOrder) and caught.value.code == "300009"
    after = _requests(sim)
    assert after.get(("POST", "/api/v1/orders"), 0) == before.get(("POST", "/api/v1/orders"), 0)
    assert after[("GET", "/api/v1/position")] == before.get(("GET", "/api/v1/position"), 0) + 1


def test_account_reads(env):
    sim, gateway, manager = env
    manager.create_market_order("ADA/USDT:USDT", "buy", 1)
    balance = manager.get_balance()
    positions = manager.get_positions()
    leverage = manager.set_leverage(BTC, 10)
    assert set(balance["USDT"]) == {"free", "used", "total"}
    assert math.isclose(balance["USDT"]["total"], balance["USDT"]["free"] + balance["USDT"]["used"])
    assert "ADA/USDT:USDT" in {p["symbol"] for p in positions}
    assert all(p["contracts"] for p in positions)  # flat entries are left out
    assert (leverage["symbol"], leverage["longLeverage"]) == (BTC, 10)


def test_get_order_unknown_client_oid_raises_order_not_found(env):
    sim, gateway, manager = env
    with pytest.raises(OrderNotFound):
        manager.get_order(client_oid="never-sent-1")
    with pytest.raises(OrderNotFound) as by_id:
        manager.get_order("123456789")
    assert by_id.value.code == "100001"


def test_reusing_a_client_oid_is_refused_locally(env):
    sim, gateway, manager = env
    manager.create_market_order(BTC, "buy", 1, client_oid="mine-1")
    before = _requests(sim)
    with pytest.raises(InvalidArgument, match="client_oid='mine-1'"):
        manager.create_limit_order(BTC, "sell", 1, 200_000, client_oid="mine-1")
    assert _requests(sim) == before
    assert [o["clientOid"] for o in sim.orders()].count("mine-1") == 1


def test_a_refused_order_releases_its_client_oid(env):
    """InsufficientFunds is definitive: nothing was placed, so the caller may send that clientOid again."""
    sim, gateway, manager = env
    for _ in range(2):
        with pytest.raises(InsufficientFunds):
            manager.create_market_order(BTC, "buy", 900_000, client_oid="too-big-1")
    assert [o["clientOid"] for o in sim.orders()].count("too-big-1") == 0


# -- Bad input never reaches the network ----------------------------------------------------------
def _market(**overrides):
    args = {"symbol": BTC, "side": "buy", "amount": 1, **overrides}
    return lambda m, g: m.create_market_order(args.pop("symbol"), args.pop("side"), args.pop("amount"), **args)


def _limit(**overrides):
    args = {"symbol": BTC, "side": "buy", "amount": 1, "price": 50_000, **overrides}
    return lambda m, g: m.create_limit_order(args.pop("symbol"), args.pop("side"), args.pop("amount"),
                                          args.pop("price"), **args)


BAD_INPUT = [
    ("unknown symbol", _market(symbol="FOO/USDT:USDT"), "symbol='FOO/USDT:USDT'"),
    ("spot symbol", _market(symbol="BTC/USDT"), "symbol='BTC/USDT'"),
    ("symbol not a str", _market(symbol=None), "symbol=None"),
    ("unknown side", _market(side="long"), "side='long'"),
    ("side upper case", _market(side="BUY"), "side='BUY'"),
    ("amount not whole", _market(amount=1.5), "amount=1.5"),
    ("amount zero", _market(amount=0), "amount=0"),
    ("amount negative", _market(amount=-2), "amount=-2"),
    ("amount below the lot", _market(amount=Decimal("0.5")), "amount=Decimal('0.5')"),
    ("amount above the maximum", _market(amount=1_000_001), "amount=1000001"),
    ("amount bool", _market(amount=True), "amount=True"),
    ("amount str", _market(amount="1"), "amount='1'"),
    ("amount nan", _market(amount=math.nan), "amount=nan"),
    ("amount inf", _market(amount=math.inf), "amount=inf"),
    ("amount huge", _market(amount=1e300), "amount=1e+300"),
    ("price zero", _limit(price=0), "price=0"),
    ("price negative", _limit(price=-1.0), "price=-1.0"),
    ("price nan", _limit(price=math.nan), "price=nan"),
    ("price inf", _limit(price=math.inf), "price=inf"),
    ("price bool", _limit(price=True), "price=True"),
    ("price str", _limit(price="50000"), "price='50000'"),
    ("price off the tick", _limit(price=50_000.05), "price=50000.05"),
    ("price above the maximum", _limit(price=2_000_000), "price=2000000"),
    ("leverage above the maximum", _market(leverage=126), "leverage=126"),
    ("leverage zero", _market(leverage=0), "leverage=0"),
    ("leverage not whole", _market(leverage=2.5), "leverage=2.5"),
    ("leverage bool", _market(leverage=True), "leverage=True"),
    ("unknown margin mode", _market(margin_mode="portfolio"), "margin_mode='portfolio'"),
    ("post_only not bool", _limit(post_only="yes"), "post_only='yes'"),
    ("reduce_only not bool", _market(reduce_only=1), "reduce_only=1"),
    ("client_oid with spaces", _market(client_oid="my order"), "client_oid='my order'"),
    ("client_oid too long", _market(client_oid="x" * 41), "client_oid='xxxx"),
    ("unknown timeframe", lambda m, g: g.fetch_ohlcv(BTC, "7m"), "'7m'"),
    ("ohlcv limit zero", lambda m, g: g.fetch_ohlcv(BTC, "1m", limit=0), "limit=0"),
    ("ticker: unknown symbol", lambda m, g: g.fetch_ticker("FOO/USDT:USDT"), "symbol='FOO/USDT:USDT'"),
    ("cancel: order id with a path", lambda m, g: m.cancel_order("../orders", BTC), "order_id='../orders'"),
    ("cancel: unknown symbol", lambda m, g: m.cancel_order("123", "FOO/USDT:USDT"), "symbol='FOO/USDT:USDT'"),
    ("get_order: no id", lambda m, g: m.get_order(), "give exactly one"),
    ("get_order: both ids", lambda m, g: m.get_order("1", client_oid="c"), "give exactly one"),
    ("set_leverage above the maximum", lambda m, g: m.set_leverage(BTC, 200), "leverage=200"),
    ("close_position: unknown symbol", lambda m, g: m.close_position("FOO/USDT:USDT"),
     "symbol='FOO/USDT:USDT'"),
]


@pytest.mark.parametrize(("act", "names"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_refused_before_any_request(env, act, names):
    sim, gateway, manager = env
    before = _requests(sim)
    with pytest.raises(InvalidArgument) as caught:
        act(manager, gateway)
    assert names in str(caught.value)
    assert _requests(sim) == before


def test_close_position_of_a_position_closed_meanwhile_raises_no_position(env):
    sim, gateway, manager = env
    manager.create_market_order(XRP, "buy", 2)
    # closed by something else between the look and the order: KuCoin answers 300009
    sim.fail_next("POST", "/api/v1/orders", status=200, code="300009", msg="No open positions to close.",
                  rate_headers=False)
    with pytest.raises(NoPosition):
        manager.close_position(XRP)
