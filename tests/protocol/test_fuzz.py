"""Property tests: adversarial frames and REST bodies against the protocol layer and the feed.

Frames are KuCoin's fixture payloads with fields replaced by values no market has (wrong types,
NaN/Infinity, zero, negative, bid above ask, huge numbers, nesting), dropped, or with unknown
topics and subjects; plus raw bytes (non-UTF-8, not JSON, nested past orjson's limit, huge).
Properties: the parsers raise nothing but our typed errors, every value they do return is one a
market can have, and the caches never hold anything else. One test drives the real WebSocket
thread against the simulator through a burst of such frames.

Hypothesis runs derandomized (the same examples on every run), without a database and without
deadlines, at 200 examples per test so the file stays within seconds.
"""
from __future__ import annotations

import copy
import json
import math
import pathlib
import time
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kucoin_futures.ws.caches import CandleCache, OrderBookCache, TickerCache
from kucoin_futures.ws.feed import MarketFeed
from kucoin_futures.client.health import health_report
from kucoin_futures.errors import KuCoinError, ProtocolError
from kucoin_futures.protocol.book import BookStatus
from kucoin_futures.protocol.parse import (
    parse_bullet,
    parse_frame,
    parse_rest_klines,
    parse_rest_order_book,
    parse_rest_ticker,
    parse_ticker_v2,
)
from kucoin_futures.protocol.session import WsSession
from kucoin_futures.protocol.types import (
    BookDelta,
    Candle,
    OrderBook,
    Side,
    Ticker,
    WsEndpoint,
)
from kucoin_sim import Simulator
from kucoin_websocket import KuCoinWebSocket
from tests.helpers import TIMEOUT_S, parse_message, wait_until

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"
BTC = "BTC/USDT:USDT"
SOURCE = object()

FUZZ = settings(max_examples=200, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())["payload"]


PUSHES = {name: fixture(name) for name in (
    "ws_ticker_v2", "ws_ticker", "ws_level2", "ws_level2_depth5", "ws_level2_depth50", "ws_execution",
    "ws_candle", "ws_instrument_mark_index", "ws_instrument_funding_rate", "ws_welcome", "ws_ack",
    "ws_pong", "ws_error_404_topic_not_found")}
REST = {name: fixture(name) for name in (
    "rest_ticker", "rest_level2_snapshot", "rest_level2_depth", "rest_kline_query", "rest_bullet_public")}
REST_PARSERS = {"rest_ticker": parse_rest_ticker, "rest_level2_snapshot": parse_rest_order_book,
                "rest_level2_depth": parse_rest_order_book, "rest_kline_query": parse_rest_klines}

# -- strategies -------------------------------------------------------------------------------
# Strings float() or int() accept although no price or size is written so, and numbers at the
# edges: what a lenient reader would let through.
NASTY_STRINGS = ["", "0", "-0", "0.0", "-1", "-88987.5", "1e400", "-1e400", "1e-320", "nan", "NaN", "-nan",
                 "inf", "-inf", "Infinity", "1_000", " 5", "5 ", "+5", "5,", "0x10", "True", "true", "null",
                 "88987.5", "88987.6", "90631.2", "9" * 400, "\u0663", "\u00b2", "1" * 5000]
nasty_numbers = st.one_of(
    st.sampled_from(NASTY_STRINGS), st.booleans(), st.none(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=88980.0, max_value=88995.0).map(str),  # around the fixtures' quotes
)
leaves = st.one_of(nasty_numbers, st.text(max_size=12))
json_values = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)
levels = st.lists(st.one_of(st.lists(nasty_numbers, min_size=0, max_size=3), json_values), max_size=4)
changes = st.one_of(
    st.builds(lambda price, side, size: f"{price},{side},{size}",
              st.sampled_from(NASTY_STRINGS + ["90631.2", "1"]),
              st.sampled_from(["buy", "sell", "BUY", "hold", ""]),
              st.sampled_from(NASTY_STRINGS + ["2", "0"])),
    st.text(max_size=20), json_values)
candle_rows = st.lists(st.one_of(st.sampled_from(NASTY_STRINGS + ["90638.6"]), nasty_numbers),
                       min_size=5, max_size=8)
