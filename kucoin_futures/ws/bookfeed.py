"""Level-2 order books on the WebSocket thread: REST snapshot + sequenced deltas, with resyncs.

Internal to ``kucoin_websocket``; not thread-safe (the WebSocket thread only), no I/O, ``now``
passed in. Follows KuCoin's procedure (protocol notes section 11.1) through ``L2Book``: a book is
attached to the connection whose level-2 subscribe was acknowledged, buffers that connection's
deltas and asks its owner for a REST snapshot (``request_snapshot``); the owner fetches it off
the thread and hands it to ``apply_snapshot``. A gap, a malformed delta, a sequence regression
after live deltas or a crossed book after a batch of deltas drops the book from the cache at once
and asks for a new snapshot (a resync, counted per symbol). A changed book is published at most
once per socket read (``end_of_batch``), then the ``on_order_book`` callback runs, outside every
lock.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kucoin_futures.ws.caches import OrderBookCache
from kucoin_futures.protocol.candles import slots_constructor
from kucoin_futures.errors import ProtocolError
from kucoin_futures.protocol.book import BookStatus, L2Book
from kucoin_futures.protocol.parse import parse_level2
from kucoin_futures.protocol.types import BookDelta, OrderBook, Side
from kucoin_futures.protocol.wire import TOPIC_LEVEL2

__all__ = ["BookFeed", "fast_level2"]

log = logging.getLogger(__name__)

_LEVEL2_PREFIX = TOPIC_LEVEL2 + ":"
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
_INF = float("inf")
_new_delta = slots_constructor(BookDelta)


def fast_level2(message: dict[str, Any], symbol: str) -> BookDelta:
    """Return ``parse_level2(message)`` for a push already known to be ``symbol``'s.

    The protocol layer's parser minus its generality (no regex on the topic); anything unusual
    goes to ``parse_level2``, so both give equal values and raise the same ``ProtocolError``.
    """
    try:
        data = message["data"]
        sequence = data["sequence"]
        ts_ms = data["timestamp"]
        price, side, size = data["change"].split(",")
        # isdecimal: int() would also take "-5", "+5", " 5" and "5_0", which read_int refuses.
        if type(sequence) is not int or type(ts_ms) is not int or not size.isdecimal():
            raise TypeError
        price_f = float(price)
        if not 0.0 < price_f < _INF:  # also false for nan
            raise ValueError
        return _new_delta(symbol, sequence, price_f, _SIDES[side], int(size), ts_ms)
    except (KeyError, TypeError, ValueError, AttributeError):
        return parse_level2(message, received_at=0.0)


class _Book:
    """One symbol's level-2 state."""

    __slots__ = ("book", "kucoin_id", "live", "resyncs", "source", "symbol")

    def __init__(self, symbol: str, kucoin_id: str) -> None:
        self.symbol = symbol
        self.kucoin_id = kucoin_id
        self.book = L2Book(symbol)
        self.source: object | None = None  # the connection whose deltas feed this book
        self.live = False  # a live delta was applied since the last snapshot
        self.resyncs = 0


