"""Frozen value types that cross every boundary of the client, the WebSocket events, and the names
of things (symbols, timeframes) translated between ccxt's vocabulary and KuCoin's.

Units are in the field names: ``ts_ms`` is the exchange's time in epoch milliseconds (converted
at the parser, because KuCoin mixes ns, ms and s), ``received_at`` is local receipt time in
monotonic seconds (staleness is always judged on it). Prices are ``float`` and sizes ``int`` lots,
as in ccxt's unified structures, so the WebSocket path and the REST fallback return equal types.
Symbols are ccxt unified symbols (``"BTC/USDT:USDT"``); KuCoin wire names never appear here.

Events returned by ``WsSession.on_text`` (market pushes go to ``MarketFeed``, not the session)::

    Welcome(connect_id)                 the server accepted the connection
    Ack(id, topic)                      a subscribe/unsubscribe was confirmed
    Pong(id)                            answer to our ping
    ServerError(id, code, message, topic)   {"type": "error"} frame
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeAlias

from kucoin_futures.errors import InvalidArgument

__all__ = [
    "TIMEFRAMES",
    "Ack",
    "BookDelta",
    "Candle",
    "Event",
    "MarkPrice",
    "OrderBook",
    "Pong",
    "PriceLevel",
    "SOURCE_REST",
    "SOURCE_WEBSOCKET",
    "ServerError",
    "Side",
    "Source",
    "Ticker",
    "Welcome",
    "WsEndpoint",
    "candle_type_to_timeframe",
    "granularity_to_timeframe",
    "timeframe_ms",
    "timeframe_seconds",
    "timeframe_to_candle_type",
    "timeframe_to_granularity",
    "to_kucoin_id",
    "to_unified",
]

Source: TypeAlias = Literal["websocket", "rest"]
SOURCE_WEBSOCKET: Source = "websocket"
SOURCE_REST: Source = "rest"

PriceLevel: TypeAlias = tuple[float, int]  # (price, size in lots)


class Side(enum.StrEnum):
    """Order/trade side; compares equal to KuCoin's and ccxt's strings."""

    BUY = "buy"
    SELL = "sell"


@dataclass(frozen=True, slots=True)
class WsEndpoint:
    """Where and how to open one WebSocket connection (from a bullet response)."""

    url: str
    token: str = field(repr=False)  # a credential: never logged
    ping_interval_s: float
    ping_timeout_s: float
    encrypt: bool


@dataclass(frozen=True, slots=True)
class Ticker:
    """Best bid/ask and, when the source has it, the last trade."""

    symbol: str
    bid: float
    bid_size: int
    ask: float
    ask_size: int
    last: float | None  # tickerV2 carries no last trade
    last_size: int | None
    ts_ms: int
    received_at: float
    source: Source
    sequence: int


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV period; ``ts_ms`` is the period start. The symbol and timeframe are the key."""

    ts_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    received_at: float
    source: Source


@dataclass(frozen=True, slots=True)
class OrderBook:
    """An order-book snapshot: ``bids`` high to low, ``asks`` low to high, sizes in lots."""

    symbol: str
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    sequence: int
    ts_ms: int
    received_at: float
    source: Source


@dataclass(frozen=True, slots=True)
class MarkPrice:
    """A contract's mark and index prices at ``ts_ms`` (what mark- and index-price stops watch)."""

    symbol: str
    mark: float
    index: float
    ts_ms: int
    received_at: float
    source: Source


@dataclass(frozen=True, slots=True)
class BookDelta:
    """One level-2 change: the new absolute ``size`` at ``price`` (0 removes the level)."""

    symbol: str
    sequence: int
    price: float
    side: Side
    size: int
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Welcome:
    """The server accepted the connection; ``connect_id`` echoes the one in the URL."""

    connect_id: str | None


@dataclass(frozen=True, slots=True)
class Ack:
    """A subscribe/unsubscribe with this ``id`` was confirmed; ``topic`` when the session knew it."""

    id: str
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class Pong:
    """Answer to our ping with this ``id``."""

    id: str | None


@dataclass(frozen=True, slots=True)
class ServerError:
    """An ``{"type": "error"}`` frame; ``topic`` is set when it answers one of our subscribes."""

    id: str | None
    code: int | None
    message: str
    topic: str | None = None


Event: TypeAlias = Welcome | Ack | Pong | ServerError


# -- Symbols ----------------------------------------------------------------------------------
# ccxt 4.5.90 maps these KuCoin currency ids to unified codes for kucoinfutures (the base
# Exchange's XBT/BCHSV plus kucoin's own commonCurrencies). We apply the same table so that a
# WebSocket symbol equals the symbol ccxt gives the same market; keep it in sync with the pinned
# ccxt (protocol notes section 6.1: "Symbol = BASE/QUOTE:SETTLE with ccxt currency mapping").
CURRENCY_ID_TO_CODE = MappingProxyType({
    "XBT": "BTC",
    "BCHSV": "BSV",
    "BIFI": "BIFIF",
    "VAI": "VAIOT",
    "WAX": "WAXP",
    "ALT": "APTOSLAUNCHTOKEN",
    "KALT": "ALT",
    "FUD": "FTX Users' Debt",
})
CURRENCY_CODE_TO_ID = MappingProxyType({code: cid for cid, code in CURRENCY_ID_TO_CODE.items()})

