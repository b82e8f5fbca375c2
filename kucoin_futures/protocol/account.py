"""KuCoin Futures REST account payloads, parsed into the values the private feed caches.

Pure (no I/O, no clock). The private WebSocket feed seeds its caches from these three reads
when its connection is (re)subscribed (protocol notes section 7.2), then keeps them by pushes
(``protocol.private``):

    GET /api/v1/positions                      parse_rest_positions -> tuple[PositionChange, ...]
    GET /api/v1/account-overview?currency=     parse_rest_account_overview -> WalletChange
    GET /api/v1/orders?status=active           parse_rest_open_orders -> OpenOrders
    (an order object, also GET /api/v1/orders/{id})   parse_rest_order -> OrderSnapshot

Each takes the whole envelope ``{"code", "data"}`` (``parse_rest_order``: the order object) and
raises the mapped ``KuCoinError`` when ``code`` is not "200000", ``ProtocolError`` on a bad shape.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from kucoin_futures.protocol.private import PositionChange, WalletChange, position_from
from kucoin_futures.protocol.types import SOURCE_REST, Side, to_unified
from kucoin_futures.protocol.wire import (
    read_bool,
    read_dict,
    read_float,
    read_int,
    read_list,
    read_name,
    read_optional,
    read_price,
    read_side,
    read_size,
    read_str,
    short_repr,
    unwrap_envelope,
)
from kucoin_futures.errors import ProtocolError

__all__ = ["OpenOrders", "OrderSnapshot", "parse_rest_account_overview", "parse_rest_open_orders",
           "parse_rest_order", "parse_rest_positions"]


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    """KuCoin's order object at ``updated_ms``: what REST says of one order (``info``, read-only,
    is the object itself: ccxt's ``parse_order`` reads it)."""

    order_id: str
    client_oid: str | None
    symbol: str
    side: Side
    order_type: str
    price: float | None  # None: a market order ("0")
    size: int
    filled_size: int
    filled_value: float  # quote currency
    is_active: bool
    cancel_exist: bool
    created_ms: int
    updated_ms: int
    info: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class OpenOrders:
    """One page of open orders; ``complete`` is False when KuCoin has more pages."""

    orders: tuple[OrderSnapshot, ...]
    complete: bool


def parse_rest_positions(payload: Any, *, received_at: float) -> tuple[PositionChange, ...]:
    """Return every position of ``GET /api/v1/positions`` (flat ones included, as KuCoin lists them).

    Example (trimmed)::

        {"code": "200000", "data": [{"id": "500000000000988255", "symbol": "XBTUSDTM",
          "currentQty": 1, "avgEntryPrice": 67430.9, "markPrice": 68900.7, "unrealisedPnl": 1.4698,
          "realisedPnl": -0.0616, "liquidationPrice": 45314.33, "marginMode": "ISOLATED",
          "settleCurrency": "USDT", "currentTimestamp": 1729482542135, ...}]}
    """
    items = read_list(unwrap_envelope(payload), "data")
    positions = []
    for item in items:
        data = read_dict(item, "position")
        symbol = read_name(to_unified, read_str(data.get("symbol"), "symbol"))
        position = position_from(data, symbol=symbol, received_at=received_at, source=SOURCE_REST, reason=None)
        if position.qty is None:
            raise ProtocolError(f"position without currentQty: {short_repr(data)}")
        positions.append(position)
    return tuple(positions)


def parse_rest_account_overview(payload: Any, *, received_at: float) -> WalletChange:
    """Return the wallet of ``GET /api/v1/account-overview?currency=USDT`` (numbers, no time).

    Example::

        {"code": "200000", "data": {"accountEquity": 394.43928, "unrealisedPNL": 20.15278,
         "marginBalance": 371.3943, "positionMargin": 102.2066, "orderMargin": 10.06,
         "frozenFunds": 0.0, "availableBalance": 290.3268, "currency": "USDT", "riskRatio": 0.0065,
         "maxWithdrawAmount": 290.3264}}
    """
    data = read_dict(unwrap_envelope(payload), "data")
    return WalletChange(
        currency=read_str(data.get("currency"), "currency"),
        available=read_float(data.get("availableBalance"), "availableBalance"),
        hold=read_optional(data, "orderMargin", read_float),
        equity=read_float(data.get("accountEquity"), "accountEquity"),
        wallet_balance=read_optional(data, "marginBalance", read_float),
        version=None,
        ts_ms=None,
        received_at=received_at,
        source=SOURCE_REST,
        info=MappingProxyType(dict(data)),
    )


def parse_rest_open_orders(payload: Any) -> OpenOrders:
    """Return the orders of one page of ``GET /api/v1/orders?status=active`` (paginated).

    Example (trimmed)::

        {"code": "200000", "data": {"currentPage": 1, "pageSize": 1000, "totalNum": 1,
         "totalPage": 1, "items": [{"id": "236655147005071361", "symbol": "XBTUSDTM", ...}]}}
    """
    page = read_dict(unwrap_envelope(payload), "data")
    items = read_list(page.get("items"), "items")
    current = read_optional(page, "currentPage", read_int) or 1
    total = read_optional(page, "totalPage", read_int) or 1
    return OpenOrders(tuple(parse_rest_order(item) for item in items), complete=current >= total)


def parse_rest_order(item: Any) -> OrderSnapshot:
    """Return KuCoin's order object (``GET /api/v1/orders/{orderId}`` data, a list item).

    Example (trimmed; ``createdAt``/``updatedAt`` ms; a market order has ``price`` "0")::

        {"id": "236655147005071361", "symbol": "XBTUSDTM", "type": "limit", "side": "buy",
         "price": "0.1", "size": 1, "filledSize": 0, "filledValue": "0", "timeInForce": "GTC",
         "postOnly": false, "reduceOnly": false, "clientOid": "5c52e1", "isActive": true,
         "cancelExist": false, "createdAt": 1729236185949, "updatedAt": 1729236185949, "status": "open"}
    """
    data = read_dict(item, "order")
    price = data.get("price")
    return OrderSnapshot(
        order_id=read_str(data.get("id"), "id"),
        client_oid=read_optional(data, "clientOid", read_str),
        symbol=read_name(to_unified, read_str(data.get("symbol"), "symbol")),
        side=read_side(data.get("side")),
        order_type=read_str(data.get("type"), "type"),
        price=None if price in (None, "", "0", 0) else read_price(price, "price"),
        size=read_size(data.get("size"), "size"),
        filled_size=read_size(data.get("filledSize"), "filledSize"),
        filled_value=read_optional(data, "filledValue", read_float) or 0.0,
        is_active=read_bool(data.get("isActive"), "isActive"),
        cancel_exist=read_bool(data.get("cancelExist", False), "cancelExist"),
        created_ms=read_int(data.get("createdAt"), "createdAt"),
        updated_ms=read_optional(data, "updatedAt", read_int) or read_int(data.get("createdAt"), "createdAt"),
        info=MappingProxyType(dict(data)),
    )
