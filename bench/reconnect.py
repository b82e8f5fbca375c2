"""Reconnect recovery: POST /sim/drop_ws aborts every connection; how long until the 100 topics
(tickerV2, ticker, 1m candles and level-2 book of 25 perpetuals) are live again? Seconds from
the drop, median over runs.

Each drop starts from a settled client (``settled()``: ours has no REST call queued or running,
e.g. the candle refills of the previous recovery or the initial 500-candle history; the others
have no such work), so back-to-back drops measure recovery, not the tail of the last one.

Recovered means both:
  1. the simulator lists all 100 topics as subscribed again (GET /sim/state: the same test for
     every client), and
  2. the fast topics delivered data received after the client saw the loss (so frames in flight
     at the drop cannot count): tickerV2 of every contract, and every order book resynced and
     served again (REST snapshot + deltas; the ceiling takes the first level-2 message instead).
The trade-driven topics (ticker v1, candles) push once per simulated trade, about once a second
per contract whatever --tick-ms says, so waiting for their next push would measure the market's
trade rate (the slowest of 50 exponential waits, ~4-5 s) rather than the client: they count once
resubscribed.

  ours      KuCoinWebSocket inside KuCoinClient: the loss is seen when its open connection count
            drops to zero (or a new connection opened); data from stats() and the book cache
  ccxt.pro  a user's loops re-calling watch_bids_asks(25), watch_tickers(25), watch_ohlcv x 25 and
            watch_order_book_for_symbols(25) after each error (ccxt.pro does not reconnect by
            itself: the next watch call does); the loss is its first error
  ceiling   a bare socket that reconnects at once (no backoff), subscribes the 100 topics in 4
            messages and takes each topic's first message (no book snapshot)
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import time
from functools import partial
from typing import Any

import ccxt
import orjson

from ceiling import raw_connect, split_frames
from common import drop_ws, median, sim_state, wait_until
from kucoin_futures.protocol.types import to_kucoin_id
from kucoin_futures.protocol.wire import (
    TOPIC_CANDLE,
    TOPIC_LEVEL2,
    TOPIC_TICKER,
    TOPIC_TICKER_V2,
    topic_candle,
    topic_level2,
    topic_ticker,
    topic_ticker_v2,
)
from peers import ProLoop
from scan import counted_client

TIMEFRAME = "1m"
RECOVERY_TIMEOUT_S = 30.0
LOSS_TIMEOUT_S = 10.0
INF = float("inf")


def topics_of(symbol: str) -> list[str]:
    kucoin_id = to_kucoin_id(symbol)
    return [topic_ticker_v2(kucoin_id), topic_ticker(kucoin_id), topic_candle(kucoin_id, TIMEFRAME),
            topic_level2(kucoin_id)]


def _sim_has(base: str, topics: set[str]) -> bool:
    return topics <= set(sim_state(base)["topics"])


def recover(base: str, contender: Any, topics: list[str], runs: int) -> list[float]:
    """Seconds from each drop to recovered (module docstring); ``contender`` has arm/lost/fresh."""
    wanted = set(topics)
    wait_until(lambda: contender.fresh(-INF) and _sim_has(base, wanted), RECOVERY_TIMEOUT_S,
               f"{contender.name}: every topic's first data")
    out = []
    for _ in range(runs):
        wait_until(contender.settled, RECOVERY_TIMEOUT_S, f"{contender.name}: settled")
        token = contender.arm()
        t_drop = time.monotonic()
        drop_ws(base)
        t_lost = wait_until(lambda: contender.lost(token), LOSS_TIMEOUT_S, f"{contender.name} to see the loss")
        t_done = wait_until(lambda: contender.fresh(t_lost) and _sim_has(base, wanted) and time.monotonic(),
                            RECOVERY_TIMEOUT_S, f"{contender.name}: recovered after the drop")
        out.append(t_done - t_drop)
    return out


# -- ours ------------------------------------------------------------------------------------------
class OursProbe:
    """Loss and freshness as seen through KuCoinWebSocket.stats() and its book cache."""

    name = "ours"

    def __init__(self, client: Any, symbols: list[str]) -> None:
        self.client, self.ws, self.symbols = client, client.websocket, symbols
        self.fast_topics = [topic_ticker_v2(to_kucoin_id(s)) for s in symbols]

    def arm(self) -> int:
        return self.ws.stats().connections_opened

    def settled(self) -> bool:
        rest = self.client.health()
        return rest["in_flight"] == 0 and not any(rest["queue_depths"].values())

    def lost(self, opened: int) -> float | None:
        stats = self.ws.stats()
        return time.monotonic() if stats.connections == 0 or stats.connections_opened > opened else None

    def fresh(self, since: float) -> bool:
        now = time.monotonic()
        topics = self.ws.stats().topics
        for topic in self.fast_topics:
            stat = topics.get(topic)
            if stat is None or stat.age_s is None or now - stat.age_s <= since:
                return False
        for symbol in self.symbols:
            book = self.ws.get_order_book(symbol, max_age_s=INF)
            if book is None or book.received_at <= since:
                return False
        return True


def ours_reconnect(base: str, symbols: list[str], runs: int) -> dict[str, Any]:
    client, counter = counted_client(base, websocket=True)
    topics = [t for s in symbols for t in topics_of(s)]
    with client:
        ws = client.websocket
        for symbol in symbols:
            ws.subscribe_ticker(symbol)
            ws.subscribe_candles(symbol, TIMEFRAME)
            ws.subscribe_order_book(symbol)
        out = recover(base, OursProbe(client, symbols), topics, runs)
        reconnects = ws.stats().reconnects
    return {"recovery_s": median(out), "runs": out, "topics": len(topics), "reconnects": reconnects,
            "rest_calls": dict(counter.snapshot())}


# -- ccxt.pro --------------------------------------------------------------------------------------
class ProWatchers:
    """A ccxt.pro user's watch loops over the 100 topics; freshness from ccxt.pro's own caches.

    A multi-symbol watch returns one symbol's update per await, so the loops only keep the
    subscriptions alive (and reconnect); ``marks`` come from BenchPro's hooks: a tickerV2 parsed
    into ``bidsasks``, a delta applied to a synced book.
    """

    name = "ccxt.pro"

    def __init__(self, exchange: Any, symbols: list[str]) -> None:
        self.exchange, self.symbols = exchange, symbols
        self.ids = [to_kucoin_id(s) for s in symbols]
        self.marks: dict[tuple[str, str], float] = {}
        self.errors: list[float] = []
        self.stop = False
        exchange.on_bid_ask = lambda data: self._mark("v2", data["symbol"])
        exchange.on_book = lambda kucoin_id: self._mark("book", kucoin_id)

    def arm(self) -> int:
        return len(self.errors)

    @staticmethod
    def settled() -> bool:
        return True  # its recovery work (snapshots) is done once fresh; no history to refill

    def lost(self, errors: int) -> float | None:
        return self.errors[errors] if len(self.errors) > errors else None

    def fresh(self, since: float) -> bool:
        marks = self.marks
        return all(marks.get((kind, i), -INF) > since for kind in ("v2", "book") for i in self.ids)

    def _mark(self, kind: str, kucoin_id: str) -> None:
        self.marks[(kind, kucoin_id)] = time.monotonic()

    async def run(self) -> None:
        ex, syms = self.exchange, self.symbols
        loops = [self._loop(lambda: ex.watch_bids_asks(syms)), self._loop(lambda: ex.watch_tickers(syms)),
                 self._loop(lambda: ex.watch_order_book_for_symbols(syms))]
        loops += [self._loop(partial(ex.watch_ohlcv, s, TIMEFRAME)) for s in syms]
        await asyncio.gather(*loops)

    async def _loop(self, watch: Any) -> None:
        while not self.stop:
            try:
                await asyncio.wait_for(watch(), 1.0)
            except asyncio.TimeoutError:
                continue
            except ccxt.BaseError:  # the drop (NetworkError): a ccxt.pro user's loop calls again
                self.errors.append(time.monotonic())


def pro_reconnect(base: str, markets: Any, symbols: list[str], runs: int) -> dict[str, Any]:
    topics = [t for s in symbols for t in topics_of(s)]
    with ProLoop(base, markets) as pro:
        watchers = ProWatchers(pro.exchange, symbols)
        task = pro.spawn(watchers.run())
        try:
            out = recover(base, watchers, topics, runs)
        finally:
            watchers.stop = True
            task.cancel()  # its loops may be inside a 1 s wait_for
            try:
                task.result(30)
            except concurrent.futures.CancelledError:
                pass
        rest_calls = pro.exchange.rest_calls
    return {"recovery_s": median(out), "runs": out, "topics": len(topics), "rest_calls": rest_calls}


# -- the ceiling -----------------------------------------------------------------------------------
class RawSubscriber:
    """A bare socket on the 100 topics that reconnects at once; ``marks[topic]`` = last message."""

    name = "raw"

    def __init__(self, base: str, symbols: list[str]) -> None:
        self.base = base
        ids = [to_kucoin_id(s) for s in symbols]
        candle_args = [topic_candle(i, TIMEFRAME).split(":", 1)[1] for i in ids]
        self.subscribes = [f"{TOPIC_TICKER_V2}:{','.join(ids)}", f"{TOPIC_TICKER}:{','.join(ids)}",
                           f"{TOPIC_CANDLE}:{','.join(candle_args)}", f"{TOPIC_LEVEL2}:{','.join(ids)}"]
        self.topics = [t for s in symbols for t in topics_of(s)]
        self.fast_topics = [t for t in self.topics if t.startswith((TOPIC_TICKER_V2 + ":", TOPIC_LEVEL2 + ":"))]
        self.marks: dict[str, float] = {}
        self.losses: list[float] = []
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="raw-subscriber", daemon=True)

    def start(self) -> RawSubscriber:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)

    def arm(self) -> int:
        return len(self.losses)

    @staticmethod
    def settled() -> bool:
        return True

    def lost(self, losses: int) -> float | None:
        return self.losses[losses] if len(self.losses) > losses else None

    def fresh(self, since: float) -> bool:
        marks = self.marks
        return all(marks.get(t, -INF) > since for t in self.fast_topics)

    def _run(self) -> None:
        while not self._stop.is_set():
            sock, buf = raw_connect(self.base, self.subscribes)
            self._sock = sock
            try:
                self._read(sock, buf)
            finally:
                sock.close()
                self.losses.append(time.monotonic())

    def _read(self, sock: socket.socket, buf: bytes) -> None:
        sock.settimeout(1.0)
        while not self._stop.is_set():
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            payloads, buf = split_frames(buf + chunk)
            for payload in payloads:
                message = orjson.loads(payload)
                if message.get("type") == "message":
                    self.marks[message["topic"]] = time.monotonic()


def raw_reconnect(base: str, symbols: list[str], runs: int) -> dict[str, Any]:
    raw = RawSubscriber(base, symbols).start()
    try:
        out = recover(base, raw, raw.topics, runs)
    finally:
        raw.close()
    return {"recovery_s": median(out), "runs": out, "topics": len(raw.topics)}
