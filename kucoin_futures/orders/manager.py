"""Orders and the account: place, cancel and look up orders so that none is ever sent twice or
lost, close positions, read balance and positions, set leverage.

Every order carries a clientOid, ours (``kc-<ms>-<nonce>-<n>``) or the caller's, and a clientOid
once sent is never sent again by this process (``InvalidArgument``); after a definitive refusal
it is released. Orders and cancels run at CRITICAL priority and are never retried. When a send
ends without a definitive answer (timeout, connection reset, 5xx, unreadable answer) the order
is looked up by clientOid until its fate is known (kucoin_order_rules.py explains the rule):

    found                      -> the order dict is returned, as for a clean send
    provably not placed        -> OrderNotPlaced (a TransportError): safe to send a new order
    lookups keep failing       -> OrderOutcomeUnknown carrying the clientOid

Amounts are contracts (lots) and symbols ccxt unified symbols; results are ccxt's unified order,
balance and position dicts. Account reads run at HIGH priority.
"""
from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from operator import methodcaller
from typing import Any

from kucoin_futures.scheduling.pools import Priority
from kucoin_futures.errors import OrderNotFound, OrderNotPlaced
from kucoin_futures.orders.rules import (
    OrderRequest,
    OrderType,
    ResolvePolicy,
    Verdict,
    build_order_request,
    check_client_oid,
    check_currency,
    check_leverage,
    check_order_id,
    format_client_oid,
    opposite_side,
    resolve_step,
)
from kucoin_futures.errors import CODE_NO_POSITION, CODE_ORDER_NOT_FOUND, NoPosition
from kucoin_futures.errors import (
    InvalidArgument,
    KuCoinError,
    OrderOutcomeUnknown,
    ProtocolError,
    RateLimited,
    TransportError,
)
from kucoin_futures.protocol.types import Side
from kucoin_futures.rest.gateway import RestGateway

__all__ = [
    "Attempt", "ClientOids", "OrderManager", "OrderNotFound", "OrderNotPlaced", "OutcomeResolver",
    "ResolvePolicy",
]

log = logging.getLogger(__name__)

DEFAULT_BALANCE_CURRENCY = "USDT"  # ccxt's default; an explicit code also leaks into the query
OPEN_ORDERS_PAGE_SIZE = 1000  # KuCoin's maximum; ccxt sends none and the server default is 50
Lookup = Callable[[str, str], "dict[str, Any] | None"]  # (client_oid, symbol) -> order or None


@dataclass(slots=True)
class Attempt:
    """One send of one order; the worker thread stamps ``sent_at`` just before ccxt signs it."""

    request: OrderRequest
    sent_at: float | None = None


class ClientOids:
    """Generate clientOids and remember every one this process has sent (thread-safe)."""

    def __init__(self, *, prefix: str = "kc", wall_clock: Callable[[], float] = time.time) -> None:
        format_client_oid(prefix, 0, "0", 0)  # InvalidArgument now, not at the first order
        self._prefix = prefix
        self._wall_clock = wall_clock
        self._nonce = secrets.token_hex(4)  # two processes started in one ms still differ
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._used: set[str] = set()

    def new(self) -> str:
        """Return a fresh clientOid, e.g. ``kc-1795594581476-a1b2c3d4-7``."""
        return format_client_oid(self._prefix, int(self._wall_clock() * 1000), self._nonce, next(self._seq))

    def reserve(self, client_oid: str) -> None:
        """Claim ``client_oid`` for a send; ``InvalidArgument`` if this process used it already."""
        with self._lock:
            if client_oid in self._used:
                raise InvalidArgument(f"client_oid={client_oid!r}: already used by an order of this process")
            self._used.add(client_oid)

    def release(self, client_oid: str) -> None:
        """Give ``client_oid`` back: the exchange definitively refused it, or it was never sent."""
        with self._lock:
            self._used.discard(client_oid)