topics = st.sampled_from([
    "/contractMarket/tickerV2:XBTUSDTM", "/contractMarket/tickerV2:ETHUSDTM",
    "/contractMarket/ticker:XBTUSDTM", "/contractMarket/level2:XBTUSDTM",
    "/contractMarket/level2Depth5:XBTUSDTM", "/contractMarket/level2:XBTUSDTM,ETH",
    "/contractMarket/limitCandle:XBTUSDTM_1min", "/contractMarket/limitCandle:XBTUSDTM_7min",
    "/contract/instrument:XBTUSDTM", "/contractMarket/unknown:XBTUSDTM", "/contractMarket/level2:", "", "nope"])
subjects = st.sampled_from(["tickerV2", "ticker", "level2", "match", "candle.stick", "mark.index.price",
                            "funding.rate", "unknown.subject", ""])


def _field_values(key: str) -> st.SearchStrategy[Any]:
    if key in ("bids", "asks"):
        return levels
    if key == "change":
        return changes
    if key == "candles":
        return candle_rows
    if key == "topic":
        return st.one_of(topics, json_values)
    if key == "subject":
        return st.one_of(subjects, json_values)
    return st.one_of(nasty_numbers, json_values)


# Fields a lenient parser would get wrong: half of the mutations pick one of these if present.
VALUE_KEYS = {"bestBidPrice", "bestAskPrice", "bestBidSize", "bestAskSize", "price", "size", "change",
              "bids", "asks", "candles", "markPrice", "indexPrice", "fundingRate", "pingInterval"}


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with 0-4 of its fields (top level, in ``data`` or in the bullet's server entry)
    replaced or removed."""
    message = copy.deepcopy(base)
    for _ in range(draw(st.integers(0, 4))):
        data = message.get("data")
        container = data if isinstance(data, dict) and draw(st.booleans()) else message
        servers = data.get("instanceServers") if isinstance(data, dict) else None
        if isinstance(servers, list) and servers and isinstance(servers[0], dict) and draw(st.booleans()):
            container = servers[0]  # the bullet's server entry
        keys = sorted(container)
        interesting = sorted(VALUE_KEYS.intersection(keys))
        if interesting and draw(st.booleans()):
            key = draw(st.sampled_from(interesting))
        else:
            key = draw(st.sampled_from(keys + ["extra"]))
        if draw(st.integers(0, 6)) == 0:
            container.pop(key, None)
        else:
            container[key] = draw(_field_values(key))
    return message


def named_mutations(bases: dict[str, dict[str, Any]]) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """(name, mutated payload) pairs, the name telling which parser the payload is for."""
    return st.sampled_from(sorted(bases)).flatmap(lambda name: st.tuples(st.just(name), mutated(bases[name])))


frames = named_mutations(PUSHES).map(lambda named: named[1])


def _encode(message: Any) -> bytes:
    # The stdlib writes NaN/Infinity tokens and integers of any size, which orjson refuses or
    # turns into floats: both are what a broken server could send.
    return json.dumps(message, allow_nan=True).encode()


NESTED_1000 = b"[" * 1000 + b"]" * 1000  # orjson decodes up to 1024 levels; repr() stops near 1000
TICKER_V2_WITH_DATA = (b'{"type":"message","topic":"/contractMarket/tickerV2:XBTUSDTM","subject":"tickerV2",'
                       b'"data":%s}')
NESTED_PAST_ORJSON = b"[" * 5000 + b"]" * 5000
NESTED_DATA = TICKER_V2_WITH_DATA % NESTED_1000
HUGE_FRAME = TICKER_V2_WITH_DATA % orjson.dumps({"symbol": "X" * 1_000_000})  # 1 MB
UNHASHABLE_TOPIC = orjson.dumps({**PUSHES["ws_ticker_v2"], "topic": ["unhashable"]})  # the data is good
NESTED_WELCOME_ID = b'{"type":"welcome","id":%s}' % NESTED_1000
NESTED_ERROR_TEXT = b'{"type":"error","code":500,"data":%s}' % NESTED_1000
RAW_EXAMPLES = [
    b"", b"\xff\xfe\x00garbage", b"\x80" * 64, b"{", b"[1, 2]", b"null", b'"text"', b"1e999",
    NESTED_PAST_ORJSON, NESTED_DATA, HUGE_FRAME, UNHASHABLE_TOPIC, NESTED_WELCOME_ID, NESTED_ERROR_TEXT,
]
encoded_frames = frames.map(_encode)
raw_frames = st.one_of(encoded_frames, encoded_frames, st.binary(max_size=300), st.sampled_from(RAW_EXAMPLES))


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


# Deeper than repr() goes (about 1000 levels, which orjson decodes). Hypothesis raises the
# recursion limit while it runs a test and cannot print such a value, so plain tests use it.
TOO_DEEP = _nested(20_000)


# -- what a market can have -------------------------------------------------------------------
def _price(value: Any) -> bool:
    return type(value) is float and 0.0 < value < math.inf


def _size(value: Any) -> bool:
    return type(value) is int and value >= 0


def assert_sane(value: Any) -> None:
    """Fail unless ``value`` is one a market can have (and the caches may hold)."""
    if isinstance(value, Ticker):
        assert _price(value.bid) and _price(value.ask) and value.bid <= value.ask, value
        assert _size(value.bid_size) and _size(value.ask_size), value
        assert value.last is None or _price(value.last), value
        assert value.last_size is None or _size(value.last_size), value
    elif isinstance(value, OrderBook):
        assert all(_price(p) and _size(s) for p, s in value.bids + value.asks), value
        if value.bids and value.asks:
            assert max(p for p, _ in value.bids) < min(p for p, _ in value.asks), value
    elif isinstance(value, BookDelta):
        assert _price(value.price) and _size(value.size) and isinstance(value.side, Side), value
    elif isinstance(value, Candle):
        assert all(_price(p) for p in (value.open, value.high, value.low, value.close)), value
        assert math.isfinite(value.volume) and value.volume >= 0 and value.low <= value.high, value
    elif isinstance(value, WsEndpoint):
        assert value.ping_interval_s > 0 and value.ping_timeout_s > 0, value
    else:
        raise AssertionError(f"unexpected value {value!r}")


# -- the protocol layer -----------------------------------------------------------------------
@FUZZ
@given(message=frames)
def test_fuzz_parsers_raise_only_protocol_error_and_return_only_sane_values(message):
    """On decoded frames, so NaN and Infinity floats and huge ints reach the parsers too: a push
    by its subject's parser (as the feed routes it), any other frame by ``parse_frame``."""
    try:
        value = parse_message(message, received_at=1.0)
    except ProtocolError:
        return
    if isinstance(value, (Ticker, OrderBook, BookDelta, Candle)):
        assert_sane(value)


@FUZZ
@given(raw=raw_frames)
def test_fuzz_session_on_text_raises_only_protocol_error(raw):
    session = WsSession()
    try:
        session.on_text(raw, 1.0)
    except ProtocolError:
        pass


@FUZZ
@given(named=named_mutations(REST))
def test_fuzz_rest_parsers_raise_only_typed_errors_and_return_only_sane_values(named):
    """Every REST parser on every mutated body: a KuCoinError (a mapped error envelope, a
    ProtocolError) or a sane value, never a KeyError, TypeError, ValueError or RecursionError."""
    name, body = named
    try:
        if name == "rest_bullet_public":
            values: Any = [parse_bullet(body)]
        else:
            parsed = REST_PARSERS[name](body, received_at=1.0)
            values = parsed if isinstance(parsed, tuple) else [parsed]
    except KuCoinError:
        return
    for value in values:
        assert_sane(value)


@pytest.mark.parametrize("raw", RAW_EXAMPLES, ids=range(len(RAW_EXAMPLES)))
def test_session_on_text_of_each_raw_example_raises_only_protocol_error(raw):
    """At the interpreter's own recursion limit: 1000 levels of nesting, which orjson decodes,
    made repr() raise RecursionError while a ProtocolError was being built."""
    try:
        WsSession().on_text(raw, 1.0)
    except ProtocolError:
        pass


@pytest.mark.parametrize("parse, payload", [
    (parse_ticker_v2, {**PUSHES["ws_ticker_v2"], "data": TOO_DEEP}),
    (parse_frame, {"type": "welcome", "id": TOO_DEEP}),
    (parse_frame, {"type": "error", "code": 500, "data": TOO_DEEP}),
    (parse_rest_ticker, {"code": "200000", "data": TOO_DEEP}),
    (parse_rest_klines, {"code": "200000", "data": [TOO_DEEP]}),
    (parse_rest_order_book, {"code": "200000",
                             "data": {**REST["rest_level2_snapshot"]["data"], "bids": TOO_DEEP}}),
], ids=["push data", "welcome id", "error text", "rest ticker", "kline row", "book levels"])
def test_values_nested_too_deep_to_show_raise_only_protocol_error(parse, payload):
    try:
        parse(payload, received_at=1.0)
    except ProtocolError:
        pass


# -- the feed and its caches ------------------------------------------------------------------
LEVEL2 = PUSHES["ws_level2"]
CANDLE = PUSHES["ws_candle"]


class _QuietOwner:
    """The feed's owner (ws.owner.Owner), ignoring what the feed reports (snapshots, closed periods)."""

    def on_snapshot_needed(self, kucoin_id: str) -> None:
        pass

    def on_period_closed(self, topic: str, start_ms: int) -> None:
        pass


def _fuzz_feed() -> tuple[MarketFeed, TickerCache, CandleCache, OrderBookCache]:
    clock = lambda: 1.0  # noqa: E731 - freshness is not under test
    tickers, candles, books = TickerCache(clock=clock), CandleCache(clock=clock), OrderBookCache(clock=clock)
    feed = MarketFeed(tickers=tickers, candles=candles, books=books, owner=_QuietOwner())
    feed.want_ticker(BTC, "XBTUSDTM")
    feed.want_candles(CANDLE["topic"], BTC, "1m")
    candles.merge(BTC, "1m", [], received_at=0.0)
    feed.books.want(BTC, "XBTUSDTM")
    feed.books.attach("XBTUSDTM", SOURCE)
    # synced just before the fixture's delta, so an unmutated one applies
    synced = OrderBook(BTC, ((90631.0, 5),), ((90631.2, 3), (90632.0, 1)), LEVEL2["data"]["sequence"] - 1,
                       1, 0.0, "rest")
    assert feed.books.apply_snapshot(synced, "XBTUSDTM", 1.0) is BookStatus.OK
    return feed, tickers, candles, books


@FUZZ
@given(burst=st.lists(raw_frames, min_size=1, max_size=12))
def test_fuzz_feed_survives_any_burst_and_caches_only_sane_values(burst):
    """``MarketFeed.on_data`` (the WebSocket thread's dispatcher) neither raises nor caches a
    value no market has, whatever a socket read brings; a good push afterwards is served."""
    feed, tickers, candles, books = _fuzz_feed()
    for raw in burst:
        feed.on_data(raw, 1.0, SOURCE)
    feed.end_of_batch(1.0)
    for value in [tickers.peek(BTC), books.peek(BTC), *(candles.peek((BTC, "1m")) or ())]:
        if value is not None:
            assert_sane(value)
    good = PUSHES["ws_ticker_v2"]
    assert feed.on_data(orjson.dumps(good), 2.0, SOURCE) is True
    served = tickers.peek(BTC)
    expected = parse_ticker_v2(good, received_at=2.0)
    assert (served.bid, served.ask, served.sequence, served.received_at) == (
        expected.bid, expected.ask, expected.sequence, 2.0)


# -- the real WebSocket thread ----------------------------------------------------------------
def _push(name: str, **data: Any) -> bytes:
    message = copy.deepcopy(PUSHES[name])
    message["data"].update(data)
    return orjson.dumps(message)


# Each of these is counted once as malformed (stats().malformed) and changes nothing cached.
COUNTED = [
    _push("ws_ticker_v2", bestBidPrice=True),
    _push("ws_ticker_v2", bestBidPrice="0"),
    _push("ws_ticker_v2", bestAskPrice="-1"),
    _push("ws_ticker_v2", bestBidPrice="1000000"),  # above the ask
    _push("ws_ticker_v2", bestBidSize=-5),
    _push("ws_ticker", price="0"),
    b"{", b"[1, 2]", NESTED_PAST_ORJSON, NESTED_DATA, HUGE_FRAME, UNHASHABLE_TOPIC, NESTED_WELCOME_ID,
]  # not NESTED_ERROR_TEXT: an error frame that answers no subscribe makes the client reconnect
# Frames of a type, topic or subject we do not handle: ignored, not counted.
IGNORED = [
    b'{"type":"message","topic":"/contractMarket/unknown:XBTUSDTM","subject":"unknown.subject","data":{}}',
    b'{"type":"surprise"}',
]


class _NoGateway:
    """health_report's REST side, which this test does not have."""

    def health(self) -> dict[str, Any]:
        return {}


def _newer(value: Ticker | OrderBook | None, moment: float) -> bool:
    return value is not None and value.received_at > moment


def test_ws_thread_survives_an_adversarial_burst_and_keeps_serving(sim: Simulator) -> None:
    """A burst of every kind of bad frame over the real socket (text, binary non-UTF-8, 1 MB,
    nested 5000 deep) plus a malformed level-2 delta: no reconnect, each bad frame counted, the
    book resynced once, and every ticker and book ever published (callbacks see them all) is
    one a market can have; fresh tickers and a resynced book are served afterwards."""
    published: list[Any] = []
    with KuCoinWebSocket(rest_url=sim.url, on_ticker=published.append, on_order_book=published.append) as ws:
        ws.subscribe_ticker(BTC)
        ws.subscribe_order_book(BTC)
        assert ws.wait_for_ticker(BTC, timeout_s=TIMEOUT_S) is not None
        assert ws.wait_for_order_book(BTC, timeout_s=TIMEOUT_S) is not None
        delta = orjson.loads(_push("ws_level2", change="60000.0,buy,-5"))
        delta["data"]["sequence"] = ws.get_order_book(BTC, max_age_s=60).sequence + 1
        assert sim.send_raw(COUNTED + IGNORED + [orjson.dumps(delta)]) == 1
        assert sim.send_raw([b"\xff\xfe\x00 not utf-8"], binary=True) == 1
        wait_until(lambda: ws.stats().malformed == len(COUNTED) + 2, what="every bad frame counted")
        after = time.monotonic()  # the whole burst has been read
        wait_until(lambda: _newer(ws.get_ticker(BTC, max_age_s=60), after), what="tickers after the burst")
        wait_until(lambda: _newer(ws.get_order_book(BTC, max_age_s=60), after), what="the book resynced")
        stats = ws.stats()
        health = health_report(started=True, closed=False, source_counts={}, gateway=_NoGateway(), ws=ws)
        seen = list(published)
    assert (stats.malformed, stats.resyncs, stats.reconnects, sim.connections_total) == (
        len(COUNTED) + 2, {BTC: 1}, 0, 1)
    # where KuCoinClient.health() shows them
    assert (health["websocket"]["malformed"], health["websocket"]["resyncs"]) == (len(COUNTED) + 2, {BTC: 1})
    for value in seen:
        assert_sane(value)
    assert {type(value) for value in seen} == {Ticker, OrderBook}


@pytest.mark.parametrize("raw", COUNTED + IGNORED)
def test_burst_frames_are_what_the_thread_test_says(raw):
    """Keeps the thread test's expected count honest: each COUNTED frame is counted once by the
    dispatcher (or the session it hands control frames to), each IGNORED one not at all."""
    feed, tickers, _, _ = _fuzz_feed()
    handled = feed.on_data(raw, 1.0, SOURCE)
    if handled is None:
        feed.note_malformed(raw, 1.0, "not JSON")  # what the connection does for a text frame
    elif handled is False:
        try:
            WsSession().on_text(raw, 1.0)
        except ProtocolError:
            feed.note_malformed(raw, 1.0, "control frame")
    assert (feed.malformed, tickers.peek(BTC)) == (1 if raw in COUNTED else 0, None)
