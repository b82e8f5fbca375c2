"""Pure tests: recorded KuCoin payloads (tests/fixtures) parsed into value types."""
from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from kucoin_futures.errors import ProtocolError
from kucoin_futures.protocol.parse import (
    decode_frame,
    parse_bullet,
    parse_candle,
    parse_frame,
    parse_rest_klines,
    parse_rest_order_book,
    parse_rest_ticker,
)
from kucoin_futures.protocol.types import (
    Ack,
    BookDelta,
    Candle,
    OrderBook,
    Pong,
    ServerError,
    Side,
    Ticker,
    Welcome,
    WsEndpoint,
)
from tests.helpers import parse_message

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"
RECEIVED_AT = 1234.5


def payload(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())["payload"]


def frame_event(name: str) -> Any:
    """Encode a fixture as the server would send it, then decode and parse it."""
    raw = json.dumps(payload(name)).encode()
    return parse_message(decode_frame(raw), received_at=RECEIVED_AT)


# -- REST --------------------------------------------------------------------------------------
def test_parse_bullet_public():
    endpoint = parse_bullet(payload("rest_bullet_public"))
    assert endpoint == WsEndpoint(
        url="wss://ws-api-futures.kucoin.com/",
        token=payload("rest_bullet_public")["data"]["token"],
        ping_interval_s=18.0,
        ping_timeout_s=10.0,
        encrypt=True,
    )


def test_ws_endpoint_repr_hides_token():
    endpoint = parse_bullet(payload("rest_bullet_private"))
    assert endpoint.token not in repr(endpoint)


def test_parse_rest_ticker_converts_ns_to_ms():
    assert parse_rest_ticker(payload("rest_ticker"), received_at=RECEIVED_AT) == Ticker(
        symbol="BTC/USD:BTC", bid=67169.6, bid_size=32345, ask=67169.7, ask_size=7251,
        last=67158.4, last_size=2936, ts_ms=1729163001780, received_at=RECEIVED_AT,
        source="rest", sequence=1697895100310,
    )


def test_parse_rest_klines_rows_in_ms_oldest_first():
    candles = parse_rest_klines(payload("rest_kline_query"), received_at=RECEIVED_AT)
    assert candles == (
        Candle(1728576000000, 60791.1, 61035.0, 58940.0, 60300.0, 5501167.0, RECEIVED_AT, "rest"),
        Candle(1728604800000, 60299.9, 60924.1, 60077.4, 60666.1, 1220980.0, RECEIVED_AT, "rest"),
        Candle(1728633600000, 60665.7, 62436.8, 60650.1, 62255.1, 3386359.0, RECEIVED_AT, "rest"),
    )


def test_parse_rest_klines_sorts_descending_rows():
    body = {"code": "200000", "data": [[1728604800000, 2, 2, 2, 2, 2], [1728576000000, 1, 1, 1, 1, 1]]}
    assert [c.ts_ms for c in parse_rest_klines(body, received_at=0.0)] == [1728576000000, 1728604800000]


def test_parse_rest_order_book_numbers():
    assert parse_rest_order_book(payload("rest_level2_snapshot"), received_at=RECEIVED_AT) == OrderBook(
        symbol="BTC/USD:BTC",
        bids=((66968.0, 2), (66964.8, 25596)),
        asks=((66968.1, 13501), (66968.7, 2032)),
        sequence=1697895963339, ts_ms=1729168101216, received_at=RECEIVED_AT, source="rest",
    )


def test_parse_rest_order_book_string_prices_classic_docs():
    assert parse_rest_order_book(payload("rest_level2_snapshot_classic"), received_at=RECEIVED_AT) == OrderBook(
        symbol="BTC/USD:BTC",
        bids=((3200.0, 800), (3100.0, 100)),
        asks=((5000.0, 1000), (6000.0, 1983)),
        sequence=100, ts_ms=1604643655040, received_at=RECEIVED_AT, source="rest",
    )


def test_parse_rest_depth_endpoint_same_shape():
    book = parse_rest_order_book(payload("rest_level2_depth"), received_at=RECEIVED_AT)
    assert (book.sequence, book.bids[0], book.asks[0]) == (1697895963339, (66968.0, 2), (66968.1, 13501))


