"""KuCoin Futures wire vocabulary: topics, frame builders, the connect URL and field readers.

Pure and stdlib + orjson only. Topic helpers take KuCoin contract ids ("XBTUSDTM"); frames are
returned as JSON text ready to send. The ``read_*`` helpers turn one JSON field into a Python
value and raise ``ProtocolError`` on a wrong shape, so parsers never leak KeyError/TypeError.
"""
from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlencode

import orjson

from kucoin_futures.errors import InvalidArgument, ProtocolError, error_for_code
from kucoin_futures.protocol.types import (
    PriceLevel,
    Side,
    WsEndpoint,
    candle_type_to_timeframe,
    timeframe_to_candle_type,
    to_unified,
)

__all__ = [
    "CLIENT_OID_RE", "DEFAULT_FUTURES_URL", "MAX_TOPICS_PER_MESSAGE", "PRIVATE_TOPIC_PREFIXES", "SUCCESS_CODE",
    "TOPIC_ADVANCED_ORDERS", "TOPIC_CANDLE", "TOPIC_EXECUTION", "TOPIC_INSTRUMENT", "TOPIC_LEVEL2",
    "TOPIC_LEVEL2_DEPTH5", "TOPIC_LEVEL2_DEPTH50", "TOPIC_POSITION", "TOPIC_POSITION_ALL",
    "TOPIC_TICKER", "TOPIC_TICKER_V2", "TOPIC_TRADE_ORDERS", "TOPIC_WALLET",
    "batch_topics", "build_ping", "build_subscribe", "build_unsubscribe", "is_private_topic",
    "parse_candle_topic", "redact_url", "split_topic", "topic_candle", "topic_execution",
    "topic_instrument", "topic_level2", "topic_position", "topic_ticker", "topic_ticker_v2", "unwrap_envelope",
    "ws_connect_url",
]  # the read_* field readers below are shared with protocol.parse but not re-exported

# -- REST -------------------------------------------------------------------------------------
DEFAULT_FUTURES_URL = "https://api-futures.kucoin.com"  # KuCoin Futures REST base (tokens, orders, data)
SUCCESS_CODE = "200000"  # the envelope code of every successful REST answer (a string)
CLIENT_OID_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")  # KuCoin: <= 40 chars of [A-Za-z0-9_-] (notes 7.2)

# -- Topics (protocol notes sections 10 and 12) -----------------------------------------------
TOPIC_TICKER_V2 = "/contractMarket/tickerV2"  # best bid/ask on every change
TOPIC_TICKER = "/contractMarket/ticker"  # v1: last trade + best bid/ask, per match
TOPIC_LEVEL2 = "/contractMarket/level2"  # level-2 deltas, sequence +1 each
TOPIC_LEVEL2_DEPTH5 = "/contractMarket/level2Depth5"  # top 5 full snapshots, <= 10/s
TOPIC_LEVEL2_DEPTH50 = "/contractMarket/level2Depth50"  # top 50 full snapshots, <= 10/s
TOPIC_EXECUTION = "/contractMarket/execution"  # public matches
TOPIC_CANDLE = "/contractMarket/limitCandle"  # args are SYMBOL_type, e.g. XBTUSDTM_1min
TOPIC_INSTRUMENT = "/contract/instrument"  # mark/index price (1 s) and funding rate (1 min)
TOPIC_TRADE_ORDERS = "/contractMarket/tradeOrders"  # private: our order changes
TOPIC_ADVANCED_ORDERS = "/contractMarket/advancedOrders"  # private: stop orders
TOPIC_WALLET = "/contractAccount/wallet"  # private: balance changes
TOPIC_POSITION = "/contract/position"  # private: position changes
TOPIC_POSITION_ALL = "/contract/positionAll"  # private: all positions
PRIVATE_TOPIC_PREFIXES = frozenset(
    {TOPIC_TRADE_ORDERS, TOPIC_ADVANCED_ORDERS, TOPIC_WALLET, TOPIC_POSITION, TOPIC_POSITION_ALL}
)
MAX_TOPICS_PER_MESSAGE = 100  # docs-new "Rate Limit": <= 100 topics per subscribe (else error 509)

_TOPIC_ARG_RE = re.compile(r"[A-Z0-9]+")  # contract ids are upper-case letters and digits


def _check_topic_arg(arg: str) -> str:
    if not isinstance(arg, str) or _TOPIC_ARG_RE.fullmatch(arg) is None:
        raise InvalidArgument(f"not a KuCoin contract id: {arg!r}")
    return arg


