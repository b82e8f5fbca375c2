"""KuCoin Futures REST account payloads, parsed into the values the private feed caches.

Pure (no I/O, no clock). The private WebSocket feed seeds its caches from these three reads
when its connection is (re)subscribed (protocol notes section 7.2), then keeps them by pushes
(``protocol.private``):

    GET /api/v1/positions                      parse_rest_positions -> tuple[PositionChange, ...]
    GET /api/v1/account-overview?currency=     parse_rest_account_overview -> WalletChange
    GET /api/v1/orders?status=active           parse_rest_open_orders -> OpenOrders
    GET /api/v1/stopOrders                     parse_rest_stop_orders -> (tuple[StopSnapshot, ...], last page)
    (an order object, also GET /api/v1/orders/{id})   parse_rest_order -> OrderSnapshot

Each takes the whole envelope ``{"code", "data"}`` (``parse_rest_order``: the order object) and
raises the mapped ``KuCoinError`` when ``code`` is not "200000", ``ProtocolError`` on a bad shape.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from kucoin_futures.protocol.private import PositionChange, StopOrderUpdate, WalletChange, position_from
from kucoin_futures.protocol.types import SOURCE_REST, Side, to_kucoin_id, to_unified
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

__all__ = ["OpenOrders", "OrderSnapshot", "StopSnapshot", "parse_rest_account_overview",
           "parse_rest_open_orders", "parse_rest_order", "parse_rest_positions", "parse_rest_stop_orders",
           "placed_stop_object", "pushed_stop_object"]


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


@dataclass(frozen=True, slots=True)
class StopSnapshot:
    """One untriggered stop as KuCoin lists it (``info``, read-only, is the object itself: ccxt's
    ``parse_order`` reads it)."""

    order_id: str
    client_oid: str | None
    symbol: str
    info: Mapping[str, Any]


def parse_rest_stop_orders(payload: Any) -> tuple[tuple[StopSnapshot, ...], bool]:
    """Return the stops of one page of ``GET /api/v1/stopOrders`` (untriggered only, paginated)
    and whether it was the last page.

    Example (trimmed; the items are order objects, ``stop`` "down"|"up")::

        {"code": "200000", "data": {"currentPage": 1, "pageSize": 1000, "totalNum": 1, "totalPage": 1,
         "items": [{"id": "5cdfc138b21023a909e5ad55", "symbol": "XBTUSDTM", "type": "market",
                    "side": "sell", "price": "0", "size": 1, "stop": "down", "stopPrice": "8000",
                    "stopPriceType": "MP", "clientOid": "5c52e1", "reduceOnly": true,
                    "closeOrder": false, "isActive": true, "status": "open", "createdAt": 1558167872000}]}}
    """
    items, complete = _read_page(payload)
    stops = []
    for item in items:
        data = read_dict(item, "stop order")
        stops.append(StopSnapshot(
            order_id=read_str(data.get("id"), "id"), client_oid=read_optional(data, "clientOid", read_str),
            symbol=read_name(to_unified, read_str(data.get("symbol"), "symbol")), info=MappingProxyType(dict(data))))
    return tuple(stops), complete


def pushed_stop_object(update: StopOrderUpdate) -> dict[str, Any]:
    """A ``GET /api/v1/stopOrders`` item as far as a stopOrder push tells it (no clientOid, no
    reduceOnly/closeOrder: the cache never serves it alone)."""
    return {"id": update.order_id, "symbol": to_kucoin_id(update.symbol),
            "type": "market" if update.order_price is None else "limit", "side": update.side.value,
            "price": "0" if update.order_price is None else repr(update.order_price), "size": update.size,
            "stop": update.stop, "stopPrice": repr(update.stop_price), "stopPriceType": update.stop_price_type,
            "isActive": True, "cancelExist": False, "status": "open", "filledSize": 0, "filledValue": "0",
            "createdAt": update.created_ms, "updatedAt": update.ts_ms}


def placed_stop_object(*, order_id: str, client_oid: str, symbol: str, side: str, order_type: str,
                       price: str | None, size: int, stop: str, stop_price: str, stop_price_type: str,
                       reduce_only: bool, close_order: bool, post_only: bool) -> dict[str, Any]:
    """A ``GET /api/v1/stopOrders`` item for a stop this client placed, from what it sent
    (``stop_price_type`` TP|MP|IP; no createdAt: the answer to a new order holds only its ids)."""
    return {"id": order_id, "symbol": to_kucoin_id(symbol), "type": order_type, "side": side,
            "price": price or "0", "size": size, "stop": stop, "stopPrice": stop_price,
            "stopPriceType": stop_price_type, "clientOid": client_oid, "reduceOnly": reduce_only,
            "closeOrder": close_order, "postOnly": post_only, "timeInForce": "GTC", "isActive": True,
            "cancelExist": False, "status": "open", "filledSize": 0, "filledValue": "0"}


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
    items, complete = _read_page(payload)
    return OpenOrders(tuple(parse_rest_order(item) for item in items), complete=complete)


def _read_page(payload: Any) -> tuple[list[Any], bool]:
    # KuCoin's page wrapper: the items and whether this page is the last.
    page = read_dict(unwrap_envelope(payload), "data")
    items = read_list(page.get("items"), "items")
    current = read_optional(page, "currentPage", read_int) or 1
    total = read_optional(page, "totalPage", read_int) or 1
    return items, current >= total


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
