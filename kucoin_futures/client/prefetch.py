"""Subscribe a whole universe at once and wait once for its first data (KuCoinClient.prefetch).

A first read of a symbol subscribes it and waits up to ``FIRST_READ_WAIT_S`` for its own data;
a scan of 25 symbols so pays 50 subscribe round trips and 25 kline-history fetches one after
another (~1.4 s on loopback, where plain REST takes ~0.2 s). A prefetch sends every subscribe
first, so the acks, the pushes and the history fetches overlap, then waits once for all of it
under one deadline. Data that misses the deadline is only reported (``PrefetchResult.missing``):
reads of it fall back to REST as usual.

The series to prefetch are the client's subscription keys: ``("ticker", symbol)``,
``("candles", symbol, timeframe)`` and ``("book", symbol)``.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kucoin_futures.errors import InvalidArgument
from kucoin_futures.protocol.types import timeframe_seconds

if TYPE_CHECKING:
    from kucoin_futures.ws.client import KuCoinWebSocket

__all__ = ["PrefetchResult", "plan_prefetch", "run_prefetch"]

Key = tuple[str, ...]
OnSymbolDone = Callable[[str], object]
MAX_TIMEOUT_S = 3600.0  # a longer Condition.wait overflows (threading.TIMEOUT_MAX) on some platforms


@dataclass(frozen=True, slots=True)
class PrefetchResult:
    """What a prefetch found in the WebSocket cache when it returned.

    ``ready``: the symbols (in the order given, each once) whose every requested series arrived,
    so their next reads are served from the cache. ``missing``: the others, whose reads fall back
    to REST until their data arrives (with the WebSocket disabled: every symbol).
    """

    ready: tuple[str, ...]
    missing: tuple[str, ...]


def plan_prefetch(symbols: Iterable[str], timeframes: Iterable[str], *, tickers: bool, order_books: bool,
                  timeout_s: float, on_symbol_done: OnSymbolDone | None = None) -> tuple[tuple[str, ...], list[Key]]:
    """Return (the symbols once each, in order; the keys to subscribe) for a prefetch.

    Checks everything that needs no market list; the caller checks each symbol is a market.

    Raises:
        InvalidArgument: a str where a collection belongs, an unknown timeframe, a bad timeout,
            a flag that is not a bool, an ``on_symbol_done`` that is not callable.
    """
    if on_symbol_done is not None and not callable(on_symbol_done):
        raise InvalidArgument(f"on_symbol_done must be callable or None, got {on_symbol_done!r}")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 <= timeout_s <= MAX_TIMEOUT_S:
        raise InvalidArgument(f"timeout_s must be a number from 0 to {MAX_TIMEOUT_S:g}, got {timeout_s!r}")
    for name, flag in (("tickers", tickers), ("order_books", order_books)):
        if not isinstance(flag, bool):
            raise InvalidArgument(f"{name} must be True or False, got {flag!r}")
    unique, frames = _strings("symbols", symbols), _strings("timeframes", timeframes)
    for timeframe in frames:
        timeframe_seconds(timeframe)  # InvalidArgument for an unknown timeframe
    keys: list[Key] = []
    for symbol in unique:
        if tickers:
            keys.append(("ticker", symbol))
        keys.extend(("candles", symbol, timeframe) for timeframe in frames)
        if order_books:
            keys.append(("book", symbol))
    return unique, keys


def _strings(name: str, values: Iterable[str]) -> tuple[str, ...]:
    # Each once, in order. A str is refused: iterating "BTC/USDT:USDT" would give characters.
    try:
        items = None if isinstance(values, str) else tuple(values)
    except TypeError as exc:
        raise InvalidArgument(f"{name} must be a collection of str, got {values!r}") from exc
    if items is None or not all(isinstance(item, str) for item in items):
        raise InvalidArgument(f"{name} must be a collection of str, got {values!r}")
    return tuple(dict.fromkeys(items))


def run_prefetch(ws: KuCoinWebSocket, symbols: tuple[str, ...], keys: list[Key], *, subscribe: list[Key],
                 timeout_s: float, ticker_max_age_s: float, book_max_age_s: float,
                 on_symbol_done: OnSymbolDone | None = None) -> PrefetchResult:
    """Subscribe the keys in ``subscribe`` (the others already are), then wait for all ``keys``,
    calling ``on_symbol_done(symbol)`` as the wait for a symbol's last key ends."""
    for key in subscribe:  # queued to the WebSocket thread, which sends them in batches
        _subscribe_key(ws, key)
    arrived = _wait_for_keys(ws, keys, timeout_s=timeout_s, ticker_max_age_s=ticker_max_age_s,
                            book_max_age_s=book_max_age_s, on_symbol_done=on_symbol_done)
    return _summarize(symbols, keys, arrived)


def _subscribe_key(ws: KuCoinWebSocket, key: Key) -> None:
    if key[0] == "ticker":
        ws.subscribe_ticker(key[1])
    elif key[0] == "candles":
        ws.subscribe_candles(key[1], key[2])
    else:
        ws.subscribe_order_book(key[1])


def _wait_for_keys(ws: KuCoinWebSocket, keys: list[Key], *, timeout_s: float, ticker_max_age_s: float,
                  book_max_age_s: float, on_symbol_done: OnSymbolDone | None) -> set[Key]:
    # Fresh means what the client's reads mean by it, so a key that arrived is served from the cache.
    deadline = time.monotonic() + timeout_s  # real time, like the caches' own waits
    arrived: set[Key] = set()
    last_key = {key[1]: key for key in keys}  # a symbol's wait ends with its last key's
    for key in keys:
        remaining = max(0.0, deadline - time.monotonic())
        if key[0] == "ticker":
            value = ws.wait_for_ticker(key[1], timeout_s=remaining, max_age_s=ticker_max_age_s)
        elif key[0] == "candles":
            value = ws.wait_for_candles(key[1], key[2], timeout_s=remaining,
                                        max_age_s=timeframe_seconds(key[2]) / 2)
        else:
            value = ws.wait_for_order_book(key[1], timeout_s=remaining, max_age_s=book_max_age_s)
        if value is not None:
            arrived.add(key)
        if on_symbol_done is not None and last_key[key[1]] is key:
            on_symbol_done(key[1])
    return arrived


def _summarize(symbols: tuple[str, ...], keys: list[Key], arrived: set[Key]) -> PrefetchResult:
    incomplete = {key[1] for key in keys if key not in arrived}
    return PrefetchResult(ready=tuple(s for s in symbols if s not in incomplete),
                          missing=tuple(s for s in symbols if s in incomplete))
