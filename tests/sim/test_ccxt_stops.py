"""Unmodified ccxt 4.5.90 kucoinfutures (and ccxt.pro) placing, listing, cancelling and watching
stop orders on the simulator, plus the account and position modes it reads."""
from __future__ import annotations

import asyncio

import ccxt
import ccxt.pro
import pytest
from ccxt.test.exchange.base.test_order import test_order as ccxt_order

from kucoin_sim import Simulator
from tests.helpers import TIMEOUT_S, ccxt_config

BTC = "BTC/USDT:USDT"
XBT = "XBTUSDTM"


@pytest.fixture
def ex(paused_sim: Simulator) -> ccxt.kucoinfutures:
    exchange = ccxt.kucoinfutures(ccxt_config(paused_sim))
    exchange.load_markets()
    return exchange


def _price(sim: Simulator) -> float:
    return sim.last_prices([XBT])[XBT]


def _trigger_ids(ex: ccxt.kucoinfutures) -> list[str]:
    return [o["id"] for o in ex.fetch_open_orders(BTC, params={"trigger": True})]


def test_ccxt_places_lists_triggers_and_cancels_stop_orders(paused_sim: Simulator, ex: ccxt.kucoinfutures) -> None:
    ex.create_order(BTC, "market", "buy", 5, None, {"leverage": 5})
    price = _price(paused_sim)
    low, lower, high = round(price * 0.95), round(price * 0.94), round(price * 1.05)
    trigger = ex.create_order(BTC, "market", "sell", 5, None, {"triggerPrice": low, "stop": "down",
                                                                "reduceOnly": True})
    stop_loss = ex.create_order(BTC, "market", "sell", 5, None, {"stopLossPrice": lower})
    take_profit = ex.create_order(BTC, "limit", "sell", 5, high, {"takeProfitPrice": high,
                                                                  "triggerPriceType": "last"})
    listed = ex.fetch_open_orders(BTC, params={"trigger": True})
    for order in listed:
        ccxt_order(ex, {}, "fetchOpenOrders", order, BTC, ex.milliseconds())
    paused_sim.move_price(XBT, lower - 100, only="mark")
    fired, skipped = ex.fetch_order(trigger["id"], BTC), ex.fetch_order(stop_loss["id"], BTC)
    after_trigger = _trigger_ids(ex)
    ex.cancel_order(take_profit["id"], BTC, params={"trigger": True})
    after_cancel = _trigger_ids(ex)

    assert {o["id"]: (o["side"], o["triggerPrice"], o["status"], o["reduceOnly"], o["type"]) for o in listed} == {
        trigger["id"]: ("sell", low, "open", True, "market"),
        stop_loss["id"]: ("sell", lower, "open", True, "market"),
        take_profit["id"]: ("sell", high, "open", True, "limit")}
    stops = {o["id"]: o["info"] for o in listed}
    assert [(stops[i]["stop"], stops[i]["stopPriceType"]) for i in (trigger["id"], stop_loss["id"], take_profit["id"])] == [
        ("down", "MP"), ("down", "MP"), ("up", "TP")]
    assert (fired["status"], fired["filled"], fired["info"]["stopTriggered"]) == ("closed", 5, True)
    # the stop-loss triggered too, found the position already closed and was canceled (reduce-only)
    assert (skipped["status"], skipped["filled"], skipped["info"]["stopTriggered"]) == ("canceled", 0, True)
    assert after_trigger == [take_profit["id"]] and after_cancel == []
    assert ex.fetch_order(take_profit["id"], BTC)["status"] == "canceled"
    assert ex.fetch_positions([BTC]) == [] or ex.fetch_positions([BTC])[0]["contracts"] == 0


