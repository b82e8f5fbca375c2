"""Pure tests: our frozen market-data values as ccxt's unified structures (kucoin_unified)."""
from __future__ import annotations

import ccxt
import pytest

from kucoin_futures.protocol.candles import CandleSeries
from kucoin_futures.protocol.types import Candle, OrderBook, Ticker
from kucoin_futures.client.ccxt_shapes import (
    OHLCV,
    candles_to_ccxt,
    iso8601,
    order_book_to_ccxt,
    ticker_to_ccxt,
)

TICKER = Ticker(symbol="BTC/USDT:USDT", bid=67169.6, bid_size=32345, ask=67169.7, ask_size=7251, last=67158.4,
                last_size=2936, ts_ms=1729163001780, received_at=12.5, source="websocket", sequence=1697895100310)


@pytest.mark.parametrize("ts_ms", [0, 1, 999, 1_000, 1729163001780, 1795596918065, 253402300799999])
def test_iso8601_matches_ccxt(ts_ms: int) -> None:
    assert iso8601(ts_ms) == ccxt.Exchange.iso8601(ts_ms)


def test_iso8601_of_none_is_none() -> None:
    assert iso8601(None) is None


def test_ticker_to_ccxt_is_ccxts_structure_with_source() -> None:
    assert ticker_to_ccxt(TICKER) == {
        "symbol": "BTC/USDT:USDT", "timestamp": 1729163001780, "datetime": "2024-10-17T11:03:21.780Z",
        "high": None, "low": None, "bid": 67169.6, "bidVolume": 32345.0, "ask": 67169.7, "askVolume": 7251.0,
        "vwap": None, "open": None, "close": 67158.4, "last": 67158.4, "previousClose": None, "change": None,
        "percentage": None, "average": None, "baseVolume": None, "quoteVolume": None, "markPrice": None,
        "indexPrice": None, "info": {}, "source": "websocket"}
    assert type(ticker_to_ccxt(TICKER)["bidVolume"]) is float


def test_ticker_to_ccxt_without_a_trade_has_no_last() -> None:
    """tickerV2 carries no last trade: close and last stay None."""
    quote_only = Ticker(**{**{f: getattr(TICKER, f) for f in TICKER.__slots__}, "last": None, "last_size": None})
    converted = ticker_to_ccxt(quote_only)
    assert (converted["last"], converted["close"], converted["bid"]) == (None, None, 67169.6)


def test_order_book_to_ccxt_cuts_levels_and_makes_amounts_floats() -> None:
    book = OrderBook(symbol="ETH/USDT:USDT", bids=((2500.5, 3), (2500.0, 10), (2499.5, 1)),
                     asks=((2501.0, 4), (2501.5, 7)), sequence=42, ts_ms=1729168101216, received_at=1.0,
                     source="rest")
    assert order_book_to_ccxt(book, 2) == {
        "symbol": "ETH/USDT:USDT", "bids": [[2500.5, 3.0], [2500.0, 10.0]], "asks": [[2501.0, 4.0], [2501.5, 7.0]],
        "timestamp": 1729168101216, "datetime": "2024-10-17T12:28:21.216Z", "nonce": 42, "source": "rest"}


CANDLES = tuple(Candle(ts_ms=1_700_000_000_000 + i * 60_000, open=100.0 + i, high=101.0 + i, low=99.0 + i,
                       close=100.5 + i, volume=10.0 * i, received_at=5.0, source="rest") for i in range(5))
ROWS = [[c.ts_ms, c.open, c.high, c.low, c.close, c.volume] for c in CANDLES]


@pytest.mark.parametrize("candles", [CANDLES, list(CANDLES), CandleSeries.from_candles(CANDLES, 5.0)],
                         ids=["tuple", "list", "series"])
@pytest.mark.parametrize("limit", [1, 3, 5, 10])
def test_candles_to_ccxt_returns_the_newest_rows_oldest_first(candles, limit: int) -> None:
    assert candles_to_ccxt(candles, limit) == ROWS[-limit:]


def test_ohlcv_is_a_list_that_tells_its_source() -> None:
    rows = OHLCV(ROWS, "websocket")
    assert (rows == ROWS, isinstance(rows, list), rows.source) == (True, True, "websocket")
