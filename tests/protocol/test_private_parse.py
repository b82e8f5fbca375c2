"""Pure tests: KuCoin's private pushes and REST account payloads (tests/fixtures) parsed into the
private feed's values, and malformed ones refused with ProtocolError."""
from __future__ import annotations

import copy
import json
import pathlib
from types import MappingProxyType
from typing import Any

import pytest

from kucoin_futures.errors import ExchangeRejected, ProtocolError
from kucoin_futures.protocol.account import (
    OrderSnapshot,
    parse_rest_account_overview,
    parse_rest_open_orders,
    parse_rest_order,
    parse_rest_positions,
)
from kucoin_futures.protocol.private import (
    FundingSettlement,
    OrderChange,
    OrderStatus,
    OrderUpdate,
    PositionChangeReason,
    StopChange,
    StopOrderUpdate,
    TradeType,
    WalletChange,
    parse_funding_settlement,
    parse_order_change,
    parse_position_change,
    parse_stop_order,
    parse_wallet_change,
)
from kucoin_futures.protocol.types import Side

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"
AT = 1234.5
BTC = "BTC/USDT:USDT"


def payload(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())["payload"]


def with_data(name: str, **changes: Any) -> dict[str, Any]:
    message = copy.deepcopy(payload(name))
    for key, value in changes.items():
        if value is None:
            message["data"].pop(key, None)
        else:
            message["data"][key] = value
    return message


# -- orderChange ---------------------------------------------------------------------------------
def test_order_open_push():
    assert parse_order_change(payload("ws_trade_orders"), received_at=AT) == OrderUpdate(
        symbol=BTC, order_id="247899236673269761", client_oid=None, change=OrderChange.OPEN,
        status=OrderStatus.OPEN, side=Side.BUY, order_type="", size=1, filled_size=0, remain_size=1,
        canceled_size=0, price=91670.0, fill_price=None, fill_size=None, trade_id=None, liquidity=None,
        trade_type=None, fee=None, margin_mode="ISOLATED", created_ms=1731916985768, ts_ms=1731916985789,
        received_at=AT)


def test_order_fill_push_in_the_shape_ccxt_quotes():
    # protocol notes section 12 (a live capture quoted by ccxt): strings for sizes and orderTime
    message = {"topic": "/contractMarket/tradeOrders", "type": "message", "subject": "orderChange",
               "data": {"symbol": "ETHUSDTM", "orderType": "market", "side": "buy", "canceledSize": "0",
                        "orderId": "416204113500479490", "positionSide": "LONG", "liquidity": "taker",
                        "marginMode": "ISOLATED", "type": "match", "feeType": "takerFee",
                        "orderTime": "1772043995356345762", "size": "1", "filledSize": "1", "price": "0",
                        "matchPrice": "2068.55", "matchSize": "1", "remainSize": "0", "tradeId": "1815302608109",
                        "clientOid": "9f7a2be0", "tradeType": "liquid", "status": "match",
                        "ts": 1772043995362000000}}
    update = parse_order_change(message, received_at=AT)
    assert (update.is_fill, update.is_done, update.price, update.fill_price, update.fill_size, update.trade_id,
            update.liquidity, update.trade_type, update.created_ms, update.ts_ms) == (
        True, False, None, 2068.55, 1, "1815302608109", "taker", TradeType.LIQUID, 1772043995356, 1772043995362)


def test_order_match_as_documented_has_no_fill_size():
    # The docs' own example leaves matchSize/matchPrice empty: a MATCH we cannot count as a fill.
    update = parse_order_change(payload("ws_trade_orders_match"), received_at=AT)
    assert (update.symbol, update.change, update.is_fill, update.fill_size, update.trade_type) == (
        "BTC/USD:BTC", OrderChange.MATCH, False, None, TradeType.TRADE)


def test_order_done_and_unknown_trade_type():
    update = parse_order_change(with_data("ws_trade_orders", type="canceled", status="done", canceledSize="1",
                                           tradeType="newKind"), received_at=AT)
    assert (update.change, update.is_done, update.canceled_size, update.trade_type) == (
        OrderChange.CANCELED, True, 1, None)  # tradeType is read on fills only
    fill = parse_order_change(with_data("ws_trade_orders", type="match", matchPrice="91670", matchSize="1",
                                        tradeType="newKind"), received_at=AT)
    assert fill.trade_type is TradeType.UNKNOWN  # descriptive: unknown is not an error


@pytest.mark.parametrize("changes", [
    {"type": "partial"},  # order state is strict
    {"status": "pending"},
    {"size": "1.5"},
    {"filledSize": "-1"},
    {"side": "long"},
    {"ts": None},
    {"orderId": None},
    {"symbol": "NOT_A_CONTRACT"},
    {"price": "-3"},
])
def test_bad_order_push_is_a_protocol_error(changes):
    with pytest.raises(ProtocolError):
        parse_order_change(with_data("ws_trade_orders", **changes), received_at=AT)


# -- stopOrder ----------------------------------------------------------------------------------
def test_stop_order_push():
    assert parse_stop_order(payload("ws_stop_order"), received_at=AT) == StopOrderUpdate(
        symbol=BTC, order_id="240673378116083712", change=StopChange.OPEN, side=Side.BUY, size=1,
        order_price=0.1, stop="down", stop_price=1000.0, stop_price_type="TP", trigger_success=None, error=None,
        created_ms=1730194206837, ts_ms=1730194206843, received_at=AT)


def test_stop_triggered_and_failed():
    update = parse_stop_order(with_data("ws_stop_order", type="triggered", triggerSuccess=False, error="margin",
                                        orderPrice="0"), received_at=AT)
    assert (update.change, update.trigger_success, update.error, update.order_price) == (
        StopChange.TRIGGERED, False, "margin", None)
    with pytest.raises(ProtocolError):
        parse_stop_order(with_data("ws_stop_order", type="expired"), received_at=AT)
    with pytest.raises(ProtocolError):
        parse_stop_order(with_data("ws_stop_order", triggerSuccess="true"), received_at=AT)


