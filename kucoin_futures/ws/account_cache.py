"""The private feed's caches: the orders, positions and wallets of one account, and when to trust them.

Internal to the private feed (ws/private_feed.py). One ``threading.Lock``; under it only dict
operations and building frozen values (no I/O, logging or callbacks). Writers: the WebSocket
thread (pushes), REST workers (seeds), callers' threads (an order this client placed, an order
read over REST). Readers: any thread.

Freshness is connection-based, not age-based: KuCoin pushes a position or a wallet only when it
changes, so a quiet cache is not an old one. An *epoch* counts connections: ``go_stale`` (the
private connection is lost, or not subscribed yet) starts a new epoch at once; ``go_live`` marks
it subscribed. A cache is fresh while its epoch is live and it was seeded from REST during it;
positions also go out of date (``outdate_positions``) until a new seed at a funding settlement
(KuCoin sends no position push for it) and after each order this client sends (its push may be
lost unseen: read-your-writes). A reader that finds a cache not fresh gets None and asks REST.

Seeds race the pushes: the REST read was sent after the subscription, so a *full* push received
in the same epoch (and generation) is at least as new as the read, or a later push follows; it
wins over the seed for its key. Everything else is replaced by the seed, and keys the seed lacks
that no such push touched are forgotten. Orders are kept differently: a done order is final and
stays valid across epochs; an open one the seed does not list is forgotten (it ended while we
were away; REST knows how).
"""
from __future__ import annotations

import dataclasses
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from kucoin_futures.protocol.account import OrderSnapshot
from kucoin_futures.protocol.private import OrderUpdate, PositionChange, WalletChange

__all__ = ["AccountCache", "Fill", "OrderRecord", "PlacedOrder", "Ticket"]

MAX_ORDERS = 2000  # orders remembered (least recently changed forgotten first)
NO_EPOCH = -1

T = TypeVar("T")
Ticket = tuple[int, int]  # (epoch, generation) a seed was requested in


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    """What this client sent for an order: the fields KuCoin's pushes do not carry."""

    order_id: str
    client_oid: str | None
    symbol: str
    side: str
    order_type: str
    amount: int
    price: float | None
    post_only: bool
    reduce_only: bool
    stop_price: float | None


@dataclass(frozen=True, slots=True)
class Fill:
    """One pushed execution of an order: ``size`` lots at ``price``, ``filled_after`` in all."""

    filled_after: int
    price: float
    size: int


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """Everything known of one order: KuCoin's object (``base``, from REST), what we sent
    (``placed``), the newest push (``last``) and the pushed fills; ``epoch`` of the newest news."""

    order_id: str
    client_oid: str | None
    symbol: str
    base: OrderSnapshot | None = None
    placed: PlacedOrder | None = None
    last: OrderUpdate | None = None
    fills: tuple[Fill, ...] = ()
    epoch: int = NO_EPOCH

    @property
    def is_done(self) -> bool:
        """True once filled or cancelled: final, whatever happens to the connection."""
        if self.last is not None and self.last.is_done:
            return True
        return self.base is not None and not self.base.is_active and (
            self.last is None or self.last.ts_ms <= self.base.updated_ms)

    @property
    def is_complete(self) -> bool:
        """True when every lot filled is accounted for by the base and the pushed fills (none lost)."""
        base_filled = self.base.filled_size if self.base is not None else 0
        filled = max(base_filled, self.last.filled_size if self.last is not None else 0)
        counted = base_filled + sum(f.size for f in self.fills if f.filled_after > base_filled)
        return counted == filled


@dataclass(frozen=True, slots=True)
class _Kept(Generic[T]):
    value: T
    epoch: int
    pushed_gen: int | None  # the generation of a full push that set it (None: seeded or merged)


