"""KuCoinClient's account reads and events: the private WebSocket caches when fresh, else REST.

Internal to kucoin_client (the facade delegates ``get_positions``, ``get_balance``, ``get_order``,
``get_stop_orders`` and ``account_events`` here). With credentials and the WebSocket enabled, an
``AccountFeed`` (ws/private_feed.py) keeps the account's orders, untriggered stops, positions and
wallets; while its caches are
fresh (its connection subscribed and seeded since the last loss) the reads are served from them
with ``source`` "websocket", otherwise over REST with ``source`` "rest". Both give ccxt's shapes:
the cached KuCoin objects go through ccxt's own parsers (``parse_position``, ``parse_order``,
``safe_balance``, via ``RestGateway.ccxt_parse``), so the two sources differ only in ``info``,
the timestamps and ``source``. An order served from the cache needs KuCoin's object (read over
REST once) or the fields this client sent (``note_placed``, the order manager's hook) besides its
pushes; the deal value and average price are summed from the pushed fills (the average rounded
to the tick: KuCoin's ``avgDealPrice`` rounding is not documented). A stop this client placed or
cancelled is noted in the stop cache from its REST answer, so a listing right after it agrees.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from functools import partial
from typing import Any

from kucoin_futures.errors import InvalidArgument, ProtocolError
from kucoin_futures.orders.manager import OrderManager
from kucoin_futures.orders.rules import (
    STOP_PRICE_TYPES,
    OrderRequest,
    check_client_oid,
    check_currency,
    check_flag,
    check_order_id,
)
from kucoin_futures.protocol.account import parse_rest_order, placed_stop_object
from kucoin_futures.protocol.private import (
    AccountEvent,
    FundingSettlement,
    OrderChange,
    OrderStatus,
    OrderUpdate,
    PositionChange,
    PositionChangeReason,
    StopChange,
    StopOrderUpdate,
    TradeType,
    WalletChange,
)
from kucoin_futures.protocol.types import SOURCE_REST, SOURCE_WEBSOCKET, to_kucoin_id
from kucoin_futures.rest.gateway import RestGateway
from kucoin_futures.ws.account_cache import OrderRecord, PlacedOrder
from kucoin_futures.ws.account_events import EventSink
from kucoin_futures.ws.private_feed import AccountFeed
from kucoin_futures.ws.stop_cache import CachedStop

__all__ = [
    "AccountData", "AccountEvent", "FundingSettlement", "OrderChange", "OrderStatus", "OrderUpdate",
    "PositionChange", "PositionChangeReason", "StopChange", "StopOrderUpdate", "TradeType", "WalletChange",
    "build_account_feed", "placed_hook", "sent_hook",
]

log = logging.getLogger(__name__)

# KuCoin pushes an open position's mark fields (markPrice, unrealisedPnl) as they move, at a
# frequency it does not document: older than this, the cached position is not served (as a ticker).
MARK_MAX_AGE_S = 10.0

PlacedHook = Callable[[Mapping[str, Any], OrderRequest, "float | None"], None]


def build_account_feed(gateway: RestGateway, *, enabled: bool, on_event: Callable[[AccountEvent], object] | None,
                       max_queued: int, transport: str, clock: Callable[[], float],
                       wall_clock: Callable[[], float]) -> AccountFeed | None:
    """The private feed of a client with credentials and the WebSocket (else None); the event
    options are checked either way (``InvalidArgument``)."""
    EventSink(on_event=on_event, max_queued=max_queued)  # checks them; no I/O
    if not enabled:
        return None
    return AccountFeed(rest=gateway, on_event=on_event, max_queued=max_queued, transport=transport, clock=clock,
                       wall_clock=wall_clock)


def placed_hook(feed: AccountFeed | None) -> PlacedHook | None:
    """The order manager's ``on_placed``: remember what this client sent (None without a feed)."""
    return None if feed is None else partial(_note_placed, feed)


def sent_hook(feed: AccountFeed | None) -> Callable[[OrderRequest], None] | None:
    """The order manager's ``on_sent``: an order (not a stop) may have moved a position, and its
    push may be lost unseen (a connection not yet found half-open), so the cached positions wait
    for a REST read made after it (None without a feed)."""
    return None if feed is None else partial(_note_sent, feed)


