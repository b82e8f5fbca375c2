"""Lock-guarded market-data caches that any thread reads in microseconds.

Three small classes, one ``threading.Lock`` each, holding immutable snapshots (``Ticker``,
``OrderBook``, ``CandleSeries``) stamped with ``received_at`` from the injected monotonic
clock. A getter takes ``max_age_s`` and returns None rather than a value older than that; a
``wait`` blocks (on an Event, never a sleep) until a fresh value arrives or the timeout passes.

Critical sections are dict lookups and assignments. A writer that derives the new value from the
old one (candle merges) computes it outside the lock and swaps it in only if the entry did not
change meanwhile (compare-and-swap), so a reader never waits behind a merge. No I/O, logging or
callback runs while a lock is held.

    TickerCache       symbol -> Ticker
    OrderBookCache    symbol -> OrderBook (a synced book; removed when it goes out of sync)
    CandleCache       (symbol, timeframe) -> CandleSeries (compact columns read as Candles,
                      oldest first, at most max_candles; see kucoin_candles)
"""
from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

from kucoin_futures.protocol.candles import CandleSeries
from kucoin_futures.errors import InvalidArgument
from kucoin_futures.protocol.types import Candle, OrderBook, Ticker

__all__ = ["CandleCache", "CandleSeries", "OrderBookCache", "TickerCache"]

DEFAULT_MAX_CANDLES = 500
CAS_ATTEMPTS = 8  # optimistic merges retried this often before merging under the lock

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Cache(Generic[K, V]):
    """A dict of immutable values with freshness-checked reads and first-value waits."""

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._data: dict[K, V] = {}
        self._waiters: dict[K, list[threading.Event]] = {}

    def keys(self) -> list[K]:
        """Return the keys that currently hold a value."""
        with self._lock:
            return list(self._data)

    def peek(self, key: K) -> V | None:
        """Return the value whatever its age (for writers merging into it), or None."""
        with self._lock:
            return self._data.get(key)

    def discard(self, key: K) -> None:
        """Forget the value of ``key`` (unsubscribed, or no longer trustworthy)."""
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        """Forget every value."""
        with self._lock:
            self._data.clear()

    def _visible_locked(self, key: K) -> bool:
        # Readers see every held value unless a subclass holds some back (CandleCache).
        return True

    def _get(self, key: K, max_age_s: float) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None and not self._visible_locked(key):
                value = None
        if value is None or self._clock() - value.received_at > max_age_s:  # type: ignore[attr-defined]
            return None
        return value

    def _put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            events = self._waiters.pop(key, None) if self._waiters else None
        if events:
            for event in events:
                event.set()

    def _swap(self, key: K, update: Callable[[V | None], V | None],
              on_store: Callable[[], None] | None = None) -> V | None:
        # Compare-and-swap: the new value is computed outside the lock; if another writer
        # replaced the entry meanwhile, recompute from the newer one. on_store runs under the
        # lock right after the store (a set insertion, nothing more).
        for _ in range(CAS_ATTEMPTS):
            with self._lock:
                old = self._data.get(key)
            new = update(old)
            if new is None or new is old:
                return old
            with self._lock:
                if self._data.get(key) is old:
                    self._data[key] = new
                    if on_store is not None:
                        on_store()
                    events = self._waiters.pop(key, None) if self._waiters else None
                    break
        else:  # heavy contention: give up on optimism, merge under the lock (still no I/O)
            with self._lock:
                new = update(self._data.get(key))
                if new is None:
                    return self._data.get(key)
                self._data[key] = new
                if on_store is not None:
                    on_store()
                events = self._waiters.pop(key, None) if self._waiters else None
        if events:
            for event in events:
                event.set()
        return new

    def _wait(self, key: K, timeout_s: float, max_age_s: float) -> V | None:
        deadline = time.monotonic() + timeout_s  # the timeout is real time, whatever the clock
        while True:
            event = threading.Event()
            with self._lock:
                value = self._data.get(key)
                fresh = (value is not None and self._visible_locked(key)
                         and self._clock() - value.received_at <= max_age_s)  # type: ignore[attr-defined]
                if not fresh:
                    self._waiters.setdefault(key, []).append(event)
            if fresh:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not event.wait(remaining):
                self._forget_waiter(key, event)
                return None

    def _forget_waiter(self, key: K, event: threading.Event) -> None:
        with self._lock:
            events = self._waiters.get(key)
            if events is not None and event in events:
                events.remove(event)
                if not events:
                    del self._waiters[key]


class TickerCache(_Cache[str, Ticker]):
    """Latest ticker per unified symbol."""

    def put(self, ticker: Ticker) -> None:
        """Store ``ticker`` as the latest of its symbol."""
        # _put inlined: this runs once per tickerV2 push.
        with self._lock:
            self._data[ticker.symbol] = ticker
            events = self._waiters.pop(ticker.symbol, None) if self._waiters else None
        if events:
            for event in events:
                event.set()

    def get(self, symbol: str, *, max_age_s: float) -> Ticker | None:
        """Return the ticker of ``symbol`` if received within ``max_age_s``, else None."""
        # No lock: a Ticker is immutable and a store replaces it with one dict assignment,
        # which a dict lookup sees whole (old or new) in CPython; every ticker is visible.
        value = self._data.get(symbol)
        if value is None or self._clock() - value.received_at > max_age_s:
            return None
        return value

    def wait(self, symbol: str, *, timeout_s: float, max_age_s: float = float("inf")) -> Ticker | None:
        """Return a ticker no older than ``max_age_s``, waiting up to ``timeout_s`` for one."""
        return self._wait(symbol, timeout_s, max_age_s)


