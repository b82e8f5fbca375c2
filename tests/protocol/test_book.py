"""Pure tests: L2Book snapshot + delta sync with gap detection."""
from __future__ import annotations

import json

import pytest

from kucoin_futures.errors import InvalidArgument
from kucoin_futures.protocol.book import BookStatus, L2Book
from kucoin_futures.protocol.parse import decode_frame, parse_level2
from kucoin_futures.protocol.types import BookDelta, OrderBook, Side

SYMBOL = "BTC/USD:BTC"


def delta(sequence: int, change: str, ts_ms: int = 1000) -> BookDelta:
    """Build a delta the way the wire delivers it: a level2 push parsed by the client."""
    push = {"type": "message", "topic": "/contractMarket/level2:XBTUSDM", "subject": "level2",
            "data": {"sequence": sequence, "change": change, "timestamp": ts_ms}}
    return parse_level2(decode_frame(json.dumps(push)), received_at=0.0)


def docs_snapshot(sequence: int = 16) -> OrderBook:
    """The order book of KuCoin's level-2 calibration example (classic futures docs)."""
    return OrderBook(
        symbol=SYMBOL,
        bids=((3988.51, 56), (3988.50, 15), (3988.49, 100), (3988.48, 10)),
        asks=((3988.59, 3), (3988.60, 47), (3988.61, 32), (3988.62, 8)),
        sequence=sequence, ts_ms=500, received_at=1.0, source="rest",
    )


def test_book_docs_example_snapshot_then_buffered_deltas():
    """Docs: snapshot 16; drop deltas <= 16; apply 17 (bid 3988.50 -> 44) and 18 (delete ask 3988.61)."""
    book = L2Book(SYMBOL)
    statuses = [book.apply(d) for d in (delta(15, "1,buy,1"), delta(16, "2,buy,2"),
                                        delta(17, "3988.50,buy,44"), delta(18, "3988.61,sell,0", ts_ms=1800))]
    assert statuses == [BookStatus.BUFFERED] * 4
    assert book.apply_snapshot(docs_snapshot()) is BookStatus.OK
    assert book.snapshot(received_at=9.0) == OrderBook(
        symbol=SYMBOL,
        bids=((3988.51, 56), (3988.50, 44), (3988.49, 100), (3988.48, 10)),
        asks=((3988.59, 3), (3988.60, 47), (3988.62, 8)),
        sequence=18, ts_ms=1800, received_at=9.0, source="websocket",
    )


def test_book_live_deltas_after_sync():
    book = L2Book(SYMBOL)
    book.apply_snapshot(docs_snapshot())
    statuses = [book.apply(d) for d in (delta(17, "3988.52,buy,7"), delta(18, "3988.58,sell,1"))]
    top = book.snapshot(received_at=2.0, depth=1)
    assert (statuses, top.bids, top.asks, top.sequence) == (
        [BookStatus.OK, BookStatus.OK], ((3988.52, 7),), ((3988.58, 1),), 18)


def test_book_gap_unsyncs_and_keeps_delta_for_next_snapshot():
    book = L2Book(SYMBOL)
    book.apply_snapshot(docs_snapshot())
    book.apply(delta(17, "3988.50,buy,44"))
    assert (book.apply(delta(19, "3988.49,buy,1")), book.is_synced, book.snapshot(received_at=0.0)) == (
        BookStatus.GAP, False, None)
    assert book.apply_snapshot(docs_snapshot(sequence=18)) is BookStatus.OK
    assert (book.sequence, book.snapshot(received_at=0.0).bids[2]) == (19, (3988.49, 1))


def test_book_snapshot_older_than_buffer_is_a_gap():
    """Snapshot 17 with buffered deltas from 20 on: 18 and 19 are missing, fetch again."""
    book = L2Book(SYMBOL)
    book.apply(delta(20, "3988.50,buy,1"))
    book.apply(delta(21, "3988.50,buy,2"))
    assert (book.apply_snapshot(docs_snapshot(sequence=17)), book.is_synced) == (BookStatus.GAP, False)
    assert (book.apply_snapshot(docs_snapshot(sequence=19)), book.sequence) == (BookStatus.OK, 21)


def test_book_hole_inside_buffer_is_a_gap():
    book = L2Book(SYMBOL)
    book.apply(delta(17, "3988.50,buy,1"))
    book.apply(delta(19, "3988.50,buy,2"))
    assert book.apply_snapshot(docs_snapshot(sequence=16)) is BookStatus.GAP


def test_book_stale_and_duplicate_deltas_ignored():
    book = L2Book(SYMBOL)
    book.apply_snapshot(docs_snapshot())
    book.apply(delta(17, "3988.50,buy,44"))
    assert [book.apply(delta(17, "3988.50,buy,1")), book.apply(delta(12, "3988.50,buy,2"))] == [
        BookStatus.STALE, BookStatus.STALE]
    assert book.snapshot(received_at=0.0).bids[1] == (3988.50, 44)


def test_book_snapshot_without_buffer():
    book = L2Book(SYMBOL)
    assert (book.apply_snapshot(docs_snapshot()), book.sequence, book.snapshot(received_at=3.0, depth=2).asks) == (
        BookStatus.OK, 16, ((3988.59, 3), (3988.60, 47)))


def test_book_reset_forgets_everything():
    book = L2Book(SYMBOL)
    book.apply_snapshot(docs_snapshot())
    book.reset()
    assert (book.is_synced, book.apply(delta(1, "1,buy,1"))) == (False, BookStatus.BUFFERED)


def test_book_buffer_bounded():
    book = L2Book(SYMBOL, max_buffered=3)
    for sequence in range(17, 22):
        book.apply(delta(sequence, "3988.50,buy,1"))
    # 17 and 18 fell out of the buffer, so snapshot 16 cannot be continued.
    assert book.apply_snapshot(docs_snapshot(sequence=16)) is BookStatus.GAP


def test_book_rejects_other_symbol():
    book = L2Book("BTC/USDT:USDT")
    with pytest.raises(InvalidArgument):
        book.apply(delta(1, "1,buy,1"))


def test_book_delta_side_parsed():
    assert delta(5, "100,sell,0") == BookDelta(symbol=SYMBOL, sequence=5, price=100.0, side=Side.SELL, size=0,
                                               ts_ms=1000)
