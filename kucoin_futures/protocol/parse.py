"""KuCoin Futures payload parsers: one ``parse_<thing>`` per message, wire payload -> value type.

Pure (no I/O, no clock). Each parser takes one decoded KuCoin payload and an explicit
``received_at`` (local monotonic seconds) and returns a frozen value from ``kucoin_types``;
exchange times are converted to ``ts_ms`` here. Malformed input raises ``ProtocolError``, and so
does a value no market can have: a price that is not a finite number > 0 (booleans are not
numbers), a negative size, a bid above the ask (a ticker) or at or above it (a book); a
WebSocket type or subject we do not handle yields ``None`` from ``parse_frame``. REST parsers take
the whole envelope ``{"code", "data"}`` and raise the mapped ``KuCoinError`` when ``code`` is not
"200000". Full example payloads live in ``tests/fixtures``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
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
    FundingRate,
    MarketData,
    MarkIndex,
    OrderBook,
    Pong,
    ServerError,
    Source,
    Ticker,
    Trade,
    Welcome,
    WsEndpoint,
    to_unified,
)
from kucoin_futures.protocol.wire import (
    TOPIC_CANDLE,
    TOPIC_EXECUTION,
    TOPIC_INSTRUMENT,
    TOPIC_LEVEL2,
    TOPIC_LEVEL2_DEPTH5,
    TOPIC_LEVEL2_DEPTH50,
    TOPIC_TICKER,
    TOPIC_TICKER_V2,
    check_not_crossed,
    epoch_to_ms,
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
    "decode_frame", "parse_bullet", "parse_candle", "parse_execution", "parse_frame",
    "parse_funding_rate", "parse_level2", "parse_level2_depth", "parse_mark_index",
    "parse_rest_klines", "parse_rest_order_book", "parse_rest_ticker", "parse_ticker",
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
    """Return the event of one decoded frame, or None for a type or subject we do not handle."""
    # The classic docs' examples omit "type" on pushes (the live server sends "message").
    kind = message.get("type", "message" if "topic" in message else None)
    if kind == "message":
        return _parse_push(message, received_at=received_at)
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


def _parse_push(message: Mapping[str, Any], *, received_at: float) -> MarketData | None:
    topic = read_str(message.get("topic"), "topic")
    subject = read_str(message.get("subject"), "subject")
    prefix = topic.partition(":")[0]
    parser = _PUSH_PARSERS.get((prefix, subject))
    if parser is None:
        log.debug("! ignoring subject %r on %s", subject, topic)
        return None
    return MarketData(topic=topic, subject=subject, value=parser(message, received_at=received_at))


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


def parse_level2_depth(message: Mapping[str, Any], *, received_at: float) -> OrderBook:
    """Return the book of a ``level2Depth5``/``level2Depth50`` push (a full top-N snapshot).

    Example::

        {"topic": "/contractMarket/level2Depth5:XBTUSDTM", "type": "message", "subject": "level2",
         "data": {"bids": [["89720.9", 513]], "sequence": 1709294294670, "timestamp": 1731680019100,
                  "ts": 1731680019100, "asks": [["89721", 906]]}}
    """
    data = read_dict(message.get("data"), "data")
    # docs-new sends "timestamp" (ms) and a "ts" equal to it; the classic docs show only "ts" in
    # nanoseconds. Prefer "timestamp"; read "ts" by magnitude when it is missing.
    if "timestamp" in data:
        ts_ms = read_int(data.get("timestamp"), "timestamp")
    else:
        ts_ms = epoch_to_ms(read_int(data.get("ts"), "ts"))
    bids = read_levels(data.get("bids"), "bids")
    asks = read_levels(data.get("asks"), "asks")
    check_not_crossed(bids, asks, "level2 depth snapshot")
    return OrderBook(
        symbol=read_topic_symbol(message),
        bids=bids,
        asks=asks,
        sequence=read_int(data.get("sequence"), "sequence"),
        ts_ms=ts_ms,
        received_at=received_at,
        source=SOURCE_WEBSOCKET,
    )


def parse_execution(message: Mapping[str, Any], *, received_at: float) -> Trade:
    """Return the trade of an ``execution`` push (``match``; ``side`` is the taker's; ``ts`` ns).

    Example::

        {"topic": "/contractMarket/execution:XBTUSDTM", "type": "message", "subject": "match",
         "data": {"symbol": "XBTUSDTM", "sequence": 1794100537695, "side": "buy", "size": 2,
                  "price": "90503.9", "tradeId": "1794100537695", "ts": 1731898619520000000}}
    """
    data = read_dict(message.get("data"), "data")
    ts_ns = data.get("ts", data.get("time"))  # older payloads name it "time"
    return Trade(
        symbol=read_name(to_unified, read_str(data.get("symbol"), "symbol")),
        trade_id=read_str(data.get("tradeId"), "tradeId"),
        price=read_price(data.get("price"), "price"),
        size=read_size(data.get("size"), "size"),
        side=read_side(data.get("side")),
        ts_ms=read_int(ts_ns, "ts") // 1_000_000,
        sequence=read_int(data.get("sequence"), "sequence"),
        received_at=received_at,
        source=SOURCE_WEBSOCKET,
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


def parse_mark_index(message: Mapping[str, Any], *, received_at: float) -> MarkIndex:
    """Return the prices of a ``mark.index.price`` push (``timestamp`` ms; symbol in the topic).

    Example::

        {"topic": "/contract/instrument:XBTUSDTM", "type": "message", "subject": "mark.index.price",
         "data": {"markPrice": 90445.02, "indexPrice": 90445.02, "granularity": 1000,
                  "timestamp": 1731899129000}}
    """
    data = read_dict(message.get("data"), "data")
    return MarkIndex(
        symbol=read_topic_symbol(message),
        mark_price=read_price(data.get("markPrice"), "markPrice"),
        index_price=read_price(data.get("indexPrice"), "indexPrice"),
        ts_ms=read_int(data.get("timestamp"), "timestamp"),
        received_at=received_at,
        source=SOURCE_WEBSOCKET,
    )


def parse_funding_rate(message: Mapping[str, Any], *, received_at: float) -> FundingRate:
    """Return the rate of a ``funding.rate`` push (``timestamp`` ms; symbol in the topic).

    Example::

        {"topic": "/contract/instrument:XBTUSDM", "subject": "funding.rate",
         "data": {"granularity": 60000, "fundingRate": -0.002966, "timestamp": 1551770400000}}
    """
    data = read_dict(message.get("data"), "data")
    return FundingRate(
        symbol=read_topic_symbol(message),
        funding_rate=read_float(data.get("fundingRate"), "fundingRate"),
        granularity_ms=read_int(data.get("granularity"), "granularity"),
        ts_ms=read_int(data.get("timestamp"), "timestamp"),
        received_at=received_at,
        source=SOURCE_WEBSOCKET,
    )


# (topic prefix, subject) -> parser. The subject alone is ambiguous: the delta feed and the
# depth5/50 snapshots all use subject "level2".
_PUSH_PARSERS: dict[tuple[str, str], Callable[..., Any]] = {
    (TOPIC_TICKER_V2, "tickerV2"): parse_ticker_v2,
    (TOPIC_TICKER, "ticker"): parse_ticker,
    (TOPIC_LEVEL2, "level2"): parse_level2,
    (TOPIC_LEVEL2_DEPTH5, "level2"): parse_level2_depth,
    (TOPIC_LEVEL2_DEPTH50, "level2"): parse_level2_depth,
    (TOPIC_EXECUTION, "match"): parse_execution,
    (TOPIC_CANDLE, "candle.stick"): parse_candle,
    (TOPIC_INSTRUMENT, "mark.index.price"): parse_mark_index,
    (TOPIC_INSTRUMENT, "funding.rate"): parse_funding_rate,
}
