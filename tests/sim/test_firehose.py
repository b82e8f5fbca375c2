"""The simulator's firehose over real sockets: tickerV2 (unpaced and paced) and level 2."""
from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal

import ccxt.pro
import orjson
import pytest

from kucoin_sim import Simulator
from kucoin_sim.book import Book, PriceFormat
from kucoin_sim.firehose import LEVEL2_LEVELS, Level2Changes
from kucoin_websocket import KuCoinWebSocket
from tests.helpers import TIMEOUT_S, ccxt_config, wait_until
from tests.sim.wsclient import WsClient, http

BTC, KUCOIN_ID = "BTC/USDT:USDT", "XBTUSDTM"
TICKER_V2 = f"/contractMarket/tickerV2:{KUCOIN_ID}"
LEVEL2 = f"/contractMarket/level2:{KUCOIN_ID}"
FIRST_SEQ = 1_000_000  # the tickerV2 firehose numbers its frames from FIRST_SEQ + 1
TICKER_V2_KEYS = {"symbol", "sequence", "bestBidSize", "bestBidPrice", "bestAskPrice", "bestAskSize", "ts"}


def frames_until_pong(client: WsClient) -> list[dict]:
    """Every frame before the answer to a ping sent now (writes arrive in order)."""
    ping_id = client.request("ping")
    frames = []
    while True:
        frame = client.recv()
        if frame.get("type") == "pong" and frame.get("id") == ping_id:
            return frames
        frames.append(frame)


def rest_book(sim: Simulator) -> dict:
    status, _, body = http(sim, "GET", f"/api/v1/level2/snapshot?symbol={KUCOIN_ID}")
    assert status == 200, body
    return body["data"]


def as_levels(snapshot: dict) -> dict[str, dict[float, int]]:
    return {"buy": {p: s for p, s in snapshot["bids"]}, "sell": {p: s for p, s in snapshot["asks"]}}


def apply_deltas(book: dict[str, dict[float, int]], frames: list[dict], after_seq: int) -> int:
    """Apply the level2 deltas with sequence > after_seq (KuCoin's procedure); return the last sequence."""
    seq = after_seq
    for frame in frames:
        data = frame["data"]
        if data["sequence"] <= seq:
            continue
        assert data["sequence"] == seq + 1, "gap in the level-2 sequence"
        seq = data["sequence"]
        price, side, size = data["change"].split(",")
        if int(size) == 0:
            del book[side][float(price)]
        else:
            book[side][float(price)] = int(size)
    return seq


def test_firehose_ticker_v2_unpaced_sends_exactly_total_frames(sim: Simulator) -> None:
    sim.pause_market()  # before subscribing: no market tickerV2 can be in flight
    total = 2000
    with WsClient(sim) as client:
        client.subscribe(TICKER_V2)
        result = sim.firehose(total)
        frames = frames_until_pong(client)
    assert result.sent == total
    assert [f["data"]["sequence"] for f in frames] == list(range(FIRST_SEQ + 1, FIRST_SEQ + total + 1))
    assert {(f["topic"], f["type"], f["subject"], f["sn"] == f["data"]["sequence"]) for f in frames} == \
        {(TICKER_V2, "message", "tickerV2", True)}
    assert {frozenset(f["data"]) for f in frames} == {frozenset(TICKER_V2_KEYS)}
    assert all(Decimal(f["data"]["bestBidPrice"]) < Decimal(f["data"]["bestAskPrice"]) for f in frames)
    assert abs(frames[-1]["data"]["ts"] - time.time_ns()) < 60 * 10**9  # ns, wall clock


def test_firehose_ticker_v2_paced_takes_total_over_rate(sim: Simulator) -> None:
    """2,000 msgs/s for 400 frames: about 0.2 s, one frame per tick, each stamped when written."""
    sim.pause_market()
    total, rate = 400, 2000.0
    expected_s = total / rate
    with WsClient(sim) as client:
        client.subscribe(TICKER_V2)
        started = time.perf_counter()
        result = sim.firehose(total, rate_per_s=rate)
        wall_s = time.perf_counter() - started
        frames = frames_until_pong(client)
    stamps_s = (frames[-1]["data"]["ts"] - frames[0]["data"]["ts"]) / 1e9
    assert (result.sent, len(frames)) == (total, total)
    assert 0.8 * expected_s <= result.elapsed_s <= 4 * expected_s
    assert 0.8 * expected_s <= wall_s <= 4 * expected_s + 1.0  # + the control call's own cost
    assert 0.8 * (total - 1) / rate <= stamps_s <= 4 * expected_s  # stamped per frame, not per batch


