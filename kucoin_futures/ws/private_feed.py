"""The private WebSocket feed: the account's orders, stop orders, positions and wallet, live.

``AccountFeed`` runs a ``KuCoinWebSocket`` of its own, configured private: its tokens come from
``bullet-private`` (signed, through the REST port's ``submit_private_token``), it subscribes the
account's topics with ``privateChannel: true`` and hands their pushes to the handlers here. So
the public feed's machinery keeps this connection too: the same token per attempt, welcome, acks,
ping/pong, dead detection, reconnect delays, resubscribe and 23 h renewal; its own thread, so
the market-data hot path is untouched.

    /contractMarket/tradeOrders     orderChange        -> order cache, OrderUpdate events (fills)
    /contractMarket/advancedOrders  stopOrder          -> stop cache, StopOrderUpdate events (open/triggered/cancel)
    /contract/positionAll           position.change    -> position cache, PositionChange events
    /contract/position:{symbol}     position.settlement -> FundingSettlement events (subscribed for
                                                       each open position: KuCoin names the contract
                                                       of a settlement in this topic only)
    /contractAccount/wallet         walletBalance/availableBalance.change -> wallet cache, WalletChange

Freshness (ws/account_cache.py): a quiet private connection is normal (KuCoin pushes only
changes), so this one pings every ``PING_S`` whatever the server's pingInterval, and the caches
are served only while it received a frame (a pong at least) within ``MAX_QUIET_S``: a half-open
connection (open, nothing arriving) sends the reads to REST within seconds, long before it is
declared dead and replaced. Each time the connection is subscribed (state RUNNING) the
caches are seeded from REST at HIGH priority (positions, open orders, untriggered stops, the
balance of each wanted currency) and then kept by pushes; when the state leaves RUNNING they are stale at once and
readers use REST. A seed that fails is retried when a reader next misses (at most every 5 s).
Events (every order change, stop change, position change with a reason, funding settlement and
wallet change) go to the callback, on the WebSocket thread, and to a bounded queue. A push seen
twice (a renewal's two connections overlap; a position push arrives on two topics) is handled once.
"""
from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from functools import partial
from typing import Any, Protocol

from kucoin_futures.errors import ClientClosed, KuCoinError
from kucoin_futures.protocol.account import (
    parse_rest_account_overview,
    parse_rest_open_orders,
    parse_rest_positions,
    parse_rest_stop_orders,
    pushed_stop_object,
)
from kucoin_futures.protocol.private import (
    SUBJECT_AVAILABLE_BALANCE,
    SUBJECT_ORDER_CHANGE,
    SUBJECT_POSITION_CHANGE,
    SUBJECT_POSITION_SETTLEMENT,
    SUBJECT_STOP_ORDER,
    SUBJECT_SYMBOL_ORDER_CHANGE,
    SUBJECT_WALLET_BALANCE,
    PositionChange,
    PositionChangeReason,
    StopChange,
    TradeType,
    WalletChange,
    parse_funding_settlement,
    parse_order_change,
    parse_position_change,
    parse_stop_order,
    parse_wallet_change,
)
from kucoin_futures.protocol.types import to_kucoin_id
from kucoin_futures.protocol.wire import (
    TOPIC_ADVANCED_ORDERS,
    TOPIC_POSITION_ALL,
    TOPIC_TRADE_ORDERS,
    TOPIC_WALLET,
    topic_position,
)
from kucoin_futures.scheduling.executor import CallAbandoned, SchedulerClosed
from kucoin_futures.ws.account_cache import AccountCache, OrderRecord
from kucoin_futures.ws.account_events import EventSink
from kucoin_futures.ws.client import KuCoinWebSocket
from kucoin_futures.ws.stop_cache import CachedStop, StopCache
from kucoin_futures.ws.subscriptions import State
from kucoin_futures.ws.transports import AUTO

__all__ = ["DEFAULT_QUEUE_SIZE", "PRIVATE_TOPICS", "AccountFeed", "PrivateRest"]

log = logging.getLogger(__name__)

