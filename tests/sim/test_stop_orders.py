"""Stop orders in the trading engine: waiting without margin, triggering on last/mark/index,
becoming normal orders, limits, cancels, liquidation, st-orders (TP/SL with an entry).

Ladder (trading_market.py): asks 90000×5, 90000.5×10, 90001×100; bids 89999.5×5, 89999×10,
89998×100; marks pinned at 90000. A long of 5 lots is bought at 90000.
"""
from __future__ import annotations

import pytest

from kucoin_sim.errors import SimError
from tests.sim.trading_market import T0, make_trading, order_body, private_events

XBT = "XBTUSDTM"


def _stop(side: str, direction: str, stop_price: str, *, size: int = 5, kind: str = "MP",
          client_oid: str = "s-1", **extra):
    """A stop body as ccxt sends it (protocol notes §7.2; market unless `price` is in extra)."""
    return order_body(side, size, client_oid=client_oid, stop=direction, stopPrice=stop_price,
                      stopPriceType=kind, **extra)


def _long(trading, size: int = 5) -> None:
    trading.place_order(order_body("buy", size, client_oid="entry"), T0)


def _order(trading, order_id):
    return trading.get_order({"orderId": order_id}, T0)


def _trail(events):
    return [(e.subject, e.data["type"]) for e in events if e.kind in ("stop", "order")]


def _overview(trading):
    return trading.account_overview({"currency": "USDT"}, T0)


def test_long_stop_loss_waits_without_margin_then_triggers_on_the_mark_and_closes():
    market, trading = make_trading()
    _long(trading)
    before = _overview(trading)
    market.drain_events()
    ack = trading.place_order(_stop("sell", "down", "85000", reduceOnly=True), T0)
    waiting = _order(trading, ack["orderId"])
    after_placing = _overview(trading)
    placed = private_events(market)
    market.pinned_marks[XBT] = 85_000.1
    trading.after_tick(XBT, T0 + 1)
    still_waiting = trading.list_stop_orders({}, T0 + 1)["totalNum"]
    market.pinned_marks[XBT] = 85_000.0
    trading.after_tick(XBT, T0 + 2)
    fired = private_events(market)
    marks = [e for e in fired if e.subject == "position.change" and "changeReason" not in e.data]
    fired = [e for e in fired if e not in marks]  # the open position's mark-price updates

    assert after_placing == before  # nothing frozen: same order margin and available balance
    assert {k: waiting[k] for k in ("stop", "stopPriceType", "stopTriggered", "stopPrice", "isActive",
                                    "status", "type", "side", "size", "reduceOnly", "price")} == {
        "stop": "down", "stopPriceType": "MP", "stopTriggered": False, "stopPrice": "85000",
        "isActive": True, "status": "open", "type": "market", "side": "sell", "size": 5,
        "reduceOnly": True, "price": "0"}
    assert [(e.kind, e.subject, e.data["type"]) for e in placed] == [("stop", "stopOrder", "open")]
    assert still_waiting == 1
    assert _trail(fired) == [("stopOrder", "triggered"), ("orderChange", "match"), ("orderChange", "filled")]
    assert fired[0].data["triggerSuccess"] is True
    assert [e.data["markPrice"] for e in marks] == [85_000.1]  # while it waited; none once the stop closed it
    assert [e.data["changeReason"] for e in fired if e.subject == "position.change"] == ["positionChange"]
    order = _order(trading, ack["orderId"])
    assert {k: order[k] for k in ("id", "stopTriggered", "stop", "stopPrice", "status", "filledSize",
                                  "avgDealPrice", "cancelExist", "createdAt", "endAt")} == {
        "id": ack["orderId"], "stopTriggered": True, "stop": "down", "stopPrice": "85000",
        "status": "done", "filledSize": 5, "avgDealPrice": "89999.5", "cancelExist": False,
        "createdAt": T0, "endAt": T0 + 2}
    assert trading.position({"symbol": XBT}, T0 + 2)["currentQty"] == 0
    assert trading.list_stop_orders({}, T0 + 2)["items"] == []
    assert trading.fills({"orderId": ack["orderId"]}, T0 + 2)["items"][0]["stop"] == "down"


