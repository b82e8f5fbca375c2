"""Pure tests of the WebSocket thread's dispatchers (MarketFeed, BookFeed): fast parsers,
tickers, candles, order-book sync.

No sockets and no threads: frames are fed to ``MarketFeed.on_data`` with an explicit ``now``.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import pathlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from kucoin_futures.ws.caches import CandleCache, OrderBookCache, TickerCache
from kucoin_futures.protocol.candles import slots_constructor
from kucoin_futures.ws.bookfeed import fast_level2
from kucoin_futures.ws.feed import MarketFeed, fast_ticker_v2
from kucoin_futures.errors import ProtocolError
from kucoin_futures.protocol.book import BookStatus
from kucoin_futures.protocol.parse import parse_candle, parse_level2, parse_ticker, parse_ticker_v2
from kucoin_futures.protocol.types import BookDelta, Candle, OrderBook, Side, Ticker

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
SOURCE, OTHER_SOURCE = object(), object()


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())["payload"]


def raw(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


class Harness:
    """A MarketFeed with real caches; its owner (ws.owner.Owner), recording what the feed reports."""

    def __init__(self, clock: Callable[[], float] = lambda: 0.0, **callbacks: Any) -> None:
        # The clock matters only to tests of freshness; the others read with a large max_age_s.
        self.tickers = TickerCache(clock=clock)
        self.candles = CandleCache(clock=clock)
        self.books = OrderBookCache(clock=clock)
        self.snapshot_requests: list[str] = []
        self.closed_periods: list[tuple[str, int]] = []
        self.feed = MarketFeed(tickers=self.tickers, candles=self.candles, books=self.books, owner=self,
                               **callbacks)

    def on_snapshot_needed(self, kucoin_id: str) -> None:
        self.snapshot_requests.append(kucoin_id)

    def on_period_closed(self, topic: str, start_ms: int) -> None:
        self.closed_periods.append((topic, start_ms))


def level2(sequence: int, change: str, symbol: str = "XBTUSDTM") -> bytes:
    return raw({"topic": f"/contractMarket/level2:{symbol}", "type": "message", "subject": "level2",
                "data": {"sequence": sequence, "change": change, "timestamp": 1_731_897_467_000 + sequence}})


def snapshot(sequence: int, bids: tuple, asks: tuple) -> OrderBook:
    return OrderBook(BTC, bids, asks, sequence, 1_731_897_467_000, 0.0, "rest")


def synced_book(harness: Harness) -> None:
    harness.feed.books.want(BTC, "XBTUSDTM")
    harness.feed.books.attach("XBTUSDTM", SOURCE)
    status = harness.feed.books.apply_snapshot(snapshot(10, ((100.0, 5), (99.0, 3)), ((101.0, 4),)), "XBTUSDTM", 1.0)
    assert status is BookStatus.OK


# -- fast parsers equal the protocol layer's ---------------------------------------------------
def test_fast_ticker_v2_equals_parse_ticker_v2():
    message = fixture("ws_ticker_v2")
    fast = fast_ticker_v2(message, 5.0, {"XBTUSDTM": BTC}, {})
    assert fast == parse_ticker_v2(message, received_at=5.0)


def test_fast_ticker_v2_adds_the_last_trade():
    message = fixture("ws_ticker_v2")
    fast = fast_ticker_v2(message, 5.0, {"XBTUSDTM": BTC}, {"XBTUSDTM": (88990.0, 3)})
    assert fast == dataclasses.replace(parse_ticker_v2(message, received_at=5.0), last=88990.0, last_size=3)


@pytest.mark.parametrize("path, value", [
    (("bestBidSize",), "713"),  # a digit string: the slow path accepts it, like the protocol layer
    (("symbol",), "ETHUSDTM"),  # not memoised: slow path
])
def test_fast_ticker_v2_unusual_but_valid_takes_the_slow_path(path, value):
    message = copy.deepcopy(fixture("ws_ticker_v2"))
    message["data"][path[0]] = value
    assert fast_ticker_v2(message, 5.0, {"XBTUSDTM": BTC}, {}) == parse_ticker_v2(message, received_at=5.0)


@pytest.mark.parametrize("field, value", [
    ("bestBidPrice", "nan"), ("bestAskPrice", "inf"), ("bestBidPrice", "x"), ("ts", None),
    ("sequence", 1.5), ("bestAskSize", True), ("symbol", "NOTACONTRACT"),
    # issue 12 #5: float() takes all of these, so the fast path used to serve them
    ("bestBidPrice", True), ("bestAskPrice", False), ("bestBidPrice", "0"), ("bestBidPrice", 0),
    ("bestAskPrice", "-88987.5"), ("bestBidPrice", "88987.6"), ("bestBidSize", -1), ("bestAskSize", -713),
])
def test_fast_ticker_v2_rejects_what_the_protocol_layer_rejects(field, value):
    message = copy.deepcopy(fixture("ws_ticker_v2"))
    message["data"][field] = value
    with pytest.raises(ProtocolError):
        parse_ticker_v2(message, received_at=5.0)
    with pytest.raises(ProtocolError):
        fast_ticker_v2(message, 5.0, {"XBTUSDTM": BTC}, {})


def test_fast_level2_equals_parse_level2():
    message = fixture("ws_level2")
    assert fast_level2(message, BTC) == parse_level2(message, received_at=0.0)


@pytest.mark.parametrize("change", [
    "90631.2,sell", "90631.2,up,2", "nan,buy,2", "90631.2,buy,x",
    # issue 12 #6: float() and int() take all of these
    "60000.0,buy,-5", "0,buy,2", "-90631.2,sell,2", "inf,sell,2", "90631.2,buy,+5", "90631.2,buy, 5",
    "90631.2,buy,5_0", "90631.2,buy,2,1", "90631.2,BUY,2",
])
def test_fast_level2_rejects_bad_changes(change):
    message = copy.deepcopy(fixture("ws_level2"))
    message["data"]["change"] = change
    with pytest.raises(ProtocolError):
        fast_level2(message, BTC)


def test_slots_constructor_builds_equal_values_and_falls_back():
    build = slots_constructor(BookDelta)
    assert build(BTC, 7, 1.5, Side.BUY, 3, 99) == BookDelta(BTC, 7, 1.5, Side.BUY, 3, 99)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError

    assert slots_constructor(Checked) is Checked


# -- tickers ---------------------------------------------------------------------------------
def test_feed_merges_ticker_v1_last_trade_into_ticker_v2():
    harness = Harness()
    harness.feed.want_ticker(BTC, "XBTUSDTM")
    v1, v2 = fixture("ws_ticker"), fixture("ws_ticker_v2")
    assert harness.feed.on_data(raw(v1), 1.0, SOURCE) is True
    after_v1 = harness.tickers.get(BTC, max_age_s=9.0)
    assert harness.feed.on_data(raw(v2), 2.0, SOURCE) is True
    expected_v2 = dataclasses.replace(parse_ticker_v2(v2, received_at=2.0), last=90147.7, last_size=1)
    assert (after_v1, harness.tickers.get(BTC, max_age_s=9.0)) == (parse_ticker(v1, received_at=1.0), expected_v2)
    assert {t: s[0] for t, s in harness.feed.topic_stats.items()} == {v1["topic"]: 1, v2["topic"]: 1}


def test_feed_ignores_tickers_not_subscribed():
    harness = Harness()
    harness.feed.want_ticker(BTC, "XBTUSDTM")
    harness.feed.unwant_ticker(BTC, "XBTUSDTM")
    assert harness.feed.on_data(raw(fixture("ws_ticker_v2")), 1.0, SOURCE) is True
    assert harness.tickers.keys() == []


def test_feed_counts_malformed_frames_and_leaves_control_frames_to_the_session():
    harness = Harness()
    harness.feed.want_ticker(BTC, "XBTUSDTM")
    broken = copy.deepcopy(fixture("ws_ticker_v2"))
    broken["data"]["bestBidPrice"] = "nan"
    frames = (b'{"type":"message","topic":"/contractMarket/tickerV2:XBTUSDTM","subject":"tickerV2","data":{"sym',
              b"[1, 2]", raw(broken), raw(fixture("ws_pong")), raw(fixture("ws_ack")))
    results = [harness.feed.on_data(frame, 1.0, SOURCE) for frame in frames]
    assert (results, harness.feed.malformed, harness.tickers.keys()) == ([None, True, True, False, False], 2, [])


def test_feed_ticker_callback_that_raises_does_not_stop_the_feed():
    seen: list[Ticker] = []

    def callback(ticker: Ticker) -> None:
        seen.append(ticker)
        raise RuntimeError("user bug")

    harness = Harness(on_ticker=callback)
    harness.feed.want_ticker(BTC, "XBTUSDTM")
    message = fixture("ws_ticker_v2")
    harness.feed.on_data(raw(message), 1.0, SOURCE)
    harness.feed.on_data(raw(message), 2.0, SOURCE)
    assert [t.received_at for t in seen] == [1.0, 2.0]
    assert harness.tickers.get(BTC, max_age_s=9.0) == parse_ticker_v2(message, received_at=2.0)


BAD_TICKER_V2 = [
    {"bestBidPrice": True}, {"bestBidPrice": "0"}, {"bestAskPrice": 0}, {"bestAskPrice": "-88987.5"},
    {"bestBidPrice": "88987.6"}, {"bestBidSize": -1}, {"bestAskPrice": "Infinity"},
]
BAD_TICKER_V1 = [
    {"bestBidPrice": "0"}, {"bestAskPrice": True}, {"price": "0"}, {"price": -90147.7},
    {"bestBidPrice": "90147.9"}, {"size": -1}, {"bestAskSize": -275},
]


@pytest.mark.parametrize("name, change", [("ws_ticker_v2", c) for c in BAD_TICKER_V2]
                         + [("ws_ticker", c) for c in BAD_TICKER_V1])
def test_feed_drops_and_counts_a_ticker_no_market_has_and_the_last_good_one_ages(name, change):
    """Issue 12 #5: zero, negative, boolean or crossed prices (or a negative size) were served
    as a fresh ticker. The frame is now counted as malformed and dropped: the cache keeps the
    last good ticker with its own receipt time, and the topic's age is not refreshed either."""
    now = [1.0]
    harness = Harness(clock=lambda: now[0])
    harness.feed.want_ticker(BTC, "XBTUSDTM")
    good = fixture(name)
    bad = copy.deepcopy(good)
    bad["data"].update(change)
    harness.feed.on_data(raw(good), 1.0, SOURCE)
    now[0] = 2.0
    handled = harness.feed.on_data(raw(bad), 2.0, SOURCE)
    expected = (parse_ticker_v2 if name == "ws_ticker_v2" else parse_ticker)(good, received_at=1.0)
    assert (handled, harness.feed.malformed) == (True, 1)
    assert harness.tickers.get(BTC, max_age_s=1.0) == expected
    assert harness.tickers.get(BTC, max_age_s=0.5) is None  # it aged: the bad frame did not refresh it
    assert harness.feed.topic_stats[good["topic"]] == [1, 1.0]