PRIVATE_TOPICS = (TOPIC_TRADE_ORDERS, TOPIC_ADVANCED_ORDERS, TOPIC_POSITION_ALL, TOPIC_WALLET)
DEFAULT_CURRENCY = "USDT"  # the wallet kept from the start (others once asked for)
DEFAULT_QUEUE_SIZE = 1000  # events kept for account_events() before the oldest are dropped
SEED_RETRY_S = 5.0  # a failed seed is retried at the next miss, at most this often
RECENT_PUSHES = 1024  # pushes remembered to handle a repeated one once
OPEN_ORDERS_PAGE_SIZE = 1000  # KuCoin's maximum (GET /api/v1/orders and /api/v1/stopOrders)
PING_S = 2.0  # the private connection pings this often (KuCoin allows 100 messages per 10 s)
MAX_QUIET_S = 4.0  # the caches are served only while a frame arrived this recently
_CLOSED = (ClientClosed, SchedulerClosed, CallAbandoned, concurrent.futures.CancelledError)


class PrivateRest(Protocol):
    """What the private feed asks of REST (``RestGateway`` provides it)."""

    def submit_get(self, path: str, params: Mapping[str, Any], priority: Any) -> concurrent.futures.Future: ...

    def submit_token(self) -> concurrent.futures.Future: ...

    def submit_private_token(self) -> concurrent.futures.Future: ...

    def submit_private_get(self, operation: str, params: Mapping[str, Any]) -> concurrent.futures.Future: ...


class _PrivateTokens:
    """The private ``KuCoinWebSocket``'s REST port: every connection gets a bullet-private token."""

    def __init__(self, rest: PrivateRest) -> None:
        self._rest = rest

    def submit_get(self, path: str, params: Mapping[str, Any], priority: Any) -> concurrent.futures.Future:
        return self._rest.submit_get(path, params, priority)

    def submit_token(self) -> concurrent.futures.Future:
        return self._rest.submit_private_token()

    def submit_private_token(self) -> concurrent.futures.Future:
        return self._rest.submit_private_token()