class OutcomeResolver:
    """Look an order up by clientOid after an ambiguous send until its fate is known.

    Args:
        lookup: returns the order, or None if the exchange has none with that clientOid.
        policy: the waits, bounds and limits of the rule (``resolve_step``).
        clock: monotonic seconds.
        closing: set by ``OrderManager.close()``; interrupts the waits.
    """

    def __init__(self, lookup: Lookup, policy: ResolvePolicy, *, clock: Callable[[], float],
                 closing: threading.Event) -> None:
        self._lookup = lookup
        self._policy = policy
        self._clock = clock
        self._closing = closing

    def resolve(self, attempt: Attempt, cause: OrderOutcomeUnknown) -> dict[str, Any]:
        """Return the placed order, or raise ``OrderNotPlaced`` / ``OrderOutcomeUnknown``."""
        cid, symbol = attempt.request.client_oid, attempt.request.symbol
        since = self._clock()
        sent_at = attempt.sent_at if attempt.sent_at is not None else since
        lookups = failures = 0
        while True:
            lookup_sent_at = self._clock()
            order, found, retry_after_s = self._look(cid, symbol)
            lookups += 1
            failures += found is None
            step = resolve_step(self._policy, sent_at=sent_at, resolving_since=since,
                                lookup_sent_at=lookup_sent_at, found=found, lookups=lookups,
                                failures=failures, now=self._clock(), retry_after_s=retry_after_s)
            if step is Verdict.PLACED:
                log.info("order placed (found by lookup): %s client_oid=%s", symbol, cid)
                return order
            if step is Verdict.NOT_PLACED:
                log.info("order not placed (lookup proved it): %s client_oid=%s", symbol, cid)
                raise OrderNotPlaced(f"{cause}; no order with clientOid {cid} after "
                                     f"{self._policy.in_flight_s:.1f}s", client_oid=cid) from cause
            if step is Verdict.UNKNOWN:
                log.warning("order outcome still unknown after %d lookups: client_oid=%s", lookups, cid)
                raise OrderOutcomeUnknown(f"{cause}; {lookups} lookups ({failures} failed) did not tell",
                                          client_oid=cid) from cause
            if self._closing.wait(step.seconds):
                raise OrderOutcomeUnknown(f"{cause}; closed while looking it up", client_oid=cid) from cause

    def _look(self, cid: str, symbol: str) -> tuple[dict[str, Any] | None, bool | None, float | None]:
        # Returns (order, found, retry_after_s); found None = the lookup failed (a read: may retry).
        try:
            order = self._lookup(cid, symbol)
        except RateLimited as exc:
            return None, None, exc.retry_after_s
        except (TransportError, ProtocolError) as exc:
            log.warning("lookup of client_oid=%s failed: %s", cid, exc)
            return None, None, None
        except KuCoinError as exc:  # auth, closed, ...: we cannot find out
            raise OrderOutcomeUnknown(f"lookup of clientOid {cid} failed: {exc}", client_oid=cid) from exc
        return order, order is not None, None