# -- positions ----------------------------------------------------------------------------------
def test_position_change_push():
    change = parse_position_change(payload("ws_position_change"), received_at=AT)
    assert (change.symbol, change.reason, change.qty, change.avg_entry_price, change.mark_price,
            change.liquidation_price, change.unrealised_pnl, change.realised_pnl, change.margin_mode,
            change.settle_currency, change.ts_ms, change.source, change.is_partial) == (
        BTC, PositionChangeReason.POSITION_CHANGE, 1, 91694.5, 91839.79, 73853.0426625, 0.14529, 0.07210716,
        "ISOLATED", "USDT", 1731924561514, "websocket", False)
    assert change.info == payload("ws_position_change")["data"] and isinstance(change.info, MappingProxyType)


@pytest.mark.parametrize(("raw", "reason"), [("liquidation", PositionChangeReason.LIQUIDATION),
                                             ("adl", PositionChangeReason.ADL),
                                             ("somethingNew", PositionChangeReason.UNKNOWN)])
def test_position_change_reasons(raw, reason):
    change = parse_position_change(with_data("ws_position_change", changeReason=raw, currentQty=0), received_at=AT)
    assert (change.reason, change.qty) == (reason, 0)


def test_mark_price_update_is_partial_and_named_by_its_topic():
    change = parse_position_change(payload("ws_private_position_mark"), received_at=AT)
    assert (change.symbol, change.reason, change.qty, change.mark_price, change.unrealised_pnl, change.ts_ms,
            change.is_partial) == ("BTC/USD:BTC", None, None, 7947.83, -0.00014735, 1558087175068, True)
    on_all = dict(payload("ws_private_position_mark"), topic="/contract/positionAll")
    with pytest.raises(ProtocolError, match="names no contract"):
        parse_position_change(on_all, received_at=AT)


def test_funding_settlement_push():
    assert parse_funding_settlement(payload("ws_private_position_settlement"), received_at=AT) == FundingSettlement(
        symbol="BTC/USD:BTC", funding_time_ms=1551770400000, qty=100, mark_price=3610.85, funding_rate=-0.002966,
        fee=-296.0, settle_currency="XBT", ts_ms=1547697294838, received_at=AT)
    with pytest.raises(ProtocolError):
        parse_funding_settlement(with_data("ws_private_position_settlement", fundingFee="lots"), received_at=AT)


# -- wallet -------------------------------------------------------------------------------------
def test_wallet_balance_push():
    change = parse_wallet_change(payload("ws_wallet"), received_at=AT)
    assert (change.currency, change.available, change.hold, change.equity, change.wallet_balance, change.version,
            change.ts_ms, change.is_partial) == ("USDT", 26.144281178, 0.0, 81.273621258, 81.072921258, 1337,
                                                 1731916996764, False)


def test_available_balance_push_is_partial():
    assert parse_wallet_change(payload("ws_wallet_available_balance"), received_at=AT) == WalletChange(
        currency="USDT", available=5923.0, hold=2312.0, equity=None, wallet_balance=None, version=None,
        ts_ms=1553842862614, received_at=AT, source="websocket",
        info=MappingProxyType(payload("ws_wallet_available_balance")["data"]))
    with pytest.raises(ProtocolError):
        parse_wallet_change(with_data("ws_wallet", equity=None), received_at=AT)  # the full subject needs it


# -- REST account payloads ----------------------------------------------------------------------
def test_rest_positions():
    positions = parse_rest_positions(payload("rest_positions"), received_at=AT)
    assert [(p.symbol, p.qty, p.margin_mode, p.reason, p.source, p.ts_ms) for p in positions] == [
        ("ETH/USD:ETH", 1, "CROSS", None, "rest", 1730636040926),
        (BTC, 1, "ISOLATED", None, "rest", 1730636040926)]


def test_rest_account_overview():
    wallet = parse_rest_account_overview(payload("rest_account_overview"), received_at=AT)
    assert (wallet.currency, wallet.available, wallet.equity, wallet.hold, wallet.ts_ms, wallet.source) == (
        "USDT", 290.326799096, 394.439280806, 10.06002012, None, "rest")


def test_rest_orders():
    page = parse_rest_open_orders(payload("rest_orders_list"))
    detail = payload("rest_order_detail")["data"]
    assert page.complete and [o.order_id for o in page.orders] == ["230181737576050688"]
    assert parse_rest_order(detail) == OrderSnapshot(
        order_id="236655147005071361", client_oid="5c52e11203aa677f33e493fb", symbol=BTC, side=Side.BUY,
        order_type="limit", price=0.1, size=1, filled_size=0, filled_value=0.0, is_active=True,
        cancel_exist=False, created_ms=1729236185949, updated_ms=1729236185949, info=MappingProxyType(detail))
    more = copy.deepcopy(payload("rest_orders_list"))
    more["data"]["totalPage"] = 2
    assert not parse_rest_open_orders(more).complete


def test_rest_errors_and_bad_shapes():
    with pytest.raises(ExchangeRejected):
        parse_rest_positions({"code": "300009", "msg": "no position"}, received_at=AT)
    with pytest.raises(ProtocolError):
        parse_rest_positions({"code": "200000", "data": [{"symbol": "XBTUSDTM", "currentTimestamp": 1}]},
                             received_at=AT)  # a position without its quantity
    with pytest.raises(ProtocolError):
        parse_rest_order(dict(payload("rest_order_detail")["data"], isActive="yes"))
