"""KuCoin Futures private pushes: the account's typed events and one parser per message.

Pure (no I/O, no clock, no logging above DEBUG). Each parser takes one decoded push from a
private topic (token from ``bullet-private``, subscribed with ``privateChannel: true``) and an
explicit ``received_at`` (local monotonic seconds) and returns a frozen event; exchange times
become ``ts_ms`` here (KuCoin sends ``ts``/``orderTime`` in ns, ``createdAt``/``fundingTime``/
``currentTimestamp``/``timestamp`` in ms). A malformed push raises ``ProtocolError``.

    topic                              subject                     parser -> event
    /contractMarket/tradeOrders        orderChange                 parse_order_change -> OrderUpdate
    /contractMarket/tradeOrders:SYM    symbolOrderChange           parse_order_change -> OrderUpdate
    /contractMarket/advancedOrders     stopOrder                   parse_stop_order -> StopOrderUpdate
    /contract/positionAll, :SYM        position.change             parse_position_change -> PositionChange
    /contract/positionAll, :SYM        position.settlement         parse_funding_settlement -> FundingSettlement
    /contractAccount/wallet            walletBalance.change,       parse_wallet_change -> WalletChange
                                       availableBalance.change

Order and stop states are strict (an unknown ``type``/``status`` is a ``ProtocolError``);
descriptive fields (a position's ``changeReason``, a fill's ``tradeType``) map unknown values to
``UNKNOWN``. The REST account payloads (positions, account overview, orders) are parsed in
``protocol.account``. Full example payloads live in ``tests/fixtures/ws_*``.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from kucoin_futures.errors import ProtocolError
from kucoin_futures.protocol.types import SOURCE_WEBSOCKET, Side, Source, to_unified
from kucoin_futures.protocol.wire import (
    read_bool,
    read_descriptive,
    read_dict,
    read_enum,
    read_float,
    read_int,
    read_name,
    read_optional,
    read_price,
    read_side,
    read_size,
    read_str,
)

__all__ = [
    "ACCOUNT_SUBJECTS", "SUBJECT_AVAILABLE_BALANCE", "SUBJECT_ORDER_CHANGE", "SUBJECT_POSITION_CHANGE",
    "SUBJECT_POSITION_SETTLEMENT", "SUBJECT_STOP_ORDER", "SUBJECT_SYMBOL_ORDER_CHANGE", "SUBJECT_WALLET_BALANCE",
    "AccountEvent", "FundingSettlement", "OrderChange", "OrderStatus", "OrderUpdate", "PositionChange",
    "PositionChangeReason", "StopChange", "StopOrderUpdate", "TradeType", "WalletChange",
    "parse_funding_settlement", "parse_order_change", "parse_position_change", "parse_stop_order",
    "parse_wallet_change", "position_from", "topic_or_data_symbol",
]

# -- Subjects (protocol notes section 12) ------------------------------------------------------
SUBJECT_ORDER_CHANGE = "orderChange"  # /contractMarket/tradeOrders (all symbols)
SUBJECT_SYMBOL_ORDER_CHANGE = "symbolOrderChange"  # /contractMarket/tradeOrders:{symbol}
SUBJECT_STOP_ORDER = "stopOrder"  # /contractMarket/advancedOrders
SUBJECT_POSITION_CHANGE = "position.change"  # /contract/position:{symbol}, /contract/positionAll
SUBJECT_POSITION_SETTLEMENT = "position.settlement"  # funding, same topics
SUBJECT_WALLET_BALANCE = "walletBalance.change"  # /contractAccount/wallet, docs-new (all fields)
SUBJECT_AVAILABLE_BALANCE = "availableBalance.change"  # /contractAccount/wallet, classic (available/hold)
ACCOUNT_SUBJECTS = frozenset({
    SUBJECT_ORDER_CHANGE, SUBJECT_SYMBOL_ORDER_CHANGE, SUBJECT_STOP_ORDER, SUBJECT_POSITION_CHANGE,
    SUBJECT_POSITION_SETTLEMENT, SUBJECT_WALLET_BALANCE, SUBJECT_AVAILABLE_BALANCE,
})


class OrderChange(enum.Enum):
    """What happened to an order (orderChange ``type``)."""

    OPEN = "open"  # entered the book
    MATCH = "match"  # a fill: matchPrice, matchSize, tradeId
    FILLED = "filled"  # fully filled: done
    CANCELED = "canceled"  # cancelled (canceledSize): done
    UPDATE = "update"  # size reduced (oldSize -> size)


class OrderStatus(enum.Enum):
    """An order's state after the change (orderChange ``status``)."""

    OPEN = "open"  # resting
    MATCH = "match"  # a taker order while it matches
    DONE = "done"  # filled or cancelled: final


