"""Order paths of the trading engine against the real Market with an exact XBTUSDTM ladder.

Ladder (trading_market.py): asks 90000×5, 90000.5×10, 90001×100; bids 89999.5×5, 89999×10,
89998×100. XBTUSDTM: 0.001 XBT per lot, taker fee 0.0006, maker fee 0.0002.
"""
from __future__ import annotations

import orjson
import pytest

from kucoin_sim.errors import SimError
from kucoin_sim.events import TickerUpdate, Trade
from kucoin_sim.trading import Trading
from kucoin_sim.wsframes import event_payload
from tests.sim.trading_market import T0, book_levels, make_market, make_trading, order_body

XBT = "XBTUSDTM"


def _order(trading, order_id):
    return trading.get_order({"orderId": order_id}, T0)


def test_market_buy_takes_the_book_level_by_level():
    market, trading = make_trading()
    ack = trading.place_order(order_body("buy", 12), T0)
    trades = [e for e in market.drain_events() if isinstance(e, Trade)]

    assert ack == {"orderId": "240000000000000001", "clientOid": "c-1"}
    assert _order(trading, ack["orderId"]) == {
        "id": "240000000000000001", "symbol": XBT, "type": "market", "side": "buy", "price": "0",
        "size": 12, "value": "1080.0035", "dealValue": "1080.0035", "dealSize": 12, "stp": "",
        "stop": "", "stopPriceType": "", "stopTriggered": False, "stopPrice": None,
        "timeInForce": "GTC", "postOnly": False, "hidden": False, "iceberg": False,
        "leverage": "5", "forceHold": False, "closeOrder": False, "visibleSize": 0,
        "clientOid": "c-1", "remark": None, "tags": "", "isActive": False, "cancelExist": False,
        "createdAt": T0, "updatedAt": T0, "endAt": T0, "orderTime": T0 * 1_000_000,
        "settleCurrency": "USDT", "marginMode": "ISOLATED", "avgDealPrice": "90000.292",
        "filledSize": 12, "filledValue": "1080.0035", "status": "done", "reduceOnly": False,
    }
    assert [(t.side, t.price, t.size, t.taker_order_id) for t in trades] == [
        ("buy", "90000", 5, ack["orderId"]), ("buy", "90000.5", 7, ack["orderId"])]
    assert book_levels(market, XBT, "sell") == [("90000.5", 3, 0), ("90001", 100, 0)]
    fills = trading.fills({}, T0)["items"]
    assert [(f["tradeId"], f["price"], f["size"], f["liquidity"]) for f in fills] == [
        (trades[1].trade_id, "90000.5", 7, "taker"), (trades[0].trade_id, "90000", 5, "taker")]


def test_market_sell_opens_a_short_against_the_bids():
    market, trading = make_trading()
    ack = trading.place_order(order_body("sell", 12), T0)

    order = _order(trading, ack["orderId"])
    assert (order["filledSize"], order["dealValue"], order["avgDealPrice"]) == (12, "1079.9905", "89999.208")
    assert book_levels(market, XBT, "buy") == [("89999", 3, 0), ("89998", 100, 0)]
    assert trading.position({"symbol": XBT}, T0)["currentQty"] == -12


def test_limit_order_rests_then_fills_as_maker_when_the_quote_crosses_it():
    market, trading = make_trading()
    ack = trading.place_order(order_body("buy", 3, price="89999"), T0)
    resting = book_levels(market, XBT, "buy")
    trading.before_quote(XBT, market.fmt(XBT).to_ticks("89998.5"), market.fmt(XBT).to_ticks("89999.1"), T0 + 100)
    still_open = _order(trading, ack["orderId"])["isActive"]
    trading.before_quote(XBT, market.fmt(XBT).to_ticks("89998.5"), market.fmt(XBT).to_ticks("89999"), T0 + 200)

    assert resting == [("89999.5", 5, 0), ("89999", 10, 3), ("89998", 100, 0)]
    assert still_open is True
    order = _order(trading, ack["orderId"])
    assert (order["status"], order["isActive"], order["cancelExist"], order["filledSize"],
            order["avgDealPrice"], order["endAt"]) == ("done", False, False, 3, "89999", T0 + 200)
    assert book_levels(market, XBT, "buy") == [("89999.5", 5, 0), ("89999", 10, 0), ("89998", 100, 0)]
    fill = trading.fills({}, T0 + 200)["items"][0]
    assert (fill["liquidity"], fill["feeRate"], fill["fee"], fill["price"]) == ("maker", "0.00020", "0.0539994", "89999")