def topic_ticker_v2(kucoin_id: str) -> str:
    """Return the best bid/ask topic of a contract ("/contractMarket/tickerV2:XBTUSDTM")."""
    return f"{TOPIC_TICKER_V2}:{_check_topic_arg(kucoin_id)}"


def topic_ticker(kucoin_id: str) -> str:
    """Return the v1 (trade-driven) ticker topic of a contract."""
    return f"{TOPIC_TICKER}:{_check_topic_arg(kucoin_id)}"


def topic_level2(kucoin_id: str, *, depth: int | None = None) -> str:
    """Return the level-2 delta topic, or with ``depth`` 5/50 the full-depth snapshot topic."""
    if depth is None:
        prefix = TOPIC_LEVEL2
    elif depth == 5:
        prefix = TOPIC_LEVEL2_DEPTH5
    elif depth == 50:
        prefix = TOPIC_LEVEL2_DEPTH50
    else:
        raise InvalidArgument(f"level-2 depth must be None, 5 or 50, not {depth!r}")
    return f"{prefix}:{_check_topic_arg(kucoin_id)}"


def topic_candle(kucoin_id: str, timeframe: str) -> str:
    """Return the candle topic ("/contractMarket/limitCandle:XBTUSDTM_1min" for "1m")."""
    return f"{TOPIC_CANDLE}:{_check_topic_arg(kucoin_id)}_{timeframe_to_candle_type(timeframe)}"


def topic_execution(kucoin_id: str) -> str:
    """Return the public trades topic of a contract."""
    return f"{TOPIC_EXECUTION}:{_check_topic_arg(kucoin_id)}"


def topic_instrument(kucoin_id: str) -> str:
    """Return the mark/index price and funding rate topic of a contract."""
    return f"{TOPIC_INSTRUMENT}:{_check_topic_arg(kucoin_id)}"


def topic_position(kucoin_id: str) -> str:
    """Return the private position topic of a contract (changes and funding settlements)."""
    return f"{TOPIC_POSITION}:{_check_topic_arg(kucoin_id)}"


def split_topic(topic: str) -> tuple[str, list[str]]:
    """Split "/contractMarket/level2:A,B" into ("/contractMarket/level2", ["A", "B"])."""
    if not isinstance(topic, str) or not topic.startswith("/"):
        raise InvalidArgument(f"not a KuCoin topic: {topic!r}")
    prefix, sep, args = topic.partition(":")
    if not sep:
        return prefix, []
    symbols = args.split(",")
    if not all(symbols):
        raise InvalidArgument(f"empty symbol in topic {topic!r}")
    return prefix, symbols


def is_private_topic(topic: str) -> bool:
    """Return True for topics that need a private token and ``privateChannel: true``."""
    return split_topic(topic)[0] in PRIVATE_TOPIC_PREFIXES


def parse_candle_topic(topic: str) -> tuple[str, str]:
    """Return (unified symbol, timeframe) of "/contractMarket/limitCandle:XBTUSDTM_1min"."""
    try:
        prefix, args = split_topic(topic)
    except InvalidArgument as exc:
        raise ProtocolError(str(exc)) from exc
    if prefix != TOPIC_CANDLE or len(args) != 1 or "_" not in args[0]:
        raise ProtocolError(f"not a single-symbol candle topic: {topic!r}")
    kucoin_id, _, candle_type = args[0].rpartition("_")
    return read_name(to_unified, kucoin_id), read_name(candle_type_to_timeframe, candle_type)


def batch_topics(topics: Iterable[str], max_per_message: int = MAX_TOPICS_PER_MESSAGE) -> list[str]:
    """Group topics by prefix into comma-joined topics of at most ``max_per_message`` symbols.

    Order is kept (first appearance of each prefix, then of each symbol); duplicates are dropped.
    Topics without symbols ("/contractAccount/wallet") stay as they are.
    """
    if max_per_message < 1:
        raise InvalidArgument(f"max_per_message must be >= 1, not {max_per_message!r}")
    groups: dict[str, dict[str, None]] = {}
    for topic in topics:
        prefix, symbols = split_topic(topic)
        group = groups.setdefault(prefix, {})
        group.update(dict.fromkeys(symbols))
    batched: list[str] = []
    for prefix, symbols in groups.items():
        names = list(symbols)
        if not names:
            batched.append(prefix)
        for start in range(0, len(names), max_per_message):
            batched.append(f"{prefix}:{','.join(names[start:start + max_per_message])}")
    return batched


