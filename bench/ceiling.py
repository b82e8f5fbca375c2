"""The raw ceiling: what a bare socket read-and-parse loop with orjson achieves on this machine.

No WebSocket library, no value types, no callbacks: one thread reads the socket 1 MiB at a time,
cuts RFC 6455 frames with a minimal parser, ``orjson.loads`` each payload and stores the tickerV2
(or level-2) ``data`` dict in a dict under a lock. Any client that does more work per frame than
this cannot be faster; a client within a small factor of it is close to the physical limit.

    raw_ingest(base, total, busy)              -> msgs/s (firehose, first to last frame)
    raw_book_ingest(base, total, busy)         -> msgs/s (level-2 firehose; parsed, not applied)
    raw_latency(base, total, rate, busy)       -> [us from the frame's send ts to parsed]
    read_floor_ns(base, calls)                 -> [ns of each read of the newest parsed ticker]
    python bench/ceiling.py --memory           the memory floor: the same numbers as packed
                                               arrays in a bare interpreter (prints JSON)
"""
from __future__ import annotations

import array
import base64
import json
import os
import sys
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from common import (Firehose, Meter, get, peak_rss_mib, post, spin_until, wait_no_connections, wait_subscribed,
                    wait_until)

KUCOIN_ID = "XBTUSDTM"
TOPIC = f"/contractMarket/tickerV2:{KUCOIN_ID}"
TOPIC_L2 = f"/contractMarket/level2:{KUCOIN_ID}"
READ_SIZE = 1 << 20
SOCKET_TIMEOUT_S = 30.0


def raw_connect(base: str, topics: Sequence[str]) -> tuple[socket.socket, bytes]:
    """Fresh bullet token, WebSocket handshake, one subscribe per topic string (comma lists allowed).

    Returns the socket and the bytes read past the handshake (the start of the frame stream).
    """
    token = post(base + "/api/v1/bullet-public")["data"]["token"]
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /endpoint?token={token}&connectId=raw HTTP/1.1\r\nHost: {host}\r\n"
                  f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(4096)
    for i, topic in enumerate(topics):
        payload = orjson.dumps({"id": str(i), "type": "subscribe", "topic": topic, "response": True})
        sock.sendall(masked_text_frame(payload))
    return sock, buf.split(b"\r\n\r\n", 1)[1]


def masked_text_frame(payload: bytes) -> bytes:
    """A client text frame (FIN, opcode 1); client frames must be masked (RFC 6455 section 5.3)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    head = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    return head + mask + masked


def split_frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """Cut whole unmasked server frames off ``buf``: (their payloads, the incomplete rest)."""
    payloads = []
    pos, end = 0, len(buf)
    while end - pos >= 2:
        length, head = buf[pos + 1] & 0x7F, 2
        if length == 126:
            if end - pos < 4:
                break
            length, head = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
        elif length == 127:
            if end - pos < 10:
                break
            length, head = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
        if end - pos < head + length:
            break
        payloads.append(buf[pos + head:pos + head + length])
        pos += head + length
    return payloads, buf[pos:]


class RawFeed:
    """A subscriber of one topic (tickerV2 unless told) on a bare socket; ``on_data(data, recv_ns)``
    per parsed frame of that topic's subject, whose ``data`` is kept under the topic's symbol."""

    def __init__(self, base: str, on_data: Callable[[dict[str, Any], int], object] | None = None, *,
                 topic: str = TOPIC) -> None:
        self.cache: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self._on_data = on_data
        prefix, _, self._key = topic.partition(":")
        self._subject = "level2" if prefix == "/contractMarket/level2" else "tickerV2"
        self._sock, self._buf = raw_connect(base, [topic])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="raw-reader", daemon=True)

    def start(self) -> RawFeed:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(5)

    def get(self, symbol: str) -> dict[str, Any] | None:
        with self.lock:
            return self.cache.get(symbol)

    def _read(self) -> None:
        self._sock.settimeout(SOCKET_TIMEOUT_S)
        buf = self._buf
        while not self._stop.is_set():
            try:
                chunk = self._sock.recv(READ_SIZE)
            except OSError:
                return
            if not chunk:
                return
            buf = self._frames(buf + chunk if buf else chunk)

    def _frames(self, buf: bytes) -> bytes:
        payloads, rest = split_frames(buf)
        loads, on_data, lock, cache = orjson.loads, self._on_data, self.lock, self.cache
        subject, key = self._subject, self._key
        for payload in payloads:
            message = loads(payload)
            if message.get("subject") == subject:
                data = message["data"]
                with lock:
                    cache[key] = data
                if on_data is not None:
                    on_data(data, time.time_ns())
        return rest


def raw_ingest(base: str, total: int, busy: bool) -> float:
    """Firehose of ``total`` frames into the raw reader; msgs/s from the first to the last frame."""
    wait_no_connections(base)
    meter = Meter(total)
    feed = RawFeed(base, lambda data, _ns: meter.hit(data["sequence"])).start()
    try:
        wait_subscribed(base, [TOPIC])
        sender = Firehose(base, total, [KUCOIN_ID])
        if busy:
            spin_until(meter.done)
        if not meter.done.wait(600):
            raise RuntimeError(f"raw reader: only {meter.n} of {total} frames arrived")
        sender.join()
    finally:
        feed.close()
    return meter.rate()


class BookMeter:
    """Counts level-2 deltas where they become visible, by sequence; sets ``done`` at the run's last.

    The level-2 firehose continues the simulator's book sequence (``book_sequence`` before the
    run, market paused), so a run of ``total`` frames ends at ``start_seq + total``. Counting by
    sequence credits a client that publishes once per batch of deltas (KuCoinWebSocket: once per
    socket read) with every delta of the batch, the same as a client reporting each one. The
    rate runs from the first delta seen to the last; sequences up to ``start_seq`` (a snapshot
    loaded before the run) are not counted.
    """

    def __init__(self, start_seq: int, total: int) -> None:
        self.start_seq, self.last_seq = start_seq, start_seq + total
        self.first_seq: int | None = None
        self.seq = start_seq  # the newest sequence seen
        self.t_first = self.t_last = 0.0
        self.done = threading.Event()

    def hit(self, sequence: int) -> None:
        if sequence <= self.start_seq:
            return
        self.seq = sequence
        if self.first_seq is None:
            self.first_seq, self.t_first = sequence, time.perf_counter()
        if sequence >= self.last_seq:
            self.t_last = time.perf_counter()
            self.done.set()

    def rate(self) -> float:
        span = self.t_last - self.t_first
        return (self.last_seq - self.first_seq) / span if span > 0 and self.first_seq is not None else 0.0


def book_sequence(base: str) -> int:
    """The level-2 sequence of the simulator's BTC book now (REST snapshot)."""
    return get(f"{base}/api/v1/level2/snapshot?symbol={KUCOIN_ID}")["data"]["sequence"]