def test_resting_limit_order_fills_while_the_market_runs():
    """The same path driven by Market.advance: the random walk eventually crosses the order."""
    market = make_market()
    trading = Trading(market)
    book, fmt = market.book(XBT), market.fmt(XBT)
    price = fmt.to_str(book.best_mm("buy"))
    ack = trading.place_order(order_body("buy", 2, price=price), T0)
    now = T0
    while _order(trading, ack["orderId"])["isActive"] and now < T0 + 600_000:
        now += 100
        market.advance(now)

    order = _order(trading, ack["orderId"])
    assert (order["status"], order["filledSize"], order["avgDealPrice"]) == ("done", 2, price)
    assert book.size_at("buy", fmt.to_ticks(price)) == book.mm_at("buy", fmt.to_ticks(price))
    assert trading.position({"symbol": XBT}, now)["currentQty"] == 2


def test_large_limit_order_takes_what_crosses_and_rests_the_rest():
    market, trading = make_trading()
    ack = trading.place_order(order_body("buy", 20, price="90000.5"), T0)

    order = _order(trading, ack["orderId"])
    assert (order["status"], order["isActive"], order["filledSize"], order["dealValue"],
            order["value"], order["avgDealPrice"]) == ("open", True, 15, "1350.005", "1800.01", "90000.333")
    assert book_levels(market, XBT, "sell") == [("90001", 100, 0)]
    assert book_levels(market, XBT, "buy")[0] == ("90000.5", 0, 5)


def test_post_only_order_that_would_take_is_accepted_then_canceled():
    market, trading = make_trading()
    ack = trading.place_order(order_body("buy", 2, price="90000", postOnly=True), T0)
    resting = trading.place_order(order_body("buy", 2, price="89999.5", postOnly=True, client_oid="c-2"), T0)

    order = _order(trading, ack["orderId"])
    assert (order["status"], order["isActive"], order["cancelExist"], order["filledSize"],
            order["postOnly"]) == ("done", False, True, 0, True)
    assert _order(trading, resting["orderId"])["isActive"] is True
    assert book_levels(market, XBT, "sell")[0] == ("90000", 5, 0)
    assert trading.fills({}, T0)["totalNum"] == 0


def test_ioc_order_cancels_what_it_cannot_fill_now():
    market, trading = make_trading()
    ack = trading.place_order(order_body("buy", 20, price="90000.5", timeInForce="IOC"), T0)

    order = _order(trading, ack["orderId"])
    assert (order["status"], order["isActive"], order["cancelExist"], order["filledSize"]) == ("done", False, True, 15)
    assert book_levels(market, XBT, "buy")[0] == ("89999.5", 5, 0)


def test_reduce_only_without_a_position_is_canceled_at_once():
    _, trading = make_trading()
    ack = trading.place_order(order_body("sell", 3, reduceOnly=True), T0)

    order = _order(trading, ack["orderId"])
    assert (order["isActive"], order["cancelExist"], order["filledSize"], order["reduceOnly"]) == (False, True, 0, True)
    assert trading.positions({}, T0) == []


def test_reduce_only_fills_up_to_the_position_and_cancels_the_extra():
    _, trading = make_trading()
    trading.place_order(order_body("buy", 5), T0)
    ack = trading.place_order(order_body("sell", 8, reduceOnly=True, client_oid="c-2"), T0)

    order = _order(trading, ack["orderId"])
    assert (order["size"], order["filledSize"], order["cancelExist"], order["isActive"]) == (8, 5, True, False)
    assert trading.position({"symbol": XBT}, T0)["currentQty"] == 0


def test_resting_reduce_only_order_is_trimmed_when_the_position_shrinks():
    market, trading = make_trading()
    trading.place_order(order_body("buy", 5), T0)
    big = trading.place_order(order_body("sell", 8, price="90010", reduceOnly=True, client_oid="r-1"), T0)
    resting_lots = book_levels(market, XBT, "sell")[-1]
    trading.place_order(order_body("sell", 2, client_oid="c-3"), T0 + 1)
    trimmed_lots = book_levels(market, XBT, "sell")[-1]
    trading.place_order(order_body("sell", 3, client_oid="c-4"), T0 + 2)

    assert resting_lots == ("90010", 0, 5)  # 3 of 8 canceled at once: the position is 5
    assert trimmed_lots == ("90010", 0, 3)
    order = _order(trading, big["orderId"])
    assert (order["isActive"], order["cancelExist"], order["filledSize"], order["endAt"]) == (False, True, 0, T0 + 2)
    assert book_levels(market, XBT, "sell")[-1] == ("90001", 100, 0)