class OrderManager:
    """Place, cancel and look up orders and read the account, through a started ``RestGateway``.

    Thread-safe. ``close()`` interrupts lookups in progress (they raise ``OrderOutcomeUnknown``).

    Args:
        policy: how ambiguous sends are resolved.
        clock: monotonic seconds (the resolution's deadlines).
        wall_clock: epoch seconds (clientOids).
        client_oid_prefix: at most 8 characters of [A-Za-z0-9_] starting generated clientOids.
        on_placed: called with each placed order's dict, its ``OrderRequest`` and its send time
            (monotonic).
        on_sent: called with the ``OrderRequest`` once each send has ended, however it ended
            (placed, refused, found or not by lookup): what was sent may have moved a position.
    """

    def __init__(self, gateway: RestGateway, *, policy: ResolvePolicy = ResolvePolicy(),
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
                 client_oid_prefix: str = "kc",
                 on_placed: Callable[[dict[str, Any], OrderRequest, float | None], object] | None = None,
                 on_sent: Callable[[OrderRequest], object] | None = None) -> None:
        self._gateway = gateway
        self._on_placed = on_placed  # (order dict, request, monotonic send time): the private feed's caches
        self._on_sent = on_sent
        self._clock = clock
        self._client_oids = ClientOids(prefix=client_oid_prefix, wall_clock=wall_clock)
        self._closing = threading.Event()
        self._resolver = OutcomeResolver(partial(self._fetch_by_client_oid, priority=Priority.CRITICAL),
                                         policy, clock=clock, closing=self._closing)

    def __repr__(self) -> str:
        return f"OrderManager(gateway={self._gateway!r})"

    def close(self) -> None:
        """Interrupt lookups in progress; the gateway is closed by its owner."""
        self._closing.set()

    # -- Placing ---------------------------------------------------------------------------------
    def create_market_order(self, symbol: str, side: str, amount: int, *, leverage: int | None = None,
                            reduce_only: bool = False, client_oid: str | None = None,
                            margin_mode: str | None = None) -> dict[str, Any]:
        """Place a market order of ``amount`` contracts; return ccxt's order dict.

        KuCoin acknowledges an order with its ids only, so the dict carries the request's fields
        and ``status`` None (``get_order`` has the fills); after an ambiguous send resolved by
        lookup it is the exchange's full view of the order.

        Raises:
            InvalidArgument: a bad argument or a reused clientOid (nothing was sent).
            ExchangeRejected, AuthError, RateLimited: refused (nothing was placed).
            OrderNotPlaced: the send failed and the lookup proved nothing was placed.
            OrderOutcomeUnknown: the lookups failed too; ``client_oid`` says what to look up.
        """
        request = build_order_request(
            self._gateway.market(symbol), side=side, order_type=OrderType.MARKET, amount=amount,
            leverage=leverage, reduce_only=reduce_only, margin_mode=margin_mode,
            client_oid=self.client_oid(client_oid))
        return self.place(request)

    def create_limit_order(self, symbol: str, side: str, amount: int, price: float, *,
                           leverage: int | None = None, post_only: bool = False, reduce_only: bool = False,
                           client_oid: str | None = None, margin_mode: str | None = None) -> dict[str, Any]:
        """Place a GTC limit order; return ccxt's order dict (raises as ``create_market_order``)."""
        request = build_order_request(
            self._gateway.market(symbol), side=side, order_type=OrderType.LIMIT, amount=amount,
            price=price, leverage=leverage, post_only=post_only, reduce_only=reduce_only,
            margin_mode=margin_mode, client_oid=self.client_oid(client_oid))
        return self.place(request)

    def close_position(self, symbol: str) -> dict[str, Any]:
        """Close the whole position in ``symbol`` at market (KuCoin closeOrder); return the order.

        Raises:
            NoPosition: there is no position in ``symbol`` (nothing was sent), or it was closed
                by something else between the look and the order (KuCoin 300009).
        """
        self._gateway.market(symbol)
        fetch = methodcaller("fetch_position", symbol)
        position = self._gateway.call(Priority.CRITICAL, "fetch_position", fetch)
        contracts = int(position.get("contracts") or 0)
        if contracts == 0:
            raise NoPosition(CODE_NO_POSITION, f"close_position {symbol}: no position, nothing sent")
        side = opposite_side(Side.BUY if position.get("side") == "long" else Side.SELL)
        request = OrderRequest(symbol, side, OrderType.MARKET, contracts, None, None, post_only=False,
                               reduce_only=True, margin_mode=None, client_oid=self._client_oids.new(),
                               close_position=True)
        return self.place(request)

    def client_oid(self, client_oid: str | None) -> str:
        """``client_oid`` checked, or a new one of ours when None."""
        return self._client_oids.new() if client_oid is None else check_client_oid(client_oid)

    def place(self, request: OrderRequest) -> dict[str, Any]:
        """Send a checked request once (CRITICAL) and return ccxt's order dict; an ambiguous send
        is resolved by clientOid lookup (raises as ``create_market_order``)."""
        try:
            return self._place(request)
        finally:
            if self._on_sent is not None:
                try:
                    self._on_sent(request)
                except Exception:  # a bug there must not change what the send returned or raised
                    log.exception("! on_sent hook failed for client_oid=%s", request.client_oid)

    def _place(self, request: OrderRequest) -> dict[str, Any]:
        cid = request.client_oid
        self._client_oids.reserve(cid)
        attempt = Attempt(request)
        operation = "close_position" if request.close_position else "create_order"
        try:
            order = self._gateway.call(Priority.CRITICAL, operation, partial(self._send, attempt),
                                       places_order=True, client_oid=cid)
        except OrderOutcomeUnknown as exc:
            log.warning("%s %s: outcome unknown, looking up client_oid=%s: %s", operation, request.symbol,
                        cid, exc)
            return self._resolver.resolve(attempt, exc)
        except KuCoinError:
            self._client_oids.release(cid)  # refused, or never sent: the clientOid may be reused
            raise
        log.info("%s placed: %s %s %s %d client_oid=%s", "order" if request.stop is None else
                 f"stop ({request.stop.direction} at {request.stop.stop_price} {request.stop.price_type})",
                 request.symbol, request.side, request.order_type, request.amount, cid)
        placed = _with_request(order, request)
        if self._on_placed is not None:
            try:
                self._on_placed(placed, request, attempt.sent_at)
            except Exception:  # a bug there must not turn a placed order into an error
                log.exception("! on_placed hook failed for client_oid=%s", cid)
        return placed

    def _send(self, attempt: Attempt, exchange: Any) -> dict[str, Any]:
        # Runs on a worker thread, right before ccxt signs (timestamps) the request.
        attempt.sent_at = self._clock()
        r = attempt.request
        if r.close_position:
            return exchange.close_position(r.symbol, None, {"clientOrderId": r.client_oid})
        price = float(r.price) if r.price is not None else None
        return exchange.create_order(r.symbol, r.order_type.value, r.side.value, r.amount, price,
                                     r.ccxt_params())

    # -- Cancelling ------------------------------------------------------------------------------
    def cancel_order(self, order_id: str, symbol: str | None = None) -> dict[str, Any]:
        """Cancel an order (CRITICAL, never retried); return ccxt's order dict.

        After an ambiguous cancel the order is looked up once: if it is no longer open it is
        returned; if it still is, ``OrderOutcomeUnknown`` (cancelling again is harmless).

        Raises:
            ExchangeRejected: KuCoin refused (100004: not cancelable, e.g. already done).
        """
        check_order_id(order_id)
        if symbol is not None:
            self._gateway.market(symbol)
        cancel = methodcaller("cancel_order", order_id, symbol)
        try:
            result = self._gateway.call(Priority.CRITICAL, "cancel_order", cancel, places_order=True)
        except OrderOutcomeUnknown as exc:
            return self._resolve_cancel(order_id, symbol, exc)
        log.info("order cancelled: %s %s", symbol, order_id)
        cancelled = ((result.get("info") or {}).get("data") or {}).get("cancelledOrderIds") or []
        return {**result, "id": order_id, "symbol": symbol,
                "status": "canceled" if order_id in cancelled else result.get("status")}

    def _resolve_cancel(self, order_id: str, symbol: str | None,
                        cause: OrderOutcomeUnknown) -> dict[str, Any]:
        log.warning("cancel %s: outcome unknown, looking the order up: %s", order_id, cause)
        try:
            order = self._fetch_order(order_id, symbol, priority=Priority.CRITICAL)
        except (TransportError, ProtocolError) as exc:
            raise OrderOutcomeUnknown(f"{cause}; the lookup failed too: {exc}") from exc
        if order.get("status") == "open":
            raise OrderOutcomeUnknown(f"{cause}; order {order_id} is still open",
                                      client_oid=order.get("clientOrderId")) from cause
        return order

    # -- Reading ---------------------------------------------------------------------------------
    def get_order(self, order_id: str | None = None, symbol: str | None = None, *,
                  client_oid: str | None = None) -> dict[str, Any]:
        """Return ccxt's order dict by exchange id or by clientOid (exactly one of them).

        Raises:
            OrderNotFound: KuCoin has no such order.
        """
        if (order_id is None) == (client_oid is None):
            raise InvalidArgument(f"order_id={order_id!r}, client_oid={client_oid!r}: give exactly one")
        if symbol is not None:
            self._gateway.market(symbol)
        if order_id is not None:
            return self._fetch_order(check_order_id(order_id), symbol)
        order = self._fetch_by_client_oid(check_client_oid(client_oid), symbol)
        if order is None:
            raise OrderNotFound(CODE_ORDER_NOT_FOUND, f"no order with clientOid {client_oid}")
        return order

    def _fetch_order(self, order_id: str, symbol: str | None, *,
                     priority: Priority = Priority.HIGH) -> dict[str, Any]:
        return self._gateway.call(priority, "fetch_order", methodcaller("fetch_order", order_id, symbol))

    def _fetch_by_client_oid(self, client_oid: str, symbol: str | None, *,
                             priority: Priority = Priority.HIGH) -> dict[str, Any] | None:
        # GET /api/v1/orders/byClientOid; KuCoin answers 100001 when it has no such order.
        fetch = methodcaller("fetch_order", None, symbol, {"clientOid": client_oid})
        try:
            return self._gateway.call(priority, "fetch_order_by_client_oid", fetch)
        except OrderNotFound:
            return None

    def get_open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Return ccxt's order dicts of the open orders (of ``symbol``, or all; up to 1000)."""
        if symbol is not None:
            self._gateway.market(symbol)
        fetch = methodcaller("fetch_open_orders", symbol, None, None, {"pageSize": OPEN_ORDERS_PAGE_SIZE})
        return self._gateway.call(Priority.HIGH, "fetch_open_orders", fetch)

    def get_balance(self, currency: str = DEFAULT_BALANCE_CURRENCY) -> dict[str, Any]:
        """Return ccxt's balance dict of the futures account (``currency``: a settle currency's code)."""
        check_currency(self._gateway.markets, currency)
        params = {} if currency == DEFAULT_BALANCE_CURRENCY else {"code": currency}
        return self._gateway.call(Priority.HIGH, "fetch_balance", methodcaller("fetch_balance", params))

    def get_positions(self) -> list[dict[str, Any]]:
        """Return ccxt's position dicts of the open positions (flat ones left out)."""
        positions = self._gateway.call(Priority.HIGH, "fetch_positions", methodcaller("fetch_positions"))
        return [p for p in positions if p.get("contracts")]

    def set_leverage(self, symbol: str, leverage: int) -> dict[str, Any]:
        """Set the cross-margin leverage of ``symbol`` (KuCoin's changeCrossUserLeverage).

        Isolated positions take their leverage from each order (``leverage=`` when placing).
        """
        checked = check_leverage(self._gateway.market(symbol), leverage)
        if checked is None:
            raise InvalidArgument("leverage=None: give a whole number >= 1")
        change = methodcaller("set_leverage", checked, symbol)
        return self._gateway.call(Priority.HIGH, "set_leverage", change)


def _with_request(order: dict[str, Any], request: OrderRequest) -> dict[str, Any]:
    # KuCoin's answer to a new order holds only its ids; fill in what we asked for.
    info = order.get("info") or {}
    data = info.get("data") if isinstance(info.get("data"), dict) else info
    filled_in = {
        "id": order.get("id") or data.get("orderId"),
        "clientOrderId": order.get("clientOrderId") or request.client_oid,
        "symbol": request.symbol,
        "type": request.order_type.value,
        "side": request.side.value,
        "amount": float(request.amount),
        "price": float(request.price) if request.price is not None else None,
        "postOnly": request.post_only,
        "reduceOnly": request.reduce_only,
    }
    if request.stop is not None:
        filled_in.update(triggerPrice=float(request.stop.stop_price), stopPrice=float(request.stop.stop_price))
    return {**order, **{k: v for k, v in filled_in.items() if order.get(k) is None}}
