"""Pure tests: symbols, timeframes, topics, frame builders, batching and the error mapping."""
from __future__ import annotations

import json
import pathlib
from urllib.parse import parse_qs, urlsplit

import pytest

from kucoin_futures.errors import (
    AuthError,
    ClientClosed,
    ConfigError,
    ExchangeRejected,
    InsufficientFunds,
    InvalidArgument,
    InvalidOrder,
    KuCoinError,
    NoPosition,
    OrderOutcomeUnknown,
    ProtocolError,
    RateLimited,
    TransportError,
    error_for_code,
)
from kucoin_futures.protocol.types import (
    WsEndpoint,
    candle_type_to_timeframe,
    granularity_to_timeframe,
    timeframe_ms,
    timeframe_seconds,
    timeframe_to_candle_type,
    timeframe_to_granularity,
    to_kucoin_id,
    to_unified,
)
from kucoin_futures.protocol.wire import (
    batch_topics,
    build_ping,
    build_subscribe,
    build_unsubscribe,
    is_private_topic,
    parse_candle_topic,
    redact_url,
    split_topic,
    topic_candle,
    topic_execution,
    topic_instrument,
    topic_level2,
    topic_ticker,
    topic_ticker_v2,
    unwrap_envelope,
    ws_connect_url,
)

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"


# -- Symbols -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kucoin_id", "unified"), [
    ("XBTUSDTM", "BTC/USDT:USDT"),
    ("ETHUSDTM", "ETH/USDT:USDT"),
    ("SOLUSDTM", "SOL/USDT:USDT"),
    ("XBTUSDCM", "BTC/USDC:USDC"),
    ("ETHUSDCM", "ETH/USDC:USDC"),
    ("XBTUSDM", "BTC/USD:BTC"),
    ("ETHUSDM", "ETH/USD:ETH"),
    ("USDCUSDTM", "USDC/USDT:USDT"),
    ("1000PEPEUSDTM", "1000PEPE/USDT:USDT"),
    ("WAXUSDTM", "WAXP/USDT:USDT"),  # ccxt's kucoin commonCurrencies: WAX -> WAXP
    ("KALTUSDTM", "ALT/USDT:USDT"),  # ... and KALT -> ALT
])
def test_symbol_round_trip(kucoin_id, unified):
    assert (to_unified(kucoin_id), to_kucoin_id(unified)) == (unified, kucoin_id)


@pytest.mark.parametrize("kucoin_id", ["XBTMH26", "xbtusdtm", "", "XBTUSDT", "USDTM", "XBT-USDTM", None, 7])
def test_to_unified_rejects_unknown_shapes(kucoin_id):
    with pytest.raises(InvalidArgument):
        to_unified(kucoin_id)


@pytest.mark.parametrize("unified", [
    "BTC/USDT", "BTC/USDT:BTC", "BTC/USD:USD", "BTC/USD:BTC-260327", "btc/usdt:usdt",
    "BTC/EUR:EUR", "BTC-USDT", "", None,
])
def test_to_kucoin_id_rejects_unknown_shapes(unified):
    with pytest.raises(InvalidArgument):
        to_kucoin_id(unified)


def test_invalid_argument_is_a_value_error():
    with pytest.raises(ValueError):
        to_kucoin_id("BTC/USDT")


def test_symbols_match_ccxt_markets():
    """Our id -> unified symbol equals what the pinned ccxt computes for the same contracts."""
    ccxt = pytest.importorskip("ccxt")
    body = json.loads((FIXTURES / "rest_contracts_active.json").read_text())["payload"]
    template = body["data"][0]
    body["data"] += [
        {**template, "symbol": "XBTUSDM", "quoteCurrency": "USD", "settleCurrency": "XBT", "isInverse": True},
        {**template, "symbol": "ETHUSDCM", "baseCurrency": "ETH", "quoteCurrency": "USDC",
         "settleCurrency": "USDC"},
        {**template, "symbol": "WAXUSDTM", "baseCurrency": "WAX"},
        {**template, "symbol": "KALTUSDTM", "baseCurrency": "KALT"},
    ]
    exchange = ccxt.kucoinfutures()
    # A fake for the one REST call fetch_contract_markets makes: no network.
    exchange.futuresPublicGetContractsActive = lambda params=None: body
    markets = exchange.fetch_contract_markets()
    assert {m["id"]: m["symbol"] for m in markets} == {m["id"]: to_unified(m["id"]) for m in markets}
    assert len(markets) == 5


# -- Timeframes ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("timeframe", "granularity", "candle_type", "seconds"), [
    ("1m", 1, "1min", 60), ("5m", 5, "5min", 300), ("15m", 15, "15min", 900),
    ("30m", 30, "30min", 1800), ("1h", 60, "1hour", 3600), ("2h", 120, "2hour", 7200),
    ("4h", 240, "4hour", 14400), ("8h", 480, "8hour", 28800), ("12h", 720, "12hour", 43200),
    ("1d", 1440, "1day", 86400), ("1w", 10080, "1week", 604800),
])
def test_timeframe_table(timeframe, granularity, candle_type, seconds):
    assert (timeframe_to_granularity(timeframe), timeframe_to_candle_type(timeframe),
            timeframe_seconds(timeframe), timeframe_ms(timeframe), granularity_to_timeframe(granularity),
            candle_type_to_timeframe(candle_type)) == (
        granularity, candle_type, seconds, seconds * 1000, timeframe, timeframe)


