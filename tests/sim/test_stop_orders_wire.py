"""Stop orders, account and position modes over loopback: KuCoin's REST shapes, the order
endpoints that find stops, and the /sim/ control hooks a test or soak drives the market with."""
from __future__ import annotations

from kucoin_sim import Simulator
from tests.sim.wsclient import http

XBT = "XBTUSDTM"


def _px(sim: Simulator, factor: float, symbol: str = XBT) -> str:
    """The symbol's last price times `factor`, a whole number (on XBTUSDTM's and ETHUSDTM's grid)."""
    return str(round(sim.last_prices([symbol])[symbol] * factor))


def _call(sim: Simulator, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    status, _, reply = http(sim, method, path, body, signed=True)
    return status, reply


def _control(sim: Simulator, path: str) -> tuple[int, object]:
    """POST to a /sim/ hook (unsigned: not a KuCoin path)."""
    status, _, reply = http(sim, "POST", path)
    return status, reply


def test_stop_order_rest_shapes_and_the_order_endpoints_that_find_it(paused_sim: Simulator) -> None:
    limit, level = _px(paused_sim, 0.8), _px(paused_sim, 0.81)
    body = {"clientOid": "sl-1", "side": "sell", "symbol": XBT, "type": "limit", "price": limit,
            "leverage": 3, "size": 2, "stop": "down", "stopPrice": level, "stopPriceType": "TP",
            "reduceOnly": True}
    status, placed = _call(paused_sim, "POST", "/api/v1/orders", body)
    order_id = placed["data"]["orderId"]
    _, listed = _call(paused_sim, "GET", f"/api/v1/stopOrders?symbol={XBT}")
    _, by_id = _call(paused_sim, "GET", f"/api/v1/orders/{order_id}")
    _, by_oid = _call(paused_sim, "GET", "/api/v1/orders/byClientOid?clientOid=sl-1")
    _, active = _call(paused_sim, "GET", "/api/v1/orders?status=active")
    _, cancel_all = _call(paused_sim, "DELETE", f"/api/v1/orders?symbol={XBT}")
    _, cancel_oid = _call(paused_sim, "DELETE", f"/api/v1/orders/client-order/sl-1?symbol={XBT}")
    _, after = _call(paused_sim, "GET", "/api/v1/stopOrders")

    assert (status, placed["data"]) == (200, {"orderId": order_id, "clientOid": "sl-1"})
    page = dict(listed["data"])
    item = page.pop("items")[0]
    assert page == {"currentPage": 1, "pageSize": 50, "totalNum": 1, "totalPage": 1}
    created = item.pop("createdAt")
    assert item == {
        "id": order_id, "symbol": XBT, "type": "limit", "side": "sell", "price": limit, "size": 2,
        "value": str(2 * int(limit) / 1000).rstrip("0").rstrip("."), "dealValue": "0", "dealSize": 0,
        "stp": "", "stop": "down", "stopPriceType": "TP", "stopTriggered": False, "stopPrice": level,
        "timeInForce": "GTC",
        "postOnly": False, "hidden": False, "iceberg": False, "leverage": "3", "forceHold": False,
        "closeOrder": False, "visibleSize": 0, "clientOid": "sl-1", "remark": None, "tags": "",
        "isActive": True, "cancelExist": False, "updatedAt": created, "endAt": None,
        "orderTime": created * 1_000_000, "settleCurrency": "USDT", "marginMode": "ISOLATED",
        "avgDealPrice": "0", "filledSize": 0, "filledValue": "0", "status": "open", "reduceOnly": True,
    }
    assert by_id["data"] == by_oid["data"] == {**item, "createdAt": created}
    assert active["data"]["items"] == [] and cancel_all["data"] == {"cancelledOrderIds": []}
    assert cancel_oid["data"] == {"clientOid": "sl-1"}
    assert after["data"]["items"] == []


def test_cancel_all_stop_orders_of_one_symbol_over_rest(paused_sim: Simulator) -> None:
    ids = []
    for n, symbol in enumerate((XBT, XBT, "ETHUSDTM")):
        _, placed = _call(paused_sim, "POST", "/api/v1/orders", {
            "clientOid": f"s{n}", "side": "buy", "symbol": symbol, "type": "market", "leverage": 2,
            "size": 1, "stop": "up", "stopPrice": _px(paused_sim, 1.2, symbol),
            "stopPriceType": "MP"})
        ids.append(placed["data"]["orderId"])
    _, canceled = _call(paused_sim, "DELETE", f"/api/v1/stopOrders?symbol={XBT}")

    assert canceled["data"] == {"cancelledOrderIds": ids[:2]}
    assert [o["id"] for o in paused_sim.stop_orders()] == ids[2:]


def test_51st_stop_of_a_contract_is_refused_with_300004(paused_sim: Simulator) -> None:
    codes = []
    for n in range(51):
        status, reply = _call(paused_sim, "POST", "/api/v1/orders", {
            "clientOid": f"s{n}", "side": "sell", "symbol": XBT, "type": "market", "leverage": 2,
            "size": 1, "stop": "down", "stopPrice": str(int(_px(paused_sim, 0.5)) + n), "stopPriceType": "MP",
            "reduceOnly": True})
        codes.append((status, reply["code"]))

    assert codes[:50] == [(200, "200000")] * 50
    assert codes[50] == (200, "300004")


def test_move_price_hook_triggers_a_stop_and_reports_the_new_prices(paused_sim: Simulator) -> None:
    _call(paused_sim, "POST", "/api/v1/orders", {"clientOid": "e", "side": "buy", "symbol": XBT,
                                           "type": "market", "leverage": 5, "size": 3})
    level = int(_px(paused_sim, 0.9))
    _, placed = _call(paused_sim, "POST", "/api/v1/orders", {
        "clientOid": "sl", "side": "sell", "symbol": XBT, "type": "market", "leverage": 5, "size": 3,
        "stop": "down", "stopPrice": str(level), "stopPriceType": "TP", "reduceOnly": True})
    status, prices = _control(paused_sim, f"/sim/move_price?symbol={XBT}&price={level - 1000}")
    _, order = _call(paused_sim, "GET", f"/api/v1/orders/{placed['data']['orderId']}")
    _, ticker = _call(paused_sim, "GET", f"/api/v1/ticker?symbol={XBT}")
    refused = _control(paused_sim, "/sim/move_price?symbol=NOPE&price=1")

    # the book moved to level - 1000 (best ask), a public trade printed there and the stop (last
    # price below its level) sold 3 lots into the bids just below: the last price is its fill
    moved = level - 1000.0
    assert status == 200 and (prices["mark"], prices["index"]) == (moved, moved)
    assert (order["data"]["stopTriggered"], order["data"]["filledSize"]) == (True, 3)
    assert prices["last"] == float(order["data"]["avgDealPrice"]) == float(ticker["data"]["price"])
    assert moved - 10 < prices["last"] < moved and float(ticker["data"]["bestAskPrice"]) == moved
    assert refused[0] == 400


def test_account_mode_hook_makes_the_account_unified(paused_sim: Simulator) -> None:
    _, before = _call(paused_sim, "GET", "/api/ua/v1/account/mode")
    status, _ = _control(paused_sim, "/sim/account_mode?mode=UNIFIED")
    _, after = _call(paused_sim, "GET", "/api/ua/v1/account/mode")
    bad = _control(paused_sim, "/sim/account_mode?mode=SPOT")

    assert (before["data"], status, after["data"]) == (
        {"selfAccountMode": "CLASSIC"}, 200, {"selfAccountMode": "UNIFIED"})
    assert bad[0] == 400


def test_hedge_mode_is_reported_and_its_orders_refused_as_kucoin_does(paused_sim: Simulator) -> None:
    status, _ = _control(paused_sim, "/sim/position_mode?hedged=true")
    _, mode = _call(paused_sim, "GET", "/api/v2/position/getPositionMode")
    _, one_way = _call(paused_sim, "POST", "/api/v1/orders", {
        "clientOid": "o", "side": "buy", "symbol": XBT, "type": "market", "leverage": 2, "size": 1})
    _, one_way_stop = _call(paused_sim, "POST", "/api/v1/orders", {
        "clientOid": "s", "side": "buy", "symbol": XBT, "type": "market", "leverage": 2, "size": 1,
        "stop": "up", "stopPrice": _px(paused_sim, 1.2), "stopPriceType": "MP"})
    _, back = _call(paused_sim, "POST", "/api/v2/position/switchPositionMode", {"positionMode": "0"})

    assert (status, mode["data"]) == (200, {"positionMode": 1})
    assert one_way["code"] == one_way_stop["code"] == "330012"
    assert back["data"] == {"positionMode": 0}


def test_margin_mode_mismatch_is_330005_for_orders_and_stops(paused_sim: Simulator) -> None:
    _, switched = _call(paused_sim, "POST", "/api/v2/position/changeMarginMode",
                        {"symbol": XBT, "marginMode": "CROSS"})
    base = {"side": "buy", "symbol": XBT, "type": "market", "leverage": 2, "size": 1, "marginMode": "ISOLATED"}
    _, order = _call(paused_sim, "POST", "/api/v1/orders", {"clientOid": "o", **base})
    _, stop = _call(paused_sim, "POST", "/api/v1/orders", {"clientOid": "s", **base, "stop": "up",
                                                     "stopPrice": _px(paused_sim, 1.2), "stopPriceType": "MP"})
    _, mode = _call(paused_sim, "GET", f"/api/v2/position/getMarginMode?symbol={XBT}")

    assert switched["data"] == {"symbol": XBT, "marginMode": "CROSS"} == mode["data"]
    assert order["code"] == stop["code"] == "330005"


def test_st_orders_over_rest_create_the_tp_and_sl_once_the_entry_fills(paused_sim: Simulator) -> None:
    take_profit, stop_loss = _px(paused_sim, 1.2), _px(paused_sim, 0.8)
    _, placed = _call(paused_sim, "POST", "/api/v1/st-orders", {
        "clientOid": "st", "side": "buy", "symbol": XBT, "type": "market", "leverage": 5, "size": 2,
        "triggerStopUpPrice": take_profit, "triggerStopDownPrice": stop_loss, "stopPriceType": "MP"})
    _, stops = _call(paused_sim, "GET", "/api/v1/stopOrders")

    assert set(placed["data"]) == {"orderId", "clientOid"}
    assert [(s["side"], s["stop"], s["stopPrice"], s["size"], s["reduceOnly"]) for s in stops["data"]["items"]] == [
        ("sell", "down", stop_loss, 2, True), ("sell", "up", take_profit, 2, True)]


def test_control_routes_for_a_simulator_in_another_process(paused_sim: Simulator) -> None:
    no_position = _control(paused_sim, f"/sim/deleverage?symbol={XBT}")
    _call(paused_sim, "POST", "/api/v1/orders", {"clientOid": "e", "side": "buy", "symbol": XBT,
                                                  "type": "market", "leverage": 5, "size": 3})
    _, placed = _call(paused_sim, "POST", "/api/v1/orders", {
        "clientOid": "sl", "side": "sell", "symbol": XBT, "type": "market", "leverage": 5, "size": 3,
        "stop": "down", "stopPrice": _px(paused_sim, 0.5), "stopPriceType": "MP", "reduceOnly": True})
    listed = http(paused_sim, "GET", "/sim/stop_orders")[2]
    adl = _control(paused_sim, f"/sim/deleverage?symbol={XBT}&lots=1")
    funding = _control(paused_sim, f"/sim/settle_funding?symbol={XBT}")
    _, position = _call(paused_sim, "GET", f"/api/v1/position?symbol={XBT}")
    _, history = _call(paused_sim, "GET", f"/api/v1/funding-history?symbol={XBT}")

    assert no_position[0] == 400 and "no XBTUSDTM position" in no_position[1]["error"]
    assert [o["id"] for o in listed] == [placed["data"]["orderId"]]
    assert adl == funding == (200, {"ok": True})
    assert position["data"]["currentQty"] == 2
    assert [r["positionQty"] for r in history["data"]["dataList"]] == [2]