def fire_level2(base: str, total: int, busy: bool, meter: BookMeter, what: str) -> None:
    """Level-2 firehose of ``total`` frames; the main thread spins if ``busy``; wait for the last."""
    sender = Firehose(base, total, [KUCOIN_ID], topic="level2")
    if busy:
        spin_until(meter.done)
    if not meter.done.wait(600):
        raise RuntimeError(f"{what}: only up to sequence {meter.seq} of {meter.last_seq} arrived")
    sender.join()


def raw_book_ingest(base: str, total: int, busy: bool) -> float:
    """Level-2 firehose of ``total`` frames into the raw reader (parsed and stored, not applied to a
    book); msgs/s from the first to the last frame."""
    wait_no_connections(base)
    meter = BookMeter(book_sequence(base), total)
    feed = RawFeed(base, lambda data, _ns: meter.hit(data["sequence"]), topic=TOPIC_L2).start()
    try:
        wait_subscribed(base, [TOPIC_L2])
        fire_level2(base, total, busy, meter, "raw reader")
    finally:
        feed.close()
    return meter.rate()


def raw_latency(base: str, total: int, rate: float, busy: bool) -> list[float]:
    """Microseconds from each frame's ``ts`` (simulator wall clock at send) to parsed here."""
    wait_no_connections(base)
    meter = Meter(total)
    out: list[float] = []

    def on_data(data: dict[str, Any], now_ns: int) -> None:
        out.append((now_ns - data["ts"]) / 1000)
        meter.hit(data["sequence"])

    feed = RawFeed(base, on_data).start()
    try:
        wait_subscribed(base, [TOPIC])
        sender = Firehose(base, total, [KUCOIN_ID], rate)
        if busy:
            spin_until(meter.done)
        if not meter.done.wait(600):
            raise RuntimeError(f"raw reader: only {meter.n} of {total} frames arrived")
        sender.join()
    finally:
        feed.close()
    return out


def read_floor_ns(base: str, calls: int) -> list[float]:
    """ns of each read of the newest tickerV2 dict the raw reader parsed (a lock and a dict get)."""
    feed = RawFeed(base).start()
    clock = time.perf_counter_ns
    get = feed.get
    try:
        wait_until(lambda: get(KUCOIN_ID), 10, "raw reader: the first tickerV2")
        out: list[float] = []
        for _ in range(calls):
            start = clock()
            get(KUCOIN_ID)
            out.append(clock() - start)
        return out
    finally:
        feed.close()


def memory_main() -> None:
    """Child process: 300 tickers, 300 x 3 x 500 candles, 20 books of 500 levels a side as packed
    float64 arrays (the bytes the numbers need); print peak RSS in MiB as JSON."""
    before = peak_rss_mib()
    tickers, candles, books = {}, {}, {}
    for i in range(300):
        symbol = f"C{i:03d}/USDT:USDT"
        tickers[symbol] = array.array("d", (100.0 + i, 5, 100.1 + i, 7, 100.05, 1, 1.7e12))
        for timeframe in ("1m", "5m", "1h"):
            rows = array.array("d")
            for k in range(500):
                rows.extend((1.7e12 + k * 60_000, 100.0 + k, 101.0 + k, 99.0 + k, 100.5 + k, float(k)))
            candles[(symbol, timeframe)] = rows
        if i < 20:
            books[symbol] = (array.array("d", (v for k in range(500) for v in (100.0 - k * 0.01, k + 1))),
                             array.array("d", (v for k in range(500) for v in (100.01 + k * 0.01, k + 1))))
    print(json.dumps({"before_mib": before, "peak_mib": peak_rss_mib(), "series": len(candles)}))


if __name__ == "__main__":
    if sys.argv[1:] == ["--memory"]:
        memory_main()
    else:
        sys.exit("usage: python bench/ceiling.py --memory   (the rows run from bench/run.py)")