def test_close_order_closes_the_whole_position_at_market():
    _, trading = make_trading()
    with pytest.raises(SimError) as refused:
        trading.place_order({"clientOid": "x-1", "symbol": XBT, "closeOrder": True, "type": "market"}, T0)
    trading.place_order(order_body("buy", 12), T0)
    ack = trading.place_order({"clientOid": "x-2", "symbol": XBT, "closeOrder": True, "type": "market"}, T0)

    assert (refused.value.code, refused.value.msg) == ("300009", "No open positions to close.")
    order = _order(trading, ack["orderId"])
    assert (order["side"], order["size"], order["filledSize"], order["closeOrder"]) == ("sell", 12, 12, True)
    assert trading.position({"symbol": XBT}, T0)["isOpen"] is False


def test_market_order_without_liquidity_is_refused():
    market, trading = make_trading()
    trading.place_order(order_body("buy", 115), T0)  # empties the ask side
    with pytest.raises(SimError) as refused:
        trading.place_order(order_body("buy", 1, client_oid="c-2"), T0)

    assert (refused.value.http_status, refused.value.code) == (200, "300008")
    assert book_levels(market, XBT, "sell") == []


def test_market_order_that_empties_a_side_pushes_no_ticker_without_a_price():
    """KuCoin's ticker carries both best prices as price strings; the simulator used to push
    ``"bestAskPrice": ""`` once a market order took the whole ask side. Now the match that empties
    the side goes out on the execution topic only."""
    market, trading = make_trading()
    trading.place_order(order_body("buy", 115), T0)  # 5 + 10 + 100: the whole ask side
    events = market.drain_events()
    trades = [e for e in events if isinstance(e, Trade)]
    tickers = [e for e in events if isinstance(e, TickerUpdate)]
    pushed = [orjson.loads(event_payload(e, f"/contractMarket/ticker:{XBT}", "u"))["data"] for e in tickers]

    assert [(t.price, t.size) for t in trades] == [("90000", 5), ("90000.5", 10), ("90001", 100)]
    assert [(d["price"], d["bestBidPrice"], d["bestAskPrice"]) for d in pushed] == [
        ("90000", "89999.5", "90000.5"), ("90000.5", "89999.5", "90001")]


def test_duplicate_active_client_oid_is_refused_until_the_first_is_done():
    _, trading = make_trading()
    first = trading.place_order(order_body("buy", 1, price="89000", client_oid="dup"), T0)
    with pytest.raises(SimError) as refused:
        trading.place_order(order_body("buy", 1, price="89001", client_oid="dup"), T0)
    trading.cancel_order({"orderId": first["orderId"]}, T0)
    second = trading.place_order(order_body("buy", 1, price="89001", client_oid="dup"), T0)

    assert (refused.value.http_status, refused.value.code, refused.value.msg) == (
        200, "300018", "clientOid parameter repeated")
    assert second == {"orderId": "240000000000000002", "clientOid": "dup"}


def test_cancel_by_id_removes_the_order_from_the_book():
    market, trading = make_trading()
    ack = trading.place_order(order_body("buy", 4, price="89999"), T0)
    result = trading.cancel_order({"orderId": ack["orderId"]}, T0 + 5)
    with pytest.raises(SimError) as again:
        trading.cancel_order({"orderId": ack["orderId"]}, T0 + 6)
    with pytest.raises(SimError) as unknown:
        trading.cancel_order({"orderId": "123"}, T0 + 6)

    assert result == {"cancelledOrderIds": [ack["orderId"]]}
    order = _order(trading, ack["orderId"])
    assert (order["status"], order["isActive"], order["cancelExist"], order["endAt"]) == ("done", False, True, T0 + 5)
    assert book_levels(market, XBT, "buy")[1] == ("89999", 10, 0)
    assert (again.value.code, again.value.msg) == ("100004", "Order is in not cancelable state")
    assert unknown.value.code == "100004"


