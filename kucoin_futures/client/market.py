"""KuCoinClient's market data: the WebSocket cache when it is fresh, else REST; ``source`` says which.

Internal to kucoin_client (the facade delegates ``get_ticker``, ``get_ohlcv``,
``get_order_book`` and ``prefetch`` here). Freshness: a ticker or book within its max age
(10 s by default), candles while the newest was refreshed within half a candle. The first read
of a series subscribes it and waits up to ``first_read_wait_s`` for WebSocket data; a series
without fresh data is served from REST on the client's scheduler (NORMAL) and logged once
(``DegradedLog``). The ticker read of a subscribed symbol with a fresh cache is the hot path: a
set membership test, the cache read, a dict copy; no lock.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from operator import methodcaller
from typing import Any

from kucoin_futures.client.ccxt_shapes import (
    OHLCV,
    OhlcvMemo,
    candles_to_ccxt,
    order_book_to_ccxt,
    ticker_to_ccxt,
)
from kucoin_futures.client.health import DegradedLog, SourceCounts
from kucoin_futures.client.prefetch import PrefetchResult, plan_prefetch, run_prefetch
from kucoin_futures.errors import InvalidArgument
from kucoin_futures.protocol.parse import parse_rest_mark_price, parse_rest_order_book, parse_rest_ticker
from kucoin_futures.protocol.types import MarkPrice, Ticker, timeframe_seconds, to_kucoin_id
from kucoin_futures.rest.gateway import RestGateway
from kucoin_futures.rest.public import PATH_LEVEL2_SNAPSHOT, fetch_klines
from kucoin_futures.scheduling.pools import Priority
from kucoin_futures.ws.client import KuCoinWebSocket

__all__ = ["MAX_OHLCV_LIMIT", "PATH_TICKER", "PREFETCH_TIMEOUT_S", "MarketData"]

log = logging.getLogger(__name__)

PREFETCH_TIMEOUT_S = 5.0  # prefetch's one wait for a universe's first data (connect, acks, history)
MAX_OHLCV_LIMIT = 500  # candles kept per symbol and timeframe
PATH_TICKER = "/api/v1/ticker"


class MarketData:
    """Market-data reads of one client (thread-safe). ``ensure_started`` starts the client (its
    lifecycle is the facade's); the facade sets ``closed`` when it closes."""

    def __init__(self, *, gateway: RestGateway, ws: KuCoinWebSocket | None, ensure_started: Callable[[], None],
                 ticker_max_age_s: float, book_max_age_s: float, first_read_wait_s: float,
                 clock: Callable[[], float], wall_clock: Callable[[], float]) -> None:
        self._gateway = gateway
        self._ws = ws
        self._ensure_started = ensure_started
        self._ticker_max_age_s = ticker_max_age_s
        self._book_max_age_s = book_max_age_s
        self._first_read_wait_s = first_read_wait_s
        self._clock = clock
        self._wall_clock = wall_clock
        self.closed = False  # set by the facade's close(); read without a lock on the hot path
        self._lock = threading.Lock()  # the subscribed set
        self._subscribed: set[tuple[str, ...]] = set()
        # Symbols whose ticker is subscribed (so known valid): get_ticker's hot path reads this
        # set without a lock (a membership test of a set only ever added to is atomic).
        self._live_tickers: set[str] = set()
        # symbol -> (the cached Ticker last converted, its ccxt dict): a cache hit on an unchanged
        # ticker costs a dict copy instead of a conversion. Races only convert twice.
        self._ticker_dicts: dict[str, tuple[Ticker, dict[str, Any]]] = {}
        self.counts = SourceCounts()
        self._degraded = DegradedLog()
        self._degraded_keys = self._degraded.keys  # series served from REST now (hot-path test)
        self._ohlcv_memo = OhlcvMemo()  # converted rows of unchanged candle series

    def get_ticker(self, symbol: str) -> dict[str, Any]:
        """Return ccxt's ticker for `symbol`, plus `source` ("websocket" or "rest")."""
        ws = self._ws
        # Hot path, a few microseconds: a subscribed (hence validated) symbol with a fresh cache.
        if ws is not None and not self.closed and isinstance(symbol, str) and symbol in self._live_tickers:
            ticker = ws.get_ticker(symbol, max_age_s=self._ticker_max_age_s)
            if ticker is not None:
                return self._ticker_from_cache(ticker)
        self._check_symbol(symbol)
        if ws is not None:
            if self._subscribe(("ticker", symbol), ws.subscribe_ticker, symbol):
                ticker = ws.wait_for_ticker(symbol, timeout_s=self._first_read_wait_s,
                                            max_age_s=self._ticker_max_age_s)
                self._live_tickers.add(symbol)
            else:
                ticker = ws.get_ticker(symbol, max_age_s=self._ticker_max_age_s)
            if ticker is not None:
                return self._ticker_from_cache(ticker)
            self._degraded.fell_back(("ticker", symbol))
        payload = self._rest_get(PATH_TICKER, {"symbol": to_kucoin_id(symbol)})
        self._count("rest")
        return ticker_to_ccxt(parse_rest_ticker(payload, received_at=self._clock()))

    def get_ohlcv(self, symbol: str, timeframe: str = "1m", limit: int = 100) -> OHLCV:
        """Return the newest `limit` candles, oldest first: [ts_ms, open, high, low, close, volume].

        The last row is the candle in progress. Served from the WebSocket cache while its newest
        candle was refreshed within half a candle, otherwise from REST kline history.
        """
        step_s = timeframe_seconds(timeframe)  # InvalidArgument for an unknown timeframe
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_OHLCV_LIMIT:
            raise InvalidArgument(f"limit must be an int from 1 to {MAX_OHLCV_LIMIT}, got {limit!r}")
        ws = self._ws
        key = ("candles", symbol, timeframe)
        # A subscribed series was validated when it was subscribed: skip the market check.
        if ws is None or self.closed or not isinstance(symbol, str) or key not in self._subscribed:
            self._check_symbol(symbol)
        if ws is not None:
            max_age_s = step_s / 2
            if key not in self._subscribed and self._subscribe(key, ws.subscribe_candles, symbol, timeframe):
                candles = ws.wait_for_candles(symbol, timeframe, timeout_s=self._first_read_wait_s,
                                              max_age_s=max_age_s)
            else:
                candles = ws.get_candles(symbol, timeframe, max_age_s=max_age_s)
            if candles and len(candles) >= limit:
                if self._degraded_keys:
                    self._degraded.recovered(key)
                return self._served_rows(self._ohlcv_memo.rows(key, candles, limit), "websocket")
            self._degraded.fell_back(key)
        # Windows of under 200 periods (kucoin_restfeed.fetch_klines): KuCoin's docs give 200 or
        # 500 rows a call (protocol notes section 7.1) and do not say which end a longer range
        # loses, so one call for `limit` > 200 could miss the newest candles.
        now_ms = int(self._wall_clock() * 1000)
        candles = fetch_klines(self._rest_get, to_kucoin_id(symbol), timeframe,
                               from_ms=now_ms - limit * step_s * 1000, to_ms=now_ms, received_at=self._clock())
        return self._served_rows(candles_to_ccxt(candles, limit), "rest")

    def get_order_book(self, symbol: str, limit: int = 20) -> dict[str, Any]:
        """Return ccxt's order book with `limit` levels per side, plus `source`."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidArgument(f"limit must be a positive int, got {limit!r}")
        self._check_symbol(symbol)
        if self._ws is not None:
            key = ("book", symbol)
            if self._subscribe(key, self._ws.subscribe_order_book, symbol):
                book = self._ws.wait_for_order_book(symbol, timeout_s=self._first_read_wait_s,
                                                    max_age_s=self._book_max_age_s)
            else:
                book = self._ws.get_order_book(symbol, max_age_s=self._book_max_age_s)
            if book is not None:
                self._degraded.recovered(key)
                self._count("websocket")
                return order_book_to_ccxt(book, limit)
            self._degraded.fell_back(key)
        payload = self._rest_get(PATH_LEVEL2_SNAPSHOT, {"symbol": to_kucoin_id(symbol)})
        self._count("rest")
        return order_book_to_ccxt(parse_rest_order_book(payload, received_at=self._clock()), limit)

    def prefetch(self, symbols: Iterable[str], *, timeframes: Iterable[str] = ("1m",), tickers: bool = True,
                 order_books: bool = False, timeout_s: float = PREFETCH_TIMEOUT_S,
                 on_symbol_done: Callable[[str], object] | None = None) -> PrefetchResult:
        """KuCoinClient.prefetch (see its docstring): subscribe many series at once, wait once."""
        unique, keys = plan_prefetch(symbols, timeframes, tickers=tickers, order_books=order_books,
                                     timeout_s=timeout_s, on_symbol_done=on_symbol_done)
        self._ensure_started()
        for symbol in unique:
            self._check_symbol(symbol)
        ws = self._ws
        if ws is None:
            if on_symbol_done is not None:
                for symbol in unique:
                    on_symbol_done(symbol)
            return PrefetchResult(ready=(), missing=unique)
        with self._lock:
            new = [key for key in keys if key not in self._subscribed]
            self._subscribed.update(new)
        self._live_tickers.update(key[1] for key in keys if key[0] == "ticker")
        result = run_prefetch(ws, unique, keys, subscribe=new, timeout_s=timeout_s,
                              ticker_max_age_s=self._ticker_max_age_s, book_max_age_s=self._book_max_age_s,
                              on_symbol_done=on_symbol_done)
        log.debug("prefetched %d symbols: %d ready, %d missing", len(unique), len(result.ready), len(result.missing))
        return result

    def get_mark_price(self, symbol: str, *, priority: Priority = Priority.NORMAL) -> MarkPrice:
        """The mark and index prices of ``symbol``, from REST (GET mark-price/{symbol}/current)."""
        self._check_symbol(symbol)
        fetch = methodcaller("futuresPublicGetMarkPriceSymbolCurrent", {"symbol": to_kucoin_id(symbol)})
        payload = self._gateway.call(priority, "fetch_mark_price", fetch)
        return parse_rest_mark_price(payload, received_at=self._clock())

    def reference_price(self, symbol: str, price_type: str) -> float:
        """The current price a stop of ``price_type`` ("last", "mark", "index") watches, read
        fresh for a stop being placed: mark and index from REST at CRITICAL, the last trade from
        the ticker (the WebSocket cache when fresh)."""
        if price_type == "last":
            last = self.get_ticker(symbol).get("last")
            if last is None:  # a tickerV2-only cache has no last trade
                last = ticker_to_ccxt(parse_rest_ticker(self._rest_get(PATH_TICKER, {"symbol": to_kucoin_id(symbol)}),
                                                        received_at=self._clock()))["last"]
            return float(last)
        mark = self.get_mark_price(symbol, priority=Priority.CRITICAL)
        return mark.mark if price_type == "mark" else mark.index

    # -- internals -----------------------------------------------------------------------------
    def _check_symbol(self, symbol: str) -> None:
        self._ensure_started()
        if not isinstance(symbol, str) or symbol not in self._gateway.markets:
            raise InvalidArgument(f"symbol={symbol!r}: not a KuCoin Futures market "
                                  "(use ccxt unified symbols such as 'BTC/USDT:USDT')")
        to_kucoin_id(symbol)  # InvalidArgument for a market we cannot subscribe (dated futures)

    def _subscribe(self, key: tuple[str, ...], subscribe: Callable[..., None], *args: str) -> bool:
        """Subscribe once per key; return True the first time (the caller then waits)."""
        with self._lock:
            if key in self._subscribed:
                return False
            self._subscribed.add(key)
        subscribe(*args)
        return True

    def _rest_get(self, path: str, params: Any) -> Any:
        return self._gateway.rest_get(path, params, priority=Priority.NORMAL)

    def _ticker_from_cache(self, ticker: Ticker) -> dict[str, Any]:
        if self._degraded_keys:
            self._degraded.recovered(("ticker", ticker.symbol))
        converted = self._ticker_dicts.get(ticker.symbol)
        if converted is None or converted[0] is not ticker:
            converted = (ticker, ticker_to_ccxt(ticker))
            self._ticker_dicts[ticker.symbol] = converted
        self.counts.add_websocket()
        result = converted[1].copy()  # the caller owns its dict, and a fresh "info" in it
        result["info"] = {}
        return result

    def _count(self, source: str) -> None:
        self.counts.add(source)

    def _served_rows(self, rows: Iterable[list[float]], source: str) -> OHLCV:
        self._count(source)
        return OHLCV(rows, source)