LINEAR_QUOTES = ("USDT", "USDC")  # <BASE><QUOTE>M, margined and settled in the quote
INVERSE_QUOTE = "USD"  # <BASE>USDM, coin-margined: settled in the base, 1 lot = 1 USD

# Perpetual ids are <BASE><QUOTE>M (protocol notes section 6.2). The lazy base plus the anchored
# suffix splits "USDCUSDTM" as USDC + USDT. Dated futures (XBTMH26) do not match on purpose.
_KUCOIN_ID_RE = re.compile(r"([A-Z0-9]+?)(USDT|USDC|USD)M")
_UNIFIED_RE = re.compile(r"([^/:\-]+)/([^/:\-]+):([^/:\-]+)")
_CURRENCY_ID_RE = re.compile(r"[A-Z0-9]+")


def to_unified(kucoin_id: str) -> str:
    """Return the ccxt unified symbol of a KuCoin perpetual id ("XBTUSDTM" -> "BTC/USDT:USDT").

    Raises:
        InvalidArgument: not a perpetual id of the shape <BASE>USDTM, <BASE>USDCM or <BASE>USDM.
    """
    match = _KUCOIN_ID_RE.fullmatch(kucoin_id) if isinstance(kucoin_id, str) else None
    if match is None:
        raise InvalidArgument(f"not a KuCoin perpetual contract id: {kucoin_id!r}")
    base_id, quote = match.groups()
    base = CURRENCY_ID_TO_CODE.get(base_id, base_id)
    if quote == INVERSE_QUOTE:
        return f"{base}/{INVERSE_QUOTE}:{base}"
    return f"{base}/{quote}:{quote}"


def to_kucoin_id(unified: str) -> str:
    """Return the KuCoin id of a ccxt unified perpetual symbol ("BTC/USDT:USDT" -> "XBTUSDTM").

    Raises:
        InvalidArgument: not BASE/USDT:USDT, BASE/USDC:USDC or BASE/USD:BASE (spot symbols and
            dated futures such as "BTC/USD:BTC-260327" are refused).
    """
    match = _UNIFIED_RE.fullmatch(unified) if isinstance(unified, str) else None
    if match is None:
        raise InvalidArgument(f"not a unified perpetual symbol (BASE/QUOTE:SETTLE): {unified!r}")
    base, quote, settle = match.groups()
    base_id = CURRENCY_CODE_TO_ID.get(base, base)
    if _CURRENCY_ID_RE.fullmatch(base_id) is None:
        raise InvalidArgument(f"base currency must be upper-case letters/digits: {unified!r}")
    if quote in LINEAR_QUOTES and settle == quote:
        return f"{base_id}{quote}M"
    if quote == INVERSE_QUOTE and settle == base:
        return f"{base_id}{INVERSE_QUOTE}M"
    raise InvalidArgument(f"unsupported quote/settle combination: {unified!r}")


# -- Timeframes -------------------------------------------------------------------------------
# ccxt timeframe -> (REST kline granularity in minutes, WS limitCandle type). Only periods both
# REST and WS serve (REST lacks 3min and 1month; protocol notes sections 7.1 and 10).
TIMEFRAMES = MappingProxyType({
    "1m": (1, "1min"),
    "5m": (5, "5min"),
    "15m": (15, "15min"),
    "30m": (30, "30min"),
    "1h": (60, "1hour"),
    "2h": (120, "2hour"),
    "4h": (240, "4hour"),
    "8h": (480, "8hour"),
    "12h": (720, "12hour"),
    "1d": (1440, "1day"),
    "1w": (10080, "1week"),
})
_BY_GRANULARITY = MappingProxyType({gran: tf for tf, (gran, _) in TIMEFRAMES.items()})
_BY_CANDLE_TYPE = MappingProxyType({ctype: tf for tf, (_, ctype) in TIMEFRAMES.items()})


def _timeframe_entry(timeframe: str) -> tuple[int, str]:
    try:
        return TIMEFRAMES[timeframe]
    except (KeyError, TypeError):
        raise InvalidArgument(f"unsupported timeframe {timeframe!r}; use one of {list(TIMEFRAMES)}") from None


def timeframe_to_granularity(timeframe: str) -> int:
    """Return the REST kline ``granularity`` (minutes) of a timeframe ("1h" -> 60)."""
    return _timeframe_entry(timeframe)[0]


def timeframe_to_candle_type(timeframe: str) -> str:
    """Return the WS candle type of a timeframe ("1h" -> "1hour")."""
    return _timeframe_entry(timeframe)[1]


def timeframe_seconds(timeframe: str) -> int:
    """Return the length of a timeframe in seconds ("1h" -> 3600)."""
    return _timeframe_entry(timeframe)[0] * 60


def timeframe_ms(timeframe: str) -> int:
    """Return the length of a timeframe in milliseconds ("1h" -> 3_600_000)."""
    return timeframe_seconds(timeframe) * 1000


def granularity_to_timeframe(granularity_min: int) -> str:
    """Return the timeframe of a REST granularity in minutes (60 -> "1h")."""
    try:
        return _BY_GRANULARITY[granularity_min]
    except (KeyError, TypeError):
        raise InvalidArgument(f"unsupported granularity {granularity_min!r}") from None


def candle_type_to_timeframe(candle_type: str) -> str:
    """Return the timeframe of a WS candle type ("1hour" -> "1h")."""
    try:
        return _BY_CANDLE_TYPE[candle_type]
    except (KeyError, TypeError):
        raise InvalidArgument(f"unsupported candle type {candle_type!r}") from None