# -- candles ---------------------------------------------------------------------------------
def test_feed_candle_push_updates_the_series_and_calls_back():
    calls: list[tuple] = []
    harness = Harness(on_candle=lambda *args: calls.append(args))
    message = fixture("ws_candle")
    harness.feed.want_candles(message["topic"], BTC, "1m")
    harness.candles.merge(BTC, "1m", [], received_at=0.0)  # the (empty) REST history arrived
    harness.feed.on_data(raw(message), 3.0, SOURCE)
    candle = parse_candle(message, received_at=3.0)
    assert (tuple(harness.candles.get(BTC, "1m", max_age_s=9.0)), calls) == ((candle,), [(BTC, "1m", candle)])


def test_feed_ignores_candles_not_subscribed_and_rejects_garbage_topics():
    harness = Harness()
    message = fixture("ws_candle")
    harness.feed.on_data(raw(message), 3.0, SOURCE)
    garbage = dict(message, topic="/contractMarket/limitCandle:XBTUSDTM_7min")
    harness.feed.on_data(raw(garbage), 3.0, SOURCE)
    assert (harness.candles.keys(), harness.feed.malformed) == ([], 1)


# -- order books -----------------------------------------------------------------------------
def test_feed_book_attach_buffers_then_snapshot_replays_newer_deltas():
    harness = Harness()
    harness.feed.books.want(BTC, "XBTUSDTM")
    harness.feed.books.attach("XBTUSDTM", SOURCE)
    for frame in (level2(9, "100.0,buy,1"), level2(10, "100.0,buy,5"), level2(11, "101.0,sell,0"),
                  level2(12, "100.5,buy,2")):
        harness.feed.on_data(frame, 1.0, SOURCE)
    before = harness.books.get(BTC, max_age_s=9.0)
    status = harness.feed.books.apply_snapshot(snapshot(10, ((100.0, 5), (99.0, 3)), ((101.0, 4), (102.0, 1))),
                                         "XBTUSDTM", 2.0)
    assert (harness.snapshot_requests, before, status) == (["XBTUSDTM"], None, BookStatus.OK)
    assert harness.books.get(BTC, max_age_s=9.0) == OrderBook(
        BTC, ((100.5, 2), (100.0, 5), (99.0, 3)), ((102.0, 1),), 12, 1_731_897_467_012, 2.0, "websocket")


