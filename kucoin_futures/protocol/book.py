"""Pure market-data state: a level-2 book kept in sync from snapshot + deltas.

No I/O, no clock, no locks: the owner (a cache or the WebSocket thread) serialises access and
passes receipt times in. ``L2Book`` follows KuCoin's level-2 procedure (protocol notes section
11.1): buffer deltas, load a REST snapshot with sequence S, drop buffered deltas <= S, apply the
rest in order; afterwards every delta must be exactly last + 1, otherwise the book reports a gap
and must be re-synced from a new snapshot.
"""
from __future__ import annotations

import enum
import heapq
from collections import deque

from kucoin_futures.errors import InvalidArgument
from kucoin_futures.protocol.types import (
    SOURCE_WEBSOCKET,
    BookDelta,
    OrderBook,
    PriceLevel,
    Side,
    Source,
)

__all__ = ["BookStatus", "L2Book"]

DEFAULT_MAX_BUFFERED_DELTAS = 10_000  # bound memory while a snapshot is being fetched


class BookStatus(enum.StrEnum):
    """What applying a delta or a snapshot did to an ``L2Book``."""

    OK = "ok"  # applied; the book is in sync
    BUFFERED = "buffered"  # book not synced yet: delta kept for the next snapshot
    STALE = "stale"  # sequence already applied (duplicate or replay): ignored
    GAP = "gap"  # a sequence is missing: book out of sync, fetch a new snapshot


class L2Book:
    """Level-2 order book of one symbol, synced from a REST snapshot plus WS deltas."""

    def __init__(self, symbol: str, *, max_buffered: int = DEFAULT_MAX_BUFFERED_DELTAS) -> None:
        self._symbol = symbol
        self._bids: dict[float, int] = {}
        self._asks: dict[float, int] = {}
        self._sequence: int | None = None  # None = not synced
        self._ts_ms = 0
        # Oldest deltas fall out when full; the next snapshot then reports a gap and is retried.
        self._buffer: deque[BookDelta] = deque(maxlen=max_buffered)

    @property
    def symbol(self) -> str:
        """The unified symbol this book tracks."""
        return self._symbol

    @property
    def sequence(self) -> int | None:
        """Sequence of the last applied change, or None while not synced."""
        return self._sequence

    @property
    def is_synced(self) -> bool:
        """True once a snapshot and the buffered deltas after it have been applied."""
        return self._sequence is not None

    def reset(self) -> None:
        """Forget the book and the buffer (new connection: sequences start over)."""
        self._bids.clear()
        self._asks.clear()
        self._sequence = None
        self._buffer.clear()

    def apply(self, delta: BookDelta) -> BookStatus:
        """Apply one delta, or buffer it while the book waits for a snapshot."""
        self._check_symbol(delta.symbol)
        if self._sequence is None:
            self._buffer.append(delta)
            return BookStatus.BUFFERED
        if delta.sequence <= self._sequence:
            return BookStatus.STALE
        if delta.sequence != self._sequence + 1:
            # Keep the delta: it may be the first one after the next snapshot.
            self.reset()
            self._buffer.append(delta)
            return BookStatus.GAP
        self._set_level(delta)
        return BookStatus.OK

    def apply_snapshot(self, snapshot: OrderBook) -> BookStatus:
        """Load a REST snapshot and replay the buffered deltas newer than it.

        Returns ``GAP`` (book stays unsynced, buffer kept) when the buffered deltas do not
        continue the snapshot's sequence, i.e. the snapshot is older than the first buffered
        delta or the buffer itself has a hole; fetch a newer snapshot then.
        """
        self._check_symbol(snapshot.symbol)
        newer = sorted({d.sequence: d for d in self._buffer if d.sequence > snapshot.sequence}.values(),
                       key=lambda d: d.sequence)
        expected = snapshot.sequence + 1
        for delta in newer:
            if delta.sequence != expected:
                return BookStatus.GAP
            expected += 1
        self._bids = {price: size for price, size in snapshot.bids if size > 0}
        self._asks = {price: size for price, size in snapshot.asks if size > 0}
        self._sequence = snapshot.sequence
        self._ts_ms = snapshot.ts_ms
        self._buffer.clear()
        for delta in newer:
            self._set_level(delta)
        return BookStatus.OK

    def snapshot(self, *, received_at: float, depth: int | None = None,
                 source: Source = SOURCE_WEBSOCKET) -> OrderBook | None:
        """Return the current book (best ``depth`` levels per side), or None while not synced."""
        if self._sequence is None:
            return None
        return OrderBook(
            symbol=self._symbol,
            bids=_best(self._bids, depth, highest=True),
            asks=_best(self._asks, depth, highest=False),
            sequence=self._sequence,
            ts_ms=self._ts_ms,
            received_at=received_at,
            source=source,
        )

    def _set_level(self, delta: BookDelta) -> None:
        # KuCoin sends the new absolute size at the price; 0 removes the level.
        levels = self._bids if delta.side is Side.BUY else self._asks
        if delta.size == 0:
            levels.pop(delta.price, None)
        else:
            levels[delta.price] = delta.size
        self._sequence = delta.sequence
        self._ts_ms = delta.ts_ms

    def _check_symbol(self, symbol: str) -> None:
        if symbol != self._symbol:
            raise InvalidArgument(f"{symbol} update given to the {self._symbol} book")


def _best(levels: dict[float, int], depth: int | None, *, highest: bool) -> tuple[PriceLevel, ...]:
    if depth is None or depth >= len(levels):
        prices = sorted(levels, reverse=highest)
    elif highest:
        prices = heapq.nlargest(depth, levels)
    else:
        prices = heapq.nsmallest(depth, levels)
    return tuple((price, levels[price]) for price in prices)
