"""Firehose mode: push pre-built tickerV2 frames to subscribers as fast as the socket takes them.

For benchmarks of a client's ingest path. Frames are real tickerV2 pushes (valid JSON, KuCoin's
shape, +1 sequence per symbol); `ts` is the wall clock in ns at the moment the batch is written,
so a receiver on the same machine can measure send-to-visible latency.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from .wsframes import ws_frame

BATCH = 256  # frames per transport write when unpaced
HIGH_WATER = 4 * 1024 * 1024  # wait for the client to drain beyond this many buffered bytes

_TEMPLATE = (
    '{"topic":"/contractMarket/tickerV2:%s","type":"message","subject":"tickerV2","sn":%d,'
    '"data":{"symbol":"%s","sequence":%d,"bestBidSize":%d,"bestBidPrice":"%s",'
    '"bestAskPrice":"%s","bestAskSize":%d,"ts":%d}}'
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
                       start_seq: int = 1_000_000) -> FirehoseResult:
    """Send `total` frames round-robin over `symbols` to every tickerV2 subscriber of each."""
    subs = {s: tuple(hub.by_topic.get(f"/contractMarket/tickerV2:{s}", ())) for s in symbols}
    seqs = dict.fromkeys(symbols, start_seq)
    batch = BATCH if rate_per_s is None else max(1, int(rate_per_s / 1000))
    interval_s = None if rate_per_s is None else batch / rate_per_s
    t0 = time.perf_counter()
    sent = i = 0
    while i < total:
        n = min(batch, total - i)
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
        if interval_s is not None:
            next_t = t0 + (i / batch) * interval_s
            await asyncio.sleep(max(0.0, next_t - time.perf_counter()))
    return FirehoseResult(sent, time.perf_counter() - t0)


async def _drain(subs: dict) -> None:
    conns = {c for group in subs.values() for c in group}
    while True:
        live = [c for c in conns if c.transport is not None and not c.transport.is_closing()]
        if not any(c.transport.get_write_buffer_size() > HIGH_WATER for c in live):
            return
        await asyncio.sleep(0.0005)
