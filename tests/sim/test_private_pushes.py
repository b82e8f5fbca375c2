"""Private pushes received by a WebSocket subscriber match what REST reports: stop orders
(/contractMarket/advancedOrders), the order a stop becomes, positions (liquidation, ADL,
funding settlement) and the wallet. The market is paused; prices move only through
Simulator.move_price, so every push here is caused by the test."""
from __future__ import annotations

import re

from kucoin_sim import Simulator
from tests.sim.wsclient import WsClient, http

XBT = "XBTUSDTM"
TOPICS = ("/contractMarket/advancedOrders", "/contractMarket/tradeOrders",
          f"/contract/position:{XBT}", "/contractAccount/wallet")


def _post(sim: Simulator, path: str, body: dict) -> dict:
    status, _, reply = http(sim, "POST", path, body, signed=True)
    assert status == 200 and reply["code"] == "200000", reply
    return reply["data"]


def _market(sim: Simulator, side: str, size: int, cid: str, **extra) -> str:
    body = {"clientOid": cid, "side": side, "symbol": XBT, "type": "market", "leverage": 5, "size": size}
    return _post(sim, "/api/v1/orders", {**body, **extra})["orderId"]


def _stop(sim: Simulator, side: str, direction: str, stop_price: float, cid: str, **extra) -> str:
    body = {"clientOid": cid, "side": side, "symbol": XBT, "type": "market", "leverage": 5, "size": 5,
            "stop": direction, "stopPrice": f"{stop_price:.1f}", "stopPriceType": "MP",
            "reduceOnly": True}
    return _post(sim, "/api/v1/orders", {**body, **extra})["orderId"]


def _subscribed(sim: Simulator) -> WsClient:
    client = WsClient(sim, private=True).__enter__()
    for topic in TOPICS:
        assert client.subscribe(topic, privateChannel=True)["type"] == "ack"
    return client


def _collect(client: WsClient, until) -> list[dict]:
    frames: list[dict] = []
    while not frames or not until(frames[-1]):
        frames.append(client.recv_until(lambda f: f.get("type") == "message", what="private push"))
    return frames


def _price(sim: Simulator) -> float:
    return sim.last_prices([XBT])[XBT]


def _wire(price: float) -> str:
    """A price as KuCoin writes it: no trailing zeros ("128030.3", "128030")."""
    return f"{price:.1f}".rstrip("0").rstrip(".")


def test_stop_order_open_triggered_and_cancel_reach_a_private_subscriber(paused_sim: Simulator) -> None:
    _market(paused_sim, "buy", 5, "entry")
    client = _subscribed(paused_sim)
    price = _price(paused_sim)
    stop_loss = _stop(paused_sim, "sell", "down", round(price * 0.95, 1), "sl")
    take_profit = _stop(paused_sim, "sell", "up", round(price * 1.05, 1), "tp")
    opened = [client.recv_until(lambda f: f.get("subject") == "stopOrder") for _ in range(2)]
    paused_sim.move_price(XBT, round(price * 0.94, 1), only="mark")
    fired = _collect(client, lambda f: f["subject"] == "position.change")
    status, _, canceled = http(paused_sim, "DELETE", f"/api/v1/orders/{take_profit}", signed=True)
    cancel = client.recv_until(lambda f: f.get("subject") == "stopOrder")
    client.close()

    first = dict(opened[0])
    assert re.fullmatch(r"[0-9a-f]{24}", first.pop("id"))
    data = first.pop("data")
    assert first == {"topic": "/contractMarket/advancedOrders", "type": "message", "subject": "stopOrder",
                     "channelType": "private", "userId": "sim-user-1"}
    created = data.pop("createdAt")
    assert (len(str(created)), len(str(data.pop("ts")))) == (13, 19)
    assert data == {"marginMode": "ISOLATED", "orderId": stop_loss, "orderPrice": "0", "orderType": "stop",
                    "side": "sell", "size": 5, "stop": "down", "stopPrice": _wire(round(price * 0.95, 1)),
                    "stopPriceType": "MP", "symbol": XBT, "type": "open"}
    assert [(f["data"]["orderId"], f["data"]["type"]) for f in opened] == [(stop_loss, "open"), (take_profit, "open")]
    trail = [(f["subject"], f["data"].get("type"), f["data"].get("orderId")) for f in fired]
    assert trail[:3] == [("stopOrder", "triggered", stop_loss), ("orderChange", "match", stop_loss),
                         ("orderChange", "filled", stop_loss)]
    assert fired[0]["data"]["triggerSuccess"] is True
    assert fired[-1]["data"]["currentQty"] == 0 and fired[-1]["data"]["changeReason"] == "positionChange"
    _, _, order = http(paused_sim, "GET", f"/api/v1/orders/{stop_loss}", signed=True)
    assert (order["data"]["stopTriggered"], order["data"]["filledSize"], order["data"]["createdAt"]) == (True, 5, created)
    assert (status, canceled["data"]) == (200, {"cancelledOrderIds": [take_profit]})
    assert (cancel["data"]["orderId"], cancel["data"]["type"]) == (take_profit, "cancel")