def test_cancel_by_client_oid_needs_the_symbol():
    _, trading = make_trading()
    trading.place_order(order_body("buy", 1, price="89000", client_oid="mine"), T0)
    with pytest.raises(SimError) as no_symbol:
        trading.cancel_order_by_client_oid({"clientOid": "mine"}, T0)
    result = trading.cancel_order_by_client_oid({"clientOid": "mine", "symbol": XBT}, T0)

    assert (no_symbol.value.code, result) == ("400100", {"clientOid": "mine"})
    assert trading.get_order_by_client_oid({"clientOid": "mine"}, T0)["cancelExist"] is True


def test_cancel_all_by_symbol_then_everything():
    _, trading = make_trading()
    a = trading.place_order(order_body("buy", 1, price="89000", client_oid="a"), T0)
    b = trading.place_order(order_body("sell", 1, price="91000", client_oid="b"), T0)
    c = trading.place_order(order_body("buy", 100, price="80000", client_oid="c", symbol="XBTUSDM"), T0)

    assert trading.cancel_all_orders({"symbol": XBT}, T0) == {"cancelledOrderIds": [a["orderId"], b["orderId"]]}
    assert trading.cancel_all_orders({}, T0) == {"cancelledOrderIds": [c["orderId"]]}
    assert trading.list_orders({"status": "active"}, T0)["totalNum"] == 0


def test_lookups_find_active_and_done_orders_and_refuse_unknown_ones():
    _, trading = make_trading()
    done = trading.place_order(order_body("buy", 1, client_oid="k"), T0)
    active = trading.place_order(order_body("buy", 1, price="89000", client_oid="k"), T0)
    with pytest.raises(SimError) as by_id:
        trading.get_order({"orderId": "999"}, T0)
    with pytest.raises(SimError) as by_cid:
        trading.get_order_by_client_oid({"clientOid": "nope"}, T0)

    assert trading.get_order_by_client_oid({"clientOid": "k"}, T0)["id"] == active["orderId"]
    trading.cancel_order({"orderId": active["orderId"]}, T0)
    assert trading.get_order_by_client_oid({"clientOid": "k"}, T0)["id"] == active["orderId"]
    assert _order(trading, done["orderId"])["status"] == "done"
    assert (by_id.value.http_status, by_id.value.code, by_id.value.msg) == (404, "100001", "error.getOrder.orderNotExist")
    assert by_cid.value.code == "100001"


def test_order_lists_paginate_newest_first():
    _, trading = make_trading()
    ids = [trading.place_order(order_body("buy", 1, price=f"8999{i}", client_oid=f"p{i}"), T0 + i)["orderId"]
           for i in range(7)]

    first = trading.list_orders({"status": "active", "pageSize": "3"}, T0 + 10)
    last = trading.list_orders({"status": "active", "pageSize": "3", "currentPage": "3"}, T0 + 10)
    assert {k: v for k, v in first.items() if k != "items"} == {
        "currentPage": 1, "pageSize": 3, "totalNum": 7, "totalPage": 3}
    assert [o["id"] for o in first["items"]] == ids[:3:-1][:3]
    assert [o["id"] for o in last["items"]] == [ids[0]]
    assert trading.list_orders({}, T0 + 10) == {  # status defaults to done, as KuCoin documents
        "currentPage": 1, "pageSize": 50, "totalNum": 0, "totalPage": 0, "items": []}
    window = trading.list_orders({"status": "active", "startAt": T0 + 2, "endAt": T0 + 3}, T0 + 10)
    assert [o["id"] for o in window["items"]] == [ids[3], ids[2]]
    with pytest.raises(SimError) as too_big:
        trading.list_orders({"status": "active", "pageSize": 1001}, T0)
    assert too_big.value.code == "400100"


def test_fills_filter_by_order_side_and_trade_type():
    _, trading = make_trading()
    buy = trading.place_order(order_body("buy", 6), T0)
    trading.place_order(order_body("sell", 2, client_oid="c-2"), T0 + 1)

    assert [f["size"] for f in trading.fills({"orderId": buy["orderId"]}, T0)["items"]] == [1, 5]
    assert [f["side"] for f in trading.fills({"side": "sell"}, T0)["items"]] == ["sell"]
    assert trading.fills({"tradeTypes": "liquid"}, T0)["totalNum"] == 0
    assert trading.fills({"pageSize": 2, "currentPage": 2}, T0)["items"][0]["size"] == 5


