"""Firehose mode: push pre-built market-data frames to subscribers as fast as the socket takes them.

For benchmarks of a client's ingest path. Two topics:

- ``tickerV2`` (the default): real tickerV2 pushes (valid JSON, KuCoin's shape, +1 sequence per
  symbol from ``start_seq``); `ts` is the wall clock in ns at the moment the batch is written,
  so a receiver on the same machine can measure send-to-visible latency. The simulator's own
  state is untouched.
- ``level2``: real level-2 deltas that *are* the simulator's book changes. Each frame changes one
  price level of the symbol's book (through the same Book the REST snapshot reads), so it
  continues that book's level-2 sequence by exactly 1, and a REST snapshot taken at any moment
  plus the later deltas reproduces the book (protocol notes section 11.1). The changes cycle
  over a fixed set of levels near the touch (size updates, removals, re-adds at the same price),
  so the book stays bounded and never crosses. `timestamp` is KuCoin's: wall-clock ms.

Unpaced (no rate), frames go out in batches as fast as the receiver drains them. Paced, a timer
thread ticks every 1/rate seconds (asyncio's own timers have 1 ms granularity) and the loop
writes one frame per tick, stamping `ts` just before the write: evenly spaced single frames, so
a latency measured against `ts` counts neither batching nor frame building.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .book import Book
from .events import Side
from .wsframes import ws_frame

TOPICS = ("tickerV2", "level2")
BATCH = 256  # frames per transport write when unpaced
HIGH_WATER = 4 * 1024 * 1024  # wait for the client to drain beyond this many buffered bytes
LEVEL2_LEVELS = 8  # price levels per side the level-2 firehose cycles through, best first
LEVEL2_REMOVE_EVERY = 4  # every 4th visit of a level removes it; the next visit re-adds it

_TEMPLATE = (
    '{"topic":"/contractMarket/tickerV2:%s","type":"message","subject":"tickerV2","sn":%d,'
    '"data":{"symbol":"%s","sequence":%d,"bestBidSize":%d,"bestBidPrice":"%s",'
    '"bestAskPrice":"%s","bestAskSize":%d,"ts":%d}}'
)
# Same key order as the simulator's ordinary level2 push (wsframes.event_payload).
_L2_TEMPLATE = (
    '{"topic":"/contractMarket/level2:%s","type":"message","subject":"level2","sn":%d,'
    '"data":{"sequence":%d,"change":"%s,%s,%d","timestamp":%d}}'
)


@dataclass(slots=True)
class FirehoseResult:
    sent: int
    elapsed_s: float

    @property
    def msgs_per_s(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _frame(symbol: str, seq: int, i: int, ts_ns: int) -> bytes:
    bid = 60000.0 + (i % 200) * 0.1
    payload = _TEMPLATE % (symbol, seq, symbol, seq, 100 + i % 50, f"{bid:.1f}", f"{bid + 0.1:.1f}",
                           80 + i % 40, ts_ns)
    return ws_frame(payload.encode())


async def run_firehose(hub, symbols: list[str], total: int, rate_per_s: float | None,
                       start_seq: int = 1_000_000, *, topic: str = "tickerV2",
                       market=None) -> FirehoseResult:
    """Send `total` frames round-robin over `symbols` to every `topic` subscriber of each.

    ``topic="level2"`` needs the simulator's `market` (its books are what the frames change);
    `start_seq` applies to tickerV2 only (level-2 frames continue each book's own sequence).
    """
    if topic == "level2":
        if market is None:
            raise ValueError("the level2 firehose needs the market whose books it changes")
        return await _run_level2(hub, market, symbols, total, rate_per_s)
    if topic != "tickerV2":
        raise ValueError(f"topic must be one of {TOPICS}, not {topic!r}")
    subs = {s: tuple(hub.by_topic.get(f"/contractMarket/tickerV2:{s}", ())) for s in symbols}
    seqs = dict.fromkeys(symbols, start_seq)
    if rate_per_s is not None:
        return await _run_paced(subs, symbols, seqs, total, rate_per_s)
    t0 = time.perf_counter()
    sent = i = 0
    while i < total:
        n = min(BATCH, total - i)
        ts_ns = time.time_ns()
        per_conn: dict[object, list[bytes]] = {}
        for k in range(n):
            symbol = symbols[(i + k) % len(symbols)]
            seqs[symbol] += 1
            frame = _frame(symbol, seqs[symbol], i + k, ts_ns)
            for conn in subs[symbol]:
                per_conn.setdefault(conn, []).append(frame)
                sent += 1
        for conn, frames in per_conn.items():
            conn.write(b"".join(frames))
        i += n
        await _drain(subs)
    return FirehoseResult(sent, time.perf_counter() - t0)


async def _run_paced(subs: dict, symbols: list[str], seqs: dict, total: int,
                     rate_per_s: float) -> FirehoseResult:
    sent = [0]

    def send_one(i: int) -> None:
        symbol = symbols[i % len(symbols)]
        seqs[symbol] += 1
        frame = _frame(symbol, seqs[symbol], i, time.time_ns())
        for conn in subs[symbol]:
            conn.write(frame)
            sent[0] += 1

    elapsed_s = await _pace(send_one, total, rate_per_s)
    return FirehoseResult(sent[0], elapsed_s)


async def _pace(send_one: Callable[[int], None], total: int, rate_per_s: float) -> float:
    # Run send_one(i) on the loop for i in range(total), evenly spaced; return the seconds taken.
    loop = asyncio.get_running_loop()
    finished = loop.create_future()

    def tick() -> None:
        # Event.wait(timeout) sleeps with microsecond precision; it is never set.
        timer = threading.Event()
        start = time.perf_counter()
        for i in range(total):
            delay_s = start + i / rate_per_s - time.perf_counter()
            if delay_s > 0:
                timer.wait(delay_s)
            loop.call_soon_threadsafe(send_one, i)
        loop.call_soon_threadsafe(finished.set_result, None)

    t0 = time.perf_counter()
    threading.Thread(target=tick, name="firehose-pacer", daemon=True).start()
    await finished
    return time.perf_counter() - t0


# -- level 2 ---------------------------------------------------------------------------------------
class Level2Changes:
    """Changes of one symbol's book for the level-2 firehose, as KuCoin level2 frames.

    The levels are the best LEVEL2_LEVELS of each side when the firehose starts, visited bid,
    ask, bid, ask, ... Each visit changes the market maker's size there (so the level's total
    changes: one delta), every LEVEL2_REMOVE_EVERY-th visit of a level removes it and the next
    visit re-adds it. A level whose re-add would cross the other side's best (the market moved
    meanwhile) is left out until it is safe again; if no level is usable the plan starts over
    from the current book.

    ``frames(n, ts_ms)`` computes n changes on a private copy of the touched levels, then commits
    the net result to the Book in one go and advances its sequence by n. That is exact from the
    outside, because nothing else runs on the simulator's loop within the call: a snapshot taken
    before or after it plus the frames gives the same book. It makes a level-2 frame about as
    cheap to produce as a tickerV2 one, so the simulator is not what a client's ingest measures.
    """

    def __init__(self, book: Book, *, levels: int = LEVEL2_LEVELS) -> None:
        self.book = book
        self._levels = levels
        self._topic_symbol = book.symbol
        self._plan: list[tuple[Side, int, int, str]] = []  # side, ticks, base size, price string
        self._visits: dict[tuple[Side, int], int] = {}
        self._cursor = 0  # the next visit's index in the usable plan
        self._new_plan()

    def frames(self, n: int, ts_ms: int) -> list[bytes]:
        """Make the next n changes; return their frames (sequences continue the book's)."""
        book = self.book
        plan = self._usable()
        mm: dict[tuple[Side, int], int] = {}  # the touched levels' market-maker sizes, as changed
        user: dict[tuple[Side, int], int] = {}  # their account part (unchanged here)
        visits, symbol, seq0, cursor = self._visits, self._topic_symbol, book.sequence, self._cursor
        out = []
        for k in range(n):
            side, ticks, base, price = plan[(cursor + k) % len(plan)]
            key = (side, ticks)
            visit = visits[key] = visits.get(key, -1) + 1
            old = mm.get(key)
            if old is None:
                old = mm[key] = book.mm_at(side, ticks)
                user[key] = book.size_at(side, ticks) - old
            if old == 0:
                size = base
            elif visit % LEVEL2_REMOVE_EVERY == LEVEL2_REMOVE_EVERY - 1:
                size = 0
            else:
                size = base + 1 + visit % 7
                if size == old:
                    size += 1  # an unchanged size would be no change
            mm[key] = size
            seq = seq0 + k + 1
            out.append(ws_frame((_L2_TEMPLATE % (symbol, seq, seq, price, side, size + user[key],
                                                 ts_ms)).encode()))
        self._cursor = (cursor + n) % len(plan)
        self._commit(mm, seq0 + n, ts_ms)
        return out

    def _commit(self, mm: dict[tuple[Side, int], int], sequence: int, ts_ms: int) -> None:
        book = self.book
        for (side, ticks), size in mm.items():
            if book.mm_at(side, ticks) != size:
                book.set_mm(side, ticks, size, ts_ms)
        # The frames already carry every change: drop the net deltas set_mm recorded (the market's
        # next flush would push them again) and give the book the frames' last sequence.
        book.drain_deltas()
        book.sequence = sequence
        book.ts_ms = ts_ms

    def _usable(self) -> list[tuple[Side, int, int, str]]:
        # Within one frames() call only plan levels change, and a bid plan level is below every
        # ask plan level, so a level that does not cross the other side's best now never will.
        book = self.book
        best_bid, best_ask = book.best("buy"), book.best("sell")
        plan = [entry for entry in self._plan
                if not (entry[0] == "buy" and best_ask is not None and entry[1] >= best_ask)
                and not (entry[0] == "sell" and best_bid is not None and entry[1] <= best_bid)]
        if not plan:
            self._new_plan()
            plan = self._plan
        return plan

    def _new_plan(self) -> None:
        book, levels = self.book, self._levels
        bids, asks = book.prices("buy")[:levels], book.prices("sell")[:levels]
        plan: list[tuple[Side, int, int, str]] = []
        for k in range(max(len(bids), len(asks))):
            for side, prices in (("buy", bids), ("sell", asks)):
                if k < len(prices):
                    ticks = prices[k]
                    plan.append((side, ticks, max(1, book.mm_at(side, ticks)), book.fmt.to_str(ticks)))
        if not plan:
            raise ValueError(f"the book of {book.symbol} is empty: nothing for the firehose to change")
        self._plan = plan
        self._visits.clear()
        self._cursor = 0


async def _run_level2(hub, market, symbols: list[str], total: int,
                      rate_per_s: float | None) -> FirehoseResult:
    subs = {s: tuple(hub.by_topic.get(f"/contractMarket/level2:{s}", ())) for s in symbols}
    changes = {s: Level2Changes(market.book(s)) for s in symbols}
    sent = [0]

    def send_one(i: int) -> None:
        symbol = symbols[i % len(symbols)]
        [frame] = changes[symbol].frames(1, time.time_ns() // 1_000_000)
        for conn in subs[symbol]:
            conn.write(frame)
            sent[0] += 1

    if rate_per_s is not None:
        elapsed_s = await _pace(send_one, total, rate_per_s)
        return FirehoseResult(sent[0], elapsed_s)
    t0 = time.perf_counter()
    i = 0
    while i < total:
        n = min(BATCH, total - i)
        ts_ms = time.time_ns() // 1_000_000
        for j, symbol in enumerate(symbols):
            # round-robin: frame i + k of the run is symbols[(i + k) % len(symbols)]'s
            count = len(range((j - i) % len(symbols), n, len(symbols)))
            if not count:
                continue
            frames = changes[symbol].frames(count, ts_ms)  # the book changes even with no subscriber
            conns = subs[symbol]
            if conns:
                payload = b"".join(frames)
                for conn in conns:
                    conn.write(payload)
                sent[0] += count * len(conns)
        i += n
        await _drain(subs)
    return FirehoseResult(sent[0], time.perf_counter() - t0)


async def _drain(subs: dict) -> None:
    conns = {c for group in subs.values() for c in group}
    while True:
        live = [c for c in conns if c.transport is not None and not c.transport.is_closing()]
        if not any(c.transport.get_write_buffer_size() > HIGH_WATER for c in live):
            return
        await asyncio.sleep(0.0005)
