"""KuCoin WebSocket payloads built from the core's events, and subscription topic parsing.

Shapes follow protocol notes §9.4, §10 and §12 (push format {"type":"message","topic",
"subject","data"}; data messages always carry the single-symbol topic).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from .events import (
    BestQuote, BookDelta, CandleUpdate, Event, FundingRate, MarkIndex, PrivateEvent, TickerUpdate, Trade,
)

# WS candle "type" suffix -> granularity in minutes (docs-new Klines topic; REST has no 3min/1month).
CANDLE_TYPES = {
    "1min": 1, "5min": 5, "15min": 15, "30min": 30, "1hour": 60, "2hour": 120, "4hour": 240,
    "8hour": 480, "12hour": 720, "1day": 1440, "1week": 10080,
}
CANDLE_TYPE_OF = {minutes: name for name, minutes in CANDLE_TYPES.items()}

# prefix -> (private?, needs a symbol argument?)
PUBLIC_PREFIXES = {
    "/contractMarket/tickerV2": True,
    "/contractMarket/ticker": True,
    "/contractMarket/level2": True,
    "/contractMarket/level2Depth5": True,
    "/contractMarket/level2Depth50": True,
    "/contractMarket/execution": True,
    "/contractMarket/limitCandle": True,
    "/contractMarket/candle": True,
    "/contract/instrument": True,
}
PRIVATE_PREFIXES = {
    "/contractMarket/tradeOrders": False,  # optional ":SYM"
    "/contractMarket/advancedOrders": False,
    "/contractAccount/wallet": False,
    "/contract/position": True,
    "/contract/positionAll": False,
}
MAX_TOPICS_PER_SUBSCRIBE = 100  # error 509 beyond this (protocol notes §9.5)


class TopicError(Exception):
    """A subscription KuCoin would refuse; code and text go into the error frame."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass(frozen=True, slots=True)
class TopicRequest:
    private: bool
    topics: tuple[str, ...]  # one per symbol


def expand_topic(topic: str, known_symbols: set[str]) -> TopicRequest:
    """Split '/prefix:A,B' into single-symbol topics; raise TopicError for what KuCoin refuses."""
    prefix, _, args = topic.partition(":")
    private = prefix in PRIVATE_PREFIXES
    needs_arg = PRIVATE_PREFIXES[prefix] if private else PUBLIC_PREFIXES.get(prefix)
    if needs_arg is None:
        raise TopicError(404, f"topic {topic} is not found")
    if not args:
        if needs_arg:
            raise TopicError(404, f"topic {topic} is not found")
        return TopicRequest(private, (prefix,))
    items = [a for a in args.split(",") if a]
    if len(items) > MAX_TOPICS_PER_SUBSCRIBE:
        raise TopicError(509, "exceed max subscription count limitation of 100 per time")
    for item in items:
        symbol = item
        if prefix in ("/contractMarket/limitCandle", "/contractMarket/candle"):
            symbol, _, ctype = item.rpartition("_")
            if ctype not in CANDLE_TYPES:
                raise TopicError(404, f"topic {topic} is not found")
        if symbol not in known_symbols:
            raise TopicError(404, f"topic {topic} is not found")
    return TopicRequest(private, tuple(f"{prefix}:{item}" for item in items))


def _msg(topic: str, subject: str, data: object, sn: int | None = None) -> bytes:
    body = {"topic": topic, "type": "message", "subject": subject}
    if sn is not None:
        body["sn"] = sn
    body["data"] = data
    return orjson.dumps(body)


def _private(topic: str, subject: str, data: dict, user_id: str, msg_id: str | None) -> bytes:
    msg = {"topic": topic, "type": "message", "subject": subject}
    if msg_id is not None:
        msg["id"] = msg_id
    elif topic == "/contractAccount/wallet":
        # wallet pushes carry a message id in KuCoin's example; derive one from the version
        msg["id"] = format(int(data.get("version") or data.get("timestamp") or 0), "024x")
    msg.update(channelType="private", userId=user_id, data=data)
    return orjson.dumps(msg)