def test_recent_lists_cover_the_last_24_hours():
    _, trading = make_trading()
    trading.place_order(order_body("buy", 1), T0)
    day_ms = 24 * 3600 * 1000

    assert [o["clientOid"] for o in trading.recent_done_orders({}, T0 + day_ms)] == ["c-1"]
    assert trading.recent_done_orders({}, T0 + day_ms + 1) == []
    assert len(trading.recent_fills({"symbol": XBT}, T0 + 1)) == 1
    assert trading.recent_fills({"symbol": "XBTUSDM"}, T0 + 1) == []


def test_order_test_endpoint_validates_without_placing():
    market, trading = make_trading()
    ack = trading.place_order_test(order_body("buy", 12), T0)
    with pytest.raises(SimError) as refused:
        trading.place_order_test(order_body("buy", 0), T0)

    assert ack["clientOid"] == "c-1"
    assert trading.all_orders() == []
    assert book_levels(market, XBT, "sell")[0] == ("90000", 5, 0)
    assert refused.value.code == "400100"


@pytest.mark.parametrize(("body", "expected"), [
    ({"valueQty": "500", "size": None}, 5),  # 500 USDT at the best ask 90000 = 5.55 lots
    ({"qty": "0.007", "size": None}, 7),
    ({"size": "3"}, 3),
    ({"size": 4.0}, 4),
])
def test_size_alternatives(body, expected):
    _, trading = make_trading()
    fields = order_body("buy", 1)
    fields.update(body)
    ack = trading.place_order({k: v for k, v in fields.items() if v is not None}, T0)

    assert _order(trading, ack["orderId"])["size"] == expected


@pytest.mark.parametrize(("changes", "expected"), [
    ({"clientOid": None}, (400, "400100", "clientOid is required")),
    ({"clientOid": "x" * 41}, (400, "400100", None)),
    ({"clientOid": "bad oid!"}, (400, "400100", None)),
    ({"side": "long"}, (400, "400100", None)),
    ({"type": "stop_limit"}, (400, "400100", None)),
    ({"size": 0}, (400, "400100", "Order size below the minimum requirement.")),
    ({"size": 1.5}, (400, "400100", "Order size increment invalid.")),
    ({"size": "abc"}, (400, "400100", "Order size increment invalid.")),
    ({"size": 1_000_001}, (400, "400100", "Order size above the maximum requirement.")),
    ({"size": 1, "qty": "0.001"}, (400, "400100", None)),
    ({"size": None, "qty": "0.0015"}, (400, "400100", "Order size increment invalid.")),
    ({"price": "89000.05"}, (400, "400100", "Price increment invalid.")),
    ({"price": "2000000"}, (200, "300011", "Order price cannot be higher than 1000000.0")),
    ({"price": None}, (400, "400100", "price is required for limit orders")),
    ({"price": "-1"}, (400, "400100", None)),
    ({"leverage": None}, (400, "400100", "leverage is required")),
    ({"leverage": 0}, (400, "400100", None)),
    ({"leverage": "126"}, (200, "300016", "The leverage cannot be greater than 125.")),
    ({"marginMode": "CROSS"}, (200, "330005", None)),
    ({"marginMode": "FOO"}, (400, "400100", None)),
    ({"positionSide": "LONG"}, (200, "330011", None)),
    ({"timeInForce": "FOK"}, (400, "400100", None)),
    ({"postOnly": True, "hidden": True}, (200, "100001", None)),
    ({"reduceOnly": "maybe"}, (400, "400100", None)),
    ({"symbol": "NOPEUSDTM"}, (400, "200003", None)),
])
def test_invalid_order_bodies_are_refused_with_kucoin_codes(changes, expected):
    _, trading = make_trading()
    body = order_body("buy", 1, price="89000")
    body.update(changes)
    with pytest.raises(SimError) as refused:
        trading.place_order({k: v for k, v in body.items() if v is not None}, T0)

    status, code, msg = expected
    assert (refused.value.http_status, refused.value.code) == (status, code)
    if msg is not None:
        assert refused.value.msg == msg
    assert trading.all_orders() == []


def test_unknown_body_fields_are_ignored_and_leverage_may_be_a_string():
    _, trading = make_trading()
    ack = trading.place_order(order_body("buy", 1, price="89000", leverage="10", remark="hi", foo="bar"), T0)

    assert (_order(trading, ack["orderId"])["leverage"], _order(trading, ack["orderId"])["remark"]) == ("10", "hi")
