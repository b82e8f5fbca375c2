"""Account side of the trading engine: fees, margins, overview, leverage and mode settings, funding."""
from __future__ import annotations

import pytest

from kucoin_sim.errors import SimError
from kucoin_sim.trading import Trading
from tests.helpers import approx_numbers
from tests.sim.trading_market import T0, make_market, make_trading, order_body, private_events

XBT = "XBTUSDTM"
APPROX = {"rel": 1e-9, "abs": 1e-8}
ENTRY = (5 * 90_000 + 7 * 90_000.5) / 12
VALUE_12 = 5 * 90 + 7 * 90.0005  # USDT value of the 12 lots bought at market


def _fill_fees(trading):
    return [(f["size"], f["value"], f["fee"], f["openFeePay"], f["closeFeePay"], f["feeRate"])
            for f in trading.fills({}, T0)["items"][::-1]]


def test_taker_fees_split_into_opening_and_closing_parts():
    _, trading = make_trading()
    trading.place_order(order_body("buy", 3), T0)  # 3 @ 90000
    trading.place_order(order_body("sell", 8, client_oid="c-2"), T0)  # 5 @ 89999.5 (3 close, 2 open), 3 @ 89999

    assert _fill_fees(trading) == [
        (3, "270", "0.162", "0.162", "0", "0.00060"),
        (5, "449.9975", "0.2699985", "0.1079994", "0.1619991", "0.00060"),
        (3, "269.997", "0.1619982", "0.1619982", "0", "0.00060"),
    ]
    assert trading.position({"symbol": XBT}, T0)["currentQty"] == -5


def test_account_overview_adds_up():
    market, trading = make_trading()
    trading.place_order(order_body("buy", 12), T0)
    trading.place_order(order_body("buy", 10, price="89000", leverage=10, client_oid="c-2"), T0)
    market.pinned_marks[XBT] = 91_000.0
    overview = trading.account_overview({"currency": "USDT"}, T0)

    wallet = 100_000 - VALUE_12 * 0.0006
    upnl = 12 * 0.001 * (91_000 - ENTRY)
    available = wallet - VALUE_12 / 5 - 89.0
    assert overview == approx_numbers({
        "accountEquity": wallet + upnl, "unrealisedPNL": upnl, "marginBalance": wallet,
        "positionMargin": VALUE_12 / 5, "orderMargin": 89.0, "frozenFunds": 0.0,
        "availableBalance": available, "currency": "USDT", "riskRatio": 0.0,
        "maxWithdrawAmount": available}, **APPROX)
    assert overview["accountEquity"] == pytest.approx(overview["marginBalance"] + overview["unrealisedPNL"], **APPROX)


def test_default_overview_currency_is_xbt_and_unknown_currencies_are_empty():
    _, trading = make_trading()

    assert trading.account_overview({}, T0) == {
        "accountEquity": 1.0, "unrealisedPNL": 0.0, "marginBalance": 1.0, "positionMargin": 0.0,
        "orderMargin": 0.0, "frozenFunds": 0.0, "availableBalance": 1.0, "currency": "XBT",
        "riskRatio": 0.0, "maxWithdrawAmount": 1.0}
    assert trading.account_overview({"currency": "USDC"}, T0)["accountEquity"] == 0.0


def test_an_order_that_closes_the_position_holds_margin_only_for_what_it_opens():
    _, trading = make_trading()
    trading.place_order(order_body("buy", 12), T0)
    trading.place_order(order_body("sell", 20, price="91000", client_oid="c-2"), T0)

    # 12 of the 20 lots would close the long; 8 open a short: 8 × 0.001 × 91000 / 5
    assert trading.account_overview({"currency": "USDT"}, T0)["orderMargin"] == pytest.approx(145.6, **APPROX)


def test_insufficient_balance_is_refused_with_300003():
    market, trading = make_trading(balances={"USDT": 100.0})
    with pytest.raises(SimError) as refused:
        trading.place_order(order_body("buy", 12), T0)

    assert (refused.value.http_status, refused.value.code, refused.value.msg) == (
        200, "300003", "Insufficient balance. 216.6487 is required to place the order.")
    assert trading.all_orders() == []
    assert market.book(XBT).mm_at("sell", market.fmt(XBT).to_ticks("90000")) == 5


def test_available_balance_never_goes_negative_and_cross_positions_liquidate():
    market, trading = make_trading(balances={"USDT": 300.0})
    trading.change_margin_mode({"symbol": XBT, "marginMode": "CROSS"}, T0)
    trading.place_order(order_body("buy", 12), T0)  # cross 5x: 216 of margin
    market.pinned_marks[XBT] = 70_000.0
    trading.after_tick(XBT, T0 + 1)
    underwater = trading.account_overview({"currency": "USDT"}, T0 + 1)
    market.pinned_marks[XBT] = 65_000.0
    trading.after_tick(XBT, T0 + 2)

    assert (underwater["availableBalance"], underwater["positionMargin"]) == (0.0, pytest.approx(168.0))
    assert trading.position({"symbol": XBT}, T0 + 1)["currentQty"] == 0
    assert trading.account_overview({"currency": "USDT"}, T0 + 2)["marginBalance"] == 0.0
    fill = trading.fills({"tradeTypes": "liquid"}, T0 + 2)["items"][0]
    assert (fill["size"], fill["price"], fill["marginMode"]) == (12, "65000", "CROSS")