def test_take_profit_up_triggers_on_the_last_trade_price_only():
    market, trading = make_trading()
    _long(trading)
    tp = trading.place_order(_stop("sell", "up", "90001", kind="TP", reduceOnly=True), T0)
    by_mark = trading.place_order(_stop("sell", "up", "90001", kind="MP", client_oid="s-2",
                                        reduceOnly=True), T0)
    market.record_trade(XBT, taker_side="buy", price_ticks=market.fmt(XBT).to_ticks("90001"), size=1,
                        maker_order_id="m", taker_order_id="t", now_ms=T0 + 1)
    trading.after_tick(XBT, T0 + 1)

    assert _order(trading, tp["orderId"])["stopTriggered"] is True
    assert trading.position({"symbol": XBT}, T0 + 1)["currentQty"] == 0
    # the mark stayed at 90000: the MP stop still waits (and, reduce-only, will find nothing to close)
    assert [s["id"] for s in trading.list_stop_orders({}, T0 + 1)["items"]] == [by_mark["orderId"]]


def test_index_price_stop_watches_the_index():
    market, trading = make_trading()
    _long(trading)
    ack = trading.place_order(_stop("sell", "down", "88000", kind="IP", reduceOnly=True), T0)
    market.move_price(XBT, 87_999.0, T0 + 1, only="index")

    assert _order(trading, ack["orderId"])["stopTriggered"] is True
    assert trading.position({"symbol": XBT}, T0 + 1)["currentQty"] == 0


def test_stop_on_the_wrong_side_is_accepted_and_triggers_at_once():
    """ccxt#14956: a sell stop "up" below the mark is already due, so it fires when placed."""
    market, trading = make_trading()
    _long(trading)
    market.drain_events()
    ack = trading.place_order(_stop("sell", "up", "85000", reduceOnly=True), T0)

    assert _trail(private_events(market)) == [("stopOrder", "open"), ("stopOrder", "triggered"),
                                             ("orderChange", "match"), ("orderChange", "filled")]
    assert _order(trading, ack["orderId"])["stopTriggered"] is True
    assert trading.position({"symbol": XBT}, T0)["currentQty"] == 0


def test_at_most_50_untriggered_stops_per_contract():
    _, trading = make_trading()
    for n in range(50):
        trading.place_order(_stop("sell", "down", str(80_000 + n), size=1, client_oid=f"s{n}"), T0)
    with pytest.raises(SimError) as too_many:
        trading.place_order(_stop("sell", "down", "79000", size=1, client_oid="s50"), T0)
    other = trading.place_order(_stop("sell", "down", "79000", size=100, client_oid="s51",
                                      symbol="XBTUSDM"), T0)
    trading.cancel_order({"orderId": trading.list_stop_orders({"symbol": XBT}, T0)["items"][0]["id"]}, T0)
    again = trading.place_order(_stop("sell", "down", "79000", size=1, client_oid="s52"), T0)

    assert (too_many.value.http_status, too_many.value.code) == (200, "300004")
    assert other["orderId"] and again["orderId"]
    assert trading.list_stop_orders({"symbol": XBT}, T0)["totalNum"] == 50


def test_stop_that_cannot_be_afforded_at_its_trigger_is_canceled():
    market, trading = make_trading(balances={"USDT": 100.0})
    ack = trading.place_order(_stop("buy", "up", "95000", size=10, leverage=1), T0)  # needs ~950 USDT
    market.drain_events()
    market.pinned_marks[XBT] = 95_000.0
    trading.after_tick(XBT, T0 + 1)
    pushes = [e.data for e in private_events(market) if e.kind == "stop"]

    assert [(p["type"], p.get("triggerSuccess")) for p in pushes] == [("triggered", False), ("cancel", None)]
    assert pushes[0]["error"].startswith("Insufficient balance.")
    order = _order(trading, ack["orderId"])
    assert (order["isActive"], order["cancelExist"], order["stopTriggered"], order["filledSize"],
            order["status"]) == (False, True, True, 0, "done")
    assert trading.position({"symbol": XBT}, T0 + 1)["currentQty"] == 0


def test_reduce_only_stop_with_nothing_to_reduce_is_canceled_when_it_triggers():
    market, trading = make_trading()
    ack = trading.place_order(_stop("sell", "down", "89000", reduceOnly=True), T0)
    market.pinned_marks[XBT] = 88_000.0
    trading.after_tick(XBT, T0 + 1)

    order = _order(trading, ack["orderId"])
    assert (order["stopTriggered"], order["cancelExist"], order["filledSize"]) == (True, True, 0)
    assert trading.positions({}, T0 + 1) == []