def test_feed_book_gap_resyncs_and_drops_the_book():
    harness = Harness()
    synced_book(harness)
    harness.feed.on_data(level2(11, "100.0,buy,6"), 2.0, SOURCE)
    harness.feed.end_of_batch(2.0)
    synced = harness.books.get(BTC, max_age_s=9.0)
    harness.feed.on_data(level2(13, "100.0,buy,7"), 3.0, SOURCE)  # 12 is missing
    assert synced.sequence == 11
    assert (harness.books.get(BTC, max_age_s=9.0), harness.feed.books.resync_counts()) == (None, {BTC: 1})
    assert harness.snapshot_requests == ["XBTUSDTM", "XBTUSDTM"]
    # The delta after the gap was kept: a snapshot at 12 continues with it.
    assert harness.feed.books.apply_snapshot(snapshot(12, ((100.0, 6),), ((101.0, 4),)), "XBTUSDTM", 4.0) is BookStatus.OK
    assert harness.books.get(BTC, max_age_s=9.0).bids == ((100.0, 7),)


@pytest.mark.parametrize("change", [
    "60000.0,buy,-5", "0,buy,5", "-100.0,sell,5", "nan,buy,5", "inf,sell,5", "abc,buy,5",
    "100.0,hold,5", "100.0,buy", "100.0,buy,5,1", "100.0,buy,x", "100.0,buy,1.5", "100.0,buy,",
])
def test_feed_book_malformed_delta_resyncs_like_a_gap(change):
    """Issue 12 #6: "60000.0,buy,-5" with the next sequence was applied (a phantom best bid at
    60000) and used up the sequence. A delta we cannot read lost a change all the same: the book
    is dropped and resynced from a snapshot, as after a gap, and the frame counts as malformed."""
    harness = Harness()
    synced_book(harness)
    harness.feed.on_data(level2(11, "100.0,buy,6"), 2.0, SOURCE)
    harness.feed.end_of_batch(2.0)
    assert harness.books.get(BTC, max_age_s=9.0).sequence == 11
    handled = harness.feed.on_data(level2(12, change), 3.0, SOURCE)
    harness.feed.end_of_batch(3.0)
    dropped = harness.books.get(BTC, max_age_s=9.0)  # at once, not when the next delta shows a gap
    assert (handled, harness.feed.malformed, dropped) == (True, 1, None)
    assert (harness.feed.books.resync_counts(), harness.snapshot_requests) == ({BTC: 1}, ["XBTUSDTM"] * 2)
    harness.feed.on_data(level2(13, "99.0,buy,4"), 3.0, SOURCE)  # buffered for the next snapshot
    # KuCoin's snapshot at 12 holds what delta 12 really did; delta 13 continues it.
    resynced = harness.feed.books.apply_snapshot(snapshot(12, ((100.0, 6), (99.0, 3)), ((101.0, 4),)),
                                                 "XBTUSDTM", 4.0)
    assert resynced is BookStatus.OK
    assert harness.books.get(BTC, max_age_s=9.0) == OrderBook(
        BTC, ((100.0, 6), (99.0, 4)), ((101.0, 4),), 13, 1_731_897_467_013, 4.0, "websocket")