def _note_sent(feed: AccountFeed, request: OrderRequest) -> None:
    if request.stop is None:
        feed.positions_written()


def _note_placed(feed: AccountFeed, order: Mapping[str, Any], request: OrderRequest, sent_at: float | None) -> None:
    if not order.get("id") or not isinstance(order.get("symbol"), str):
        return
    stop = request.stop
    if stop is not None:
        feed.stops.note_placed(str(order["id"]), request.client_oid, request.symbol, placed_stop_object(
            order_id=str(order["id"]), client_oid=request.client_oid, symbol=request.symbol,
            side=request.side.value, order_type=request.order_type.value,
            price=str(request.price) if request.price is not None else None, size=request.amount,
            stop=stop.direction, stop_price=str(stop.stop_price), stop_price_type=STOP_PRICE_TYPES[stop.price_type],
            reduce_only=request.reduce_only, close_order=stop.close_order, post_only=request.post_only))
    price, stop_price = order.get("price"), order.get("stopPrice")
    feed.cache.note_placed(PlacedOrder(
        order_id=str(order["id"]), client_oid=order.get("clientOrderId"), symbol=order["symbol"],
        side=str(order.get("side")), order_type=str(order.get("type")), amount=int(order.get("amount") or 0),
        price=float(price) if price else None, post_only=bool(order.get("postOnly")),
        reduce_only=bool(order.get("reduceOnly")), stop_price=float(stop_price) if stop_price else None,
    ), sent_at=sent_at)