class OrderBookCache(_Cache[str, OrderBook]):
    """Latest synced order book per unified symbol."""

    def put(self, book: OrderBook) -> None:
        """Store ``book`` as the current book of its symbol."""
        self._put(book.symbol, book)

    def get(self, symbol: str, *, max_age_s: float, depth: int | None = None) -> OrderBook | None:
        """Return the book of ``symbol`` (best ``depth`` levels a side) if fresh, else None."""
        return _cut(self._get(symbol, max_age_s), depth)

    def wait(self, symbol: str, *, timeout_s: float, max_age_s: float = float("inf"),
             depth: int | None = None) -> OrderBook | None:
        """Return a book no older than ``max_age_s``, waiting up to ``timeout_s`` for one."""
        return _cut(self._wait(symbol, timeout_s, max_age_s), depth)


def _cut(book: OrderBook | None, depth: int | None) -> OrderBook | None:
    if book is None or depth is None or (len(book.bids) <= depth and len(book.asks) <= depth):
        return book
    if depth < 1:
        raise InvalidArgument(f"depth must be >= 1, not {depth!r}")
    return dataclasses.replace(book, bids=book.bids[:depth], asks=book.asks[:depth])


class CandleCache(_Cache[tuple[str, str], CandleSeries]):
    """Up to ``max_candles`` candles per (unified symbol, timeframe), as ``CandleSeries``.

    A push for the newest period replaces it, a push for a new period appends; REST history
    merges in by period start (the later observation wins), so a candle is never duplicated.
    A series becomes visible to ``get``/``wait`` with its first REST merge (its history):
    pushes that arrive before are kept, but a reader never gets a lone candle for a history.
    ``hide`` holds it back again (a lost connection) until the next merge (the refill).
    """

    def __init__(self, *, clock: Callable[[], float], max_candles: int = DEFAULT_MAX_CANDLES) -> None:
        if not isinstance(max_candles, int) or max_candles < 1:
            raise InvalidArgument(f"max_candles must be an int >= 1, not {max_candles!r}")
        super().__init__(clock=clock)
        self.max_candles = max_candles
        self._ready: set[tuple[str, str]] = set()  # keys whose history has been merged

    def _visible_locked(self, key: tuple[str, str]) -> bool:
        assert self._lock.locked()
        return key in self._ready

    def hide(self, key: tuple[str, str]) -> None:
        """Hold the series back from readers until the next REST merge (it may have a hole)."""
        with self._lock:
            self._ready.discard(key)

    def discard(self, key: tuple[str, str]) -> None:
        """Forget the series of ``key`` (and that its history was loaded)."""
        with self._lock:
            self._data.pop(key, None)
            self._ready.discard(key)

    def clear(self) -> None:
        """Forget every series."""
        with self._lock:
            self._data.clear()
            self._ready.clear()

    def update(self, symbol: str, timeframe: str, candle: Candle) -> CandleSeries:
        """Fold one pushed candle into the series and return the new series."""
        def apply(old: CandleSeries | None) -> CandleSeries:
            if old is None:
                return CandleSeries.from_candles((candle,), candle.received_at)
            return old.pushed(candle, self.max_candles)
        return self._swap((symbol, timeframe), apply)  # type: ignore[return-value]

    def merge(self, symbol: str, timeframe: str, candles: Iterable[Candle], *,
              received_at: float) -> CandleSeries | None:
        """Merge REST history into the series and make it visible (even if there was none)."""
        key = (symbol, timeframe)
        incoming = tuple(candles)

        def apply(old: CandleSeries | None) -> CandleSeries:
            base = old if old is not None else CandleSeries.from_candles((), received_at)
            if not incoming:
                return base.touched(received_at)
            return base.merged(incoming, self.max_candles, received_at=received_at)
        return self._swap(key, apply, on_store=lambda: self._ready.add(key))

    def get(self, symbol: str, timeframe: str, *, max_age_s: float,
            limit: int | None = None) -> CandleSeries | None:
        """Return the newest ``limit`` candles (oldest first) if the series is fresh, else None."""
        return _tail(self._get((symbol, timeframe), max_age_s), limit)

    def wait(self, symbol: str, timeframe: str, *, timeout_s: float, max_age_s: float = float("inf"),
             limit: int | None = None) -> CandleSeries | None:
        """Return fresh candles, waiting up to ``timeout_s`` for the series' first value."""
        return _tail(self._wait((symbol, timeframe), timeout_s, max_age_s), limit)

    def last_start_ms(self, symbol: str, timeframe: str) -> int | None:
        """Return the period start of the newest cached candle, or None when there is none."""
        series = self.peek((symbol, timeframe))
        return None if series is None else series.last_start_ms


def _tail(series: CandleSeries | None, limit: int | None) -> CandleSeries | None:
    if series is None or limit is None:
        return series
    if limit < 1:
        raise InvalidArgument(f"limit must be >= 1, not {limit!r}")
    return series if len(series) <= limit else series[-limit:]
