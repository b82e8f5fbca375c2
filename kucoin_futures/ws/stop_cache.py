"""The private feed's stop-order cache: the account's untriggered stops, and when to trust them.

Internal to the private feed (ws/private_feed.py); the companion of ws/account_cache.py, with the
same connection-based freshness: the stops are fresh while the feed's current epoch is live and
they were seeded from REST (``GET /api/v1/stopOrders``) during it. One ``threading.Lock``; under it
only dict operations.

Writers: the WebSocket thread (stopOrder pushes: open, triggered, cancel), REST workers (seeds),
callers' threads (a stop this client placed or cancelled: its REST answer is as good as a push,
and a reader right after it must see it). Readers: any thread.

A triggered or cancelled stop is *gone* for good (it never comes back as untriggered): its id is
remembered, so a seed read before the push, or an "open" push repeated after it, cannot bring it
back. A seed replaces every stop except those pushed or placed in its own epoch (newer than the
read, or a later push follows). KuCoin's stopOrder push lacks the clientOid and the flags
(reduceOnly, closeOrder): a stop known only from a push is *incomplete*, and while one is listed
the cache is not served (the reader asks REST, whose answer seeds the cache again).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from kucoin_futures.protocol.account import StopSnapshot
from kucoin_futures.protocol.private import StopChange, StopOrderUpdate

__all__ = ["CachedStop", "StopCache"]

MAX_GONE = 4096  # ids of triggered or cancelled stops remembered


@dataclass(frozen=True, slots=True)
class CachedStop:
    """One untriggered stop: KuCoin's order object as known (``info``), ``complete`` when it holds
    every field REST lists (seeded, or placed by this client), ``epoch`` of the news."""

    order_id: str
    client_oid: str | None
    symbol: str
    info: Mapping[str, Any]
    complete: bool
    epoch: int


class StopCache:
    """Untriggered stops by exchange id (thread-safe).

    Args:
        live_epoch: the feed's current epoch while its connection is subscribed, else None
            (``AccountCache.live_epoch``).
        epoch: the feed's current epoch, live or not (``AccountCache.epoch``).
    """

    def __init__(self, *, live_epoch: Callable[[], int | None], epoch: Callable[[], int],
                 max_gone: int = MAX_GONE) -> None:
        self._live_epoch = live_epoch
        self._epoch = epoch
        self._max_gone = max_gone
        self._lock = threading.Lock()
        self._stops: dict[str, CachedStop] = {}
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._seeded = -1
        self._listing_complete = False

    def apply(self, update: StopOrderUpdate, object_of: Callable[[StopOrderUpdate], dict[str, Any]]) -> None:
        """Keep a stopOrder push; ``object_of`` builds the order object of a stop seen first here."""
        epoch = self._epoch()
        with self._lock:
            if update.change is not StopChange.OPEN:
                self._gone_one(update.order_id)
                return
            if update.order_id in self._gone:
                return
            known = self._stops.get(update.order_id)
            if known is not None:  # placed by us (the answer came first), or a repeat
                info = known.info
                if info.get("createdAt") is None and update.created_ms is not None:
                    info = MappingProxyType({**info, "createdAt": update.created_ms})
                self._stops[update.order_id] = CachedStop(known.order_id, known.client_oid, known.symbol, info,
                                                          known.complete, epoch)
                return
        info = MappingProxyType(object_of(update))  # outside the lock (ccxt-free, but not trivial)
        with self._lock:
            if update.order_id not in self._gone and update.order_id not in self._stops:
                self._stops[update.order_id] = CachedStop(update.order_id, None, update.symbol, info, False, epoch)

    def note_placed(self, order_id: str, client_oid: str, symbol: str, info: Mapping[str, Any]) -> None:
        """A stop this client placed (its REST answer): complete, unless already gone."""
        epoch = self._epoch()
        with self._lock:
            if order_id in self._gone:
                return
            known = self._stops.get(order_id)
            if known is not None and known.complete:
                return
            merged = {**(known.info if known is not None else {}), **info}  # the push's createdAt stays
            self._stops[order_id] = CachedStop(order_id, client_oid, symbol, MappingProxyType(merged), True, epoch)

    def note_gone(self, order_ids: Iterable[str]) -> None:
        """Stops this client cancelled (or saw triggered) over REST."""
        with self._lock:
            for order_id in order_ids:
                self._gone_one(order_id)

    def install(self, stops: Iterable[StopSnapshot], epoch: int, *, complete: bool) -> bool:
        """Seed the stops read over REST in ``epoch`` (``complete``: every page was read); False if
        the epoch is over."""
        with self._lock:
            if self._live_epoch() != epoch:
                return False
            seeded = {s.order_id: CachedStop(s.order_id, s.client_oid, s.symbol, s.info, True, epoch)
                      for s in stops if s.order_id not in self._gone}
            for order_id, known in self._stops.items():
                if known.epoch == epoch and order_id not in seeded:
                    seeded[order_id] = known  # pushed or placed after the read
            self._stops = seeded
            self._seeded = epoch
            self._listing_complete = complete
            return True

    def stops(self, symbol: str | None = None) -> tuple[CachedStop, ...] | None:
        """The untriggered stops (of ``symbol``, or all), or None when they cannot be served now
        (not fresh, or one is known only from its push)."""
        epoch = self._live_epoch()
        with self._lock:
            if epoch is None or self._seeded != epoch or not self._listing_complete:
                return None
            listed = tuple(s for s in self._stops.values() if symbol is None or s.symbol == symbol)
            if not all(s.complete for s in listed):
                return None
            return listed

    def fresh(self) -> bool:
        """True when every stop could be served now (a stop known only from its push: False)."""
        epoch = self._live_epoch()
        with self._lock:
            return (epoch is not None and self._seeded == epoch and self._listing_complete
                    and all(s.complete for s in self._stops.values()))

    def count(self) -> int:
        with self._lock:
            return len(self._stops)

    def _gone_one(self, order_id: str) -> None:
        assert self._lock.locked()
        self._stops.pop(order_id, None)
        self._gone[order_id] = None
        self._gone.move_to_end(order_id)
        while len(self._gone) > self._max_gone:
            self._gone.popitem(last=False)