class AccountData:
    """Account reads of one client (thread-safe); ``feed`` is None without the private feed.

    The feed starts with the client when ``start_early`` (a callback waits for events), else at
    the first account read: a client used for market data only opens no private connection.
    """

    def __init__(self, gateway: RestGateway, orders: OrderManager, feed: AccountFeed | None, *,
                 start_early: bool) -> None:
        self._gateway = gateway
        self._orders = orders
        self.feed = feed
        self._start_early = start_early
        self._lock = threading.Lock()  # the feed's start and stop
        self._feed_started = False
        self._closed = False
        self._settle_ids: dict[str, str] = {}  # ccxt code -> KuCoin currency id ("BTC" -> "XBT")

    def start(self) -> None:
        """The client started: start the feed now if events are awaited."""
        if self._start_early:
            self._started_feed()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        if self.feed is not None:
            self.feed.stop()

    def _started_feed(self) -> AccountFeed | None:
        feed = self.feed
        if feed is None or self._feed_started:
            return feed
        with self._lock:
            if not self._feed_started and not self._closed:
                feed.start()
                self._feed_started = True
        return feed

    # -- reads ---------------------------------------------------------------------------------
    def get_positions(self, *, force_rest: bool = False) -> list[dict[str, Any]]:
        """ccxt's position dicts of the open positions, each with ``source``. From the cache only
        while every open position's mark fields are younger than ``MARK_MAX_AGE_S`` (never with
        ``force_rest``)."""
        feed = self._started_feed() if not check_flag("force_rest", force_rest) else None
        if feed is not None:
            positions = feed.positions()
            if positions is not None:
                held = [p for p in positions if p.qty]
                now = feed.clock()
                if all(now - p.received_at <= MARK_MAX_AGE_S for p in held):
                    return [self._position(p) for p in held]
            else:
                feed.ensure_seeded()
        return [{**position, "source": SOURCE_REST} for position in self._orders.get_positions()]

    def get_balance(self, currency: str) -> dict[str, Any]:
        """ccxt's balance dict of ``currency`` (a settle currency's ccxt code), with ``source``."""
        check_currency(self._gateway.markets, currency)  # before anything is started or sent
        feed = self._started_feed()
        if feed is not None:
            kucoin_currency = self._settle_id(currency)
            feed.want_currency(kucoin_currency)
            wallet = feed.wallet(kucoin_currency)
            # Equity moves with the mark price of every open position, and KuCoin pushes the
            # wallet only when it changes otherwise (how often with a position open is not
            # documented): with a position open in this currency, equity is REST's.
            if wallet is not None and _flat_in(feed.positions(), kucoin_currency):
                return self._balance(currency, wallet)
            feed.ensure_seeded()
        return {**self._orders.get_balance(currency), "source": SOURCE_REST}

    def get_order(self, order_id: str | None, symbol: str | None, client_oid: str | None) -> dict[str, Any]:
        """ccxt's order dict by exchange id or clientOid, with ``source``."""
        if (order_id is None) == (client_oid is None):
            raise InvalidArgument(f"order_id={order_id!r}, client_oid={client_oid!r}: give exactly one")
        if order_id is not None:
            check_order_id(order_id)
        else:
            check_client_oid(client_oid)
        if symbol is not None:
            self._gateway.market(symbol)
        feed, epoch = self._started_feed(), None
        if feed is not None:
            record = feed.order(order_id, client_oid)
            # A market order not known done yet is read from REST: it fills at once on the
            # exchange, and its fill's push may trail the answer to the order itself.
            if record is not None and symbol in (None, record.symbol) and (record.is_done or not _market(record)):
                return self._order(record)
            epoch = feed.cache.live_epoch()  # before the read: its answer belongs to this epoch
        order = self._orders.get_order(order_id, symbol, client_oid=client_oid)
        if feed is not None and isinstance(order.get("info"), dict):
            try:
                feed.cache.note_order(parse_rest_order(order["info"]), epoch)
            except ProtocolError as exc:
                log.debug("! order %s not cached: %s", order.get("id"), exc)
        return {**order, "source": SOURCE_REST}

    def get_stop_orders(self, symbol: str | None, read_rest: Callable[[str | None], list[dict[str, Any]]], *,
                        force_rest: bool = False) -> list[dict[str, Any]]:
        """ccxt's order dicts of the untriggered stops (of ``symbol``, or all), each with ``source``,
        in ccxt's order (oldest first; within a millisecond, newest first); ``read_rest`` lists
        them over REST (always with ``force_rest``)."""
        if symbol is not None:
            self._gateway.market(symbol)
        feed = self._started_feed() if not check_flag("force_rest", force_rest) else None
        if feed is not None:
            stops = feed.stop_orders(symbol)
            if stops is not None:
                ordered = sorted(enumerate(stops), key=_as_ccxt_sorts)
                return [self._stop(stop) for _, stop in ordered]
            feed.ensure_seeded()
        return [{**order, "source": SOURCE_REST} for order in read_rest(symbol)]

    def stops_gone(self, order_ids: list[str]) -> list[str]:
        """Stops this client cancelled: no longer listed, whatever the push's delay; returns the ids."""
        if self.feed is not None:
            self.feed.stops.note_gone(order_ids)
        return order_ids

    def stop_cancelled(self, order: dict[str, Any]) -> dict[str, Any]:
        """A stop this client cancelled (its order dict, returned) is no longer listed."""
        if order.get("id") and order.get("status") != "open":
            self.stops_gone([str(order["id"])])
        return order

    def account_events(self, timeout_s: float) -> list[AccountEvent]:
        """Every event queued, oldest first, waiting up to ``timeout_s`` for the first (without the
        private feed, no keys or no WebSocket, nothing can ever come: [] at once)."""
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 <= timeout_s < float("inf"):
            raise InvalidArgument(f"timeout_s={timeout_s!r}: must be a number of seconds >= 0")
        feed = self._started_feed()
        return feed.sink.queue.drain(timeout_s) if feed is not None else []

    def health(self) -> dict[str, Any]:
        return self.feed.health() if self.feed is not None else {"enabled": False}

    # -- ccxt shapes -------------------------------------------------------------------------------
    def _position(self, position: PositionChange) -> dict[str, Any]:
        result = self._gateway.ccxt_parse("parse_position", dict(position.info))
        result["source"] = SOURCE_WEBSOCKET
        return result

    def _balance(self, code: str, wallet: WalletChange) -> dict[str, Any]:
        # What ccxt's fetch_balance builds from account-overview: free = available, total = equity.
        account = {"free": _text(wallet.available), "used": None, "total": _text(wallet.equity or 0.0)}
        result = self._gateway.ccxt_parse("safe_balance", {"info": dict(wallet.info), "timestamp": None,
                                                           "datetime": None, code: account})
        result["source"] = SOURCE_WEBSOCKET
        return result

    def _order(self, record: OrderRecord) -> dict[str, Any]:
        market = self._gateway.market(record.symbol)
        result = self._gateway.ccxt_parse("parse_order", order_object(
            record, contract_size=float(market["contractSize"]), tick=market["precision"]["price"]))
        result["source"] = SOURCE_WEBSOCKET
        return result

    def _stop(self, stop: CachedStop) -> dict[str, Any]:
        result = self._gateway.ccxt_parse("parse_order", dict(stop.info))
        result["source"] = SOURCE_WEBSOCKET
        return result

    def _settle_id(self, code: str) -> str:
        settle_id = self._settle_ids.get(code)
        if settle_id is None:
            settle_id = next((m["settleId"] for m in self._gateway.markets.values()
                              if m.get("settle") == code and m.get("settleId")), code)
            self._settle_ids[code] = settle_id
        return settle_id