class AccountCache:
    """Orders by id (and clientOid), positions by symbol, wallets by currency (thread-safe)."""

    def __init__(self, *, clock: Callable[[], float], max_orders: int = MAX_ORDERS) -> None:
        self._clock = clock
        self._max_orders = max_orders
        self._lock = threading.Lock()
        self._epoch = 0
        self._live = False
        self._live_since = math.inf
        self._positions: dict[str, _Kept[PositionChange]] = {}
        self._positions_gen = 0  # +1 at each funding settlement
        self._positions_seeded: Ticket = (NO_EPOCH, 0)
        self._wallets: dict[str, _Kept[WalletChange]] = {}
        self._wallets_seeded: dict[str, int] = {}
        self._wanted_currencies: dict[str, None] = {}
        self._orders: OrderedDict[str, OrderRecord] = OrderedDict()
        self._client_oids: dict[str, str] = {}
        self._orders_seeded = NO_EPOCH

    # -- the connection --------------------------------------------------------------------------
    def go_live(self) -> int:
        """The private connection is subscribed: return the epoch its seeds belong to."""
        with self._lock:
            self._live = True
            self._live_since = self._clock()
            return self._epoch

    def go_stale(self) -> None:
        """The private connection is lost (or not subscribed yet): nothing is fresh from now on."""
        with self._lock:
            self._epoch += 1
            self._live = False
            self._live_since = math.inf

    def epoch(self) -> int:
        """The current epoch, live or not."""
        with self._lock:
            return self._epoch

    def live_epoch(self) -> int | None:
        """The current epoch if the connection is subscribed, else None."""
        with self._lock:
            return self._epoch if self._live else None

    def freshness(self) -> dict[str, Any]:
        """Which caches would be served now: {"live", "positions", "orders", "balances": {cur: bool}}."""
        with self._lock:
            return {"live": self._live, "positions": self._positions_fresh(), "orders": self._orders_fresh(),
                    "balances": {c: self._wallet_fresh(c) for c in self._wanted_currencies}}

    # -- positions -------------------------------------------------------------------------------
    def apply_position(self, change: PositionChange) -> PositionChange | None:
        """Keep a pushed position (a mark update is merged); return what is cached now (None: a
        mark update of a position not known yet)."""
        with self._lock:
            kept = self._positions.get(change.symbol)
            if change.is_partial:
                if kept is None:
                    return None
                merged = _merge_position(kept.value, change)
                self._positions[change.symbol] = _Kept(merged, kept.epoch, kept.pushed_gen)
                return merged
            self._positions[change.symbol] = _Kept(change, self._epoch, self._positions_gen)
            return change

    def positions_ticket(self) -> Ticket:
        """The (epoch, generation) a positions seed requested now belongs to."""
        with self._lock:
            return self._epoch, self._positions_gen

    def outdate_positions(self) -> None:
        """The positions may have changed without a push (funding, an order of ours): stale until a seed."""
        with self._lock:
            self._positions_gen += 1

    def install_positions(self, positions: Iterable[PositionChange], ticket: Ticket) -> bool:
        """Seed the positions read over REST under ``ticket``; False if the ticket is outdated."""
        with self._lock:
            if not self._live or ticket != (self._epoch, self._positions_gen):
                return False
            seeded = {p.symbol: _Kept(p, ticket[0], None) for p in positions}
            seeded.update((symbol, kept) for symbol, kept in self._positions.items()
                          if kept.epoch == ticket[0] and kept.pushed_gen == ticket[1])
            self._positions = seeded
            self._positions_seeded = ticket
            return True

    def positions(self) -> tuple[PositionChange, ...] | None:
        """Every known position (flat ones too), or None when not fresh."""
        with self._lock:
            if not self._positions_fresh():
                return None
            return tuple(kept.value for kept in self._positions.values())

    def _positions_fresh(self) -> bool:
        assert self._lock.locked()
        return self._live and self._positions_seeded == (self._epoch, self._positions_gen)

    # -- wallets ---------------------------------------------------------------------------------
    def apply_wallet(self, change: WalletChange) -> WalletChange | None:
        """Keep a pushed wallet; return it if the cached wallet changed (None: no change, or an
        available-balance push for a wallet not known yet)."""
        with self._lock:
            kept = self._wallets.get(change.currency)
            if change.is_partial:
                if kept is None:
                    return None
                merged = dataclasses.replace(
                    kept.value, available=change.available, ts_ms=change.ts_ms, received_at=change.received_at,
                    hold=change.hold if change.hold is not None else kept.value.hold)
                if _same_wallet(merged, kept.value):
                    return None
                self._wallets[change.currency] = _Kept(merged, kept.epoch, kept.pushed_gen)
                return merged
            self._wallets[change.currency] = _Kept(change, self._epoch, 0)
            return None if kept is not None and _same_wallet(change, kept.value) else change

    def want_currency(self, currency: str) -> bool:
        """Keep the wallet of ``currency`` (a KuCoin id); True if it was not wanted before."""
        with self._lock:
            if currency in self._wanted_currencies:
                return False
            self._wanted_currencies[currency] = None
            return True

    def wanted_currencies(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._wanted_currencies)

    def install_wallet(self, wallet: WalletChange, epoch: int) -> bool:
        """Seed one currency's wallet read over REST in ``epoch``; False if the epoch is over."""
        with self._lock:
            if not self._live or epoch != self._epoch:
                return False
            kept = self._wallets.get(wallet.currency)
            if kept is None or kept.epoch != epoch or kept.pushed_gen is None:
                self._wallets[wallet.currency] = _Kept(wallet, epoch, None)
            self._wallets_seeded[wallet.currency] = epoch
            return True

    def wallet(self, currency: str) -> WalletChange | None:
        """The wallet of ``currency`` (KuCoin id), or None when not fresh."""
        with self._lock:
            return self._wallets[currency].value if self._wallet_fresh(currency) else None

    def _wallet_fresh(self, currency: str) -> bool:
        assert self._lock.locked()
        kept = self._wallets.get(currency)
        if not self._live or kept is None or kept.value.equity is None:
            return False
        return self._wallets_seeded.get(currency) == self._epoch or (
            kept.epoch == self._epoch and kept.pushed_gen is not None)

    # -- orders ----------------------------------------------------------------------------------
    def apply_order(self, update: OrderUpdate) -> OrderRecord:
        """Keep a pushed order change; return the order's record."""
        with self._lock:
            record = self._find(update.order_id, update.client_oid) or OrderRecord(
                update.order_id, update.client_oid, update.symbol)
            fills = record.fills
            if update.is_fill:
                fills += (Fill(update.filled_size, update.fill_price, update.fill_size),)  # type: ignore[arg-type]
            record = dataclasses.replace(record, last=update, fills=fills, epoch=self._epoch,
                                         client_oid=record.client_oid or update.client_oid)
            self._store(record)
            return record

    def note_placed(self, placed: PlacedOrder, *, sent_at: float | None) -> None:
        """Remember what this client sent for an order (sent at monotonic ``sent_at``)."""
        with self._lock:
            record = self._find(placed.order_id, placed.client_oid)
            if record is None:
                # No push yet: complete if the connection was subscribed before the order was sent.
                complete = self._live and sent_at is not None and self._live_since <= sent_at
                record = OrderRecord(placed.order_id, placed.client_oid, placed.symbol,
                                     epoch=self._epoch if complete else NO_EPOCH)
            self._store(dataclasses.replace(record, placed=placed, client_oid=record.client_oid or placed.client_oid))

    def note_order(self, snapshot: OrderSnapshot, epoch: int | None) -> None:
        """Remember KuCoin's object for an order, read over REST while ``epoch`` was live (None: not)."""
        with self._lock:
            current = epoch is not None and self._live and epoch == self._epoch
            record = self._find(snapshot.order_id, snapshot.client_oid)
            if record is None:
                record = OrderRecord(snapshot.order_id, snapshot.client_oid, snapshot.symbol)
            self._store(_rebased(record, snapshot, self._epoch if current else record.epoch))

    def install_open_orders(self, snapshots: Iterable[OrderSnapshot], epoch: int) -> bool:
        """Seed the open orders read over REST in ``epoch``; False if the epoch is over."""
        with self._lock:
            if not self._live or epoch != self._epoch:
                return False
            listed = {snapshot.order_id: snapshot for snapshot in snapshots}
            for order_id, record in list(self._orders.items()):
                snapshot = listed.pop(order_id, None)
                if snapshot is not None:
                    self._orders[order_id] = _rebased(record, snapshot, epoch)
                elif not record.is_done and record.epoch != epoch:
                    self._forget(order_id)  # ended while we were away, or never complete
            for snapshot in listed.values():
                self._store(_rebased(OrderRecord(snapshot.order_id, snapshot.client_oid, snapshot.symbol),
                                     snapshot, epoch))
            self._orders_seeded = epoch
            return True

    def order(self, order_id: str | None = None, client_oid: str | None = None) -> OrderRecord | None:
        """The record of an order if it can be served now (fresh, complete, with KuCoin's or our
        static fields), else None."""
        with self._lock:
            if not self._orders_fresh():
                return None
            record = self._find(order_id, client_oid)
            if record is None or (record.base is None and (record.placed is None or record.last is None)):
                return None
            if not (record.is_done or record.epoch == self._epoch) or not record.is_complete:
                return None
            return record

    def order_count(self) -> int:
        with self._lock:
            return len(self._orders)

    def _orders_fresh(self) -> bool:
        assert self._lock.locked()
        return self._live and self._orders_seeded == self._epoch

    def _find(self, order_id: str | None, client_oid: str | None) -> OrderRecord | None:
        assert self._lock.locked()
        if order_id is None and client_oid is not None:
            order_id = self._client_oids.get(client_oid)
        return self._orders.get(order_id) if order_id is not None else None

    def _store(self, record: OrderRecord) -> None:
        assert self._lock.locked()
        self._orders[record.order_id] = record
        self._orders.move_to_end(record.order_id)
        if record.client_oid is not None:
            self._client_oids[record.client_oid] = record.order_id
        while len(self._orders) > self._max_orders:
            self._forget(next(iter(self._orders)))

    def _forget(self, order_id: str) -> None:
        assert self._lock.locked()
        record = self._orders.pop(order_id)
        if record.client_oid is not None and self._client_oids.get(record.client_oid) == order_id:
            del self._client_oids[record.client_oid]


def _rebased(record: OrderRecord, snapshot: OrderSnapshot, epoch: int) -> OrderRecord:
    base = record.base
    if base is None or snapshot.updated_ms >= base.updated_ms:
        base = snapshot
    return dataclasses.replace(record, base=base, epoch=epoch, client_oid=record.client_oid or snapshot.client_oid)


def _merge_position(known: PositionChange, mark: PositionChange) -> PositionChange:
    # A mark-price update carries only the mark fields: lay them over the known position.
    info: Mapping[str, Any] = MappingProxyType({**known.info, **mark.info})
    changes = {name: getattr(mark, name) for name in ("mark_price", "unrealised_pnl", "liquidation_price",
                                                      "realised_pnl") if getattr(mark, name) is not None}
    return dataclasses.replace(known, ts_ms=mark.ts_ms, received_at=mark.received_at, info=info, **changes)


def _same_wallet(a: WalletChange, b: WalletChange) -> bool:
    return (a.available, a.hold, a.equity, a.wallet_balance) == (b.available, b.hold, b.equity, b.wallet_balance)