# -- Frame builders (protocol notes section 9.3) ----------------------------------------------
def build_subscribe(topic: str, *, msg_id: str) -> str:
    """Return a subscribe frame asking for an ack (``privateChannel`` set from the topic)."""
    return _dump({"id": msg_id, "type": "subscribe", "topic": topic,
                  "privateChannel": is_private_topic(topic), "response": True})


def build_unsubscribe(topic: str, *, msg_id: str) -> str:
    """Return an unsubscribe frame asking for an ack."""
    return _dump({"id": msg_id, "type": "unsubscribe", "topic": topic,
                  "privateChannel": is_private_topic(topic), "response": True})


def build_ping(*, msg_id: str) -> str:
    """Return a ping frame; the server answers ``{"id": msg_id, "type": "pong"}``."""
    return _dump({"id": msg_id, "type": "ping"})


def _dump(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


# -- Connect URL (protocol notes section 9.2) -----------------------------------------------
def ws_connect_url(endpoint: WsEndpoint, connect_id: str) -> str:
    """Return ``<endpoint>?token=...&connectId=...`` (the welcome frame echoes ``connect_id``)."""
    separator = "&" if "?" in endpoint.url else "?"
    return f"{endpoint.url}{separator}{urlencode({'token': endpoint.token, 'connectId': connect_id})}"


def redact_url(url: str) -> str:
    """Return ``url`` with the token query value replaced by "***" (tokens are never logged)."""
    return re.sub(r"(token=)[^&]*", r"\1***", url)


# -- REST envelope (protocol notes section 3.1) ---------------------------------------------
def unwrap_envelope(payload: Any, *, http_status: int | None = None) -> Any:
    """Return ``data`` of a success envelope; raise the mapped ``KuCoinError`` for an error one."""
    envelope = read_dict(payload, "envelope")
    code = envelope.get("code")
    if not isinstance(code, str):
        raise ProtocolError(f"envelope without a string 'code': {short_repr(payload)}")
    if code != SUCCESS_CODE:
        message = envelope.get("msg")
        raise error_for_code(code, message if isinstance(message, str) else "", http_status=http_status)
    return envelope.get("data")


# -- Field readers: wrong shapes become ProtocolError -----------------------------------------
_T = TypeVar("_T")


def read_name(convert: Callable[[str], _T], value: str) -> _T:
    """Return ``convert(value)`` for a name the exchange sent (a symbol, a candle type)."""
    # A name we cannot translate came from the exchange, so it is the remote's fault here:
    # the caller's InvalidArgument becomes a ProtocolError.
    try:
        return convert(value)
    except InvalidArgument as exc:
        raise ProtocolError(str(exc)) from exc


def read_dict(value: Any, what: str) -> dict[str, Any]:
    """Return ``value`` if it is a JSON object."""
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object, got {short_repr(value)}")
    return value


def read_list(value: Any, what: str) -> list[Any]:
    """Return ``value`` if it is a JSON array."""
    if not isinstance(value, list):
        raise ProtocolError(f"{what} must be a JSON array, got {short_repr(value)}")
    return value


def read_row(value: Any, length: int, what: str) -> list[Any]:
    """Return ``value`` if it is a JSON array of exactly ``length`` items."""
    row = read_list(value, what)
    if len(row) != length:
        raise ProtocolError(f"{what} must have {length} items, got {short_repr(value)}")
    return row


def read_str(value: Any, what: str) -> str:
    """Return ``value`` if it is a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{what} must be a non-empty string, got {short_repr(value)}")
    return value


def read_float(value: Any, what: str) -> float:
    """Return a finite float from a JSON number or numeric string."""
    # KuCoin sends prices as strings on some endpoints and numbers on others.
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ProtocolError(f"{what} must be a number, got {short_repr(value)}")
    try:
        number = float(value)
    except ValueError:
        raise ProtocolError(f"{what} must be a number, got {short_repr(value)}") from None
    if not math.isfinite(number):
        raise ProtocolError(f"{what} must be finite, got {short_repr(value)}")
    return number


def read_int(value: Any, what: str) -> int:
    """Return an int from a JSON integer, a digit string, or an integral float."""
    # Private payloads send sizes as strings ("1"), public ones as numbers; times and sequences
    # are integers. A float is accepted only when integral (1.0), never rounded.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        try:
            return int(value)
        except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
            raise ProtocolError(f"{what} has too many digits: {short_repr(value)}") from None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ProtocolError(f"{what} must be an integer, got {short_repr(value)}")


def read_optional(data: Mapping[str, Any], key: str, reader: Callable[[Any, str], _T]) -> _T | None:
    """Return ``reader(data[key], key)``, or None when the key is missing, null or "" (KuCoin's
    private payloads leave fields empty that do not apply)."""
    value = data.get(key)
    if value is None or value == "":
        return None
    return reader(value, key)


def read_bool(value: Any, what: str) -> bool:
    """Return a JSON boolean (``ProtocolError`` for anything else, the string "true" included)."""
    if not isinstance(value, bool):
        raise ProtocolError(f"{what} must be true or false, got {short_repr(value)}")
    return value


_E = TypeVar("_E", bound=enum.Enum)


def read_enum(kind: type[_E], value: Any, what: str) -> _E:
    """Return the member of a strict enum (an order's state): an unknown value is a ``ProtocolError``."""
    try:
        return kind(value)
    except ValueError:
        raise ProtocolError(f"{what} must be one of {[m.value for m in kind]}, got {short_repr(value)}") from None


def read_descriptive(kind: type[_E], value: Any) -> _E:
    """Return the member of a descriptive enum, its ``UNKNOWN`` for a value it lacks (nautilus rule)."""
    try:
        return kind(value)
    except ValueError:
        return kind["UNKNOWN"]


def read_price(value: Any, what: str) -> float:
    """Return a price: a finite float > 0 from a JSON number or numeric string."""
    # A zero or negative quote is a corrupt frame, not a market: served, it would be traded on.
    price = read_float(value, what)
    if not price > 0:
        raise ProtocolError(f"{what} must be > 0, got {short_repr(value)}")
    return price


def read_size(value: Any, what: str) -> int:
    """Return a size in lots: an int >= 0 (0 is "no size", e.g. a removed level)."""
    size = read_int(value, what)
    if size < 0:
        raise ProtocolError(f"{what} must be >= 0, got {short_repr(value)}")
    return size


def read_side(value: Any) -> Side:
    """Return the ``Side`` of "buy" or "sell"."""
    try:
        return Side(value)
    except ValueError:
        raise ProtocolError(f"side must be 'buy' or 'sell', got {short_repr(value)}") from None


def read_levels(value: Any, what: str) -> tuple[PriceLevel, ...]:
    """Return order-book levels from ``[[price, size], ...]`` (prices as numbers or strings)."""
    levels = []
    for level in read_list(value, what):
        price, size = read_row(level, 2, f"{what} level")
        levels.append((read_price(price, f"{what} price"), read_size(size, f"{what} size")))
    return tuple(levels)


def check_not_crossed(bids: tuple[PriceLevel, ...], asks: tuple[PriceLevel, ...], what: str) -> None:
    """Raise ``ProtocolError`` if the best bid is at or above the best ask (a corrupt book)."""
    # max/min, not [0]: the order of the levels is the sender's, not checked here.
    if bids and asks and max(price for price, _ in bids) >= min(price for price, _ in asks):
        raise ProtocolError(f"{what} is crossed: best bid {max(p for p, _ in bids)} >= "
                            f"best ask {min(p for p, _ in asks)}")


def read_id(message: Mapping[str, Any]) -> str | None:
    """Return a frame's ``id`` as a string, or None when it has none."""
    value = message.get("id")
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):  # docs examples use numbers too
        try:
            return str(value)
        except ValueError:  # more digits than str() converts
            pass
    raise ProtocolError(f"frame id must be a string or an integer, got {short_repr(value)}")


def read_topic_symbol(message: Mapping[str, Any]) -> str:
    """Return the unified symbol named by a push's single-symbol topic."""
    topic = read_str(message.get("topic"), "topic")
    prefix, sep, kucoin_id = topic.partition(":")
    if not sep or "," in kucoin_id:
        raise ProtocolError(f"push topic must name exactly one symbol: {topic!r}")
    return read_name(to_unified, kucoin_id)


def short_repr(value: Any, limit: int = 200) -> str:
    """Return a repr cut to ``limit`` characters, for error messages."""
    try:
        text = repr(value)
    except RecursionError:  # orjson decodes 1024 levels of nesting; repr stops near 1000
        text = f"<{type(value).__name__} nested too deeply to show>"
    return text if len(text) <= limit else f"{text[:limit]}..."