def order_object(record: OrderRecord, *, contract_size: float, tick: float | None) -> dict[str, Any]:
    """KuCoin's order object (``GET /api/v1/orders/{id}``) as the cache knows it now: REST's last
    object (or the fields we sent) brought up to date by the newer pushes."""
    base, placed, last = record.base, record.placed, record.last
    order: dict[str, Any] = dict(base.info) if base is not None else {}
    if base is None and placed is not None:
        created = last.created_ms if last is not None and last.created_ms is not None else None
        order.update(id=record.order_id, symbol=to_kucoin_id(record.symbol), type=placed.order_type,
                     side=placed.side, price=_text(placed.price) if placed.price else "0", size=placed.amount,
                     clientOid=record.client_oid, timeInForce="GTC", postOnly=placed.post_only,
                     reduceOnly=placed.reduce_only, stopPrice=_text(placed.stop_price) if placed.stop_price else None,
                     createdAt=created if created is not None else (last.ts_ms if last is not None else None))
    if last is not None and (base is None or _newer(last, base)):
        filled = last.filled_size
        value = _deal_value(record, contract_size)
        average = Decimal(0) if not filled else value / (filled * _decimal(contract_size))
        if tick and filled:
            average = average.quantize(_decimal(tick), ROUND_HALF_EVEN)
        order.update(size=last.size, filledSize=filled, dealSize=filled, filledValue=_plain(value),
                     dealValue=_plain(value), avgDealPrice=_plain(average) if filled else "0",
                     isActive=not last.is_done, cancelExist=last.canceled_size > 0,
                     status="done" if last.is_done else "open", updatedAt=last.ts_ms)
    return order


def _newer(last: OrderUpdate, base: Any) -> bool:
    return (last.ts_ms > base.updated_ms or last.filled_size > base.filled_size
            or (last.status is OrderStatus.DONE and base.is_active))


def _deal_value(record: OrderRecord, contract_size: float) -> Decimal:
    base = record.base
    base_filled = base.filled_size if base is not None else 0
    value = _decimal(base.filled_value) if base is not None else Decimal(0)
    multiplier = _decimal(contract_size)
    for fill in record.fills:
        if fill.filled_after > base_filled:
            value += _decimal(fill.price) * fill.size * multiplier
    return value


def _decimal(number: float) -> Decimal:
    return Decimal(repr(number))  # the shortest text that round-trips: the wire's own digits


def _plain(number: Decimal) -> str:
    text = format(number.normalize(), "f")
    return text if text != "-0" else "0"


def _text(number: float) -> str:
    return repr(float(number))


def _flat_in(positions: tuple[PositionChange, ...] | None, currency: str) -> bool:
    # True when the fresh positions hold nothing settled in ``currency`` (None: not fresh).
    return positions is not None and not any(p.qty and p.settle_currency in (currency, None) for p in positions)


def _as_ccxt_sorts(item: tuple[int, CachedStop]) -> tuple[float, int]:
    # ccxt sorts by createdAt, stably over KuCoin's newest-first list; cached in arrival order.
    # A stop just placed (no push yet) has no createdAt: the newest.
    index, stop = item
    created = stop.info.get("createdAt")
    return (float(created) if isinstance(created, (int, float)) else float("inf")), -index


def _market(record: OrderRecord) -> bool:
    kinds = (record.placed.order_type if record.placed is not None else None,
             record.base.order_type if record.base is not None else None,
             record.last.order_type if record.last is not None else None)
    return "market" in kinds