def test_liquidation_pushes_the_stop_cancel_and_a_liquidation_position_change(paused_sim: Simulator) -> None:
    _market(paused_sim, "buy", 5, "entry", leverage=20)
    price = _price(paused_sim)
    take_profit = _stop(paused_sim, "sell", "up", round(price * 1.05, 1), "tp")
    client = _subscribed(paused_sim)
    _, _, position = http(paused_sim, "GET", f"/api/v1/position?symbol={XBT}", signed=True)
    paused_sim.move_price(XBT, position["data"]["liquidationPrice"] - 50, only="mark")
    frames = _collect(client, lambda f: f["subject"] == "position.change")
    client.close()
    _, _, fills = http(paused_sim, "GET", f"/api/v1/fills?symbol={XBT}&tradeTypes=liquid", signed=True)

    assert [(f["subject"], f["data"].get("type") or f["data"].get("changeReason")) for f in frames] == [
        ("stopOrder", "cancel"), ("position.change", "liquidation")]
    assert frames[0]["data"]["orderId"] == take_profit
    assert frames[1]["data"]["currentQty"] == 0
    assert [(f["side"], f["size"], f["tradeType"]) for f in fills["data"]["items"]] == [("sell", 5, "liquid")]


def test_adl_and_funding_settlement_are_pushed_and_booked(paused_sim: Simulator) -> None:
    _market(paused_sim, "sell", 6, "entry")
    client = _subscribed(paused_sim)
    paused_sim.deleverage(XBT, lots=2)
    adl = _collect(client, lambda f: f["subject"] == "position.change")
    paused_sim.settle_funding(XBT)
    funding = _collect(client, lambda f: f["subject"] == "position.settlement")
    wallet = client.recv_until(lambda f: f.get("subject") == "walletBalance.change")
    client.close()
    _, _, fills = http(paused_sim, "GET", f"/api/v1/fills?symbol={XBT}&tradeTypes=adl", signed=True)
    _, _, history = http(paused_sim, "GET", f"/api/v1/funding-history?symbol={XBT}", signed=True)

    assert (adl[-1]["data"]["changeReason"], adl[-1]["data"]["currentQty"]) == ("adl", -4)
    assert [(f["side"], f["size"], f["tradeType"]) for f in fills["data"]["items"]] == [("buy", 2, "adl")]
    settlement = funding[-1]["data"]
    assert funding[-1]["topic"] == f"/contract/position:{XBT}"
    assert set(settlement) == {"fundingTime", "qty", "markPrice", "fundingRate", "fundingFee", "ts",
                               "settleCurrency"}
    assert (settlement["qty"], settlement["settleCurrency"]) == (-4, "USDT")
    record = history["data"]["dataList"][0]
    assert (record["timePoint"], record["positionQty"], record["funding"]) == (
        settlement["fundingTime"], -4, settlement["fundingFee"])
    assert float(wallet["data"]["walletBalance"]) > 0