def test_cross_positions_stay_while_equity_covers_maintenance():
    market, trading = make_trading(balances={"USDT": 300.0})
    trading.change_margin_mode({"symbol": XBT, "marginMode": "CROSS"}, T0)
    trading.place_order(order_body("buy", 12), T0)
    market.pinned_marks[XBT] = 70_000.0
    trading.after_tick(XBT, T0 + 1)

    assert trading.position({"symbol": XBT}, T0 + 1)["currentQty"] == 12


def test_leverage_is_capped_by_the_contract_and_the_risk_tier():
    _, trading = make_trading(balances={"USDT": 1e9})
    with pytest.raises(SimError) as tier:  # 2000 lots at 89000 = 178000 USDT: tier 2, 100x
        trading.place_order(order_body("buy", 2000, price="89000", leverage=125), T0)
    with pytest.raises(SimError) as limit:  # beyond the last tier (50M USDT), yet affordable
        trading.place_order(order_body("buy", 600_000, price="89000", leverage=1), T0)
    ok = trading.place_order(order_body("buy", 2000, price="89000", leverage=100), T0)

    assert (tier.value.code, tier.value.msg) == ("300016", "The leverage cannot be greater than 100.")
    assert (limit.value.code, limit.value.msg) == ("300005", "XBTUSDTM risk limit exceeded")
    assert trading.get_order({"orderId": ok["orderId"]}, T0)["leverage"] == "100"


def test_an_unaffordable_order_is_insufficient_funds_before_any_risk_limit():
    _, trading = make_trading()
    with pytest.raises(SimError) as refused:
        trading.place_order(order_body("buy", 600_000, price="89000", leverage=1), T0)

    assert refused.value.code == "300003"


def test_margin_mode_switch_is_refused_with_a_position_or_open_orders():
    _, trading = make_trading()
    resting = trading.place_order(order_body("buy", 1, price="89000"), T0)
    with pytest.raises(SimError) as with_order:
        trading.change_margin_mode({"symbol": XBT, "marginMode": "CROSS"}, T0)
    trading.cancel_order({"orderId": resting["orderId"]}, T0)
    trading.place_order(order_body("buy", 1, client_oid="c-2"), T0)
    with pytest.raises(SimError) as with_position:
        trading.change_margin_mode({"symbol": XBT, "marginMode": "CROSS"}, T0)

    assert (with_order.value.code, with_order.value.msg) == ("50002", "exist.order.or.position")
    assert with_position.value.code == "50002"
    assert trading.change_margin_mode({"symbol": XBT, "marginMode": "ISOLATED"}, T0) == {
        "symbol": XBT, "marginMode": "ISOLATED"}
    assert trading.change_margin_mode({"symbol": "XBTUSDM", "marginMode": "cross"}, T0) == {
        "symbol": "XBTUSDM", "marginMode": "CROSS"}
    assert trading.get_margin_mode({"symbol": "XBTUSDM"}, T0) == {"symbol": "XBTUSDM", "marginMode": "CROSS"}


def test_cross_orders_use_the_cross_leverage_and_cross_positions_omit_isolated_fields():
    market, trading = make_trading()
    trading.change_margin_mode({"symbol": XBT, "marginMode": "CROSS"}, T0)
    assert trading.change_cross_leverage({"symbol": XBT, "leverage": "10"}, T0) is True
    ack = trading.place_order(order_body("buy", 12, leverage=3, marginMode="CROSS"), T0)
    market.pinned_marks[XBT] = 91_000.0
    data = trading.position({"symbol": XBT}, T0)

    assert trading.get_order({"orderId": ack["orderId"]}, T0)["leverage"] == "10"
    upnl = 12 * 0.001 * (91_000 - ENTRY)
    assert data == approx_numbers({
        "id": "500000000000000001", "symbol": XBT, "crossMode": True, "delevPercentage": 0.0,
        "openingTimestamp": T0, "currentTimestamp": T0, "currentQty": 12, "currentCost": VALUE_12,
        "currentComm": VALUE_12 * 0.0006, "unrealisedCost": VALUE_12, "realisedGrossCost": 0.0,
        "realisedCost": VALUE_12 * 0.0006, "isOpen": True, "markPrice": 91_000.0,
        "markValue": 1092.0, "posCost": VALUE_12, "posInit": VALUE_12 / 10, "posMargin": 109.2,
        "realisedGrossPnl": 0.0, "realisedPnl": -VALUE_12 * 0.0006, "unrealisedPnl": upnl,
        "unrealisedPnlPcnt": 0.0111, "unrealisedRoePcnt": 0.1111, "avgEntryPrice": 90_000.292,
        "liquidationPrice": 0.0, "bankruptPrice": 0.0, "settleCurrency": "USDT",
        "isInverse": False, "marginMode": "CROSS", "positionSide": "BOTH", "leverage": 10,
    }, **APPROX)


