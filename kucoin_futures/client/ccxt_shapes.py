"""Our frozen market-data values as ccxt unified structures, in one place per type.

The WebSocket path and the REST fallback both produce the same dataclasses (kucoin_protocol), so
both leave the facade through these functions and return identical shapes; `source` tells which
path served the value ("websocket" or "rest").
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from kucoin_futures.protocol.candles import CandleSeries
from kucoin_futures.protocol.types import Candle, OrderBook, Ticker

_EPOCH = datetime(1970, 1, 1)  # naive UTC: timedelta arithmetic is exact in integer ms
_MS = timedelta(milliseconds=1)


class OHLCV(list):
    """ccxt OHLCV rows (a plain list of [ts_ms, o, h, l, c, v]) that also tells its `source`."""

    __slots__ = ("source",)

    def __init__(self, rows: Iterable[list[float]], source: str) -> None:
        super().__init__(rows)
        self.source = source


def iso8601(ts_ms: int | None) -> str | None:
    """Return ccxt's datetime string of epoch ms ("2024-10-17T12:23:21.780Z"), or None."""
    if ts_ms is None:
        return None
    # isoformat is ~10x cheaper than strftime, and integer ms never round the way ts/1000 can.
    return (_EPOCH + ts_ms * _MS).isoformat(timespec="milliseconds") + "Z"


def ticker_to_ccxt(ticker: Ticker) -> dict[str, Any]:
    """Return ccxt's ticker structure, as ccxt's own fetch_ticker fills it for KuCoin Futures.

    Sizes are floats (ccxt's amounts), and ``average`` stays None: in ccxt it is the midpoint
    of open and close, and KuCoin's ticker has no open (the bid/ask midpoint would be a
    different number under the same name).
    """
    last = ticker.last
    return {
        "symbol": ticker.symbol,
        "timestamp": ticker.ts_ms,
        "datetime": iso8601(ticker.ts_ms),
        "high": None,
        "low": None,
        "bid": ticker.bid,
        "bidVolume": float(ticker.bid_size),
        "ask": ticker.ask,
        "askVolume": float(ticker.ask_size),
        "vwap": None,
        "open": None,
        "close": last,
        "last": last,
        "previousClose": None,
        "change": None,
        "percentage": None,
        "average": None,
        "baseVolume": None,
        "quoteVolume": None,
        "markPrice": None,
        "indexPrice": None,
        "info": {},
        "source": ticker.source,
    }


def candles_to_ccxt(candles: Sequence[Candle], limit: int | None) -> list[list[float]]:
    """Return the newest `limit` candles as ccxt rows [ts_ms, open, high, low, close, volume]."""
    rows = candles[-limit:] if limit else candles
    if isinstance(rows, CandleSeries):  # the WebSocket cache: read its columns, no Candle objects
        return rows.ohlcv()
    return [[c.ts_ms, c.open, c.high, c.low, c.close, c.volume] for c in rows]


def candle_tuples(candles: Sequence[Candle], limit: int) -> tuple[tuple[float, ...], ...]:
    """Return the newest `limit` candles as tuples (ts_ms, open, high, low, close, volume)."""
    if isinstance(candles, CandleSeries):  # read-only views of its columns: slicing copies nothing
        columns = (candles.ts_ms, candles.opens, candles.highs, candles.lows, candles.closes, candles.volumes)
        return tuple(zip(*(column[-limit:] for column in columns)))
    return tuple((c.ts_ms, c.open, c.high, c.low, c.close, c.volume) for c in candles[-limit:])


class OhlcvMemo:
    """ccxt rows of the series last read per key, built once per series, copied per read.

    A cached ``CandleSeries`` is immutable and the WebSocket cache stores a new one on every
    change (a push, a REST merge, even a touch), so the series object is its own version: while
    the cache hands out the same object, rows built from it are still right. The memo holds a
    reference to that object, so its identity cannot pass to another. Rows are kept as tuples
    (the garbage collector stops tracking a tuple of numbers) and every read gets new lists, so
    a caller may change what it gets. No lock: a race between readers only builds rows twice.
    """

    def __init__(self) -> None:
        self._memo: dict[Any, tuple[Sequence[Candle], tuple[tuple[float, ...], ...]]] = {}

    def rows(self, key: Any, candles: Sequence[Candle], limit: int) -> Iterator[list[float]]:
        """Return the newest `limit` rows of `candles` as new lists (an iterator to consume once)."""
        memo = self._memo.get(key)
        if memo is None or memo[0] is not candles or len(memo[1]) < min(limit, len(candles)):
            memo = (candles, candle_tuples(candles, limit))
            self._memo[key] = memo
        return map(list, memo[1][-limit:])


def order_book_to_ccxt(book: OrderBook, limit: int | None) -> dict[str, Any]:
    """Return ccxt's order book structure, `limit` levels per side, plus `source`."""
    bids = book.bids[:limit] if limit else book.bids
    asks = book.asks[:limit] if limit else book.asks
    return {
        "symbol": book.symbol,
        "bids": [[price, float(size)] for price, size in bids],  # ccxt's amounts are floats
        "asks": [[price, float(size)] for price, size in asks],
        "timestamp": book.ts_ms,
        "datetime": iso8601(book.ts_ms),
        "nonce": book.sequence,
        "source": book.source,
    }