class StopChange(enum.Enum):
    """What happened to an untriggered stop order (stopOrder ``type``)."""

    OPEN = "open"  # accepted, waiting for its price
    TRIGGERED = "triggered"  # its price was reached: it became an order (or failed: trigger_success)
    CANCEL = "cancel"  # cancelled (by us, for lack of margin, or by a liquidation)


class PositionChangeReason(enum.Enum):
    """Why a position changed (position.change ``changeReason``)."""

    POSITION_CHANGE = "positionChange"  # a fill of ours
    MARGIN_CHANGE = "marginChange"
    LIQUIDATION = "liquidation"
    ADL = "adl"  # auto-deleveraged
    AUTO_APPEND_MARGIN = "autoAppendMarginStatusChange"
    UNKNOWN = "unknown"  # a reason KuCoin added since these notes


class TradeType(enum.Enum):
    """What kind of execution a fill was (``tradeType``)."""

    TRADE = "trade"
    LIQUID = "liquid"  # a liquidation's execution
    ADL = "adl"
    SETTLEMENT = "settlement"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One orderChange push: a change of one of the account's orders; a fill when ``is_fill``.

    Sizes are contracts (lots); ``price`` is None for a market order (KuCoin sends "0").
    ``fill_*``, ``trade_id``, ``liquidity`` and ``trade_type`` are set on MATCH only; ``fee`` only
    if KuCoin sends one (its documented futures payloads carry none: read fees from the fills).
    """

    symbol: str
    order_id: str
    client_oid: str | None
    change: OrderChange
    status: OrderStatus
    side: Side
    order_type: str  # "limit", "market", ... ("" when the push omits it)
    size: int
    filled_size: int
    remain_size: int
    canceled_size: int
    price: float | None
    fill_price: float | None
    fill_size: int | None
    trade_id: str | None
    liquidity: str | None  # "maker" | "taker"
    trade_type: TradeType | None
    fee: float | None
    margin_mode: str | None
    created_ms: int | None  # orderTime
    ts_ms: int
    received_at: float

    @property
    def is_fill(self) -> bool:
        """True for an execution of ``fill_size`` lots at ``fill_price``."""
        return self.change is OrderChange.MATCH and self.fill_size is not None and self.fill_price is not None

    @property
    def is_done(self) -> bool:
        """True once the order is filled or cancelled (final)."""
        return self.status is OrderStatus.DONE


@dataclass(frozen=True, slots=True)
class StopOrderUpdate:
    """One stopOrder push: an untriggered stop order was placed, triggered or cancelled."""

    symbol: str
    order_id: str
    change: StopChange
    side: Side
    size: int
    order_price: float | None  # the limit price after the trigger; None for a stop-market
    stop: str  # "down": triggers when the price falls to stop_price; "up": when it rises
    stop_price: float
    stop_price_type: str  # "TP" trade, "MP" mark, "IP" index price
    trigger_success: bool | None  # on TRIGGERED: False when the triggered order failed
    error: str | None
    created_ms: int | None
    ts_ms: int
    received_at: float


@dataclass(frozen=True, slots=True)
class PositionChange:
    """A position's state: a position.change push, or an item of REST ``GET /api/v1/positions``.

    ``qty`` is signed (short < 0). A push caused by the mark price alone carries only the mark
    fields: ``qty`` is None (``is_partial``) and ``reason`` None. ``info`` is KuCoin's object as
    received (read-only): ccxt's ``parse_position`` reads it, so both sources give ccxt's shape.
    """

    symbol: str
    reason: PositionChangeReason | None  # None: a REST snapshot or a mark-price update
    qty: int | None
    avg_entry_price: float | None
    mark_price: float | None
    liquidation_price: float | None
    unrealised_pnl: float | None
    realised_pnl: float | None
    margin_mode: str | None  # "ISOLATED" | "CROSS"
    settle_currency: str | None
    ts_ms: int  # currentTimestamp
    received_at: float
    source: Source
    info: Mapping[str, Any]

    @property
    def is_partial(self) -> bool:
        """True for a mark-price update: merged into the known position, never a position itself."""
        return self.qty is None


@dataclass(frozen=True, slots=True)
class FundingSettlement:
    """A position.settlement push: funding charged (``fee`` < 0) or paid (> 0) on a position."""

    symbol: str
    funding_time_ms: int
    qty: int  # signed position size settled
    mark_price: float
    funding_rate: float
    fee: float  # fundingFee, signed from the account's view (protocol notes section 17)
    settle_currency: str | None
    ts_ms: int
    received_at: float


@dataclass(frozen=True, slots=True)
class WalletChange:
    """A wallet's state in one settle currency (KuCoin id, "USDT", "XBT").

    walletBalance.change (docs-new) carries everything; availableBalance.change (classic) only
    ``available`` and ``hold``: ``equity`` and ``wallet_balance`` are None then (``is_partial``).
    REST ``account-overview`` gives the same value (``ts_ms`` None: it has no time).
    """

    currency: str
    available: float
    hold: float | None
    equity: float | None  # wallet balance + unrealised PnL: ccxt's "total"
    wallet_balance: float | None
    version: int | None
    ts_ms: int | None
    received_at: float
    source: Source
    info: Mapping[str, Any]

    @property
    def is_partial(self) -> bool:
        """True when it does not say the equity (availableBalance.change)."""
        return self.equity is None


AccountEvent = OrderUpdate | StopOrderUpdate | PositionChange | FundingSettlement | WalletChange


# -- Field readers --------------------------------------------------------------------------------
def _optional_price(data: Mapping[str, Any], key: str) -> float | None:
    # KuCoin sends "0" for "no price" (market orders, stop-market orders).
    value = data.get(key)
    return None if value in (None, "", "0", 0) else read_price(value, key)


def topic_or_data_symbol(message: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """Return the unified symbol of ``data.symbol``, else of a single-symbol topic ("...:XBTUSDTM").

    KuCoin's mark-price position updates and funding settlements name the contract only in their
    topic; on ``/contract/positionAll`` such a push names none (``ProtocolError``).
    """
    kucoin_id = data.get("symbol")
    if kucoin_id is None:
        topic = read_str(message.get("topic"), "topic")
        prefix, sep, kucoin_id = topic.partition(":")
        if not sep or not kucoin_id or "," in kucoin_id:
            raise ProtocolError(f"push names no contract (no data.symbol, topic {topic!r})")
    return read_name(to_unified, read_str(kucoin_id, "symbol"))


# -- Parsers ---------------------------------------------------------------------------------------
def parse_order_change(message: Mapping[str, Any], *, received_at: float) -> OrderUpdate:
    """Return the ``OrderUpdate`` of an orderChange / symbolOrderChange push.

    Example (trimmed; sizes are strings, orderTime and ts ns)::

        {"topic": "/contractMarket/tradeOrders", "subject": "orderChange", "channelType": "private",
         "data": {"symbol": "ETHUSDTM", "orderType": "market", "side": "buy", "orderId": "4162041135",
                  "type": "match", "status": "match", "size": "1", "filledSize": "1", "remainSize": "0",
                  "canceledSize": "0", "price": "0", "matchPrice": "2068.55", "matchSize": "1",
                  "tradeId": "1815302608109", "liquidity": "taker", "tradeType": "trade",
                  "clientOid": "9f7a2be0", "marginMode": "ISOLATED", "orderTime": "1772043995356345762",
                  "ts": 1772043995362000000}}
    """
    data = read_dict(message.get("data"), "data")
    change = read_enum(OrderChange, data.get("type"), "type")
    is_match = change is OrderChange.MATCH
    trade_type = data.get("tradeType")
    order_time_ns = read_optional(data, "orderTime", read_int)
    return OrderUpdate(
        symbol=read_name(to_unified, read_str(data.get("symbol"), "symbol")),
        order_id=read_str(data.get("orderId"), "orderId"),
        client_oid=read_optional(data, "clientOid", read_str),
        change=change,
        status=read_enum(OrderStatus, data.get("status"), "status"),
        side=read_side(data.get("side")),
        order_type=data.get("orderType") if isinstance(data.get("orderType"), str) else "",
        size=read_size(data.get("size"), "size"),
        filled_size=read_size(data.get("filledSize"), "filledSize"),
        remain_size=read_size(data.get("remainSize"), "remainSize"),
        canceled_size=read_optional(data, "canceledSize", read_size) or 0,
        price=_optional_price(data, "price"),
        fill_price=_optional_price(data, "matchPrice") if is_match else None,
        fill_size=read_optional(data, "matchSize", read_size) if is_match else None,
        trade_id=read_optional(data, "tradeId", read_str) if is_match else None,
        liquidity=read_optional(data, "liquidity", read_str) if is_match else None,
        trade_type=read_descriptive(TradeType, trade_type) if is_match and trade_type is not None else None,
        fee=read_optional(data, "fee", read_float),
        margin_mode=read_optional(data, "marginMode", read_str),
        created_ms=None if order_time_ns is None else order_time_ns // 1_000_000,
        ts_ms=read_int(data.get("ts"), "ts") // 1_000_000,
        received_at=received_at,
    )


def parse_stop_order(message: Mapping[str, Any], *, received_at: float) -> StopOrderUpdate:
    """Return the ``StopOrderUpdate`` of a stopOrder push (createdAt ms, ts ns).

    Example (trimmed)::

        {"topic": "/contractMarket/advancedOrders", "subject": "stopOrder", "id": "6720ab1ea52a9b",
         "data": {"orderId": "240673378116083712", "symbol": "XBTUSDTM", "type": "open",
                  "orderType": "stop", "side": "buy", "size": 1, "orderPrice": "0.1", "stop": "down",
                  "stopPrice": "1000", "stopPriceType": "TP", "createdAt": 1730194206837,
                  "ts": 1730194206843133000, "marginMode": "ISOLATED"}}
    """
    data = read_dict(message.get("data"), "data")
    return StopOrderUpdate(
        symbol=read_name(to_unified, read_str(data.get("symbol"), "symbol")),
        order_id=read_str(data.get("orderId"), "orderId"),
        change=read_enum(StopChange, data.get("type"), "type"),
        side=read_side(data.get("side")),
        size=read_size(data.get("size"), "size"),
        order_price=_optional_price(data, "orderPrice"),
        stop=read_str(data.get("stop"), "stop"),
        stop_price=read_price(data.get("stopPrice"), "stopPrice"),
        stop_price_type=read_optional(data, "stopPriceType", read_str) or "",
        trigger_success=read_optional(data, "triggerSuccess", read_bool),
        error=read_optional(data, "error", read_str),
        created_ms=read_optional(data, "createdAt", read_int),
        ts_ms=read_int(data.get("ts"), "ts") // 1_000_000,
        received_at=received_at,
    )


def parse_position_change(message: Mapping[str, Any], *, received_at: float) -> PositionChange:
    """Return the ``PositionChange`` of a position.change push (currentTimestamp ms).

    Example (trimmed; the full object is REST's position plus ``changeReason``)::

        {"topic": "/contract/position:XBTUSDTM", "subject": "position.change",
         "data": {"symbol": "XBTUSDTM", "currentQty": 1, "avgEntryPrice": 91694.5,
                  "markPrice": 91839.79, "unrealisedPnl": 0.14529, "realisedPnl": 0.07210716,
                  "liquidationPrice": 73853.0426625, "marginMode": "ISOLATED", "settleCurrency": "USDT",
                  "changeReason": "positionChange", "currentTimestamp": 1731924561514, ...}}

    A mark-price update (classic docs) has no symbol, quantity or reason: only mark fields.
    """
    data = read_dict(message.get("data"), "data")
    reason = data.get("changeReason")
    return position_from(
        data, symbol=topic_or_data_symbol(message, data), received_at=received_at, source=SOURCE_WEBSOCKET,
        reason=None if reason is None else read_descriptive(PositionChangeReason, reason))


def position_from(data: Mapping[str, Any], *, symbol: str, received_at: float, source: Source,
                  reason: PositionChangeReason | None) -> PositionChange:
    """Return the ``PositionChange`` of KuCoin's position object (push data or REST item)."""
    margin_mode = read_optional(data, "marginMode", read_str)
    if margin_mode is None and isinstance(data.get("crossMode"), bool):
        margin_mode = "CROSS" if data["crossMode"] else "ISOLATED"
    return PositionChange(
        symbol=symbol,
        reason=reason,
        qty=read_optional(data, "currentQty", read_int),
        avg_entry_price=read_optional(data, "avgEntryPrice", read_float),
        mark_price=read_optional(data, "markPrice", read_float),
        liquidation_price=read_optional(data, "liquidationPrice", read_float),
        unrealised_pnl=read_optional(data, "unrealisedPnl", read_float),
        realised_pnl=read_optional(data, "realisedPnl", read_float),
        margin_mode=margin_mode,
        settle_currency=read_optional(data, "settleCurrency", read_str),
        ts_ms=read_int(data.get("currentTimestamp"), "currentTimestamp"),
        received_at=received_at,
        source=source,
        info=MappingProxyType(dict(data)),
    )


def parse_funding_settlement(message: Mapping[str, Any], *, received_at: float) -> FundingSettlement:
    """Return the ``FundingSettlement`` of a position.settlement push (fundingTime ms, ts ns).

    Example (classic docs; the contract is named by the topic only)::

        {"topic": "/contract/position:XBTUSDM", "subject": "position.settlement",
         "data": {"fundingTime": 1551770400000, "qty": 100, "markPrice": 3610.85,
                  "fundingRate": -0.002966, "fundingFee": -296, "ts": 1547697294838004923,
                  "settleCurrency": "XBT"}}
    """
    data = read_dict(message.get("data"), "data")
    return FundingSettlement(
        symbol=topic_or_data_symbol(message, data),
        funding_time_ms=read_int(data.get("fundingTime"), "fundingTime"),
        qty=read_int(data.get("qty"), "qty"),
        mark_price=read_price(data.get("markPrice"), "markPrice"),
        funding_rate=read_float(data.get("fundingRate"), "fundingRate"),
        fee=read_float(data.get("fundingFee"), "fundingFee"),
        settle_currency=read_optional(data, "settleCurrency", read_str),
        ts_ms=read_int(data.get("ts"), "ts") // 1_000_000,
        received_at=received_at,
    )


def parse_wallet_change(message: Mapping[str, Any], *, received_at: float) -> WalletChange:
    """Return the ``WalletChange`` of a walletBalance.change or availableBalance.change push.

    Example (docs-new walletBalance.change, trimmed; all values strings, timestamp ms)::

        {"topic": "/contractAccount/wallet", "subject": "walletBalance.change",
         "data": {"currency": "USDT", "walletBalance": "81.072921258", "availableBalance": "26.144281178",
                  "holdBalance": "0", "equity": "81.273621258", "version": "1337",
                  "timestamp": "1731916996764", ...}}

    The classic availableBalance.change has ``availableBalance``, ``holdBalance``, ``currency``
    and ``timestamp`` only (numbers in the classic docs, strings in live captures).
    """
    data = read_dict(message.get("data"), "data")
    full = message.get("subject") == SUBJECT_WALLET_BALANCE
    return WalletChange(
        currency=read_str(data.get("currency"), "currency"),
        available=read_float(data.get("availableBalance"), "availableBalance"),
        hold=read_optional(data, "holdBalance", read_float),
        equity=read_float(data.get("equity"), "equity") if full else None,
        wallet_balance=read_optional(data, "walletBalance", read_float) if full else None,
        version=read_optional(data, "version", read_int),
        ts_ms=read_optional(data, "timestamp", read_int),
        received_at=received_at,
        source=SOURCE_WEBSOCKET,
        info=MappingProxyType(dict(data)),
    )
