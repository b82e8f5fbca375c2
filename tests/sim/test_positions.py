"""Position arithmetic: entry prices, realised/unrealised PnL, liquidation, linear and inverse.

Expected values are written from the contract definitions (protocol notes §6.2), not from the
code: linear value = lots × 0.001 × price (XBTUSDTM), inverse value = lots × 1 USD / price
(XBTUSDM, in XBT).
"""
from __future__ import annotations

import pytest

from kucoin_sim.contracts import default_contracts
from kucoin_sim.events import PrivateEvent
from kucoin_sim.positions import Position, apply_fill, liquidation_prices
from kucoin_sim.amounts import average_entry
from tests.helpers import approx_numbers
from tests.sim.trading_market import T0, make_trading, order_body, private_events

XBT = "XBTUSDTM"
INV = "XBTUSDM"
SPECS = {s.symbol: s for s in default_contracts(T0) if s.symbol in (XBT, INV)}
APPROX = {"rel": 1e-9, "abs": 1e-8}


# -- pure functions ----------------------------------------------------------------------------
def test_average_entry_is_lot_weighted_for_linear_and_harmonic_for_inverse():
    assert average_entry(SPECS[XBT], 5, 100.0, 5, 110.0) == 105.0
    assert average_entry(SPECS[INV], 1000, 100.0, 1000, 200.0) == pytest.approx(2000 / 15)
    assert average_entry(SPECS[XBT], 0, 0.0, 3, 42.0) == 42.0


@pytest.mark.parametrize(("symbol", "qty", "entry", "margin", "expected"), [
    # linear long 10 lots at 5x: margin 180; Pb = 90000 − 180/0.01, Pl = Pb + 0.004 × 90000
    (XBT, 10, 90_000.0, 180.0, (72_360.0, 72_000.0)),
    (XBT, -10, 90_000.0, 180.0, (107_640.0, 108_000.0)),
    # inverse long 9000 USD at 5x: margin 0.02 XBT; Pb = E/1.2, Pl = E/(1.2 − 0.005)
    (INV, 9000, 90_000.0, 0.02, (90_000 / 1.195, 75_000.0)),
    (INV, -9000, 90_000.0, 0.02, (90_000 / 0.805, 112_500.0)),
    # inverse short at 1x never goes bankrupt: clamped to maxPrice
    (INV, -9000, 90_000.0, 0.1, (1_000_000.0, 1_000_000.0)),
    (XBT, 0, 0.0, 0.0, (0.0, 0.0)),
])
def test_liquidation_and_bankruptcy_prices(symbol, qty, entry, margin, expected):
    assert liquidation_prices(SPECS[symbol], qty, entry, margin, 0.004 if symbol == XBT else 0.005) == (
        pytest.approx(expected[0]), pytest.approx(expected[1]))


def test_apply_fill_flips_a_position_through_zero():
    pos = Position(XBT, "p")
    apply_fill(pos, SPECS[XBT], side="buy", qty=5, price=100.0, leverage=2, fee=0.0, isolated=True, now_ms=1)
    effect = apply_fill(pos, SPECS[XBT], side="sell", qty=8, price=110.0, leverage=2, fee=0.01,
                        isolated=True, now_ms=2)

    assert (effect.close_qty, effect.open_qty, effect.realised_gross) == (5, 3, pytest.approx(0.05))
    assert pos == Position(XBT, "p", qty=-3, entry_price=110.0, margin=pytest.approx(0.165),
                           realised_gross=pytest.approx(0.05), fees=0.01, funding=0.0, opened_ms=2)


# -- linear, through the engine ----------------------------------------------------------------
def _linear_long_after_partial_close():
    """Buy 12 at market (5 @ 90000, 7 @ 90000.5), 5x; sell 4 at market (@ 89999.5)."""
    market, trading = make_trading()
    trading.place_order(order_body("buy", 12), T0)
    trading.place_order(order_body("sell", 4, client_oid="c-2"), T0)
    market.pinned_marks[XBT] = 91_000.0
    return market, trading


