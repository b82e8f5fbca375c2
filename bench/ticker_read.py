"""KuCoinClient.get_ticker served from the WebSocket cache against ccxt's fetch_ticker (one REST
round trip) on the same simulator, and print a table.

    python bench/ticker_read.py                 # ~5 s
    python bench/ticker_read.py --batches 31 --calls 50000 --rest-calls 1000

The simulator runs in its own process (``python -m kucoin_sim --port 0 --no-rate-limits``), so it
does not share our GIL; its market keeps moving (a new ticker every 100 ms tick), so the cache
keeps being replaced during the measurement, as in production.

    facade, WS cache     KuCoinClient.get_ticker after warm-up (source "websocket"): per-call ns of
                         a batch of ``--calls`` calls, median over ``--batches`` batches
    cache alone          KuCoinWebSocket.get_ticker (the Ticker value, no ccxt dict): the floor
    facade, REST         KuCoinClient(enable_websocket=False).get_ticker: per call, median
    ccxt fetch_ticker    plain ccxt.kucoinfutures pointed at the simulator as tests/helpers'
                         ccxt_config does, its own throttle off: per call, median

The ratio is median(ccxt fetch_ticker) / median(facade, WS cache); the issue's target is >= 300x.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import ccxt  # noqa: E402

from kucoin_client import KuCoinClient  # noqa: E402
from kucoin_futures.rest.gateway import URL_KEYS  # noqa: E402

SYMBOL = "BTC/USDT:USDT"
TARGET_RATIO = 300.0
WARMUP_TIMEOUT_S = 10.0


def start_sim() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "kucoin_sim", "--port", "0", "--log-level", "WARNING",
                             "--no-rate-limits"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        raise RuntimeError(f"the simulator did not start: {line!r}")
    return proc, line.split("listening on ")[1].split()[0]


def batched_ns(fn: Callable[[str], Any], *, batches: int, calls: int) -> list[float]:
    """Per-call ns of each batch of ``calls`` back-to-back calls."""
    results = []
    clock = time.perf_counter_ns
    loop = range(calls)
    for _ in range(batches):
        start = clock()
        for _ in loop:
            fn(SYMBOL)
        results.append((clock() - start) / calls)
    return results


def single_ns(fn: Callable[[str], Any], *, calls: int) -> list[float]:
    """ns of each of ``calls`` calls, timed one by one."""
    results = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        start = clock()
        fn(SYMBOL)
        results.append(clock() - start)
    return results


def warm_websocket(client: KuCoinClient) -> None:
    client.get_ticker(SYMBOL)  # subscribes
    ws = client.websocket
    assert ws is not None
    ws.wait_for_ticker(SYMBOL, timeout_s=WARMUP_TIMEOUT_S)
    if client.get_ticker(SYMBOL)["source"] != "websocket":
        raise RuntimeError("the WebSocket cache never served the ticker")


def measure(url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    with KuCoinClient(futures_url=url) as client:
        warm_websocket(client)
        batched_ns(client.get_ticker, batches=2, calls=args.calls)  # warm-up
        results["facade, WS cache"] = batched_ns(client.get_ticker, batches=args.batches, calls=args.calls)
        ws = client.websocket
        assert ws is not None

        def cache_alone(symbol: str) -> Any:
            return ws.get_ticker(symbol, max_age_s=10.0)
        results["cache alone"] = batched_ns(cache_alone, batches=args.batches, calls=args.calls)
        source = client.get_ticker(SYMBOL)["source"]
        if source != "websocket":
            raise RuntimeError(f"the measured reads were not all cache hits (last: {source})")
    with KuCoinClient(futures_url=url, enable_websocket=False) as rest_client:
        single_ns(rest_client.get_ticker, calls=20)  # warm-up: connection pool, markets
        results["facade, REST"] = single_ns(rest_client.get_ticker, calls=args.rest_calls)
    exchange = ccxt.kucoinfutures({"urls": {"api": {key: url for key in URL_KEYS}}, "timeout": 10_000,
                                   "enableRateLimit": False})
    try:
        exchange.load_markets()
        single_ns(exchange.fetch_ticker, calls=20)
        results["ccxt fetch_ticker"] = single_ns(exchange.fetch_ticker, calls=args.rest_calls)
    finally:
        exchange.session.close()
    return results


def report(results: dict[str, list[float]]) -> None:
    print(f"\n{'path':<22}{'median ns/call':>16}{'p10':>14}{'p90':>14}{'samples':>9}")
    for name, values in results.items():
        deciles = statistics.quantiles(values, n=10)
        print(f"{name:<22}{statistics.median(values):>16,.0f}{deciles[0]:>14,.0f}{deciles[-1]:>14,.0f}"
              f"{len(values):>9}")
    cached = statistics.median(results["facade, WS cache"])
    ratio = statistics.median(results["ccxt fetch_ticker"]) / cached
    rest_ratio = statistics.median(results["facade, REST"]) / cached
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"\nccxt fetch_ticker / facade WS cache: {ratio:,.0f}x ({verdict} the {TARGET_RATIO:.0f}x target)")
    print(f"facade REST / facade WS cache:       {rest_ratio:,.0f}x")
    print("(WS rows: per-call mean of a batch, median over batches; REST rows: per call, median)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=21, help="cached-read batches (default 21)")
    parser.add_argument("--calls", type=int, default=20_000, help="calls per cached-read batch (default 20000)")
    parser.add_argument("--rest-calls", type=int, default=400, help="REST calls timed (default 400)")
    args = parser.parse_args()
    proc, url = start_sim()
    try:
        print(f"simulator {url} (own process, rate limits off), symbol {SYMBOL}", flush=True)
        results = measure(url, args)
    finally:
        proc.terminate()
        proc.wait(10)
    report(results)


if __name__ == "__main__":
    main()