@pytest.mark.parametrize("call", [
    lambda: timeframe_to_granularity("3m"),
    lambda: timeframe_to_candle_type("1M"),
    lambda: timeframe_seconds(""),
    lambda: timeframe_seconds(None),
    lambda: timeframe_ms("1M"),
    lambda: granularity_to_timeframe(3),
    lambda: candle_type_to_timeframe("1month"),
])
def test_unknown_timeframe_raises(call):
    with pytest.raises(InvalidArgument):
        call()


# -- Topics --------------------------------------------------------------------------------------
def test_topic_builders():
    assert [
        topic_ticker_v2("XBTUSDTM"), topic_ticker("XBTUSDTM"), topic_level2("XBTUSDTM"),
        topic_level2("XBTUSDTM", depth=5), topic_level2("XBTUSDTM", depth=50),
        topic_candle("XBTUSDTM", "1m"), topic_candle("ETHUSDTM", "4h"), topic_execution("XBTUSDTM"),
        topic_instrument("XBTUSDTM"),
    ] == [
        "/contractMarket/tickerV2:XBTUSDTM", "/contractMarket/ticker:XBTUSDTM", "/contractMarket/level2:XBTUSDTM",
        "/contractMarket/level2Depth5:XBTUSDTM", "/contractMarket/level2Depth50:XBTUSDTM",
        "/contractMarket/limitCandle:XBTUSDTM_1min", "/contractMarket/limitCandle:ETHUSDTM_4hour",
        "/contractMarket/execution:XBTUSDTM", "/contract/instrument:XBTUSDTM",
    ]


@pytest.mark.parametrize("call", [
    lambda: topic_ticker_v2("BTC/USDT:USDT"),
    lambda: topic_ticker("xbtusdtm"),
    lambda: topic_level2("XBTUSDTM", depth=20),
    lambda: topic_candle("XBTUSDTM", "3m"),
    lambda: topic_execution("XBTUSDTM,ETHUSDTM"),
    lambda: split_topic("contractMarket/level2:XBTUSDTM"),
    lambda: split_topic("/contractMarket/level2:XBTUSDTM,,ETHUSDTM"),
])
def test_topic_argument_errors(call):
    with pytest.raises(InvalidArgument):
        call()


@pytest.mark.parametrize(("topic", "expected"), [
    ("/contractMarket/level2:XBTUSDTM,ETHUSDTM", ("/contractMarket/level2", ["XBTUSDTM", "ETHUSDTM"])),
    ("/contractMarket/limitCandle:XBTUSDTM_1min", ("/contractMarket/limitCandle", ["XBTUSDTM_1min"])),
    ("/contractMarket/tradeOrders", ("/contractMarket/tradeOrders", [])),
])
def test_split_topic(topic, expected):
    assert split_topic(topic) == expected


def test_parse_candle_topic():
    assert parse_candle_topic("/contractMarket/limitCandle:XBTUSDTM_1hour") == ("BTC/USDT:USDT", "1h")


@pytest.mark.parametrize("topic", [
    "/contractMarket/level2:XBTUSDTM", "/contractMarket/limitCandle:XBTUSDTM",
    "/contractMarket/limitCandle:A_1min,B_1min",
    "/contractMarket/limitCandle:XBTUSDTM_3min", "nonsense",
])
def test_parse_candle_topic_rejects(topic):
    with pytest.raises(ProtocolError):
        parse_candle_topic(topic)


def test_private_topics():
    assert [is_private_topic(t) for t in (
        "/contractMarket/tradeOrders", "/contractAccount/wallet", "/contract/position:XBTUSDTM",
        "/contractMarket/tickerV2:XBTUSDTM", "/contract/instrument:XBTUSDTM",
    )] == [True, True, True, False, False]


# -- Frames --------------------------------------------------------------------------------------
def test_build_frames_are_kucoin_json():
    assert [json.loads(frame) for frame in (
        build_subscribe("/contractMarket/tickerV2:XBTUSDTM", msg_id="7"),
        build_unsubscribe("/contractMarket/tickerV2:XBTUSDTM", msg_id="8"),
        build_subscribe("/contractMarket/tradeOrders", msg_id="9"),
        build_ping(msg_id="10"),
    )] == [
        {"id": "7", "type": "subscribe", "topic": "/contractMarket/tickerV2:XBTUSDTM",
         "privateChannel": False, "response": True},
        {"id": "8", "type": "unsubscribe", "topic": "/contractMarket/tickerV2:XBTUSDTM",
         "privateChannel": False, "response": True},
        {"id": "9", "type": "subscribe", "topic": "/contractMarket/tradeOrders",
         "privateChannel": True, "response": True},
        {"id": "10", "type": "ping"},
    ]