# -- WebSocket control frames ------------------------------------------------------------------
@pytest.mark.parametrize(("name", "expected"), [
    ("ws_welcome", Welcome(connect_id="hQvf8jkno")),
    ("ws_ack", Ack(id="1545910660739")),
    ("ws_pong", Pong(id="1545910590801")),
    ("ws_error_404_topic_not_found",
     ServerError(id="1551623050668", code=404, message="topic /market/level2:BSV-BTC is not found")),
    ("ws_error_401_token_expired", ServerError(id=None, code=401, message="token is expired")),
    ("ws_error_509_too_many_topics",
     ServerError(id="xxxx", code=509, message="exceed max subscription count limitation of 100 per time")),
    ("ws_error_509_permits", ServerError(id=None, code=509, message="exceed max permits per second")),
    ("ws_error_415_type_not_supported", ServerError(id="1", code=415, message="type is not supported")),
])
def test_parse_frame_control(name, expected):
    assert frame_event(name) == expected


# -- WebSocket pushes --------------------------------------------------------------------------
def test_parse_ticker_v2_has_no_last_trade():
    assert frame_event("ws_ticker_v2") == Ticker(
        symbol="BTC/USDT:USDT", bid=88987.4, bid_size=713, ask=88987.5, ask_size=1037, last=None,
        last_size=None, ts_ms=1731665526461, received_at=RECEIVED_AT, source="websocket", sequence=1709284589209,
    )


def test_parse_ticker_v1():
    assert frame_event("ws_ticker") == Ticker(
        symbol="BTC/USDT:USDT", bid=90147.7, bid_size=2186, ask=90147.8, ask_size=275, last=90147.7,
        last_size=1, ts_ms=1731679215637, received_at=RECEIVED_AT, source="websocket", sequence=1793133570931,
    )


def test_parse_level2_delta():
    assert frame_event("ws_level2") == BookDelta(
        symbol="BTC/USDT:USDT", sequence=1709400450243, price=90631.2, side=Side.SELL, size=2, ts_ms=1731897467182,
    )


def test_parse_candle_reorders_fields_and_converts_seconds():
    """WS order is [start s, open, close, high, low, v5, amount]; volume is index 6."""
    message = {"type": "message", "topic": "/contractMarket/limitCandle:XBTUSDTM_1min",
               "subject": "candle.stick",
               "data": {"symbol": "XBTUSDTM", "candles": ["1731898200", "10", "11", "12", "9", "999", "21"],
                        "time": 1731898208357}}
    assert parse_candle(message, received_at=RECEIVED_AT) == Candle(
        ts_ms=1731898200000, open=10.0, high=12.0, low=9.0, close=11.0, volume=21.0,
        received_at=RECEIVED_AT, source="websocket",
    )


def test_parse_candle_fixture():
    assert frame_event("ws_candle") == Candle(
        1731898200000, 90638.6, 90638.6, 90638.6, 90638.6, 21.0, RECEIVED_AT, "websocket")


@pytest.mark.parametrize("name", [
    "ws_ticker_v2", "ws_ticker", "ws_level2", "ws_candle", "ws_level2_depth5", "ws_execution",
    "ws_instrument_mark_index", "ws_instrument_funding_rate",
])
def test_parse_frame_leaves_pushes_to_the_feed(name):
    """The session's parser yields nothing for a push, also one without "type" (classic docs)."""
    assert parse_frame(decode_frame(json.dumps(payload(name))), received_at=0.0) is None


@pytest.mark.parametrize("name", [
    "ws_trade_orders", "ws_trade_orders_match", "ws_wallet", "ws_wallet_available_balance",
    "ws_position_change", "ws_stop_order", "ws_snapshot_24h", "ws_announcement_funding_begin",
])
def test_parse_frame_unknown_subject_yields_nothing(name):
    assert frame_event(name) is None


def test_parse_frame_unknown_type_yields_nothing():
    assert parse_frame({"type": "notice", "id": "1"}, received_at=0.0) is None


def test_parse_frame_accepts_str_and_numeric_ids():
    assert parse_frame(decode_frame('{"id": 1545910660739, "type": "ack"}'), received_at=0.0) == Ack(
        id="1545910660739")


# -- Malformed input -----------------------------------------------------------------------------
def _push(topic: str, subject: str, data: Any) -> bytes:
    return json.dumps({"type": "message", "topic": topic, "subject": subject, "data": data}).encode()


TICKER_DATA = payload("ws_ticker_v2")["data"]