def test_cross_leverage_settings():
    _, trading = make_trading()
    before = trading.get_cross_leverage({"symbol": XBT}, T0)
    trading.change_cross_leverage({"symbol": XBT, "leverage": 20}, T0)
    with pytest.raises(SimError) as too_high:
        trading.change_cross_leverage({"symbol": XBT, "leverage": "126"}, T0)
    with pytest.raises(SimError) as garbage:
        trading.change_cross_leverage({"symbol": XBT, "leverage": "abc"}, T0)

    assert before == {"symbol": XBT, "leverage": "5"}
    assert trading.get_cross_leverage({"symbol": XBT}, T0) == {"symbol": XBT, "leverage": "20"}
    assert (too_high.value.code, garbage.value.code) == ("300016", "400100")


def test_position_mode_switches_only_when_flat_and_hedge_mode_trades_nothing():
    """Hedge mode can be set (and read back) with nothing open; the simulator then refuses
    one-way orders with KuCoin's 330012 and hedge orders (positionSide) with 400100."""
    _, trading = make_trading()
    trading.place_order(order_body("buy", 1), T0)
    with pytest.raises(SimError) as busy:
        trading.switch_position_mode({"positionMode": "1"}, T0)
    trading.place_order(order_body("sell", 1, client_oid="c-2"), T0)
    switched = trading.switch_position_mode({"positionMode": "1"}, T0)
    with pytest.raises(SimError) as one_way:
        trading.place_order(order_body("buy", 1, client_oid="c-3"), T0)
    with pytest.raises(SimError) as hedged:
        trading.place_order(order_body("buy", 1, client_oid="c-4", positionSide="LONG"), T0)

    assert busy.value.code == "50002"
    assert switched == {"positionMode": 1} == trading.get_position_mode({}, T0)
    assert (one_way.value.code, hedged.value.code) == ("330012", "400100")
    assert trading.switch_position_mode({"positionMode": "0"}, T0) == {"positionMode": 0}
    with pytest.raises(SimError) as garbage:
        trading.switch_position_mode({"positionMode": "2"}, T0)
    assert garbage.value.code == "400100"


def test_max_open_size_from_available_balance():
    _, trading = make_trading()

    # one lot at 90000 and 5x costs 90 × (1/5 + 0.0006) = 18.054 USDT
    assert trading.max_open_size({"symbol": XBT, "price": "90000", "leverage": "5"}, T0) == {
        "symbol": XBT, "maxBuyOpenSize": 5538, "maxSellOpenSize": 5538}
    with pytest.raises(SimError) as missing:
        trading.max_open_size({"symbol": XBT}, T0)
    assert missing.value.code == "400100"


def test_funding_is_charged_at_the_funding_time():
    """A long held across 04:00 UTC pays value × rate at the mark, recorded and pushed."""
    settle_ms = 1_759_982_400_000  # 2025-10-09T04:00:00Z, a KuCoin 8 h funding time
    market = make_market(now_ms=settle_ms - 1000)
    trading = Trading(market)
    trading.place_order(order_body("buy", 10), settle_ms - 1000)
    wallet = trading.account_overview({"currency": "USDT"}, settle_ms)["marginBalance"]
    market.advance(settle_ms + 500)
    events = private_events(market)

    rate = market.funding_rate_history(XBT, settle_ms, settle_ms, settle_ms + 500)[0]["fundingRate"]
    record = trading.funding_history({"symbol": XBT}, settle_ms + 500)["dataList"][0]
    expected_fee = -10 * 0.001 * record["markPrice"] * rate
    assert record == {
        "id": 1, "symbol": XBT, "timePoint": settle_ms, "fundingRate": rate,
        "markPrice": record["markPrice"], "positionQty": 10,
        "positionCost": pytest.approx(10 * 0.001 * record["markPrice"], **APPROX),
        "funding": pytest.approx(expected_fee, **APPROX), "settleCurrency": "USDT",
        "context": '{"marginMode": "ISOLATED", "positionSide": "BOTH"}', "marginMode": "ISOLATED"}
    assert trading.account_overview({"currency": "USDT"}, settle_ms + 500)["marginBalance"] == pytest.approx(
        wallet + expected_fee, **APPROX)
    settlements = [e.data for e in events if e.subject == "position.settlement"]
    assert [(s["fundingTime"], s["qty"], s["fundingRate"]) for s in settlements] == [(settle_ms, 10, rate)]
    assert trading.position({"symbol": XBT}, settle_ms + 500)["posFunding"] == pytest.approx(expected_fee, **APPROX)
    assert trading.funding_history({"symbol": XBT, "startAt": settle_ms + 1}, settle_ms + 500) == {
        "dataList": [], "hasMore": False}