def test_feed_book_malformed_delta_while_buffering_leaves_a_hole_the_snapshot_sees():
    """Before the first snapshot a malformed delta is dropped, not buffered: a snapshot older
    than it cannot be continued (a gap, fetch another), a newer one can."""
    harness = Harness()
    harness.feed.books.want(BTC, "XBTUSDTM")
    harness.feed.books.attach("XBTUSDTM", SOURCE)
    for frame in (level2(11, "100.0,buy,6"), level2(12, "60000.0,buy,-5"), level2(13, "99.0,buy,4")):
        harness.feed.on_data(frame, 1.0, SOURCE)
    older = harness.feed.books.apply_snapshot(snapshot(10, ((100.0, 5),), ((101.0, 4),)), "XBTUSDTM", 2.0)
    newer = harness.feed.books.apply_snapshot(snapshot(12, ((100.0, 6),), ((101.0, 4),)), "XBTUSDTM", 3.0)
    assert (older, newer, harness.feed.malformed, harness.feed.books.resync_counts()) == (
        BookStatus.GAP, BookStatus.OK, 1, {BTC: 0})
    assert harness.books.get(BTC, max_age_s=9.0).bids == ((100.0, 6), (99.0, 4))


def test_feed_book_sequence_regression_after_live_deltas_resyncs():
    harness = Harness()
    synced_book(harness)
    harness.feed.on_data(level2(11, "100.0,buy,6"), 2.0, SOURCE)
    harness.feed.on_data(level2(11, "100.0,buy,6"), 2.0, SOURCE)  # replayed
    assert harness.feed.books.resync_counts() == {BTC: 1}


