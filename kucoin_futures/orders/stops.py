"""Stop orders: protection that rests on the exchange while the program that placed it is down.

A stop is an order (``OrderManager.place``): our clientOid, CRITICAL, never retried, an ambiguous
send resolved by looking it up by clientOid (KuCoin's order lookups include untriggered stops).
Its direction is never the caller's to get wrong (ccxt#14956): it follows the stop price against
the current price of what the stop watches (``rules.stop_direction``), read by the injected
``reference_price(symbol, price_type)`` once every argument is valid.

Listing pages through ``GET /api/v1/stopOrders`` (untriggered stops only); cancelling takes one
stop by exchange id or by clientOid, or every stop of a contract.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from operator import methodcaller
from typing import Any

from kucoin_futures.errors import (
    ExchangeRejected,
    InvalidArgument,
    OrderOutcomeUnknown,
    ProtocolError,
    TransportError,
)
from kucoin_futures.orders.manager import OrderManager
from kucoin_futures.orders.rules import build_stop_request, check_client_oid
from kucoin_futures.rest.gateway import RestGateway
from kucoin_futures.scheduling.pools import Priority

__all__ = ["STOP_PAGE_SIZE", "StopOrders"]

log = logging.getLogger(__name__)

STOP_PAGE_SIZE = 100  # per GET /api/v1/stopOrders page; at most 50 untriggered stops per contract
MAX_STOP_PAGES = 100


class StopOrders:
    """Place, list and cancel stop orders through a started ``RestGateway`` (thread-safe)."""

    def __init__(self, gateway: RestGateway, orders: OrderManager,
                 reference_price: Callable[[str, str], float]) -> None:
        self._gateway = gateway
        self._orders = orders
        self._reference_price = reference_price

    def create_stop_order(self, symbol: str, side: str, amount: int, stop_price: float, *,
                          price_type: str = "mark", reduce_only: bool = True, close_order: bool = False,
                          limit_price: float | None = None, client_oid: str | None = None,
                          expect_direction: str | None = None) -> dict[str, Any]:
        """Place a stop (market, or limit at ``limit_price`` once triggered); return ccxt's order.

        Raises:
            InvalidArgument: a bad argument, a stop price on the current price, a reused clientOid
                (nothing was sent).
            ExchangeRejected, OrderNotPlaced, OrderOutcomeUnknown: as for any order.
        """
        market = self._gateway.market(symbol)
        request = build_stop_request(
            market, side=side, amount=amount, stop_price=stop_price, price_type=price_type,
            current_price=partial(self._reference_price, symbol, price_type), reduce_only=reduce_only,
            close_order=close_order, limit_price=limit_price, expect_direction=expect_direction,
            client_oid=self._orders.client_oid(client_oid))
        return self._orders.place(request)

    def get_stop_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Return ccxt's order dicts of the untriggered stops (of ``symbol``, or all), oldest first
        (ccxt sorts KuCoin's newest-first pages by time)."""
        if symbol is not None:
            self._gateway.market(symbol)
        stops: list[dict[str, Any]] = []
        for page in range(1, MAX_STOP_PAGES + 1):
            params = {"trigger": True, "currentPage": page, "pageSize": STOP_PAGE_SIZE}
            fetch = methodcaller("fetch_open_orders", symbol, None, None, params)
            batch = self._gateway.call(Priority.HIGH, "fetch_stop_orders", fetch)
            stops.extend(batch)
            if len(batch) < STOP_PAGE_SIZE:
                break
        return stops

    def cancel_stop_order(self, order_id: str | None = None, *, client_oid: str | None = None,
                          symbol: str | None = None) -> dict[str, Any]:
        """Cancel one stop by exchange id, or by ``client_oid`` (then ``symbol`` is required).

        Raises:
            InvalidArgument: not exactly one of order_id / client_oid, or client_oid without symbol.
            OrderNotFound: no such stop (already triggered, cancelled or never placed).
            OrderOutcomeUnknown: the cancel got no clear answer and the stop is still waiting.
        """
        if (order_id is None) == (client_oid is None):
            raise InvalidArgument(f"order_id={order_id!r}, client_oid={client_oid!r}: give exactly one")
        if order_id is not None:
            return self._orders.cancel_order(order_id, symbol)
        cid = check_client_oid(client_oid)
        if symbol is None:
            raise InvalidArgument("symbol is required to cancel by client_oid (KuCoin's endpoint needs it)")
        self._gateway.market(symbol)
        cancel = methodcaller("cancel_order", None, symbol, {"clientOrderId": cid})
        refused: ExchangeRejected | None = None
        try:
            self._gateway.call(Priority.CRITICAL, "cancel_order_by_client_oid", cancel, places_order=True,
                               client_oid=cid)
        except OrderOutcomeUnknown as exc:
            log.warning("cancel stop %s: outcome unknown, looking it up: %s", cid, exc)
        except ExchangeRejected as exc:  # no such order, or no longer cancelable: the lookup says which
            refused = exc
        try:
            order = self._orders.get_order(symbol=symbol, client_oid=cid)  # OrderNotFound: never placed
        except (TransportError, ProtocolError) as exc:
            raise OrderOutcomeUnknown(f"cancel stop {cid}: the lookup failed: {exc}", client_oid=cid) from exc
        if order.get("status") == "open":
            if refused is not None:
                raise refused
            raise OrderOutcomeUnknown(f"cancel stop {cid}: still waiting after the cancel", client_oid=cid)
        log.info("stop cancelled: %s client_oid=%s", symbol, cid)
        return order

    def cancel_stop_orders(self, symbol: str) -> list[str]:
        """Cancel every untriggered stop of ``symbol``; return the exchange ids cancelled."""
        self._gateway.market(symbol)
        cancel = methodcaller("cancel_all_orders", symbol, {"trigger": True})
        result = self._gateway.call(Priority.CRITICAL, "cancel_stop_orders", cancel, places_order=True)
        info = (result[0].get("info") if result else None) or {}
        ids = [str(i) for i in info.get("cancelledOrderIds") or []]
        log.info("stops cancelled: %s %d", symbol, len(ids))
        return ids