@pytest.mark.parametrize("rate", [None, 5000.0], ids=["unpaced", "paced"])
def test_firehose_level2_continues_the_book(sim: Simulator, rate: float | None) -> None:
    """Snapshot before + every delta == snapshot after: one sequence, no gap, the real book."""
    sim.pause_market()
    total = 1500
    with WsClient(sim) as client:
        client.subscribe(LEVEL2)
        before = rest_book(sim)
        result = sim.firehose(total, topic="level2", rate_per_s=rate)
        frames = frames_until_pong(client)
    after = rest_book(sim)
    book = as_levels(before)
    last = apply_deltas(book, frames, before["sequence"])
    sizes = [int(f["data"]["change"].rsplit(",", 1)[1]) for f in frames]
    assert result.sent == total
    assert [f["data"]["sequence"] for f in frames] == list(range(before["sequence"] + 1, last + 1))
    assert (last, after["sequence"]) == (before["sequence"] + total, before["sequence"] + total)
    assert book == as_levels(after)
    assert {(f["topic"], f["subject"], f["sn"] == f["data"]["sequence"]) for f in frames} == {(LEVEL2, "level2", True)}
    assert abs(frames[-1]["data"]["timestamp"] - time.time() * 1000) < 60_000  # ms, as KuCoin sends it
    assert sizes.count(0) > total // 10  # removals (and so re-adds) are part of the stream
    assert after["bids"][0][0] < after["asks"][0][0]
    assert (len(after["bids"]) <= len(before["bids"]), len(after["asks"]) <= len(before["asks"])) == (True, True)


def test_firehose_level2_snapshot_mid_stream_plus_later_deltas_is_the_book(sim: Simulator) -> None:
    """A REST snapshot taken while the firehose runs, plus the deltas after it, gives the final book."""
    sim.pause_market()
    total, rate = 1000, 4000.0
    with WsClient(sim) as client:
        client.subscribe(LEVEL2)
        sender = threading.Thread(target=sim.firehose, args=(total,), kwargs={"topic": "level2", "rate_per_s": rate})
        sender.start()
        first = client.recv_until(lambda f: f.get("subject") == "level2", what="the first level-2 frame")
        middle = rest_book(sim)
        sender.join(4 * TIMEOUT_S)
        frames = [first, *frames_until_pong(client)]
    after = rest_book(sim)
    book = as_levels(middle)
    last = apply_deltas(book, frames, middle["sequence"])
    assert first["data"]["sequence"] <= middle["sequence"] < last  # the snapshot really was mid-stream
    assert (last, book) == (after["sequence"], as_levels(after))


def test_our_client_and_ccxt_pro_follow_the_level2_firehose_without_resync(sim: Simulator) -> None:
    """KuCoinWebSocket and ccxt.pro's watch_order_book both sync and end equal to the REST book."""
    sim.pause_market()
    with KuCoinWebSocket(rest_url=sim.url, backoff_initial_s=0.05) as ws:
        ws.subscribe_order_book(BTC)
        assert ws.wait_for_order_book(BTC, timeout_s=TIMEOUT_S) is not None
        pro_book = asyncio.run(_pro_book_after_firehose(sim, 2000))
        after = rest_book(sim)
        ours = wait_until(lambda: _synced(ws.get_order_book(BTC, max_age_s=60), after["sequence"]),
                          what="our book at the last sequence")
        resyncs = ws.stats().resyncs
    expected = ([tuple(x) for x in after["bids"]], [tuple(x) for x in after["asks"]])
    assert (list(ours.bids), list(ours.asks), resyncs) == (*expected, {BTC: 0})
    assert (pro_book["nonce"], [tuple(x) for x in pro_book["bids"]], [tuple(x) for x in pro_book["asks"]]) == \
        (after["sequence"], *expected)


def _synced(book, sequence: int):
    return book if book is not None and book.sequence == sequence else None