ENTRY = (5 * 90_000 + 7 * 90_000.5) / 12
MARGIN_8 = (5 * 0.001 * 90_000 + 7 * 0.001 * 90_000.5) / 5 * 8 / 12
FEES = (5 * 90 + 7 * 90.0005 + 4 * 89.9995) * 0.0006
GROSS = 4 * 0.001 * (89_999.5 - ENTRY)


def test_linear_position_after_adds_and_a_partial_close():
    _, trading = _linear_long_after_partial_close()
    data = trading.position({"symbol": XBT}, T0 + 1)
    liquidation, bankrupt = data.pop("liquidationPrice"), data.pop("bankruptPrice")

    cost = 8 * 0.001 * ENTRY
    upnl = 8 * 0.001 * 91_000 - cost
    assert data == approx_numbers({
        "id": "500000000000000001", "symbol": XBT, "crossMode": False, "delevPercentage": 0.0,
        "openingTimestamp": T0, "currentTimestamp": T0 + 1, "currentQty": 8, "currentCost": cost,
        "currentComm": FEES, "unrealisedCost": cost, "realisedGrossCost": -GROSS,
        "realisedCost": FEES - GROSS, "isOpen": True, "markPrice": 91_000.0, "markValue": 728.0,
        "posCost": cost, "posInit": MARGIN_8, "posMargin": MARGIN_8, "realisedGrossPnl": GROSS,
        "realisedPnl": GROSS - FEES, "unrealisedPnl": upnl, "unrealisedPnlPcnt": 0.0111,
        "unrealisedRoePcnt": 0.0555, "avgEntryPrice": 90_000.292, "settleCurrency": "USDT",
        "isInverse": False, "marginMode": "ISOLATED", "positionSide": "BOTH", "autoDeposit": False,
        "maintMarginReq": 0.004, "riskLimit": 100_000.0, "realLeverage": 4.79, "posCross": 0.0,
        "posCrossMargin": 0.0, "posComm": 0.0, "posCommCommon": 0.0, "posLoss": 0.0,
        "posFunding": 0.0, "posMaint": cost * 0.004, "maintMargin": MARGIN_8 + upnl,
        "maintainMargin": 0.004, "riskLimitLevel": 1, "leverage": 4.79,
    }, **APPROX)
    assert bankrupt == pytest.approx(ENTRY - MARGIN_8 / 0.008, abs=1e-3)
    assert liquidation == pytest.approx(ENTRY - MARGIN_8 / 0.008 + 0.004 * ENTRY, abs=1e-3)
    assert trading.account_overview({"currency": "USDT"}, T0 + 1)["marginBalance"] == pytest.approx(
        100_000 - FEES + GROSS, **APPROX)


def test_isolated_long_is_liquidated_at_the_bankruptcy_price():
    market, trading = _linear_long_after_partial_close()
    resting = trading.place_order(order_body("buy", 1, price="80000", client_oid="r"), T0)
    liquidation = trading.position({"symbol": XBT}, T0)["liquidationPrice"]
    wallet_before = trading.account_overview({"currency": "USDT"}, T0)["marginBalance"]
    market.pinned_marks[XBT] = liquidation + 0.1
    trading.after_tick(XBT, T0 + 1)
    survived = trading.position({"symbol": XBT}, T0 + 1)["currentQty"]
    market.drain_events()
    market.pinned_marks[XBT] = liquidation - 0.1
    trading.after_tick(XBT, T0 + 2)
    pushes = private_events(market)

    assert survived == 8
    data = trading.position({"symbol": XBT}, T0 + 2)
    assert (data["currentQty"], data["isOpen"], data["posMargin"]) == (0, False, 0.0)
    assert trading.account_overview({"currency": "USDT"}, T0 + 2)["marginBalance"] == pytest.approx(
        wallet_before - MARGIN_8, **APPROX)
    fill = trading.fills({"tradeTypes": "liquid"}, T0 + 2)["items"][0]
    assert (fill["side"], fill["size"], fill["price"], fill["tradeType"]) == ("sell", 8, "72000.2", "liquid")
    assert trading.get_order({"orderId": resting["orderId"]}, T0 + 2)["cancelExist"] is True
    changes = [e.data["changeReason"] for e in pushes if e.subject == "position.change"]
    assert changes == ["liquidation"]