def test_feed_book_crossed_after_a_batch_resyncs():
    harness = Harness()
    synced_book(harness)
    harness.feed.on_data(level2(11, "101.5,buy,2"), 2.0, SOURCE)  # bid above the best ask
    harness.feed.end_of_batch(2.0)
    assert (harness.books.get(BTC, max_age_s=9.0), harness.feed.books.resync_counts()) == (None, {BTC: 1})


def test_feed_book_ignores_deltas_from_another_connection_and_detach_drops_it():
    harness = Harness()
    synced_book(harness)
    harness.feed.on_data(level2(12, "100.0,buy,9"), 2.0, OTHER_SOURCE)  # would be a gap if applied
    harness.feed.end_of_batch(2.0)
    kept = harness.books.get(BTC, max_age_s=9.0)
    harness.feed.books.detach(SOURCE)
    assert (kept.sequence, harness.feed.books.resync_counts()) == (10, {BTC: 0})
    assert (harness.books.get(BTC, max_age_s=9.0), harness.feed.books.needs_snapshot("XBTUSDTM")) == (None, False)


def test_feed_book_snapshot_older_than_the_buffer_is_a_gap():
    harness = Harness()
    harness.feed.books.want(BTC, "XBTUSDTM")
    harness.feed.books.attach("XBTUSDTM", SOURCE)
    harness.feed.on_data(level2(20, "100.0,buy,1"), 1.0, SOURCE)
    status = harness.feed.books.apply_snapshot(snapshot(10, ((100.0, 5),), ((101.0, 4),)), "XBTUSDTM", 2.0)
    assert (status, harness.feed.books.needs_snapshot("XBTUSDTM")) == (BookStatus.GAP, True)


def test_feed_order_book_callback_gets_each_published_book():
    books: list[OrderBook] = []
    harness = Harness(on_order_book=books.append)
    synced_book(harness)
    harness.feed.on_data(level2(11, "100.0,buy,6"), 2.0, SOURCE)
    harness.feed.on_data(level2(12, "100.0,buy,7"), 2.0, SOURCE)
    harness.feed.end_of_batch(2.0)  # two deltas in one socket read: one publication
    assert [(b.sequence, b.bids[0]) for b in books] == [(10, (100.0, 5)), (12, (100.0, 7))]


def test_feed_candle_roll_is_judged_on_pushes_not_on_rest_rows():
    """REST may already hold the next period (a fetch across the boundary): the roll from the
    last pushed period is still reported, so the closed period gets confirmed."""
    harness = Harness()
    closed = harness.closed_periods
    topic = "/contractMarket/limitCandle:XBTUSDTM_1min"
    harness.feed.want_candles(topic, BTC, "1m")

    def push(minute: int) -> None:
        message = {"topic": topic, "type": "message", "subject": "candle.stick",
                   "data": {"symbol": "XBTUSDTM", "candles": [str(1_731_898_200 + 60 * minute), "1", "1", "1",
                                                              "1", "1", "1"], "time": 1}}
        harness.feed.on_data(raw(message), 1.0, SOURCE)

    rest = [Candle(1_731_898_200_000 + 60_000 * m, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, "rest") for m in range(4)]
    harness.candles.merge(BTC, "1m", rest[:3], received_at=0.5)  # minute 2 in progress
    push(3)  # first push: a later period than the newest held
    harness.candles.merge(BTC, "1m", rest, received_at=0.5)
    push(3)
    push(4)
    assert closed == [(topic, 1_731_898_200_000 + 60_000 * 2), (topic, 1_731_898_200_000 + 60_000 * 3)]
