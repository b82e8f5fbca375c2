"""Our frozen market-data values as ccxt unified structures, in one place per type.

The WebSocket path and the REST fallback both produce the same dataclasses (kucoin_protocol), so
both leave the facade through these functions and return identical shapes; `source` tells which
path served the value ("websocket" or "rest").
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from kucoin_protocol import Candle, OrderBook, Ticker


def iso8601(ts_ms: int | None) -> str | None:
    if ts_ms is None:
        return None
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def ticker_to_ccxt(ticker: Ticker) -> dict[str, Any]:
    """Return ccxt's ticker structure (fields KuCoin's ticker does not carry are None)."""
    bid, ask = ticker.bid, ticker.ask
    return {
        "symbol": ticker.symbol,
        "timestamp": ticker.ts_ms,
        "datetime": iso8601(ticker.ts_ms),
        "high": None,
        "low": None,
        "bid": bid,
        "bidVolume": ticker.bid_size,
        "ask": ask,
        "askVolume": ticker.ask_size,
        "vwap": None,
        "open": None,
        "close": ticker.last,
        "last": ticker.last,
        "previousClose": None,
        "change": None,
        "percentage": None,
        "average": (bid + ask) / 2 if bid is not None and ask is not None else None,
        "baseVolume": None,
        "quoteVolume": None,
        "info": {},
        "source": ticker.source,
    }


def candles_to_ccxt(candles: tuple[Candle, ...] | list[Candle], limit: int) -> list[list[float]]:
    """Return the newest `limit` candles as ccxt rows [ts_ms, open, high, low, close, volume]."""
    rows = candles[-limit:] if limit else candles
    return [[c.ts_ms, c.open, c.high, c.low, c.close, c.volume] for c in rows]


def order_book_to_ccxt(book: OrderBook, limit: int | None) -> dict[str, Any]:
    """Return ccxt's order book structure, `limit` levels per side, plus `source`."""
    bids = book.bids[:limit] if limit else book.bids
    asks = book.asks[:limit] if limit else book.asks
    return {
        "symbol": book.symbol,
        "bids": [[price, size] for price, size in bids],
        "asks": [[price, size] for price, size in asks],
        "timestamp": book.ts_ms,
        "datetime": iso8601(book.ts_ms),
        "nonce": book.sequence,
        "source": book.source,
    }