def test_isolated_short_is_liquidated_when_the_mark_rises():
    market, trading = make_trading()
    trading.place_order(order_body("sell", 10, leverage=10), T0)  # 5 @ 89999.5, 5 @ 89999
    entry = (5 * 89_999.5 + 5 * 89_999) / 10
    margin = 0.01 * entry / 10
    bankrupt = entry + margin / 0.01
    liquidation = bankrupt - 0.004 * entry
    market.pinned_marks[XBT] = liquidation - 0.01
    trading.after_tick(XBT, T0 + 1)
    before = trading.position({"symbol": XBT}, T0 + 1)["currentQty"]
    market.pinned_marks[XBT] = liquidation + 0.01
    trading.after_tick(XBT, T0 + 2)

    assert before == -10
    assert trading.positions({}, T0 + 2) == []
    assert trading.fills({"tradeTypes": "liquid"}, T0 + 2)["items"][0]["price"] == "98999.2"


# -- inverse, through the engine ---------------------------------------------------------------
INV_VALUE = 5000 / 90_000 + 2000 / 90_000.5  # XBT paid for 7000 USD of contracts
INV_ENTRY = 7000 / INV_VALUE


def test_inverse_position_uses_coin_values():
    market, trading = make_trading()
    trading.place_order(order_body("buy", 7000, symbol=INV), T0)
    market.pinned_marks[INV] = 95_000.0
    data = trading.position({"symbol": INV}, T0)

    upnl = 7000 * (1 / INV_ENTRY - 1 / 95_000)
    assert {k: data[k] for k in ("currentQty", "posCost", "markValue", "unrealisedPnl", "posMargin",
                                 "avgEntryPrice", "settleCurrency", "isInverse")} == approx_numbers({
        "currentQty": 7000, "posCost": -INV_VALUE, "markValue": -7000 / 95_000, "unrealisedPnl": upnl,
        "posMargin": INV_VALUE / 5, "avgEntryPrice": round(INV_ENTRY, 3), "settleCurrency": "XBT",
        "isInverse": True}, **APPROX)
    overview = trading.account_overview({}, T0)  # currency defaults to XBT
    assert overview == approx_numbers({
        "accountEquity": 1 - INV_VALUE * 0.0006 + upnl, "unrealisedPNL": upnl,
        "marginBalance": 1 - INV_VALUE * 0.0006, "positionMargin": INV_VALUE / 5, "orderMargin": 0.0,
        "frozenFunds": 0.0, "availableBalance": 1 - INV_VALUE * 0.0006 - INV_VALUE / 5,
        "currency": "XBT", "riskRatio": 0.0,
        "maxWithdrawAmount": 1 - INV_VALUE * 0.0006 - INV_VALUE / 5}, **APPROX)


def test_inverse_partial_close_realises_coin_pnl_and_liquidates():
    market, trading = make_trading()
    trading.place_order(order_body("buy", 7000, symbol=INV), T0)
    trading.place_order(order_body("sell", 3000, symbol=INV, client_oid="c-2"), T0)  # @ 89999.5
    data = trading.position({"symbol": INV}, T0)

    gross = 3000 * (1 / INV_ENTRY - 1 / 89_999.5)
    margin = INV_VALUE / 5 * 4000 / 7000
    bankrupt = 1 / (1 / INV_ENTRY + margin / 4000)
    liquidation = 1 / (1 / bankrupt - 0.005 / INV_ENTRY)
    assert (data["currentQty"], data["realisedGrossPnl"], data["posMargin"]) == (
        4000, pytest.approx(gross, **APPROX), pytest.approx(margin, **APPROX))
    assert (data["bankruptPrice"], data["liquidationPrice"]) == (
        pytest.approx(bankrupt, abs=1e-3), pytest.approx(liquidation, abs=1e-3))
    wallet = trading.account_overview({"currency": "XBT"}, T0)["marginBalance"]
    market.pinned_marks[INV] = liquidation - 1
    trading.after_tick(INV, T0 + 1)
    assert trading.account_overview({"currency": "XBT"}, T0 + 1)["marginBalance"] == pytest.approx(
        wallet - margin, **APPROX)
    assert trading.position({"symbol": INV}, T0 + 1)["currentQty"] == 0


