"""One command that measures us against the peers and the physical limit (issue 7).

    python bench/run.py            # every row, fewer repetitions (< 50 s on a 2-core machine)
    python bench/run.py --full     # the long version, for the README table

Prints a markdown table (date and machine on top) to stdout, progress to stderr, and writes
bench/results/latest.json (every per-run figure). Everything runs in this process against the
simulator (``python -m kucoin_sim --tick-ms 10 --no-rate-limits`` in its own process and GIL;
a fresh one for each group that spends REST budget, see ``measure``): 10 ms ticks give 25-100
tickerV2 and 100-900 level-2 pushes a second per contract, like a busy exchange; the market is
paused for the firehose rows so only firehose frames are on the wire. Each figure is a median
over repeated runs; every ratio compares figures of this run.

Contenders: ours (KuCoinClient / KuCoinWebSocket), ccxt.pro and plain ccxt 4.5 (unmodified,
URLs pointed at the simulator, their throttle off; bench/peers.py says exactly what is timed),
"other" where the row names it (our REST-only path, a FIFO queue), and the ceiling: what a bare
socket read-and-parse loop with orjson, or a plain dict, achieves (bench/ceiling.py), or ours
where ours beat that loop (update->visible with a busy main thread): a ceiling is never below
ours (bench/report.py). Rows:

  ticker read       per-call latency: get_ticker from the cache / fetch_ticker / await
                    watch_ticker / a locked dict read of the raw reader's newest ticker
  feed ingest       tickerV2 firehose into each client (bench/ws_ingest.ours, peers.ProFirehose,
                    ceiling.raw_ingest), idle and with the main thread CPU-busy (feed_rows.py)
  book ingest       the same with a level-2 firehose into a synced book (ours: KuCoinWebSocket's
                    book; ccxt.pro: watch_order_book; ceiling: parse only)
  update->visible   frame send ts to visible in the client's cache at 5,000 msgs/s; idle, busy,
                    and busy with the GIL switch interval at 0.5 ms (process-wide, so for every
                    contender; KuCoinWebSocket's gil_switch_interval_s sets the same value)
  scan              25 perpetuals, ticker + 100 1m candles each (bench/scan.py)
  CRITICAL order    order_latency.py's run: our priority scheduler vs FIFO vs the order alone
  reconnect         drop every connection; until 100 topics are live again (bench/reconnect.py)
  memory            peak RSS, 300 symbols x 3 timeframes x 500 candles + 20 books (child processes)
  backtest          bench/backtest.py: ours vs backtesting.py ("other"), 10 symbols x 30 days of 5m
  protection        bench/protection.py: a fill via the private feed vs a REST read; entry -> stop resting
                    (--full: 30 x 90), from the disk cache, after every simulator has stopped
A contender that fails shows "n/a (reason)" and the run goes on.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from common import (BENCH, ROOT, SimProcess, log, machine, median, median_of_runs, p50_p99, pause_market,
                    timer_overhead_ns, write_json)

import ceiling  # noqa: E402  (common puts bench/ on sys.path)
import feed_rows  # noqa: E402
import order_latency  # noqa: E402
import peers  # noqa: E402
import reconnect  # noqa: E402
import scan  # noqa: E402
import ticker_read  # noqa: E402
import backtest  # noqa: E402
import protection  # noqa: E402
from kucoin_client import KuCoinClient  # noqa: E402
from kucoin_futures.rest.gateway import RestGateway, build_exchange  # noqa: E402
from report import NA, Row, attempt, pick, render, where_we_trail  # noqa: E402

RESULTS = os.path.join(BENCH, "results", "latest.json")
TICK_MS = 10
ORDER_WORKERS = 4


@dataclass(frozen=True)
class Plan:
    read_runs: int  # ticker read: runs of...
    reads: int  # ...this many cached reads timed one by one
    rest_calls: int  # ...this many REST round trips
    watch_runs: int  # ccxt.pro watch_ticker: sampling windows of...
    watch_s: float  # ...this long (plus a grace for the waits still open)
    ingest_runs: int
    ingest_frames: int  # firehose frames per ingest run, the same for every contender
    latency_runs: int
    latency_frames: int
    scan_runs: int
    pro_scan_runs: int  # 0: not measured (the default run: it waits for every contract's next trade)
    order_runs: int  # per mode; beyond ~3 the client's rate-limit budget makes the run wait
    reconnect_runs: int


DEFAULT = Plan(read_runs=3, reads=20_000, rest_calls=100, watch_runs=1, watch_s=2.0, ingest_runs=3,
               ingest_frames=10_000, latency_runs=2, latency_frames=1_500, scan_runs=3, pro_scan_runs=0,
               order_runs=2, reconnect_runs=3)
FULL = Plan(read_runs=5, reads=100_000, rest_calls=1_000, watch_runs=3, watch_s=10.0, ingest_runs=5,
            ingest_frames=100_000, latency_runs=5, latency_frames=10_000, scan_runs=10, pro_scan_runs=5,
            order_runs=10, reconnect_runs=5)
WATCH_GRACE_S = 0.5


# -- ticker read -------------------------------------------------------------------------------------
def ours_ticker_us(base: str, plan: Plan) -> list[tuple[float, float]]:
    with KuCoinClient(futures_url=base) as client:
        ticker_read.warm_websocket(client)
        ticker_read.single_ns(client.get_ticker, calls=plan.reads)  # warm-up
        runs = [p50_p99(ticker_read.single_ns(client.get_ticker, calls=plan.reads)) for _ in range(plan.read_runs)]
        if client.get_ticker(ticker_read.SYMBOL)["source"] != "websocket":
            raise RuntimeError("the measured reads were not cache hits")
    return [(p50 / 1000, p99 / 1000) for p50, p99 in runs]


def ticker_rows(base: str, markets: Any, symbols: list[str], plan: Plan, details: dict) -> list[Row]:
    def us_runs(lists: list[list[float]]) -> list[tuple[float, float]]:
        return [(p50 / 1000, p99 / 1000) for p50, p99 in map(p50_p99, lists)]

    got = {
        "ours": attempt("ticker read, ours", lambda: ours_ticker_us(base, plan)),
        "ccxt": attempt("ticker read, ccxt fetch_ticker", lambda: us_runs(
            [peers.ccxt_fetch_ticker_ns(base, plan.rest_calls) for _ in range(plan.read_runs)])),
        "ccxt_pro": attempt("ticker read, ccxt.pro watch_ticker", lambda: us_runs(peers.pro_watch_ticker_ns(
            base, markets, symbols, window_s=plan.watch_s, grace_s=WATCH_GRACE_S, runs=plan.watch_runs))),
        "ceiling": attempt("ticker read, raw dict", lambda: us_runs(
            [ceiling.read_floor_ns(base, plan.reads) for _ in range(plan.read_runs)])),
    }
    details["ticker_read_us_runs"] = got
    details["timer_overhead_ns"] = timer_overhead_ns()
    medians = {k: pick(v, median_of_runs) for k, v in got.items()}
    return [Row(f"Ticker read {q}", "µs", "lower", **{k: pick(v, lambda m: m[i]) for k, v in medians.items()})
            for i, q in enumerate(("p50", "p99"))]


# -- scan, order, reconnect (market live) ---------------------------------------------------------------
def scan_rows(base: str, markets: Any, symbols: list[str], plan: Plan, details: dict) -> list[Row]:
    scan.warm_simulator(base, symbols)
    got = {
        "ours": attempt("scan, ours WebSocket", lambda: scan.ours_scan(base, symbols, plan.scan_runs, websocket=True)),
        "other": attempt("scan, ours REST only", lambda: scan.ours_scan(base, symbols, plan.scan_runs, websocket=False)),
        "ccxt": attempt("scan, ccxt REST", lambda: scan.ccxt_scan(base, symbols, plan.scan_runs)),
        "ccxt_pro": attempt("scan, ccxt.pro", lambda: scan.pro_scan(base, markets, symbols, plan.pro_scan_runs))
        if plan.pro_scan_runs else NA("--full only: each scan waits for every contract's next trade, ~5 s"),
        "ceiling": attempt("scan, dict reads", lambda: scan.ceiling_scan(symbols, plan.scan_runs)),
    }
    details["scan"] = got
    label = "our REST-only path"
    cold = {k: pick(v, lambda r: r.get("cold", r)) for k, v in got.items() if k != "ceiling"}
    return [
        Row(f"Full-universe scan ({len(symbols)} contracts), warm", "ms", "lower", other_label=label,
            **{k: pick(v, lambda r: r["wall_s"] * 1000) for k, v in got.items()}),
        Row("Full-universe scan, REST calls per warm scan", "calls", "lower", other_label=label,
            **{k: pick(v, lambda r: r["rest_calls"]) for k, v in got.items()}),
        Row("Full-universe scan, first (subscribing) scan", "ms", "lower", other_label=label,
            **{k: pick(v, lambda r: r["wall_s"] * 1000) for k, v in cold.items()}),
        Row("Full-universe scan, REST calls in the first scan", "calls", "lower", other_label=label,
            **{k: pick(v, lambda r: r["rest_calls"]) for k, v in cold.items()}),
    ]


def order_modes(base: str, runs: int) -> dict[str, list[tuple[float, float, float | None]]]:
    recorder = order_latency.Recorder()
    exchange = build_exchange(base, api_key="sim-key", api_secret="sim-secret", api_passphrase="sim-passphrase")
    gateway = RestGateway(exchange, workers=ORDER_WORKERS, on_start=recorder)
    results: dict[str, list] = {"idle": [], "priority": [], "fifo": []}
    weight = order_latency.SCAN_WEIGHT
    with contextlib.redirect_stdout(sys.stderr):  # wait_for_budget reports its waits on stdout
        try:
            gateway.start()
            contracts = len(gateway.markets)
            for mode in results:  # warm-up: connections, ccxt caches
                order_latency.wait_for_budget(gateway, weight * contracts)
                order_latency.one_run(gateway, recorder, mode, 0)
            for run in range(runs):
                for mode in results:
                    order_latency.wait_for_budget(gateway, weight * contracts)
                    results[mode].append(order_latency.one_run(gateway, recorder, mode, run + 1))
        finally:
            gateway.close()
    return results


def order_rows(base: str, plan: Plan, details: dict) -> list[Row]:
    got = attempt("CRITICAL order during a scan", lambda: order_modes(base, plan.order_runs))
    details["order_s_runs (submit->start, submit->done, freed->start)"] = got
    rows = []
    for i, what in ((1, "submit→done"), (0, "submit→start")):
        ms = {m: pick(got, lambda r: median(row[i] for row in r[m]) * 1000) for m in ("idle", "priority", "fifo")}
        rows.append(Row(f"CRITICAL order during a scan, {what}", "ms", "lower", ours=ms["priority"],
                        other=ms["fifo"], ceiling=ms["idle"], other_label="FIFO queue"))
    return rows


def reconnect_rows(base: str, markets: Any, symbols: list[str], plan: Plan, details: dict) -> list[Row]:
    n = plan.reconnect_runs
    got = {
        "ours": attempt("reconnect, ours", lambda: reconnect.ours_reconnect(base, symbols, n)),
        "ccxt_pro": attempt("reconnect, ccxt.pro", lambda: reconnect.pro_reconnect(base, markets, symbols, n)),
        "ceiling": attempt("reconnect, raw", lambda: reconnect.raw_reconnect(base, symbols, n)),
    }
    details["reconnect"] = got
    return [Row(f"Reconnect recovery, {4 * len(symbols)} topics", "s", "lower",
                **{k: pick(v, lambda r: r["recovery_s"]) for k, v in got.items()})]


# -- memory ------------------------------------------------------------------------------------------------
OURS_MEMORY_CHILD = ("import json, sys; sys.path[:0] = [{root!r}, {bench!r}]; "
                     "import kucoin_client, ws_ingest; from common import peak_rss_mib; "
                     # the WebSocket transport library is imported when a client is built: code, not data
                     "from kucoin_futures.ws.transports import resolve_transport; resolve_transport('auto'); "
                     "before = peak_rss_mib(); "
                     "ws_ingest.memory_main(); "
                     "print(json.dumps({{'before_mib': before, 'peak_mib': peak_rss_mib()}}))")
MEMORY_CHILDREN = {
    "ours": ["-c", OURS_MEMORY_CHILD.format(root=ROOT, bench=BENCH)],  # ws_ingest's cache fill, after
    "ccxt_pro": [os.path.join(BENCH, "peers.py"), "--memory"],          # importing what the product does
    "ceiling": [os.path.join(BENCH, "ceiling.py"), "--memory"],
}


def spawn_memory_children() -> dict[str, subprocess.Popen]:
    """Start the three children (they measure memory, not time, so they may boot with the
    simulators; they must end before the first timed row)."""
    return {k: subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for k, args in MEMORY_CHILDREN.items()}


def collect_memory(procs: dict[str, subprocess.Popen]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        if proc.returncode != 0:
            out[key] = NA(f"exit {proc.returncode}: {stderr.strip().splitlines()[-1][:80] if stderr.strip() else ''}")
            continue
        out[key] = json.loads(stdout.strip().splitlines()[-1])
    return out


def memory_rows(procs: dict[str, subprocess.Popen], details: dict) -> list[Row]:
    got = attempt("memory (3 child processes)", lambda: collect_memory(procs))
    got = got if not isinstance(got, NA) else dict.fromkeys(MEMORY_CHILDREN, got)
    details["memory_mib (VmHWM)"] = got
    return [Row("Peak RSS, 300 sym × 3 tf × 500 candles + 20 books", "MiB", "lower",
                **{k: pick(v, lambda r: r["peak_mib"]) for k, v in got.items()}),
            Row("  of which the data (peak − after imports)", "MiB", "lower",
                **{k: pick(v, lambda r: r["peak_mib"] - r["before_mib"]) for k, v in got.items()})]


# -- main ---------------------------------------------------------------------------------------------------
def measure(plan: Plan, details: dict) -> list[Row]:
    # One simulator per group that spends REST budget: the simulator counts the per-IP public
    # pool even with --no-rate-limits and reports it in gw-ratelimit-remaining, which our gateway
    # obeys (ccxt ignores it), so a group must not inherit the budget the previous one spent.
    # All boot at once; each waits paused (idle) until its group and stops after it.
    groups: dict[str, list[Row]] = {}
    with contextlib.ExitStack() as stack:
        memory = spawn_memory_children()
        sims = [SimProcess(tick_ms=TICK_MS).spawn() for _ in range(4)]
        for sim in sims:
            stack.callback(sim.stop)
        for sim in sims[1:]:
            pause_market(sim.ready().url, True)
        base = sims[0].ready().url
        groups["memory"] = memory_rows(memory, details)
        markets = peers.load_markets(base)
        listed, symbols = scan.universe(base)
        details["universe"] = {"listed": listed, "served_by_KuCoinClient": symbols}
        log(f"simulators at tick {TICK_MS} ms; {len(listed)} contracts listed, {len(symbols)} served by KuCoinClient")
        groups["ticker"] = ticker_rows(base, markets, symbols, plan, details)
        pause_market(base, True)  # only firehose frames on the wire from here
        groups["ingest"] = feed_rows.ingest_rows(base, markets, plan, details)
        groups["book_ingest"] = feed_rows.book_ingest_rows(base, markets, plan, details)
        groups["latency"] = feed_rows.latency_rows(base, markets, plan, details)
        sims[0].stop()
        for sim, name, rows in ((sims[1], "scan", lambda b: scan_rows(b, markets, symbols, plan, details)),
                                (sims[2], "order", lambda b: order_rows(b, plan, details)),
                                (sims[3], "reconnect", lambda b: reconnect_rows(b, markets, symbols, plan, details))):
            pause_market(sim.url, False)
            groups[name] = rows(sim.url)
            sim.stop()
    groups["backtest"] = backtest.bench_rows(full=plan is FULL, details=details)  # CPU-bound: no simulator running
    groups["protection"] = protection.bench_rows(details=details)  # its own simulator
    order = ("ticker", "ingest", "book_ingest", "latency", "scan", "order", "reconnect", "memory", "backtest",
             "protection")
    return [row for name in order for row in groups[name]]


def notes(plan: Plan, details: dict[str, Any], load_end: float) -> list[str]:
    universe = details.get("universe", {})
    return [
        f"Per-call read timings include the timer (~{details.get('timer_overhead_ns', 0):.0f} ns per "
        "perf_counter_ns pair); the ceiling read is a locked dict get, ours returns a fresh ccxt dict.",
        "ccxt.pro has no read that does not wait: watch_ticker / watch_ohlcv return on the next push (about one "
        "trade a second per contract here); its first scan returns only the candles pushed since it subscribed, "
        "where ours and the REST paths return 100 of history.",
        "ccxt.pro's tickerV2 ingest uses watch_bids_asks (watch_ticker subscribes the v1 ticker topic); its "
        "order-book ingest uses watch_order_book on the level-2 firehose (details: book_ingest_counting).",
        f"Update→visible: a client slower than {feed_rows.LATENCY_RATE:,} msgs/s falls behind, and then its latency grows "
        f"with the length of the run ({plan.latency_frames:,} frames here).",
        f"The simulator lists {len(universe.get('listed', []))} contracts; KuCoinClient refuses the dated futures "
        f"(InvalidArgument), so every scan covers the {len(universe.get('served_by_KuCoinClient', []))} perpetuals.",
        f"Load average {details.get('load_start', 0):.2f} at start, {load_end:.2f} at the end: other work on "
        "this machine shows up as noise, most in p99s and in the firehose rates.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the long version (more runs and frames)")
    parser.add_argument("--out", default=RESULTS, help=f"JSON output (default {os.path.relpath(RESULTS, ROOT)})")
    args = parser.parse_args()
    plan = FULL if args.full else DEFAULT
    started = time.perf_counter()
    info = machine()
    details: dict[str, Any] = {"load_start": info["load_avg_1m"]}
    rows = measure(plan, details)
    elapsed = time.perf_counter() - started
    command = f"python bench/run.py{' --full' if args.full else ''}"
    print(f"## Benchmark: ours vs ccxt.pro / ccxt vs the raw ceiling (`{command}`)\n")
    print(f"{info['date']} · {info['cpu']}, {info['cores']} cores · Python {info['python']} · "
          f"{info['platform']} · {elapsed:.0f} s\n")
    print(render(rows))
    print("\n× columns: how many times better ours is (> 1: we lead); ceiling: the best figure measured for "
          "the row (the raw loop, or ours where ours beat it: \"ours; raw …\"); \"of ceiling\": ours as a "
          "fraction of it (never above 1; 1.00 = nothing measured did better). Medians over runs; "
          "bench/run.py says what each row times.\n")
    print("\n".join(f"- {note}" for note in notes(plan, details, os.getloadavg()[0])))
    trailing = where_we_trail(rows)
    if trailing:
        print("\nWhere we do not lead by 2× or sit below half the ceiling:\n" + "\n".join(f"- {t}" for t in trailing))
    write_json(args.out, {"machine": info, "mode": "full" if args.full else "default", "plan": asdict(plan),
                          "elapsed_s": elapsed, "rows": [r.to_json() for r in rows], "trailing": trailing,
                          "details": _jsonable(details)})
    log(f"wrote {os.path.relpath(args.out, ROOT)} in {elapsed:.0f} s")


def _jsonable(value: Any) -> Any:
    if isinstance(value, NA):
        return {"na": value.reason}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


if __name__ == "__main__":
    main()