def event_topics(event: Event) -> tuple[str, ...]:
    """The single-symbol topics an event is pushed on (cheap: used to skip unwatched events)."""
    if isinstance(event, BookDelta):
        return (f"/contractMarket/level2:{event.symbol}",)
    if isinstance(event, BestQuote):
        return (f"/contractMarket/tickerV2:{event.symbol}",)
    if isinstance(event, TickerUpdate):
        return (f"/contractMarket/ticker:{event.symbol}",)
    if isinstance(event, Trade):
        return (f"/contractMarket/execution:{event.symbol}",)
    if isinstance(event, CandleUpdate):
        ctype = CANDLE_TYPE_OF.get(event.granularity_min)
        if ctype is None:
            return ()
        return (f"/contractMarket/limitCandle:{event.symbol}_{ctype}",
                f"/contractMarket/candle:{event.symbol}_{ctype}")
    if isinstance(event, (MarkIndex, FundingRate)):
        return (f"/contract/instrument:{event.symbol}",)
    if isinstance(event, PrivateEvent):
        return tuple(_private_topics(event))
    return ()


def _private_topics(event: PrivateEvent) -> Iterator[str]:
    if event.kind == "order":
        yield "/contractMarket/tradeOrders"
        if event.symbol:
            yield f"/contractMarket/tradeOrders:{event.symbol}"
    elif event.kind == "stop":
        yield "/contractMarket/advancedOrders"  # docs-new: no per-symbol form of this topic
    elif event.kind == "position":
        if event.symbol:
            yield f"/contract/position:{event.symbol}"
        yield "/contract/positionAll"
    elif event.kind == "wallet":
        yield "/contractAccount/wallet"


def event_payload(event: Event, topic: str, user_id: str) -> bytes:
    """KuCoin's push for `event` on `topic` (one of event_topics(event))."""
    if isinstance(event, BookDelta):
        data = {"sequence": event.sequence, "change": f"{event.price},{event.side},{event.size}",
                "timestamp": event.ts_ms}
        return _msg(topic, "level2", data, event.sequence)
    if isinstance(event, BestQuote):
        data = {"symbol": event.symbol, "sequence": event.sequence, "bestBidSize": event.best_bid_size,
                "bestBidPrice": event.best_bid_price, "bestAskPrice": event.best_ask_price,
                "bestAskSize": event.best_ask_size, "ts": event.ts_ns}
        return _msg(topic, "tickerV2", data, event.sequence)
    if isinstance(event, TickerUpdate):
        data = {"symbol": event.symbol, "sequence": event.sequence, "side": event.side, "size": event.size,
                "price": event.price, "bestBidSize": event.best_bid_size, "bestBidPrice": event.best_bid_price,
                "bestAskPrice": event.best_ask_price, "bestAskSize": event.best_ask_size,
                "tradeId": event.trade_id, "ts": event.ts_ns}
        return _msg(topic, "ticker", data, event.sequence)
    if isinstance(event, Trade):
        data = {"symbol": event.symbol, "sequence": event.sequence, "side": event.side, "size": event.size,
                "price": event.price, "takerOrderId": event.taker_order_id,
                "makerOrderId": event.maker_order_id, "tradeId": event.trade_id, "ts": event.ts_ns}
        return _msg(topic, "match", data, event.sequence)
    if isinstance(event, CandleUpdate):
        # WS order is start(seconds), open, CLOSE, HIGH, LOW, volume ("incorrect" per the docs), amount
        candles = [str(event.start_s), event.open, event.close, event.high, event.low,
                   f"{float(event.volume)}", str(event.volume)]
        return _msg(topic, "candle.stick", {"symbol": event.symbol, "candles": candles, "time": event.time_ms})
    if isinstance(event, MarkIndex):
        data = {"granularity": 1000, "indexPrice": event.index_price, "markPrice": event.mark_price,
                "timestamp": event.ts_ms}
        return _msg(topic, "mark.index.price", data)
    if isinstance(event, FundingRate):
        data = {"granularity": 60000, "fundingRate": event.funding_rate, "timestamp": event.ts_ms}
        return _msg(topic, "funding.rate", data)
    if isinstance(event, PrivateEvent):
        subject = event.subject
        if event.kind == "order" and topic != "/contractMarket/tradeOrders":
            subject = "symbolOrderChange"
        return _private(topic, subject, event.data, user_id, event.msg_id)
    raise TypeError(f"no payload for {event!r}")


def depth_payload(topic: str, data: dict) -> bytes:
    # level2Depth5/50 carry sn = the ms timestamp, not the book sequence (protocol notes §9.4)
    return _msg(topic, "level2", data, data.get("timestamp"))


def ws_frame(payload: bytes, *, binary: bool = False) -> bytes:
    """An unmasked server-to-client text (or binary) frame (RFC 6455 §5.2)."""
    first = 0x82 if binary else 0x81  # FIN + opcode
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return bytes((first, 126)) + n.to_bytes(2, "big") + payload
    return bytes((first, 127)) + n.to_bytes(8, "big") + payload