@pytest.mark.parametrize("raw", [
    b"not json",
    b"",
    b"[1, 2]",
    b'{"type": "ack"}',
    b'{"type": "error", "code": "x"}',
    b'{"type": "message", "subject": "tickerV2", "data": {}}',
    _push("/contractMarket/tickerV2:XBTUSDTM", "tickerV2", None),
    _push("/contractMarket/tickerV2:XBTUSDTM", "tickerV2", {**TICKER_DATA, "bestBidPrice": "abc"}),
    _push("/contractMarket/tickerV2:XBTUSDTM", "tickerV2", {**TICKER_DATA, "bestBidPrice": "NaN"}),
    _push("/contractMarket/tickerV2:XBTUSDTM", "tickerV2", {**TICKER_DATA, "bestBidSize": 1.5}),
    _push("/contractMarket/tickerV2:XBTUSDTM", "tickerV2", {**TICKER_DATA, "bestBidSize": True}),
    _push("/contractMarket/tickerV2:XBTUSDTM", "tickerV2", {**TICKER_DATA, "symbol": "XBTMH26"}),
    _push("/contractMarket/tickerV2:XBTUSDTM", "tickerV2", {k: v for k, v in TICKER_DATA.items() if k != "ts"}),
    _push("/contractMarket/level2:XBTUSDTM", "level2", {"sequence": 1, "change": "1,buy", "timestamp": 1}),
    _push("/contractMarket/level2:XBTUSDTM", "level2", {"sequence": 1, "change": "1,hold,2", "timestamp": 1}),
    _push("/contractMarket/level2:XBTUSDTM,ETHUSDTM", "level2",
          {"sequence": 1, "change": "1,buy,2", "timestamp": 1}),
    _push("/contractMarket/level2:FOO", "level2", {"sequence": 1, "change": "1,buy,2", "timestamp": 1}),
    _push("/contractMarket/limitCandle:XBTUSDTM_1min", "candle.stick", {"candles": ["1", "2", "3"]}),
    _push("/contractMarket/limitCandle:XBTUSDTM_1min", "candle.stick", {"candles": "1,2,3,4,5,6,7"}),
])
def test_on_malformed_frame_raises_protocol_error(raw):
    with pytest.raises(ProtocolError):
        parse_message(decode_frame(raw), received_at=0.0)


V1_DATA = payload("ws_ticker")["data"]
LEVEL2 = payload("ws_level2")


@pytest.mark.parametrize("raw", [
    # issue 12 #5: a ticker no market has
    _push("/contractMarket/tickerV2:XBTUSDTM", "tickerV2", {**TICKER_DATA, "bestBidPrice": True}),
    _push("/contractMarket/tickerV2:XBTUSDTM", "tickerV2", {**TICKER_DATA, "bestBidPrice": "0"}),
    _push("/contractMarket/tickerV2:XBTUSDTM", "tickerV2", {**TICKER_DATA, "bestAskPrice": -1}),
    _push("/contractMarket/tickerV2:XBTUSDTM", "tickerV2", {**TICKER_DATA, "bestBidPrice": "88987.6"}),
    _push("/contractMarket/tickerV2:XBTUSDTM", "tickerV2", {**TICKER_DATA, "bestAskSize": -1}),
    _push("/contractMarket/ticker:XBTUSDTM", "ticker", {**V1_DATA, "price": "0"}),
    _push("/contractMarket/ticker:XBTUSDTM", "ticker", {**V1_DATA, "bestBidPrice": "-90147.7"}),
    _push("/contractMarket/ticker:XBTUSDTM", "ticker", {**V1_DATA, "bestAskPrice": "90147.6"}),
    _push("/contractMarket/ticker:XBTUSDTM", "ticker", {**V1_DATA, "size": -1}),
    # issue 12 #6: a delta no book has (snapshots: the REST cases at the end)
    _push(LEVEL2["topic"], "level2", {**LEVEL2["data"], "change": "60000.0,buy,-5"}),
    _push(LEVEL2["topic"], "level2", {**LEVEL2["data"], "change": "0,sell,2"}),
    # the same for the other pushes we parse
    _push("/contractMarket/limitCandle:XBTUSDTM_1min", "candle.stick",
          {"candles": ["1731898200", "-1", "1", "1", "1", "21.0", "21"]}),
    _push("/contractMarket/limitCandle:XBTUSDTM_1min", "candle.stick",
          {"candles": ["1731898200", "2", "2", "1", "3", "21.0", "21"]}),  # high < low
    _push("/contractMarket/limitCandle:XBTUSDTM_1min", "candle.stick",
          {"candles": ["1731898200", "2", "2", "2", "2", "21.0", "-21"]}),
])
def test_value_no_market_has_raises_protocol_error(raw):
    with pytest.raises(ProtocolError):
        parse_message(decode_frame(raw), received_at=0.0)