def test_close_order_stop_closes_the_whole_position_at_its_trigger():
    market, trading = make_trading()
    _long(trading, 3)
    ack = trading.place_order({"clientOid": "close-1", "symbol": XBT, "type": "market", "closeOrder": True,
                               "stop": "down", "stopPrice": "85000", "stopPriceType": "MP"}, T0)
    shown = _order(trading, ack["orderId"])
    trading.place_order(order_body("buy", 4, client_oid="more"), T0)  # the position grows to 7
    market.pinned_marks[XBT] = 84_000.0
    trading.after_tick(XBT, T0 + 1)

    assert (shown["side"], shown["size"], shown["closeOrder"], shown["leverage"]) == ("sell", 0, True, "1")
    assert _order(trading, ack["orderId"])["filledSize"] == 7
    assert trading.position({"symbol": XBT}, T0 + 1)["currentQty"] == 0


def test_stop_limit_rests_after_its_trigger_and_then_holds_margin():
    market, trading = make_trading()
    ack = trading.place_order(_stop("buy", "up", "90500", size=2, price="89000"), T0)
    waiting_margin = _overview(trading)["orderMargin"]
    market.pinned_marks[XBT] = 90_500.0
    trading.after_tick(XBT, T0 + 1)

    order = _order(trading, ack["orderId"])
    assert waiting_margin == 0.0
    assert (order["type"], order["price"], order["isActive"], order["stopTriggered"]) == ("limit", "89000", True, True)
    assert _overview(trading)["orderMargin"] == pytest.approx(2 * 0.001 * 89_000 / 5)
    assert trading.list_orders({"status": "active"}, T0 + 1)["items"][0]["id"] == ack["orderId"]


def test_cancel_one_stop_by_id_or_client_oid_and_all_of_a_symbol():
    market, trading = make_trading()
    ids = [trading.place_order(_stop("sell", "down", str(80_000 + n), size=1, client_oid=f"s{n}"), T0)["orderId"]
           for n in range(4)]
    inverse = trading.place_order(_stop("sell", "down", "80000", size=10, client_oid="inv",
                                        symbol="XBTUSDM"), T0)["orderId"]
    resting = trading.place_order(order_body("buy", 1, price="80000", client_oid="limit"), T0)["orderId"]
    market.drain_events()
    by_id = trading.cancel_order({"orderId": ids[0], "trigger": "true"}, T0 + 1)
    by_oid = trading.cancel_order_by_client_oid({"clientOid": "s1", "symbol": XBT}, T0 + 1)
    cancel_all_orders = trading.cancel_all_orders({"symbol": XBT}, T0 + 1)  # excludes stop orders
    all_stops = trading.cancel_stop_orders({"symbol": XBT}, T0 + 1)
    with pytest.raises(SimError) as again:
        trading.cancel_order({"orderId": ids[0]}, T0 + 1)

    assert by_id == {"cancelledOrderIds": [ids[0]]}
    assert by_oid == {"clientOid": "s1"}
    assert cancel_all_orders == {"cancelledOrderIds": [resting]}
    assert all_stops == {"cancelledOrderIds": [ids[2], ids[3]]}
    assert again.value.code == "100004"
    assert [s["id"] for s in trading.list_stop_orders({}, T0 + 1)["items"]] == [inverse]
    assert [e.data["orderId"] for e in private_events(market) if e.kind == "stop"] == ids
    canceled = _order(trading, ids[1])
    assert (canceled["isActive"], canceled["cancelExist"], canceled["status"], canceled["endAt"]) == (
        False, True, "done", T0 + 1)