class _Seeds:
    """Seeds in flight per (kind, epoch), when each kind last started, counts (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: set[tuple[Hashable, int]] = set()
        self._started_at: dict[Hashable, float] = {}
        self.started = 0
        self.failed = 0

    def begin(self, kind: Hashable, epoch: int, now: float, *, retry: bool) -> bool:
        with self._lock:
            if (kind, epoch) in self._in_flight or (retry and now - self._started_at.get(kind, -SEED_RETRY_S)
                                                    < SEED_RETRY_S):
                return False
            self._in_flight.add((kind, epoch))
            self._started_at[kind] = now
            self.started += 1
            return True

    def end(self, kind: Hashable, epoch: int, *, ok: bool) -> None:
        with self._lock:
            self._in_flight.discard((kind, epoch))
            self.failed += not ok


class AccountFeed:
    """The account's private WebSocket feed: caches kept live, and its events.

    Args:
        rest: the client's REST gateway (tokens, seeds; one scheduler for all its REST).
        on_event: called with each event on the WebSocket thread; keep it short, never call REST
            from it; an exception is logged and ignored.
        max_queued: events kept for ``sink.queue.drain`` before the oldest are dropped.
        transport, clock, wall_clock, backoff_initial_s, backoff_cap_s, name: as KuCoinWebSocket's.
    """

    def __init__(self, *, rest: PrivateRest, on_event: Callable[[Any], object] | None = None,
                 max_queued: int = DEFAULT_QUEUE_SIZE, transport: str = AUTO,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
                 backoff_initial_s: float = 0.5, backoff_cap_s: float = 30.0, name: str = "kucoin-ws-private") -> None:
        self.cache = AccountCache(clock=clock)
        self.stops = StopCache(live_epoch=self.cache.live_epoch, epoch=self.cache.epoch)
        self.cache.want_currency(DEFAULT_CURRENCY)
        self.sink = EventSink(on_event=on_event, max_queued=max_queued)
        self._rest = rest
        self._clock = clock
        self.clock = clock  # readers age the cached positions' mark fields with it
        self._seeds = _Seeds()
        self._recent: OrderedDict[Hashable, None] = OrderedDict()  # WebSocket thread only
        self._position_topics: set[str] = set()  # a race may subscribe one twice: the engine ignores it
        handlers = {
            SUBJECT_ORDER_CHANGE: self._on_order, SUBJECT_SYMBOL_ORDER_CHANGE: self._on_order,
            SUBJECT_STOP_ORDER: self._on_stop, SUBJECT_POSITION_CHANGE: self._on_position,
            SUBJECT_POSITION_SETTLEMENT: self._on_settlement,
            SUBJECT_WALLET_BALANCE: self._on_wallet, SUBJECT_AVAILABLE_BALANCE: self._on_wallet,
        }
        self.ws = KuCoinWebSocket(rest=_PrivateTokens(rest), transport=transport, clock=clock,  # type: ignore[arg-type]
                                  wall_clock=wall_clock, backoff_initial_s=backoff_initial_s,
                                  backoff_cap_s=backoff_cap_s, confirm_closed_candles_after_s=None,
                                  max_ping_interval_s=PING_S,
                                  push_handlers=handlers, on_state=self._on_state, name=name)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> AccountFeed:
        """Subscribe the account's topics and start the connection (no wait)."""
        self.ws.subscribe_topics(PRIVATE_TOPICS)
        self.ws.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        """Close the connection; the caches are stale from now on (idempotent)."""
        self.ws.stop(timeout_s)
        self.cache.go_stale()

    def is_running(self) -> bool:
        """True while the connection is subscribed (the caches may still be seeding)."""
        return self.ws.state is State.RUNNING

    def _serves(self, topic: str) -> bool:
        # Subscribed, heard from lately, and the topic that keeps this cache was not refused (a
        # refused topic is dropped by the engine, which then counts the connection as subscribed
        # without it).
        if not self.is_running():
            return False
        stats = self.ws.stats()
        return _heard_lately(stats.quiet_s) and topic not in stats.refused_topics

    # -- reads for the facade (None: not fresh, ask REST) --------------------------------------
    def positions(self) -> tuple[PositionChange, ...] | None:
        return self.cache.positions() if self._serves(TOPIC_POSITION_ALL) else None

    def wallet(self, currency: str) -> WalletChange | None:
        return self.cache.wallet(currency) if self._serves(TOPIC_WALLET) else None

    def order(self, order_id: str | None, client_oid: str | None) -> OrderRecord | None:
        return self.cache.order(order_id, client_oid) if self._serves(TOPIC_TRADE_ORDERS) else None

    def stop_orders(self, symbol: str | None) -> tuple[CachedStop, ...] | None:
        return self.stops.stops(symbol) if self._serves(TOPIC_ADVANCED_ORDERS) else None

    def want_currency(self, currency: str) -> None:
        """Keep the wallet of ``currency`` (KuCoin id) too: seeded now if the feed is live."""
        if self.cache.want_currency(currency):
            epoch = self.cache.live_epoch()
            if epoch is not None:
                self._seed_wallet(currency, epoch, retry=False)

    def positions_written(self) -> None:
        """This client sent an order that may have moved a position: its push may be lost unseen
        (half-open for up to ``MAX_QUIET_S``), so REST serves until a seed read after it is in."""
        self.cache.outdate_positions()
        if self.cache.live_epoch() is not None and self.is_running():
            self._seed_positions(retry=False)

    def ensure_seeded(self) -> None:
        """A reader missed: re-seed what is not fresh while subscribed (at most every 5 s)."""
        epoch = self.cache.live_epoch()
        if epoch is None or not self.is_running():
            return
        fresh = self.cache.freshness()
        if not fresh["positions"]:
            self._seed_positions(retry=True)
        if not fresh["orders"]:
            self._seed_orders(epoch, retry=True)
        if not self.stops.fresh():
            self._seed_stops(epoch, retry=True)
        for currency, ok in fresh["balances"].items():
            if not ok:
                self._seed_wallet(currency, epoch, retry=True)

    # -- connection state (WebSocket thread) ----------------------------------------------------
    def _on_state(self, state: State) -> None:
        if state is not State.RUNNING:
            self.cache.go_stale()
            log.info("= account caches stale (%s): served from REST until subscribed and seeded again",
                     state.name)
            return
        epoch = self.cache.go_live()
        self._seed_positions(retry=False)
        self._seed_orders(epoch, retry=False)
        self._seed_stops(epoch, retry=False)
        for currency in self.cache.wanted_currencies():
            self._seed_wallet(currency, epoch, retry=False)

    # -- seeds (submitted from any thread, installed on a REST worker) ---------------------------
    def _seed_positions(self, *, retry: bool) -> None:
        ticket = self.cache.positions_ticket()
        self._submit(("positions", ticket[1]), ticket[0], retry, "fetch_positions", {},
                     partial(self._install_positions, ticket))

    def _seed_orders(self, epoch: int, *, retry: bool) -> None:
        params = {"status": "active", "pageSize": OPEN_ORDERS_PAGE_SIZE}
        self._submit("orders", epoch, retry, "fetch_open_orders", params, partial(self._install_orders, epoch))

    def _seed_stops(self, epoch: int, *, retry: bool) -> None:
        params = {"pageSize": OPEN_ORDERS_PAGE_SIZE}
        self._submit("stops", epoch, retry, "fetch_stop_orders", params, partial(self._install_stops, epoch))

    def _seed_wallet(self, currency: str, epoch: int, *, retry: bool) -> None:
        self._submit(("wallet", currency), epoch, retry, "fetch_balance", {"currency": currency},
                     partial(self._install_wallet, epoch))

    def _submit(self, kind: Hashable, epoch: int, retry: bool, operation: str, params: Mapping[str, Any],
                install: Callable[[Any], bool]) -> None:
        if not self._seeds.begin(kind, epoch, self._clock(), retry=retry):
            return
        try:
            future = self._rest.submit_private_get(operation, params)
        except KuCoinError as exc:  # closed under us
            self._seeds.end(kind, epoch, ok=False)
            log.debug("! seed %s not sent: %s", kind, exc)
            return
        future.add_done_callback(partial(self._seed_done, kind, epoch, install))

    def _seed_done(self, kind: Hashable, epoch: int, install: Callable[[Any], bool],
                   future: concurrent.futures.Future) -> None:
        ok = False
        try:
            ok = install(future.result())
        except _CLOSED:
            log.debug("! seed %s dropped: closing", kind)
        except KuCoinError as exc:
            log.warning("! account seed %s failed (%s); REST serves it until a retry succeeds", kind, exc)
        except Exception:  # a thread-pool callback: a bug must be visible
            log.exception("! account seed %s failed", kind)
        finally:
            self._seeds.end(kind, epoch, ok=ok)

    def _install_positions(self, ticket: tuple[int, int], payload: Any) -> bool:
        positions = parse_rest_positions(payload, received_at=self._clock())
        installed = self.cache.install_positions(positions, ticket)
        if installed:
            self._watch_positions(p.symbol for p in positions if p.qty)
        return installed

    def _install_orders(self, epoch: int, payload: Any) -> bool:
        page = parse_rest_open_orders(payload)
        if not page.complete:
            log.warning("! more than %d open orders: the rest are read over REST", OPEN_ORDERS_PAGE_SIZE)
        return self.cache.install_open_orders(page.orders, epoch)

    def _install_stops(self, epoch: int, payload: Any) -> bool:
        stops, complete = parse_rest_stop_orders(payload)
        if not complete:
            log.warning("! more than %d untriggered stops: they are read over REST", OPEN_ORDERS_PAGE_SIZE)
        return self.stops.install(stops, epoch, complete=complete)

    def _install_wallet(self, epoch: int, payload: Any) -> bool:
        return self.cache.install_wallet(parse_rest_account_overview(payload, received_at=self._clock()), epoch)

    def _watch_positions(self, symbols: Iterable[str]) -> None:
        topics = [topic_position(to_kucoin_id(s)) for s in symbols]
        new = [t for t in topics if t not in self._position_topics]
        if new:
            self._position_topics.update(new)
            self.ws.subscribe_topics(new)

    # -- pushes (WebSocket thread) ---------------------------------------------------------------
    def _first(self, key: Hashable) -> bool:
        # True the first time a push is seen; a repeat is dropped.
        if key in self._recent:
            return False
        self._recent[key] = None
        if len(self._recent) > RECENT_PUSHES:
            self._recent.popitem(last=False)
        return True

    def _on_order(self, message: dict[str, Any], now: float, source: object) -> None:
        update = parse_order_change(message, received_at=now)
        if not self._first(("order", update.order_id, update.change, update.trade_id, update.size,
                            update.filled_size, update.canceled_size, update.ts_ms)):
            return
        self.cache.apply_order(update)
        if update.is_fill and update.trade_type in (TradeType.LIQUID, TradeType.ADL):
            log.warning("! %s %s fill of order %s: %s %d at %s", update.symbol, update.trade_type.value,
                        update.order_id, update.side.value, update.fill_size, update.fill_price)
        self.sink.emit(update)

    def _on_stop(self, message: dict[str, Any], now: float, source: object) -> None:
        update = parse_stop_order(message, received_at=now)
        if not self._first(("stop", update.order_id, update.change, update.ts_ms)):
            return
        self.stops.apply(update, pushed_stop_object)
        if update.change is StopChange.TRIGGERED:
            log.info("= %s stop %s triggered (%s %s at %s)", update.symbol, update.order_id, update.stop,
                     update.stop_price_type, update.stop_price)
        self.sink.emit(update)

    def _on_position(self, message: dict[str, Any], now: float, source: object) -> None:
        if _names_no_contract(message):
            return  # a mark update on positionAll: its per-symbol topic brings it with the contract
        change = parse_position_change(message, received_at=now)
        if not self._first(("position", change.symbol, change.ts_ms, change.qty, change.reason, change.mark_price)):
            return
        self.cache.apply_position(change)
        if change.qty:
            self._watch_positions((change.symbol,))
        if change.reason is None:
            return  # a mark-price update: cached, no event
        if change.reason in (PositionChangeReason.LIQUIDATION, PositionChangeReason.ADL):
            log.warning("! %s position %s: now %s", change.symbol, change.reason.value, change.qty)
        elif change.reason is PositionChangeReason.UNKNOWN:
            log.warning("! %s position changed for a reason unknown here: %r", change.symbol,
                        change.info.get("changeReason"))
        self.sink.emit(change)

    def _on_settlement(self, message: dict[str, Any], now: float, source: object) -> None:
        if _names_no_contract(message):
            return  # on positionAll KuCoin's settlement names no contract: the per-symbol topic does
        settlement = parse_funding_settlement(message, received_at=now)
        if not self._first(("funding", settlement.symbol, settlement.funding_time_ms)):
            return
        self.cache.outdate_positions()  # realised PnL moved without a position push
        self._seed_positions(retry=False)
        log.info("= %s funding settled: %+.8g %s at rate %g", settlement.symbol, settlement.fee,
                 settlement.settle_currency, settlement.funding_rate)
        self.sink.emit(settlement)

    def _on_wallet(self, message: dict[str, Any], now: float, source: object) -> None:
        change = parse_wallet_change(message, received_at=now)
        if not self._first(("wallet", message.get("subject"), change.currency, change.version, change.ts_ms,
                            change.available, change.equity)):
            return
        cached = self.cache.apply_wallet(change)
        if cached is not None:
            self.sink.emit(cached)

    # -- health ----------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """The connection's state and counters, what is fresh now, seeds and events."""
        stats = self.ws.stats()
        fresh = self.cache.freshness()
        running = stats.state is State.RUNNING and _heard_lately(stats.quiet_s)
        refused = stats.refused_topics
        queue = self.sink.queue
        return {
            "enabled": True, "state": stats.state.name, "healthy": self.ws.is_healthy(),
            "quiet_s": max(stats.quiet_s) if stats.quiet_s else None,
            "connections": stats.connections, "reconnects": stats.reconnects,
            "connect_failures": stats.connect_failures, "messages": stats.messages, "malformed": stats.malformed,
            "fresh": {"positions": running and fresh["positions"] and TOPIC_POSITION_ALL not in refused,
                      "orders": running and fresh["orders"] and TOPIC_TRADE_ORDERS not in refused,
                      "stops": running and self.stops.fresh() and TOPIC_ADVANCED_ORDERS not in refused,
                      "balances": {c: running and ok and TOPIC_WALLET not in refused
                                   for c, ok in fresh["balances"].items()}},
            "refused_topics": dict(refused),
            "orders_cached": self.cache.order_count(),
            "stops_cached": self.stops.count(),
            "seeds": {"started": self._seeds.started, "failed": self._seeds.failed},
            "events": {"queued": queue.queued, "waiting": len(queue), "dropped": queue.dropped,
                       "callback_errors": self.sink.callback_errors},
            "data_ages_s": {topic: t.age_s for topic, t in stats.topics.items()},
        }


def _heard_lately(quiet_s: tuple[float, ...]) -> bool:
    # A frame arrived on the (one) open connection within MAX_QUIET_S; none open: False.
    return bool(quiet_s) and max(quiet_s) <= MAX_QUIET_S


def _names_no_contract(message: Mapping[str, Any]) -> bool:
    data = message.get("data")
    return message.get("topic") == TOPIC_POSITION_ALL and isinstance(data, dict) and data.get("symbol") is None
