"""Latency of a CRITICAL order submitted while a full-universe market scan is queued, against the
same order in a plain FIFO queue (everything at one priority).

    python bench/order_latency.py [--runs 10] [--workers 4]

Starts ``python -m kucoin_sim --port 0`` in its own process and talks to it through the real
RestGateway (ccxt, PriorityExecutor, rate-limit feedback). Each run queues a scan of every
contract (fetch_ticker + fetch_ohlcv per contract, NORMAL), waits until 8 of its calls have
started (so that every worker is busy), then submits a market order, and
records submit->start (the executor's on_start hook), submit->done, and the gap between the end
of the last scan call before the order's start and that start. The gateway keeps one of its
workers for CRITICAL/HIGH calls (kucoin_rest.RESERVED_WORKERS), so a CRITICAL order does not wait
for a scan call to end: its submit->start is the reserved worker's wake-up and its wait for the
GIL, which the scan's workers hold while they parse. Modes, interleaved run by run:

    idle      the order alone (no scan): the floor
    priority  the order at CRITICAL behind the queued scan
    fifo      the order at NORMAL behind the queued scan (FIFO within one priority)

A run spends 135 units of the simulator's public pool (2000 per 30 s); when the gateway's
budget runs low the bench waits for the window to reset rather than measure rate-limit waits.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from functools import partial
from operator import methodcaller
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from api_priority import Priority  # noqa: E402
from kucoin_futures.rest.gateway import RestGateway, build_exchange  # noqa: E402

SYMBOL = "BTC/USDT:USDT"
SCAN_WEIGHT = 2 + 3  # ticker + kline per contract (protocol notes section 5.3)
BUDGET_FLOOR = 200 + 20  # the reserve (10% of 2000) plus a margin
IN_PROGRESS = 8  # scan calls started before the order is submitted


def start_sim() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "kucoin_sim", "--port", "0", "--log-level", "WARNING"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, line.split("listening on ")[1].split()[0]


class Recorder:
    """on_start hook: when did the order start, and how many scan calls have started."""

    def __init__(self) -> None:
        self.order_started: float | None = None
        self.scan_started = 0
        self._cond = threading.Condition()

    def __call__(self, priority: Priority, label: str) -> None:
        with self._cond:
            if label == "create_order":
                self.order_started = time.perf_counter()
            else:
                self.scan_started += 1
                self._cond.notify_all()

    def reset(self) -> None:
        with self._cond:
            self.order_started, self.scan_started = None, 0

    def wait_scan_started(self, count: int) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.scan_started >= count, 30):
                raise RuntimeError(f"the scan did not start {count} calls")


def timed(ends: list[float], fn: Any, exchange: Any) -> Any:
    result = fn(exchange)
    ends.append(time.perf_counter())  # list.append is atomic: workers may race here
    return result


def wait_for_budget(gateway: RestGateway, needed: int) -> None:
    public = gateway.health()["rate_limit"]["public"]
    if public["remaining"] - needed >= BUDGET_FLOOR:
        return
    print(f"  (public pool at {public['remaining']:.0f}: waiting {public['reset_in_s']:.1f}s for its reset)",
          flush=True)
    threading.Event().wait(public["reset_in_s"] + 0.2)


Row = tuple[float, float, float | None]  # submit->start, submit->done, freed->start (seconds)


def one_run(gateway: RestGateway, recorder: Recorder, mode: str, run: int) -> Row:
    symbols = list(gateway.markets)
    ends: list[float] = []
    scan = []
    recorder.reset()
    if mode != "idle":
        for symbol in symbols:
            calls = (("fetch_ticker", methodcaller("fetch_ticker", symbol)),
                     ("fetch_ohlcv", methodcaller("fetch_ohlcv", symbol, "1m", None, 50)))
            for operation, call in calls:
                scan.append(gateway.submit(Priority.NORMAL, operation, partial(timed, ends, call)))
    side = "buy" if run % 2 == 0 else "sell"
    cid = f"bench-{mode}-{run}-{time.time_ns()}"
    order = methodcaller("create_order", SYMBOL, "market", side, 1, None, {"clientOid": cid})
    if mode != "idle":
        recorder.wait_scan_started(IN_PROGRESS)  # the scan is running, not merely queued
    priority = Priority.NORMAL if mode == "fifo" else Priority.CRITICAL
    submitted = time.perf_counter()
    future = gateway.submit(priority, "create_order", order, places_order=True, client_oid=cid)
    future.result(30)
    done = time.perf_counter()
    for f in scan:
        f.result(60)
    started = recorder.order_started
    assert started is not None
    freed = [end for end in ends if end <= started]
    gap = started - max(freed) if freed and mode != "idle" else None
    return started - submitted, done - submitted, gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per mode (default 10)")
    parser.add_argument("--workers", type=int, default=4, help="executor worker threads (default 4)")
    args = parser.parse_args()
    proc, url = start_sim()
    recorder = Recorder()
    exchange = build_exchange(url, api_key="sim-key", api_secret="sim-secret",
                              api_passphrase="sim-passphrase")
    gateway = RestGateway(exchange, workers=args.workers, on_start=recorder)
    results: dict[str, list[Row]] = {"idle": [], "priority": [], "fifo": []}
    try:
        gateway.start()
        contracts = len(gateway.markets)
        print(f"simulator {url}, {contracts} contracts, scan = {2 * contracts} NORMAL calls, "
              f"{args.workers} workers, {args.runs} runs per mode", flush=True)
        for mode in ("idle", "priority", "fifo"):  # warm-up: connections, ccxt caches
            wait_for_budget(gateway, SCAN_WEIGHT * contracts)
            one_run(gateway, recorder, mode, 0)
        for run in range(args.runs):
            for mode in results:
                wait_for_budget(gateway, SCAN_WEIGHT * contracts)
                results[mode].append(one_run(gateway, recorder, mode, run))
    finally:
        gateway.close()
        proc.terminate()
        proc.wait(10)
    report(results)


def report(results: dict[str, list[Row]]) -> None:
    def median_ms(rows: list[Any], index: int) -> float | None:
        values = [row[index] for row in rows if row[index] is not None]
        return statistics.median(values) * 1000 if values else None

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:9.2f}"

    print(f"\n{'mode':<22}{'submit->start ms':>18}{'submit->done ms':>18}{'freed->start ms':>18}")
    for mode, rows in results.items():
        print(f"{mode:<22}" + "".join(f"{fmt(median_ms(rows, i)):>18}" for i in range(3)))
    ratios = [median_ms(results["fifo"], i) / median_ms(results["priority"], i) for i in (0, 1)]
    print(f"{'fifo / priority':<22}{ratios[0]:>17.1f}x{ratios[1]:>17.1f}x")
    print("(medians; freed->start: from the end of the scan call whose worker took the order)")


if __name__ == "__main__":
    main()