class BookFeed:
    """The wanted level-2 books, kept in sync and published to an ``OrderBookCache``."""

    def __init__(self, *, cache: OrderBookCache, request_snapshot: Callable[[str], object],
                 on_order_book: Callable[[OrderBook], object] | None = None,
                 depth: int | None = None) -> None:
        self._cache = cache
        self._request_snapshot = request_snapshot
        self._on_order_book = on_order_book
        self._depth = depth
        self._by_id: dict[str, _Book] = {}  # KuCoin id -> book, for wanted books
        self._dirty: dict[str, _Book] = {}

    # -- what to keep ---------------------------------------------------------------------------
    def want(self, symbol: str, kucoin_id: str) -> None:
        """Keep a book of ``symbol`` (it syncs once a connection is attached)."""
        if kucoin_id not in self._by_id:
            self._by_id[kucoin_id] = _Book(symbol, kucoin_id)

    def unwant(self, kucoin_id: str) -> None:
        """Drop the book of ``kucoin_id`` and its cached snapshot."""
        state = self._by_id.pop(kucoin_id, None)
        if state is not None:
            self._dirty.pop(state.symbol, None)
            self._cache.discard(state.symbol)

    def attach(self, kucoin_id: str, source: object) -> None:
        """Feed the book from ``source`` (its subscribe was acked there) and sync it anew."""
        state = self._by_id.get(kucoin_id)
        if state is not None:
            state.source = source
            self._restart(state, resync=False)

    def detach(self, source: object) -> None:
        """``source`` is gone: every book it fed is out of sync until re-attached."""
        for state in self._by_id.values():
            if state.source is source:
                state.source = None
                state.book.reset()
                state.live = False
                self._dirty.pop(state.symbol, None)
                self._cache.discard(state.symbol)

    def needs_snapshot(self, kucoin_id: str) -> bool:
        """True if the book is wanted, attached and still waiting for a usable snapshot."""
        state = self._by_id.get(kucoin_id)
        return state is not None and state.source is not None and not state.book.is_synced

    def apply_snapshot(self, snapshot: OrderBook, kucoin_id: str, now: float) -> BookStatus | None:
        """Load a REST snapshot; ``GAP``: fetch a newer one; None: the book is not wanted."""
        state = self._by_id.get(kucoin_id)
        if state is None or state.source is None:
            return None
        if state.book.is_synced:
            return BookStatus.STALE  # a resync raced a later snapshot; the book is fine
        status = state.book.apply_snapshot(snapshot)
        if status is BookStatus.OK:
            state.live = False
            self._dirty[state.symbol] = state
            self.end_of_batch(now)
        return status

    def resync_counts(self) -> dict[str, int]:
        """Return resyncs per unified symbol (safe to call from any thread)."""
        return {state.symbol: state.resyncs for state in list(self._by_id.values())}

    # -- pushes ---------------------------------------------------------------------------------
    def on_level2(self, message: dict[str, Any], now: float, source: object) -> None:
        """Apply one level-2 push; a malformed one raises ``ProtocolError`` (and resyncs its book)."""
        topic = message.get("topic")
        if type(topic) is not str or not topic.startswith(_LEVEL2_PREFIX):
            return  # level2Depth5/50 share the subject; we never subscribe to them
        state = self._by_id.get(topic[len(_LEVEL2_PREFIX):])
        if state is None or state.source is not source:
            return  # not wanted, or a connection that does not feed this book (renewal overlap)
        try:
            delta = fast_level2(message, state.symbol)
        except ProtocolError:
            # The frame used up a sequence number all the same: whatever change it carried is
            # lost, exactly as with a gap. (While unsynced, the hole it leaves in the buffer
            # makes the snapshot's replay report the gap, as for a lost delta.)
            if state.book.is_synced:
                log.info("= %s malformed level2 delta: resync", state.symbol)
                self._restart(state, resync=True)
            raise
        status = state.book.apply(delta)
        if status is BookStatus.OK:
            state.live = True
            self._dirty[state.symbol] = state
        elif status is BookStatus.GAP:
            log.info("= %s level2 gap before sequence %d: resync", state.symbol, delta.sequence)
            self._restart(state, resync=True, keep_buffer=True)
        elif status is BookStatus.STALE and state.live:
            log.info("= %s level2 sequence went back to %d: resync", state.symbol, delta.sequence)
            self._restart(state, resync=True)

    def end_of_batch(self, now: float) -> None:
        """Publish the books changed since the last call (once per socket read)."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        published: list[OrderBook] = []
        for state in dirty.values():
            book = state.book.snapshot(received_at=now, depth=self._depth)
            if book is None:
                continue
            if book.bids and book.asks and book.bids[0][0] >= book.asks[0][0]:
                log.info("= %s book crossed at sequence %d (bid %s >= ask %s): resync",
                         state.symbol, book.sequence, book.bids[0][0], book.asks[0][0])
                self._restart(state, resync=True)
                continue
            self._cache.put(book)
            published.append(book)
        if self._on_order_book is not None:
            for book in published:
                try:
                    self._on_order_book(book)
                except Exception:  # a user bug must not kill the feed
                    log.exception("callback %r raised; the feed continues", self._on_order_book)

    def _restart(self, state: _Book, *, resync: bool, keep_buffer: bool = False) -> None:
        if resync:
            state.resyncs += 1
        if not keep_buffer:
            state.book.reset()  # on a gap L2Book already reset itself and kept the delta
        state.live = False
        self._dirty.pop(state.symbol, None)
        self._cache.discard(state.symbol)
        if state.source is not None:
            self._request_snapshot(state.kucoin_id)