async def _pro_book_after_firehose(sim: Simulator, total: int) -> dict:
    ex = ccxt.pro.kucoinfutures(ccxt_config(sim, credentials=False))
    try:
        watch = asyncio.ensure_future(ex.watch_order_book(BTC))
        await asyncio.to_thread(wait_until, lambda: sim.connections_total >= 2 and _pro_subscribed(sim),
                                what="ccxt.pro's level2 subscription")
        start_seq = rest_book(sim)["sequence"]
        await asyncio.to_thread(sim.firehose, total, topic="level2")
        book = await asyncio.wait_for(watch, TIMEOUT_S)
        while book["nonce"] != start_seq + total:
            book = await asyncio.wait_for(ex.watch_order_book(BTC), TIMEOUT_S)
        return {"nonce": book["nonce"], "bids": list(book["bids"]), "asks": list(book["asks"])}
    finally:
        await ex.close()


def _pro_subscribed(sim: Simulator) -> bool:
    return sim.call(lambda: len(sim.hub.by_topic.get(LEVEL2, ())) >= 2)


def test_level2_changes_frames_replay_onto_the_committed_book() -> None:
    """Single and batched calls: frames +1 each, and before + frames == the book after, bounded."""
    book = _book({100 - k: 10 + k for k in range(12)}, {101 + k: 20 + k for k in range(12)})
    start = {side: dict(book.levels(side)) for side in ("buy", "sell")}
    replayed = {side: dict(levels) for side, levels in start.items()}
    changes = Level2Changes(book)
    frames = [f for _ in range(20) for f in changes.frames(1, ts_ms=1_700_000_000_001)]
    frames += changes.frames(300, ts_ms=1_700_000_000_002)
    datas = [orjson.loads(_payload(f))["data"] for f in frames]
    for data in datas:
        price, side, size = data["change"].split(",")
        if int(size):
            replayed[side][int(price)] = int(size)
        else:
            del replayed[side][int(price)]
    touched = {tuple(d["change"].split(",")[:2]) for d in datas}
    assert [d["sequence"] for d in datas] == list(range(1001, 1321))
    assert (book.sequence, book.drain_deltas(), book.ts_ms) == (1320, [], 1_700_000_000_002)
    assert replayed == {side: dict(book.levels(side)) for side in ("buy", "sell")}
    assert touched == {(str(100 - k), "buy") for k in range(LEVEL2_LEVELS)} | \
        {(str(101 + k), "sell") for k in range(LEVEL2_LEVELS)}
    assert {d["change"].endswith(",0") for d in datas} == {True, False}  # removals and updates
    assert (set(replayed["buy"]) <= set(start["buy"]), set(replayed["sell"]) <= set(start["sell"])) == (True, True)


def test_level2_changes_leave_out_a_level_that_would_cross() -> None:
    book = _book({100: 5, 99: 6}, {101: 7, 102: 8})
    changes = Level2Changes(book, levels=1)  # plan: bid 100, ask 101
    book.set_mm("buy", 100, 0, 0)  # both plan levels are gone...
    book.set_mm("sell", 101, 0, 0)
    book.set_mm("sell", 100, 3, 0)  # ...and the market moved down: the best ask is now 100
    book.drain_deltas()
    frames = changes.frames(2, ts_ms=1)  # re-adding bid 100 would cross: only ask 101 is visited
    changes_seen = [orjson.loads(_payload(f))["data"]["change"] for f in frames]
    assert (changes_seen, book.best("buy"), book.best("sell")) == (["101,sell,7", "101,sell,9"], 99, 100)


def _payload(frame: bytes) -> bytes:
    length = frame[1] & 0x7F
    return frame[4:] if length == 126 else frame[2:]


def _book(bids: dict[int, int], asks: dict[int, int]) -> Book:
    book = Book("TESTUSDTM", PriceFormat("1"), start_sequence=1000)
    for side, levels in (("buy", bids), ("sell", asks)):
        for ticks, size in levels.items():
            book.set_mm(side, ticks, size, 0)
    book.sequence = 1000
    book.drain_deltas()
    return book


def test_firehose_control_endpoint_refuses_unknown_topic_and_symbol(sim: Simulator) -> None:
    bad_topic = http(sim, "POST", "/sim/firehose?total=1&topic=ticker")
    bad_symbol = http(sim, "POST", "/sim/firehose?total=1&topic=level2&symbols=NOPEUSDTM")
    ok = http(sim, "POST", "/sim/firehose?total=3&topic=level2")
    assert (bad_topic[0], bad_topic[2]) == (400, {"error": "topic must be one of tickerV2, level2"})
    assert (bad_symbol[0], bad_symbol[2]) == (400, {"error": "Contract NOPEUSDTM not found"})
    assert (ok[0], ok[2]["sent"]) == (200, 0)  # no subscriber: the book changed, nothing was sent