def test_batch_topics_at_most_100_symbols_per_message():
    ids = [f"C{i}USDTM" for i in range(250)]
    batched = batch_topics([topic_ticker_v2(i) for i in ids])
    assert [split_topic(t) for t in batched] == [
        ("/contractMarket/tickerV2", ids[0:100]),
        ("/contractMarket/tickerV2", ids[100:200]),
        ("/contractMarket/tickerV2", ids[200:250]),
    ]


def test_batch_topics_groups_by_prefix_keeps_order_and_drops_duplicates():
    assert batch_topics([
        "/contractMarket/tickerV2:XBTUSDTM", "/contractMarket/level2:XBTUSDTM",
        "/contractMarket/tickerV2:ETHUSDTM,XBTUSDTM", "/contractAccount/wallet",
        "/contractMarket/limitCandle:XBTUSDTM_1min", "/contractMarket/limitCandle:XBTUSDTM_1hour",
    ], max_per_message=100) == [
        "/contractMarket/tickerV2:XBTUSDTM,ETHUSDTM", "/contractMarket/level2:XBTUSDTM",
        "/contractAccount/wallet", "/contractMarket/limitCandle:XBTUSDTM_1min,XBTUSDTM_1hour",
    ]


def test_batch_topics_rejects_zero():
    with pytest.raises(InvalidArgument):
        batch_topics(["/contractMarket/level2:XBTUSDTM"], max_per_message=0)


def test_ws_connect_url_encodes_token_and_connect_id():
    endpoint = WsEndpoint(url="wss://ws-api-futures.kucoin.com/", token="ab+c/d==.e", ping_interval_s=18.0,
                          ping_timeout_s=10.0, encrypt=True)
    url = ws_connect_url(endpoint, "cid-1")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path, parse_qs(parts.query)) == (
        "wss", "ws-api-futures.kucoin.com", "/", {"token": ["ab+c/d==.e"], "connectId": ["cid-1"]})
    assert redact_url(url) == "wss://ws-api-futures.kucoin.com/?token=***&connectId=cid-1"


def test_ws_connect_url_appends_to_existing_query():
    endpoint = WsEndpoint(url="ws://127.0.0.1:8080/ws?x=1", token="t", ping_interval_s=1.0, ping_timeout_s=1.0,
                          encrypt=False)
    assert ws_connect_url(endpoint, "c") == "ws://127.0.0.1:8080/ws?x=1&token=t&connectId=c"


# -- Errors --------------------------------------------------------------------------------------
def test_error_tree():
    assert all(issubclass(cls, KuCoinError) for cls in (
        ConfigError, ClientClosed, InvalidArgument, ProtocolError, TransportError, AuthError,
        ExchangeRejected, OrderOutcomeUnknown))
    assert (issubclass(RateLimited, TransportError), issubclass(InsufficientFunds, ExchangeRejected),
            issubclass(InvalidOrder, ExchangeRejected), issubclass(InvalidArgument, ValueError)) == (
        True, True, True, True)


def test_errors_carry_data_as_attributes():
    assert (ConfigError("missing", variable="KUCOIN_API_KEY").variable,
            OrderOutcomeUnknown("timeout", client_oid="c-1").client_oid,
            RateLimited("slow", retry_after_s=2.5).retry_after_s) == ("KUCOIN_API_KEY", "c-1", 2.5)


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.mark.parametrize(("name", "cls", "attrs"), [
    ("rest_error_300003", InsufficientFunds, {"code": "300003", "http_status": None}),
    ("rest_error_300009", NoPosition, {"code": "300009", "message": "No open positions to close."}),
    ("rest_error_100001", ExchangeRejected, {"code": "100001", "message": "error.getOrder.orderNotExist"}),
    ("rest_error_400100", ExchangeRejected, {"code": "400100", "message": "Invalid Parameter."}),
    ("rest_error_400005", AuthError, {"code": "400005", "http_status": 401}),
    ("rest_error_429000", RateLimited, {"code": "429000", "http_status": 429, "retry_after_s": None}),
    ("rest_error_200002", RateLimited, {"code": "200002", "retry_after_s": 10.0}),
])
def test_unwrap_envelope_maps_error_fixtures(name, cls, attrs):
    fixture = _fixture(name)
    with pytest.raises(KuCoinError) as info:
        unwrap_envelope(fixture["payload"], http_status=fixture.get("http_status"))
    assert type(info.value) is cls
    assert {key: getattr(info.value, key) for key in attrs} == attrs


@pytest.mark.parametrize(("code", "http_status", "cls"), [
    ("500000", 500, TransportError),
    ("999999", 503, TransportError),
    ("400002", 400, AuthError),
    ("330008", None, InsufficientFunds),
    ("330005", None, InvalidOrder),
    ("1015", 403, RateLimited),
    ("123456", None, ExchangeRejected),
])
def test_error_for_code(code, http_status, cls):
    assert type(error_for_code(code, "m", http_status=http_status)) is cls


def test_unwrap_envelope_success_returns_data():
    names = ("rest_server_time", "rest_change_cross_leverage")
    assert [unwrap_envelope(_fixture(n)["payload"]) for n in names] == [1729260030774, True]