def test_ccxt_trigger_price_on_the_wrong_side_fires_at_once(paused_sim: Simulator, ex: ccxt.kucoinfutures) -> None:
    """ccxt sends stop=up for every buy triggerPrice (ccxt#14956): below the price it is already
    due. triggerDirection is read only for unified accounts; on classic futures ccxt passes it
    through as an unknown body field, which changes nothing (only params["stop"] would)."""
    below = round(_price(paused_sim) * 0.9)
    order = ex.create_order(BTC, "market", "buy", 2, None, {"triggerPrice": below, "leverage": 3,
                                                            "triggerDirection": "descending"})

    assert ex.fetch_order(order["id"], BTC)["status"] == "closed"
    assert ex.fetch_positions([BTC])[0]["contracts"] == 2
    assert _trigger_ids(ex) == []


def test_ccxt_cancel_all_trigger_orders_of_a_symbol(paused_sim: Simulator, ex: ccxt.kucoinfutures) -> None:
    high = round(_price(paused_sim) * 1.2)
    ids = [ex.create_order(BTC, "market", "buy", 1, None, {"triggerPrice": high + n})["id"] for n in range(3)]
    resting = ex.create_order(BTC, "limit", "buy", 1, round(high / 2))
    result = ex.cancel_all_orders(BTC, params={"trigger": True})

    assert sorted(result[0]["info"]["cancelledOrderIds"]) == sorted(ids)
    assert _trigger_ids(ex) == []
    assert [o["id"] for o in ex.fetch_open_orders(BTC)] == [resting["id"]]


def test_ccxt_stop_loss_and_take_profit_dicts_go_to_st_orders(paused_sim: Simulator, ex: ccxt.kucoinfutures) -> None:
    price = _price(paused_sim)
    ex.create_order(BTC, "market", "buy", 2, None, {"stopLoss": {"triggerPrice": round(price * 0.9)},
                                                     "takeProfit": {"triggerPrice": round(price * 1.1)}})
    stops = ex.fetch_open_orders(BTC, params={"trigger": True})

    assert paused_sim.request_count("POST", "/api/v1/st-orders") == 1
    assert sorted((o["side"], o["triggerPrice"], o["info"]["stop"]) for o in stops) == [
        ("sell", round(price * 0.9), "down"), ("sell", round(price * 1.1), "up")]


def test_ccxt_sees_hedge_mode_and_a_unified_account(paused_sim: Simulator, ex: ccxt.kucoinfutures) -> None:
    paused_sim.set_position_mode(True)
    hedged = ex.fetch_position_mode(BTC)["hedged"]
    with pytest.raises(ccxt.InvalidOrder):
        ex.create_order(BTC, "market", "buy", 1)
    paused_sim.set_account_mode("UNIFIED")
    fresh = ccxt.kucoinfutures(ccxt_config(paused_sim))

    assert hedged is True
    assert ex.is_uta_enabled() is False  # ccxt caches the mode it read at load_markets
    assert fresh.is_uta_enabled() is True


def test_ccxt_pro_watch_orders_trigger_receives_stop_pushes(paused_sim: Simulator) -> None:
    async def body() -> tuple[float, list[dict], list[dict]]:
        ex = ccxt.pro.kucoinfutures(ccxt_config(paused_sim))
        try:
            await ex.load_markets()
            await ex.create_order(BTC, "market", "buy", 3, None, {"leverage": 5})
            first = asyncio.ensure_future(ex.watch_orders(params={"trigger": True}))
            await asyncio.to_thread(paused_sim.wait_for_subscription, "/contractMarket/advancedOrders")
            level = round(_price(paused_sim) * 0.95)
            await ex.create_order(BTC, "market", "sell", 3, None, {"stopLossPrice": level})
            opened = [dict(o) for o in await asyncio.wait_for(first, TIMEOUT_S)]  # ccxt updates in place
            second = asyncio.ensure_future(ex.watch_orders(params={"trigger": True}))
            await asyncio.to_thread(paused_sim.move_price, XBT, level - 10, only="mark")
            return level, opened, list(await asyncio.wait_for(second, TIMEOUT_S))
        finally:
            await ex.close()

    level, opened, triggered = asyncio.run(body())
    assert [(o["symbol"], o["side"], o["triggerPrice"], o["status"], o["amount"]) for o in opened] == [
        (BTC, "sell", level, "open", 3)]
    assert triggered[-1]["id"] == opened[0]["id"] and triggered[-1]["status"] == "triggered"
