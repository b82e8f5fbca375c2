"""List endpoints: filters, newest-first ordering and KuCoin's page wrapper (protocol notes §3.2).

`GET /api/v1/orders`, `/api/v1/stopOrders` and `/api/v1/fills` take currentPage (default 1) and
pageSize (default 50, at most 1000) and answer {"currentPage","pageSize","totalNum","totalPage","items"}.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .errors import bad_param
from .orders import Fill

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
RECENT_WINDOW_MS = 24 * 3600 * 1000  # recentDoneOrders / recentFills: the last 24 hours
RECENT_MAX = 1000  # ... and at most 1000 items


def page(items: Sequence[Any], params: dict[str, Any],
         to_wire: Callable[[Any], Any] = lambda item: item) -> dict[str, Any]:
    """Cut one page of `items` (already filtered and ordered) as KuCoin's wrapper; only the
    page's items go through `to_wire`."""
    current = int_param(params, "currentPage", 1)
    size = int_param(params, "pageSize", DEFAULT_PAGE_SIZE)
    if size < 1 or current < 1:
        raise bad_param("currentPage and pageSize must be positive")
    if size > MAX_PAGE_SIZE:
        raise bad_param(f"pageSize should not greater than {MAX_PAGE_SIZE}")
    total = len(items)
    start = (current - 1) * size
    return {
        "currentPage": current, "pageSize": size, "totalNum": total,
        "totalPage": (total + size - 1) // size,
        "items": [to_wire(item) for item in items[start:start + size]],
    }


def select_orders(orders: Iterable[Any], params: dict[str, Any]) -> list[Any]:
    """Filter orders by status (active|done, default done as KuCoin), symbol, side, type and
    createdAt window; newest first."""
    status = params.get("status") or "done"
    if status not in ("active", "done"):
        raise bad_param("status must be active or done")
    start, end = int_param(params, "startAt", None), int_param(params, "endAt", None)
    chosen = [
        o for o in orders
        if o.active == (status == "active")
        and _matches(params, symbol=o.symbol, side=o.side, type=o.type)
        and _in_window(o.created_ms, start, end)
    ]
    return newest_first(chosen)


def select_stops(stops: Iterable[Any], params: dict[str, Any]) -> list[Any]:
    """Filter untriggered stops by symbol, side, type and createdAt window; newest first."""
    start, end = int_param(params, "startAt", None), int_param(params, "endAt", None)
    chosen = [s for s in stops if _matches(params, symbol=s.symbol, side=s.side, type=s.type)
              and _in_window(s.created_ms, start, end)]
    return newest_first(chosen)


def select_fills(fills: Iterable[Fill], params: dict[str, Any]) -> list[Fill]:
    """Filter fills by orderId (which overrides the rest, as documented), symbol, side, type,
    tradeTypes (comma list) and createdAt window; newest first."""
    order_id = params.get("orderId")
    if order_id:
        return newest_first([f for f in fills if f.order_id == order_id])
    trade_types = {t for t in str(params.get("tradeTypes") or "").split(",") if t}
    start, end = int_param(params, "startAt", None), int_param(params, "endAt", None)
    chosen = [
        f for f in fills
        if _matches(params, symbol=f.symbol, side=f.side, type=f.order_type)
        and (not trade_types or f.trade_type in trade_types)
        and _in_window(f.ts_ms, start, end)
    ]
    return newest_first(chosen)


def newest_first(items: list[Any]) -> list[Any]:
    # items are kept in creation order, so reversing is newest first even within one millisecond
    return items[::-1]


def recent(items: list[Any], *, ts_of: Any, symbol: str | None, now_ms: int) -> list[Any]:
    """Items of the last 24 h (optionally of one symbol), newest first, at most 1000."""
    since = now_ms - RECENT_WINDOW_MS
    chosen = [i for i in items if ts_of(i) >= since and (not symbol or i.symbol == symbol)]
    return newest_first(chosen)[:RECENT_MAX]


def _matches(params: dict[str, Any], **fields: str) -> bool:
    return all(not params.get(name) or params[name] == value for name, value in fields.items())


def _in_window(ts_ms: int, start: int | None, end: int | None) -> bool:
    return (start is None or ts_ms >= start) and (end is None or ts_ms <= end)


def int_param(params: dict[str, Any], name: str, default: int | None) -> int | None:
    """An integer query parameter (or `default` when absent); 400100 when not an integer."""
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_param(f"{name} must be an integer") from None
