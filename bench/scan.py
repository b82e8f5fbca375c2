"""Full-universe scan: the ticker and the last 100 1m candles of every contract, back to back.

    ours, WebSocket   KuCoinClient (default), cache warmed by a first scan, which calls
                      client.prefetch(symbols) first (inside its wall time); REST calls counted by
                      the gateway's on_start hook (every REST call of the client, including the
                      WebSocket layer's kline history and book snapshots, goes through it)
    ours, REST only   KuCoinClient(enable_websocket=False)
    ccxt REST         plain ccxt.kucoinfutures: fetch_ticker + fetch_ohlcv per contract
    ccxt.pro          asyncio.gather of watch_ticker + watch_ohlcv for every contract, after a
                      first (subscribing) scan: each watch returns on that topic's next push
    ceiling           the same reads from a plain dict of prebuilt values (dict copy + list slice)

Before any scan is timed, ``warm_simulator`` has the simulator build the 1m kline history every
contender will read (it generates history lazily, ~17 ms per contract the first time): whoever
asked first would otherwise pay the simulator's cost, not its own.

The universe is every contract KuCoinClient accepts: the simulator lists 27, and the client
refuses the two dated futures (InvalidArgument), so 25 perpetuals for every contender.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

from common import median
from kucoin_client import KuCoinClient
from kucoin_futures.errors import InvalidArgument
from kucoin_futures.protocol.types import to_kucoin_id
from kucoin_futures.rest.gateway import RestGateway, build_exchange
from kucoin_futures.rest.public import PublicRest, fetch_klines
from peers import CountingCcxt, ProLoop, ccxt_config

TIMEFRAME, LIMIT = "1m", 100
HISTORY = 500  # candles KuCoinWebSocket keeps (and fetches) per series


def warm_simulator(base: str, symbols: list[str]) -> None:
    """Ask the simulator once for the 1m history any contender will read (see the docstring)."""
    rest = PublicRest(base)
    try:
        now_ms = int(time.time() * 1000)
        for symbol in symbols:
            fetch_klines(rest.get, to_kucoin_id(symbol), TIMEFRAME, from_ms=now_ms - HISTORY * 60_000,
                         to_ms=now_ms, received_at=0.0)
    finally:
        rest.close()


class CallCounter:
    """RestGateway on_start hook: counts every REST call the client starts, by operation."""

    def __init__(self) -> None:
        self.by_operation: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, priority: Any, label: str) -> None:
        with self._lock:
            self.by_operation[label] += 1

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return self.by_operation.copy()

    @property
    def total(self) -> int:
        return sum(self.snapshot().values())


def counted_client(base: str, *, websocket: bool) -> tuple[KuCoinClient, CallCounter]:
    counter = CallCounter()
    gateway = RestGateway(build_exchange(base), on_start=counter)
    return KuCoinClient(futures_url=base, enable_websocket=websocket, gateway=gateway), counter


def universe(base: str) -> tuple[list[str], list[str]]:
    """(every contract the simulator lists, those KuCoinClient serves)."""
    client, _ = counted_client(base, websocket=False)
    with client:
        listed = list(client.markets)
        served = []
        for symbol in listed:
            try:
                to_kucoin_id(symbol)  # the facade's own test (KuCoinClient._check_symbol)
            except InvalidArgument:
                continue
            served.append(symbol)
    return listed, served


def _scan(client: KuCoinClient, symbols: list[str]) -> Counter[str]:
    sources: Counter[str] = Counter()
    for symbol in symbols:
        sources[client.get_ticker(symbol)["source"]] += 1
        sources[client.get_ohlcv(symbol, TIMEFRAME, LIMIT).source] += 1
    return sources


def ours_scan(base: str, symbols: list[str], runs: int, *, websocket: bool) -> dict[str, Any]:
    """Wall seconds and REST calls per scan (median over ``runs``); with WebSocket, the first
    (cold) scan subscribes everything with one prefetch, then reads, and is reported apart."""
    client, counter = counted_client(base, websocket=websocket)
    out: dict[str, Any] = {}
    with client:
        if websocket:
            before, start = counter.snapshot(), time.perf_counter()
            prefetched = client.prefetch(symbols, timeframes=(TIMEFRAME,))
            prefetch_s = time.perf_counter() - start
            sources = _scan(client, symbols)
            wall = time.perf_counter() - start
            calls = counter.snapshot() - before
            out["cold"] = {"wall_s": wall, "prefetch_s": prefetch_s, "rest_calls": sum(calls.values()),
                           "by_operation": dict(calls), "sources": dict(sources),
                           "prefetch_ready": len(prefetched.ready), "prefetch_missing": list(prefetched.missing)}
        walls, calls, sources = [], [], Counter()
        for _ in range(runs):
            before, start = counter.total, time.perf_counter()
            sources += _scan(client, symbols)
            walls.append(time.perf_counter() - start)
            calls.append(counter.total - before)
    out.update(wall_s=median(walls), rest_calls=median(calls), runs=walls, sources=dict(sources))
    return out


def ccxt_scan(base: str, symbols: list[str], runs: int) -> dict[str, Any]:
    exchange = CountingCcxt(ccxt_config(base))
    try:
        exchange.load_markets()
        walls, calls = [], []
        for _ in range(runs + 1):  # the first warms the connection pool
            before, start = exchange.rest_calls, time.perf_counter()
            for symbol in symbols:
                exchange.fetch_ticker(symbol)
                exchange.fetch_ohlcv(symbol, TIMEFRAME, limit=LIMIT)
            walls.append(time.perf_counter() - start)
            calls.append(exchange.rest_calls - before)
    finally:
        exchange.session.close()
    return {"wall_s": median(walls[1:]), "rest_calls": median(calls[1:]), "runs": walls[1:]}


async def _pro_scan_once(exchange: Any, symbols: list[str]) -> None:
    await asyncio.gather(*(exchange.watch_ticker(s) for s in symbols),
                         *(exchange.watch_ohlcv(s, TIMEFRAME, None, LIMIT) for s in symbols))


def pro_scan(base: str, markets: Any, symbols: list[str], runs: int) -> dict[str, Any]:
    with ProLoop(base, markets) as pro:
        ex = pro.exchange
        start = time.perf_counter()
        pro.run(_pro_scan_once(ex, symbols))
        cold = {"wall_s": time.perf_counter() - start, "rest_calls": ex.rest_calls}
        walls, calls = [], []
        for _ in range(runs):
            before, start = ex.rest_calls, time.perf_counter()
            pro.run(_pro_scan_once(ex, symbols))
            walls.append(time.perf_counter() - start)
            calls.append(ex.rest_calls - before)
    return {"wall_s": median(walls), "rest_calls": median(calls), "runs": walls, "cold": cold}


def ceiling_scan(symbols: list[str], runs: int) -> dict[str, Any]:
    """The reads alone: a copy of a prebuilt ticker dict and a slice of prebuilt rows per contract."""
    ticker = {"symbol": "X", "bid": 1.0, "ask": 1.1, "last": 1.05, "timestamp": 0, "info": {}}
    tickers = {s: dict(ticker, symbol=s) for s in symbols}
    rows = {s: [[k * 60_000, 1.0, 1.1, 0.9, 1.05, 3.0] for k in range(500)] for s in symbols}
    walls = []
    for _ in range(max(runs, 5)):
        start = time.perf_counter()
        for symbol in symbols:
            tickers[symbol].copy()
            [row[:] for row in rows[symbol][-LIMIT:]]
        walls.append(time.perf_counter() - start)
    return {"wall_s": median(walls), "rest_calls": 0, "runs": walls}