def test_parse_ticker_accepts_equal_bid_and_ask_and_zero_sizes():
    """Only a bid *above* the ask is refused on a ticker; sizes may be 0."""
    ticker = parse_message(decode_frame(_push("/contractMarket/tickerV2:XBTUSDTM", "tickerV2", {
        **TICKER_DATA, "bestBidPrice": "88987.5", "bestBidSize": 0})), received_at=0.0)
    assert (ticker.bid, ticker.ask, ticker.bid_size) == (88987.5, 88987.5, 0)


@pytest.mark.parametrize(("parser", "body"), [
    (parse_rest_ticker, "not a dict"),
    (parse_rest_ticker, {"data": {}}),
    (parse_rest_ticker, {"code": 200000, "data": {}}),
    (parse_rest_ticker, {"code": "200000", "data": None}),
    (parse_rest_klines, {"code": "200000", "data": [[1728576000000, 1, 2, 3, 4]]}),
    (parse_rest_klines, {"code": "200000", "data": {"rows": []}}),
    (parse_rest_order_book, {"code": "200000", "data": {"symbol": "XBTUSDTM", "bids": [[1]], "asks": [],
                                                        "sequence": 1, "ts": 1}}),
    (parse_rest_order_book, {"code": "200000", "data": {"symbol": "XBTUSDTM", "bids": [[1, -2]], "asks": [],
                                                        "sequence": 1, "ts": 1}}),
    (parse_rest_order_book, {"code": "200000", "data": {"symbol": "XBTUSDTM", "bids": [[0, 2]], "asks": [],
                                                        "sequence": 1, "ts": 1}}),
    (parse_rest_order_book, {"code": "200000", "data": {"symbol": "XBTUSDTM", "bids": [[2, 1]],
                                                        "asks": [[1.5, 1]], "sequence": 1, "ts": 1}}),
    (parse_rest_order_book, {"code": "200000", "data": {"symbol": "XBTUSDTM", "bids": [[2, 1]],
                                                        "asks": [[2, 1]], "sequence": 1, "ts": 1}}),  # at the bid
    (parse_rest_order_book, {"code": "200000", "data": {"symbol": "XBTUSDTM", "bids": [[2, 1], [3, 1]],
                                                        "asks": [[2.5, 1]], "sequence": 1, "ts": 1}}),
    (parse_rest_ticker, {"code": "200000", "data": {**payload("rest_ticker")["data"], "bestBidPrice": "0"}}),
    (parse_rest_ticker, {"code": "200000", "data": {**payload("rest_ticker")["data"], "bestBidPrice": "99999"}}),
    (parse_rest_ticker, {"code": "200000", "data": {**payload("rest_ticker")["data"], "price": False}}),
    (parse_rest_klines, {"code": "200000", "data": [[1728576000000, 1, 2, 3, 4, 5]]}),  # high < low
    (parse_rest_klines, {"code": "200000", "data": [[1728576000000, 0, 2, 1, 1, 5]]}),
    (parse_rest_klines, {"code": "200000", "data": [[1728576000000, 1, 2, 1, 1, -5]]}),
    (parse_bullet, {"code": "200000", "data": {"token": "t", "instanceServers": []}}),
    (parse_bullet, {"code": "200000", "data": {"token": "t", "instanceServers": [
        {"endpoint": "https://x/", "encrypt": True, "pingInterval": 1, "pingTimeout": 1}]}}),
    (parse_bullet, {"code": "200000", "data": {"token": "t", "instanceServers": [
        {"endpoint": "ws://x/", "encrypt": "true", "pingInterval": 1, "pingTimeout": 1}]}}),
    (parse_bullet, {"code": "200000", "data": {"token": "t", "instanceServers": [
        {"endpoint": "ws://x/", "encrypt": False, "pingInterval": 0, "pingTimeout": 1}]}}),
])
def test_malformed_rest_payload_raises_protocol_error(parser, body):
    with pytest.raises(ProtocolError):
        if parser is parse_bullet:
            parser(body)
        else:
            parser(body, received_at=0.0)