def test_flat_position_still_answers_and_positions_lists_only_open_ones():
    _, trading = make_trading()

    assert trading.position({"symbol": XBT}, T0) == {
        "id": "500000000000000001", "symbol": XBT, "crossMode": False, "delevPercentage": 0.0,
        "openingTimestamp": 0, "currentTimestamp": T0, "currentQty": 0, "currentCost": 0.0,
        "currentComm": 0.0, "unrealisedCost": 0.0, "realisedGrossCost": 0.0, "realisedCost": 0.0,
        "isOpen": False, "markPrice": 90_000.0, "markValue": 0.0, "posCost": 0.0, "posInit": 0.0,
        "posMargin": 0.0, "realisedGrossPnl": 0.0, "realisedPnl": 0.0, "unrealisedPnl": 0.0,
        "unrealisedPnlPcnt": 0.0, "unrealisedRoePcnt": 0.0, "avgEntryPrice": 0.0,
        "liquidationPrice": 0.0, "bankruptPrice": 0.0, "settleCurrency": "USDT", "isInverse": False,
        "marginMode": "ISOLATED", "positionSide": "BOTH", "autoDeposit": False,
        "maintMarginReq": 0.004, "riskLimit": 100_000.0, "realLeverage": 0.0, "posCross": 0.0,
        "posCrossMargin": 0.0, "posComm": 0.0, "posCommCommon": 0.0, "posLoss": 0.0,
        "posFunding": 0.0, "posMaint": 0.0, "maintMargin": 0.0, "maintainMargin": 0.004,
        "riskLimitLevel": 1, "leverage": 0.0,
    }
    trading.place_order(order_body("buy", 1), T0)
    trading.place_order(order_body("sell", 100, symbol=INV, client_oid="c-2"), T0)
    assert [(p["symbol"], p["currentQty"]) for p in trading.positions({}, T0)] == [(XBT, 1), (INV, -100)]
    assert [p["symbol"] for p in trading.positions({"currency": "XBT"}, T0)] == [INV]


def test_closed_position_keeps_its_realised_pnl_until_it_reopens():
    _, trading = make_trading()
    trading.place_order(order_body("buy", 5), T0)  # @ 90000
    trading.place_order(order_body("sell", 5, client_oid="c-2"), T0 + 1)  # @ 89999.5
    closed = trading.position({"symbol": XBT}, T0 + 1)
    trading.place_order(order_body("buy", 1, client_oid="c-3"), T0 + 2)
    reopened = trading.position({"symbol": XBT}, T0 + 2)

    fees = (450 + 449.9975) * 0.0006
    assert (closed["isOpen"], closed["realisedGrossPnl"], closed["realisedPnl"]) == (
        False, pytest.approx(-0.0025, **APPROX), pytest.approx(-0.0025 - fees, **APPROX))
    assert (reopened["openingTimestamp"], reopened["realisedGrossPnl"]) == (T0 + 2, 0.0)


def test_position_push_follows_each_fill():
    market, trading = make_trading()
    trading.place_order(order_body("buy", 2), T0)
    pushes = [e for e in private_events(market) if e.kind == "position"]

    assert len(pushes) == 1
    assert isinstance(pushes[0], PrivateEvent)
    assert (pushes[0].symbol, pushes[0].subject, pushes[0].data["currentQty"],
            pushes[0].data["changeReason"]) == (XBT, "position.change", 2, "positionChange")