def test_stop_list_is_paginated_filtered_and_holds_untriggered_stops_only():
    market, trading = make_trading()
    _long(trading)
    ids = [trading.place_order(_stop("sell", "down", str(80_000 + n), size=1, client_oid=f"s{n}"), T0 + n)["orderId"]
           for n in range(5)]
    buy = trading.place_order(_stop("buy", "up", "99000", size=1, client_oid="b", price="99000"), T0 + 5)["orderId"]
    fired = trading.place_order(_stop("sell", "down", "89000", client_oid="f", reduceOnly=True), T0 + 6)["orderId"]
    market.pinned_marks[XBT] = 88_000.0
    trading.after_tick(XBT, T0 + 7)

    first = trading.list_stop_orders({"pageSize": "4"}, T0 + 7)
    second = trading.list_stop_orders({"pageSize": "4", "currentPage": "2"}, T0 + 7)
    assert {k: first[k] for k in ("currentPage", "pageSize", "totalNum", "totalPage")} == {
        "currentPage": 1, "pageSize": 4, "totalNum": 6, "totalPage": 2}
    assert [o["id"] for o in first["items"] + second["items"]] == [buy, *ids[::-1]]
    assert fired not in [o["id"] for o in first["items"] + second["items"]]
    assert [o["id"] for o in trading.list_stop_orders({"side": "buy"}, T0)["items"]] == [buy]
    assert [o["id"] for o in trading.list_stop_orders({"type": "limit"}, T0)["items"]] == [buy]
    assert len(trading.list_stop_orders({"startAt": T0 + 3, "endAt": T0 + 4}, T0)["items"]) == 2
    assert buy not in [o["id"] for o in trading.list_orders({"status": "active"}, T0)["items"]]


def test_client_oid_of_a_waiting_stop_is_taken_until_it_is_canceled():
    _, trading = make_trading()
    trading.place_order(_stop("sell", "down", "80000", client_oid="dup"), T0)
    refused = []
    for body in (_stop("sell", "down", "81000", client_oid="dup"), order_body("buy", 1, client_oid="dup")):
        with pytest.raises(SimError) as exc:
            trading.place_order(body, T0)
        refused.append(exc.value.code)
    found = trading.get_order_by_client_oid({"clientOid": "dup"}, T0)
    trading.cancel_order_by_client_oid({"clientOid": "dup", "symbol": XBT}, T0)
    reused = trading.place_order(order_body("buy", 1, client_oid="dup"), T0)

    assert refused == ["300018", "300018"]
    assert (found["stop"], found["isActive"]) == ("down", True)
    assert trading.get_order_by_client_oid({"clientOid": "dup"}, T0)["id"] == reused["orderId"]


def test_liquidation_cancels_the_symbols_stops():
    market, trading = make_trading()
    trading.place_order(order_body("buy", 5, leverage=20, client_oid="entry"), T0)
    ack = trading.place_order(_stop("sell", "up", "99000", reduceOnly=True), T0)
    liquidation = trading.position({"symbol": XBT}, T0)["liquidationPrice"]
    market.drain_events()
    market.pinned_marks[XBT] = liquidation - 1
    trading.after_tick(XBT, T0 + 1)
    pushes = private_events(market)

    assert [(e.subject, e.data.get("type"), e.data.get("changeReason")) for e in pushes
            if e.kind in ("stop", "position")] == [("stopOrder", "cancel", None),
                                                   ("position.change", None, "liquidation")]
    assert _order(trading, ack["orderId"])["cancelExist"] is True
    assert trading.list_stop_orders({}, T0 + 1)["items"] == []


@pytest.mark.parametrize(("changes", "code"), [
    ({"stop": "sideways"}, "400100"),
    ({"stopPriceType": None}, "400100"),
    ({"stopPriceType": "LP"}, "400100"),
    ({"stopPrice": None}, "400100"),
    ({"stopPrice": "85000.05"}, "400100"),
    ({"stopPrice": "2000000"}, "300011"),
    ({"marginMode": "CROSS"}, "330005"),
    ({"positionSide": "LONG"}, "330011"),
    ({"leverage": "126"}, "300016"),
])
def test_invalid_stop_bodies_are_refused(changes, code):
    _, trading = make_trading()
    body = _stop("sell", "down", "85000")
    body.update(changes)
    with pytest.raises(SimError) as refused:
        trading.place_order({k: v for k, v in body.items() if v is not None}, T0)

    assert refused.value.code == code
    assert trading.all_orders() == [] and trading.list_stop_orders({}, T0)["totalNum"] == 0


def test_order_test_endpoint_checks_a_stop_without_placing_it():
    _, trading = make_trading()
    ack = trading.place_order_test(_stop("sell", "down", "85000"), T0)

    assert ack["clientOid"] == "s-1"
    assert trading.all_orders() == [] and trading.list_stop_orders({}, T0)["totalNum"] == 0


