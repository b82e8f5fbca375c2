"""KuCoin Futures payload parsers: one ``parse_<thing>`` per message, wire payload -> value type.

Pure (no I/O, no clock). Each parser takes one decoded KuCoin payload and an explicit
``received_at`` (local monotonic seconds) and returns a frozen value from ``protocol.types``;
exchange times are converted to ``ts_ms`` here. Malformed input raises ``ProtocolError``, and so
does a value no market can have: a price that is not a finite number > 0 (booleans are not
numbers), a negative size, a bid above the ask (a ticker) or at or above it (a book).
``parse_frame`` reads control frames; it yields ``None`` for a push (``MarketFeed`` dispatches
pushes to their parser by subject) and for a frame type we do not handle. REST parsers take
the whole envelope ``{"code", "data"}`` and raise the mapped ``KuCoinError`` when ``code`` is not
"200000". Full example payloads live in ``tests/fixtures``.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from kucoin_futures.errors import ProtocolError
from kucoin_futures.protocol.types import (
    SOURCE_REST,
    SOURCE_WEBSOCKET,
    Ack,
    BookDelta,
    Candle,
    Event,
    MarkPrice,
    OrderBook,
    Pong,
    ServerError,
    Source,
    Ticker,
    Welcome,
    WsEndpoint,
    to_unified,
)
from kucoin_futures.protocol.wire import (
    check_not_crossed,
    read_dict,
    read_float,
    read_id,
    read_int,
    read_levels,
    read_list,
    read_name,
    read_price,
    read_row,
    read_side,
    read_size,
    read_str,
    read_topic_symbol,
    short_repr,
    unwrap_envelope,
)

__all__ = [
    "decode_frame", "parse_bullet", "parse_candle", "parse_frame", "parse_level2",
    "parse_rest_klines", "parse_rest_mark_price", "parse_rest_order_book", "parse_rest_ticker", "parse_ticker",
    "parse_ticker_v2",
]

log = logging.getLogger(__name__)


# -- REST payloads (protocol notes sections 7.1 and 9.1) ------------------------------------
def parse_bullet(payload: Any) -> WsEndpoint:
    """Return the endpoint of a bullet-public/-private response (first instance server).

    Example::

        {"code": "200000", "data": {"token": "2neAiuYv...", "instanceServers": [{"endpoint":
         "wss://ws-api-futures.kucoin.com/", "encrypt": true, "protocol": "websocket",
         "pingInterval": 18000, "pingTimeout": 10000}]}}
    """
    data = read_dict(unwrap_envelope(payload), "data")
    servers = read_list(data.get("instanceServers"), "instanceServers")
    if not servers:
        raise ProtocolError("bullet response lists no instanceServers")
    server = read_dict(servers[0], "instanceServers[0]")
    url = read_str(server.get("endpoint"), "endpoint")
    ping_interval_ms = read_int(server.get("pingInterval"), "pingInterval")
    ping_timeout_ms = read_int(server.get("pingTimeout"), "pingTimeout")
    if ping_interval_ms <= 0 or ping_timeout_ms <= 0:
        raise ProtocolError(f"bullet ping timings must be positive: {short_repr(server)}")
    if urlsplit(url).scheme not in ("ws", "wss"):
        raise ProtocolError(f"bullet endpoint is not a ws:// or wss:// URL: {url!r}")
    encrypt = server.get("encrypt")
    if not isinstance(encrypt, bool):
        raise ProtocolError(f"bullet 'encrypt' must be a boolean, got {encrypt!r}")
    return WsEndpoint(
        url=url,
        token=read_str(data.get("token"), "token"),
        ping_interval_s=ping_interval_ms / 1000,
        ping_timeout_s=ping_timeout_ms / 1000,
        encrypt=encrypt,
    )


def parse_rest_ticker(payload: Any, *, received_at: float) -> Ticker:
    """Return the ticker of ``GET /api/v1/ticker`` (``ts`` is nanoseconds).

    Example::

        {"code": "200000", "data": {"sequence": 1697895100310, "symbol": "XBTUSDM", "side": "sell",
         "size": 2936, "tradeId": "1697901180000", "price": "67158.4", "bestBidPrice": "67169.6",
         "bestBidSize": 32345, "bestAskPrice": "67169.7", "bestAskSize": 7251, "ts": 1729163001780000000}}
    """
    data = read_dict(unwrap_envelope(payload), "data")
    return _ticker(data, with_last=True, received_at=received_at, source=SOURCE_REST)


def parse_rest_mark_price(payload: Any, *, received_at: float) -> MarkPrice:
    """Return the mark and index prices of ``GET /api/v1/mark-price/{symbol}/current``.

    Example::

        {"code": "200000", "data": {"symbol": "XBTUSDTM", "granularity": 1000,
         "timePoint": 1729254307000, "value": 67687.08, "indexPrice": 67683.58}}
    """
    data = read_dict(unwrap_envelope(payload), "data")
    return MarkPrice(
        symbol=read_name(to_unified, read_str(data.get("symbol"), "symbol")),
        mark=read_price(data.get("value"), "value"),
        index=read_price(data.get("indexPrice"), "indexPrice"),
        ts_ms=read_int(data.get("timePoint"), "timePoint"),
        received_at=received_at,
        source=SOURCE_REST,
    )


def parse_rest_klines(payload: Any, *, received_at: float) -> tuple[Candle, ...]:
    """Return the candles of ``GET /api/v1/kline/query``, oldest first (row time is ms).

    Example::

        {"code": "200000", "data": [[1728576000000, 60791.1, 61035, 58940, 60300, 5501167]]}
    """
    rows = read_list(unwrap_envelope(payload), "data")
    candles = []
    for row in rows:
        ts_ms, open_, high, low, close, volume = read_row(row, 6, "kline row")
        candles.append(_candle(read_int(ts_ms, "kline time"), open_, high, low, close, volume,
                               received_at=received_at, source=SOURCE_REST))
    return tuple(sorted(candles, key=lambda candle: candle.ts_ms))


def _candle(ts_ms: int, open_: Any, high: Any, low: Any, close: Any, volume: Any, *,
            received_at: float, source: Source) -> Candle:
    candle = Candle(
        ts_ms=ts_ms,
        open=read_price(open_, "open"),
        high=read_price(high, "high"),
        low=read_price(low, "low"),
        close=read_price(close, "close"),
        volume=read_float(volume, "volume"),
        received_at=received_at,
        source=source,
    )
    # Only what holds for any candle: whether open lies within [low, high] depends on how the
    # exchange opens a period (first trade or previous close), so it is not checked.
    if candle.volume < 0 or candle.high < candle.low:
        raise ProtocolError(f"candle volume < 0 or high < low: {short_repr(candle)}")
    return candle


def parse_rest_order_book(payload: Any, *, received_at: float) -> OrderBook:
    """Return the book of ``GET /api/v1/level2/snapshot`` or ``depth20/100`` (``ts`` ns).

    Example::

        {"code": "200000", "data": {"sequence": 1697895963339, "symbol": "XBTUSDM",
         "bids": [[66968, 2], [66964.8, 25596]], "asks": [[66968.1, 13501]], "ts": 1729168101216000000}}
    """
    data = read_dict(unwrap_envelope(payload), "data")
    bids = read_levels(data.get("bids"), "bids")
    asks = read_levels(data.get("asks"), "asks")
    check_not_crossed(bids, asks, "level2 snapshot")
    return OrderBook(
        symbol=read_name(to_unified, read_str(data.get("symbol"), "symbol")),
        bids=bids,
        asks=asks,
        sequence=read_int(data.get("sequence"), "sequence"),
        ts_ms=read_int(data.get("ts"), "ts") // 1_000_000,
        received_at=received_at,
        source=SOURCE_REST,
    )


# -- WebSocket frames (protocol notes sections 9.4 and 10) -----------------------------------
def decode_frame(raw: bytes | str) -> dict[str, Any]:
    """Decode one text frame (orjson, once) into a JSON object."""
    try:
        message = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise ProtocolError(f"frame is not JSON: {short_repr(raw)}") from exc
    return read_dict(message, "frame")


def parse_frame(message: Mapping[str, Any], *, received_at: float) -> Event | None:
    """Return the event of one decoded control frame, or None for a push or a type we do not handle.

    Market pushes are dispatched by subject in ``MarketFeed`` (ws/feed.py) to the parsers below;
    a push that reaches this function is one the feed does not handle: its topic and subject are
    checked (a malformed frame raises ``ProtocolError``) and it is ignored.
    """
    # The classic docs' examples omit "type" on pushes (the live server sends "message").
    kind = message.get("type", "message" if "topic" in message else None)
    if kind == "message":
        topic = read_str(message.get("topic"), "topic")
        subject = read_str(message.get("subject"), "subject")
        log.debug("! ignoring subject %r on %s", subject, topic)
        return None
    if kind == "welcome":
        return Welcome(connect_id=read_id(message))
    if kind == "ack":
        return Ack(id=read_str(read_id(message), "ack id"))
    if kind == "pong":
        return Pong(id=read_id(message))
    if kind == "error":
        code = message.get("code")
        text = message.get("data", "")
        return ServerError(
            id=read_id(message),
            code=None if code is None else read_int(code, "error code"),
            message=text if isinstance(text, str) else short_repr(text),
        )
    log.debug("! ignoring frame of type %r", kind)
    return None


def parse_ticker_v2(message: Mapping[str, Any], *, received_at: float) -> Ticker:
    """Return the best bid/ask of a ``tickerV2`` push (``ts`` ns; no last trade).

    Example::

        {"topic": "/contractMarket/tickerV2:XBTUSDTM", "type": "message", "subject": "tickerV2",
         "data": {"symbol": "XBTUSDTM", "sequence": 1709284589209, "bestBidSize": 713,
                  "bestBidPrice": "88987.4", "bestAskPrice": "88987.5", "bestAskSize": 1037,
                  "ts": 1731665526461000000}}
    """
    data = read_dict(message.get("data"), "data")
    return _ticker(data, with_last=False, received_at=received_at, source=SOURCE_WEBSOCKET)


def parse_ticker(message: Mapping[str, Any], *, received_at: float) -> Ticker:
    """Return the ticker of a v1 ``ticker`` push (last trade + best bid/ask, ``ts`` ns).

    Example::

        {"topic": "/contractMarket/ticker:XBTUSDTM", "type": "message", "subject": "ticker",
         "data": {"symbol": "XBTUSDTM", "sequence": 1793133570931, "side": "sell", "size": 1,
                  "price": "90147.7", "bestBidSize": 2186, "bestBidPrice": "90147.7",
                  "bestAskPrice": "90147.8", "tradeId": "1793133570931", "bestAskSize": 275,
                  "ts": 1731679215637000000}}
    """
    data = read_dict(message.get("data"), "data")
    return _ticker(data, with_last=True, received_at=received_at, source=SOURCE_WEBSOCKET)


def _ticker(data: Mapping[str, Any], *, with_last: bool, received_at: float, source: Source) -> Ticker:
    bid = read_price(data.get("bestBidPrice"), "bestBidPrice")
    ask = read_price(data.get("bestAskPrice"), "bestAskPrice")
    if bid > ask:
        raise ProtocolError(f"ticker is crossed: bestBidPrice {bid} > bestAskPrice {ask}")
    return Ticker(
        symbol=read_name(to_unified, read_str(data.get("symbol"), "symbol")),
        bid=bid,
        bid_size=read_size(data.get("bestBidSize"), "bestBidSize"),
        ask=ask,
        ask_size=read_size(data.get("bestAskSize"), "bestAskSize"),
        last=read_price(data.get("price"), "price") if with_last else None,
        last_size=read_size(data.get("size"), "size") if with_last else None,
        ts_ms=read_int(data.get("ts"), "ts") // 1_000_000,
        received_at=received_at,
        source=source,
        sequence=read_int(data.get("sequence"), "sequence"),
    )


def parse_level2(message: Mapping[str, Any], *, received_at: float) -> BookDelta:
    """Return the delta of a ``level2`` push; ``change`` is "price,side,new absolute size".

    Example::

        {"topic": "/contractMarket/level2:XBTUSDTM", "type": "message", "subject": "level2",
         "data": {"sequence": 1709400450243, "change": "90631.2,sell,2", "timestamp": 1731897467182}}
    """
    del received_at  # a delta is applied to a book, which carries the receipt time
    data = read_dict(message.get("data"), "data")
    change = read_str(data.get("change"), "change").split(",")
    if len(change) != 3:
        raise ProtocolError(f"level2 change is not 'price,side,size': {data.get('change')!r}")
    price, side, size = change
    return BookDelta(
        symbol=read_topic_symbol(message),
        sequence=read_int(data.get("sequence"), "sequence"),
        price=read_price(price, "change price"),
        side=read_side(side),
        size=read_size(size, "change size"),
        ts_ms=read_int(data.get("timestamp"), "timestamp"),
    )


def parse_candle(message: Mapping[str, Any], *, received_at: float) -> Candle:
    """Return the candle of a ``candle.stick`` push (the period in progress, pushed <= 1/s).

    Example::

        {"topic": "/contractMarket/limitCandle:XBTUSDTM_1min", "type": "message",
         "subject": "candle.stick", "data": {"symbol": "XBTUSDTM", "candles": ["1731898200",
         "90638.6", "90638.6", "90638.6", "90638.6", "21.0", "21"], "time": 1731898208357}}
    """
    data = read_dict(message.get("data"), "data")
    # WS order is [start SECONDS, open, CLOSE, HIGH, LOW, v5, amount], unlike REST's o,h,l,c.
    # KuCoin documents index 5 as incorrect; ccxt reads index 6 as the volume and so do we, so the
    # WS candle and the REST fallback row agree.
    start_s, open_, close, high, low, _, volume = read_row(data.get("candles"), 7, "candles")
    # seconds on the WS, ms everywhere else
    return _candle(read_int(start_s, "candle start") * 1000, open_, high, low, close, volume,
                   received_at=received_at, source=SOURCE_WEBSOCKET)