def test_margin_mode_cannot_change_while_a_stop_waits():
    _, trading = make_trading()
    trading.place_order(_stop("sell", "down", "85000"), T0)
    with pytest.raises(SimError) as blocked:
        trading.change_margin_mode({"symbol": XBT, "marginMode": "CROSS"}, T0)
    trading.cancel_stop_orders({}, T0)

    assert blocked.value.code == "50002"
    assert trading.change_margin_mode({"symbol": XBT, "marginMode": "CROSS"}, T0)["marginMode"] == "CROSS"


# -- POST /api/v1/st-orders --------------------------------------------------------------------
def _st(side: str, size: int = 5, *, client_oid: str = "st-1", **extra):
    return order_body(side, size, client_oid=client_oid, stopPriceType="MP", **extra)


def test_st_order_creates_take_profit_and_stop_loss_after_the_entry_fills_and_one_cancels_the_other():
    market, trading = make_trading()
    entry = trading.place_st_order(_st("buy", triggerStopUpPrice="95000", triggerStopDownPrice="85000"), T0)
    stops = trading.list_stop_orders({}, T0)["items"]
    market.drain_events()
    market.pinned_marks[XBT] = 95_000.0
    trading.after_tick(XBT, T0 + 1)

    assert _order(trading, entry["orderId"])["filledSize"] == 5
    assert [(s["side"], s["stop"], s["stopPrice"], s["stopPriceType"], s["size"], s["reduceOnly"],
             s["clientOid"]) for s in stops] == [
        ("sell", "down", "85000", "MP", 5, True, None), ("sell", "up", "95000", "MP", 5, True, None)]
    take_profit, stop_loss = stops[1]["id"], stops[0]["id"]
    assert [(e.data["orderId"], e.data["type"]) for e in private_events(market) if e.kind == "stop"] == [
        (take_profit, "triggered"), (stop_loss, "cancel")]
    assert trading.position({"symbol": XBT}, T0 + 1)["currentQty"] == 0


def test_st_order_short_reads_take_profit_below_and_stop_loss_above():
    """Up = take profit, down = stop loss, as KuCoin names them; for a short they trigger down
    and up respectively (unverified, kucoin_sim/README.md)."""
    market, trading = make_trading()
    trading.place_st_order(_st("sell", triggerStopUpPrice="85000", triggerStopDownPrice="95000"), T0)
    stops = trading.list_stop_orders({}, T0)["items"]
    market.pinned_marks[XBT] = 95_000.0
    trading.after_tick(XBT, T0 + 1)

    assert [(s["side"], s["stop"], s["stopPrice"]) for s in stops] == [
        ("buy", "up", "95000"), ("buy", "down", "85000")]
    assert trading.position({"symbol": XBT}, T0 + 1)["currentQty"] == 0  # the stop-loss fired


def test_st_order_limit_entry_arms_its_stops_only_when_it_fills():
    market, trading = make_trading()
    entry = trading.place_st_order(_st("buy", 2, price="89000", triggerStopDownPrice="85000"), T0)
    before_fill = trading.list_stop_orders({}, T0)["totalNum"]
    fmt = market.fmt(XBT)
    trading.before_quote(XBT, fmt.to_ticks("88999"), fmt.to_ticks("89000"), T0 + 1)
    trading.after_tick(XBT, T0 + 1)
    canceled = trading.place_st_order(_st("buy", 2, price="88000", client_oid="st-2",
                                          triggerStopDownPrice="80000"), T0 + 2)
    trading.cancel_order({"orderId": canceled["orderId"]}, T0 + 3)
    trading.after_tick(XBT, T0 + 3)

    assert before_fill == 0
    assert _order(trading, entry["orderId"])["filledSize"] == 2
    assert [(s["stop"], s["stopPrice"], s["size"]) for s in trading.list_stop_orders({}, T0 + 3)["items"]] == [
        ("down", "85000", 2)]


def test_st_order_needs_a_price_type_with_its_trigger_prices():
    _, trading = make_trading()
    body = order_body("buy", 1, triggerStopDownPrice="85000")
    with pytest.raises(SimError) as refused:
        trading.place_st_order(body, T0)

    assert refused.value.code == "400100"
    assert trading.all_orders() == []
