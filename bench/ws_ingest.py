"""Measure KuCoinWebSocket's ingest path against the simulator's firehose and print a table.

    python bench/ws_ingest.py            # ~90 s
    python bench/ws_ingest.py --full     # more frames and repetitions

The simulator runs in its own process (`python -m kucoin_sim`), so it does not share our GIL.
Cases, each idle and with the main thread busy in pure-Python arithmetic:
  (a) baseline: websocket-client create_connection + recv() + orjson + dict under a lock
  (b) ours: KuCoinWebSocket, tickerV2 frames -> Ticker in the cache (counted in on_ticker), once
      per transport: picows (the default) and websocket-client (pure Python, a reader thread)
  (c) send-to-visible latency at 5,000 msgs/s: frame `ts` (wall ns, stamped by the simulator
      just before it writes that one frame; frames are evenly spaced) to on_ticker (called after
      the cache update), per transport; next to it the floor of this machine: a bare picows
      reader taking time_ns as each frame arrives
  (d) cache read cost: ns per get_ticker
  (e) peak RSS with 300 symbols x 3 timeframes x 500 candles + 20 books (separate process)
Rates and latency percentiles are medians over the runs; ratios are taken within this run on the
same firehose.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import timeit
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import orjson  # noqa: E402

import kucoin_futures.ws.feed as kucoin_feed  # noqa: E402
from kucoin_websocket import KuCoinWebSocket  # noqa: E402

# websocket-client is imported where used, so the memory child (e) holds only what the product does.

SYMBOL, KUCOIN_ID = "BTC/USDT:USDT", "XBTUSDTM"
TOPIC = f"/contractMarket/tickerV2:{KUCOIN_ID}"
FIRST_SEQ = 1_000_000  # the firehose numbers frames from FIRST_SEQ + 1 per symbol
LATENCY_RATE = 5000  # msgs/s
PICOWS, WSCLIENT = "picows", "websocket-client"  # KuCoinWebSocket(transport=...)
SWITCH_S = 0.0005  # sys.setswitchinterval for the "switch" rows (CPython's default is 0.005)


# -- simulator process ------------------------------------------------------------------------
def start_sim() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "kucoin_sim", "--port", "0", "--log-level", "WARNING",
                             "--no-rate-limits"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, line.split("listening on ")[1].split()[0]


def post(url: str) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=600) as resp:
        return json.loads(resp.read())


def ws_url(base: str) -> str:
    token = post(base + "/api/v1/bullet-public")["data"]["token"]
    return f"{base.replace('http', 'ws', 1)}/endpoint?token={token}&connectId=bench"


def wait_subscribed(base: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with urllib.request.urlopen(base + "/sim/state", timeout=10) as resp:
            state = json.loads(resp.read())
        if TOPIC in state["topics"] and state["connections"] >= count:
            return
        threading.Event().wait(0.01)
    raise RuntimeError("subscription did not show up at the simulator")


def fire(base: str, total: int, rate: float | None = None) -> threading.Thread:
    query = f"total={total}&symbols={KUCOIN_ID}" + (f"&rate={rate}" if rate else "")
    thread = threading.Thread(target=post, args=(f"{base}/sim/firehose?{query}",), daemon=True)
    thread.start()
    return thread


def busy_until(done: threading.Event) -> None:
    x = 0
    while not done.is_set():
        for i in range(2000):
            x += i * i % 7


class Meter:
    """Counts firehose frames on the reading thread; sets `done` at the last one.

    Records wall time and the reading thread's CPU time at the first and last frame: the wall
    rate is what this machine delivered, the CPU rate what the reader could sustain if nothing
    else ran (robust against other processes on a shared box).
    """

    def __init__(self, total: int) -> None:
        self.last_seq = FIRST_SEQ + total
        self.n = 0
        self.t_first = self.t_last = self.cpu_first = self.cpu_last = 0.0
        self.done = threading.Event()

    def hit(self, sequence: int) -> None:
        self.n += 1
        if self.n == 1:
            self.t_first, self.cpu_first = time.perf_counter(), time.thread_time()
        if sequence >= self.last_seq:
            self.t_last, self.cpu_last = time.perf_counter(), time.thread_time()
            self.done.set()

    def rates(self) -> tuple[float, float]:
        wall, cpu = self.t_last - self.t_first, self.cpu_last - self.cpu_first
        return ((self.n - 1) / wall if wall > 0 else 0.0), ((self.n - 1) / cpu if cpu > 0 else 0.0)


def run_case(base: str, total: int, busy: bool, meter: Meter) -> tuple[float, float]:
    sender = fire(base, total)
    if busy:
        busy_until(meter.done)
    if not meter.done.wait(600):
        raise RuntimeError(f"only {meter.n} of {total} frames arrived")
    sender.join()
    return meter.rates()


# -- (a) websocket-client baseline ------------------------------------------------------------
def baseline(base: str, total: int, busy: bool) -> tuple[float, float]:
    import websocket

    ws = websocket.create_connection(ws_url(base), timeout=60, skip_utf8_validation=True)
    ws.send(orjson.dumps({"id": "1", "type": "subscribe", "topic": TOPIC, "response": True}).decode())
    meter, lock, cache = Meter(total), threading.Lock(), {}

    def read() -> None:
        while not meter.done.is_set():
            message = orjson.loads(ws.recv())
            if message.get("subject") == "tickerV2":
                data = message["data"]
                with lock:
                    cache[data["symbol"]] = data
                meter.hit(data["sequence"])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_subscribed(base, 1)
    rate = run_case(base, total, busy, meter)
    reader.join()
    ws.close()
    return rate


# -- (b) ours -----------------------------------------------------------------------------------
def ours(base: str, total: int, busy: bool, switch_s: float | None = None,
         transport: str = "auto") -> tuple[float, float]:
    meter = Meter(total)
    with KuCoinWebSocket(rest_url=base, on_ticker=lambda t: meter.hit(t.sequence),
                         gil_switch_interval_s=switch_s, transport=transport) as ws:
        ws.subscribe_ticker(SYMBOL, last_trade=False)
        wait_subscribed(base, 1)
        return run_case(base, total, busy, meter)


# -- (c) latency ----------------------------------------------------------------------------
def latency(base: str, total: int, rate: float, busy: bool, switch_s: float | None = None,
            transport: str = "auto") -> tuple[float, float]:
    """p50/p99 in us from a frame's `ts` (wall ns when the simulator wrote it) to on_ticker."""
    # Ticker keeps milliseconds only, so the frame's ns send time is recorded by wrapping the
    # feed's tickerV2 parser (one dict store per frame, ~0.1 us). A separate tap process would
    # avoid the wrapper but competes for the two cores and triples the tail.
    sent: dict[int, int] = {}
    parse = kucoin_feed.fast_ticker_v2

    def recording_parse(message, received_at, symbols, last_trades):
        data = message["data"]
        sent[data["sequence"]] = data["ts"]
        return parse(message, received_at, symbols, last_trades)

    seen: list[tuple[int, int]] = []
    meter = Meter(total)

    def on_ticker(ticker) -> None:
        seen.append((ticker.sequence, time.time_ns()))
        meter.hit(ticker.sequence)

    kucoin_feed.fast_ticker_v2 = recording_parse
    try:
        with KuCoinWebSocket(rest_url=base, on_ticker=on_ticker, gil_switch_interval_s=switch_s,
                             transport=transport) as ws:
            ws.subscribe_ticker(SYMBOL, last_trade=False)
            wait_subscribed(base, 1)
            sender = fire(base, total, rate)
            if busy:
                busy_until(meter.done)
            meter.done.wait(600)
            sender.join()
    finally:
        kucoin_feed.fast_ticker_v2 = parse
    return _percentiles([(visible - sent[seq]) / 1000 for seq, visible in seen if seq in sent])


def latency_floor(base: str, total: int, rate: float) -> tuple[float, float]:
    """The same measurement for a bare picows reader (time_ns on frame arrival, no parsing)."""
    from picows import WSListener, WSMsgType, ws_connect

    out: list[float] = []
    done = threading.Event()

    class Listener(WSListener):
        def on_ws_frame(self, transport, frame) -> None:
            now = time.time_ns()
            message = orjson.loads(frame.get_payload_as_bytes())
            if message.get("subject") == "tickerV2":
                out.append((now - message["data"]["ts"]) / 1000)
                if len(out) >= total:
                    done.set()

    async def run() -> None:
        transport, _ = await ws_connect(Listener, ws_url(base))
        transport.send(WSMsgType.TEXT, orjson.dumps({"id": "1", "type": "subscribe", "topic": TOPIC}))
        while not done.is_set():
            await asyncio.sleep(0.05)
        transport.disconnect()

    reader = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    reader.start()
    wait_subscribed(base, 1)
    sender = fire(base, total, rate)
    done.wait(600)
    sender.join()
    reader.join()
    return _percentiles(out)


def _percentiles(values: list[float]) -> tuple[float, float]:
    values.sort()
    return values[len(values) // 2], values[int(len(values) * 0.99)]


# -- (d) read cost, (e) memory ------------------------------------------------------------------
def read_cost_ns(base: str) -> float:
    with KuCoinWebSocket(rest_url=base) as ws:
        ws.subscribe_ticker(SYMBOL)
        if ws.wait_for_ticker(SYMBOL, timeout_s=5) is None:
            raise RuntimeError("no ticker")
        n = 200_000
        best = min(timeit.repeat(lambda: ws.get_ticker(SYMBOL, max_age_s=3600.0), number=n, repeat=5))
    return best / n * 1e9


def memory_main() -> None:
    """Child process: fill the caches through their API; print peak RSS in MiB."""
    from kucoin_futures.protocol.types import SOURCE_WEBSOCKET, Candle, OrderBook, Ticker, timeframe_ms

    # Built before the baseline: it imports its transport library (picows) on construction since
    # the transport seam, which is code, not data. Never started: no I/O.
    ws = KuCoinWebSocket(rest_url="http://127.0.0.1:9")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    now = time.monotonic()
    symbols = [f"C{i:03d}/USDT:USDT" for i in range(300)]
    for i, symbol in enumerate(symbols):
        ws._tickers.put(Ticker(symbol, 100.0 + i, 5, 100.1 + i, 7, 100.05, 1, 1_700_000_000_000, now,
                               SOURCE_WEBSOCKET, i))
        for timeframe in ("1m", "5m", "1h"):
            span_ms = timeframe_ms(timeframe)
            rows = [Candle(1_700_000_000_000 + k * span_ms, 100.0 + k, 101.0 + k, 99.0 + k, 100.5 + k,
                           float(k), now, "rest") for k in range(500)]
            ws._candles.merge(symbol, timeframe, rows, received_at=now)
    for i, symbol in enumerate(symbols[:20]):
        bids = tuple((100.0 - k * 0.01, k + 1) for k in range(500))
        asks = tuple((100.01 + k * 0.01, k + 1) for k in range(500))
        ws._books.put(OrderBook(symbol, bids, asks, i, 1_700_000_000_000, now, SOURCE_WEBSOCKET))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"before_mib": before, "peak_mib": peak}))


def memory() -> dict:
    out = subprocess.run([sys.executable, __file__, "--memory"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


# -- main -----------------------------------------------------------------------------------
def median_rate(label: str, fn, *args: object, runs: int) -> tuple[float, float]:
    """Median (wall, CPU) msgs/s over `runs` runs."""
    rates = [fn(*args) for _ in range(runs)]
    print(f"  {label}: {', '.join(f'{w:,.0f} ({c:,.0f} cpu)' for w, c in rates)} msgs/s", file=sys.stderr, flush=True)
    return statistics.median(w for w, _ in rates), statistics.median(c for _, c in rates)


def median_pair(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """(median p50, median p99) over runs."""
    return statistics.median(p50 for p50, _ in runs), statistics.median(p99 for _, p99 in runs)


def measure(base: str, full: bool) -> dict:
    runs = 5 if full else 3
    n_ours, n_base_idle, n_base_busy = 200_000, (200_000 if full else 50_000), (20_000 if full else 2_000)
    n_lat = 30_000 if full else 5_000
    n_wsclient = 200_000 if full else 100_000  # the pure-Python transport: ~1/3 of picows' rate
    r: dict = {"runs": runs, "n": (n_ours, n_base_idle, n_base_busy), "n_wsclient": n_wsclient}
    post(base + "/sim/pause_market?paused=true")  # only firehose frames on the wire
    r["a_idle"] = median_rate("baseline idle", baseline, base, n_base_idle, False, runs=runs)
    r["a_busy"] = median_rate("baseline busy", baseline, base, n_base_busy, True, runs=1 if not full else runs)
    for key, transport, n in (("b", PICOWS, n_ours), ("w", WSCLIENT, n_wsclient)):
        r[f"{key}_idle"] = median_rate(f"ours idle, {transport}", ours, base, n, False, None, transport, runs=runs)
        r[f"{key}_busy"] = median_rate(f"ours busy, {transport}", ours, base, n, True, None, transport, runs=runs)
        r[f"{key}_busy_sw"] = median_rate(f"ours busy, switch 0.5 ms, {transport}", ours, base, n, True, SWITCH_S,
                                          transport, runs=runs)
    r["lat_floor"] = median_pair([latency_floor(base, n_lat, LATENCY_RATE) for _ in range(runs)])
    for suffix, transport in (("", PICOWS), ("_w", WSCLIENT)):
        for case, busy, switch_s in (("idle", False, None), ("busy", True, None), ("busy_sw", True, SWITCH_S)):
            r[f"lat_{case}{suffix}"] = median_pair([latency(base, n_lat, LATENCY_RATE, busy, switch_s, transport)
                                                    for _ in range(runs)])
        print(f"  latency {transport}: idle {r['lat_idle' + suffix]} busy {r['lat_busy' + suffix]} "
              f"busy/switch {r['lat_busy_sw' + suffix]}", file=sys.stderr, flush=True)
    print(f"  latency floor {r['lat_floor']}", file=sys.stderr, flush=True)
    post(base + "/sim/pause_market?paused=false")
    r["read_ns"] = read_cost_ns(base)
    return r


def report(r: dict, mem: dict) -> None:
    n_ours, n_idle, n_busy = r["n"]
    row = "{:<58}{:>17}{:>17}{:>10}".format
    rate = "{0[0]:,.0f} ({0[1]:,.0f})".format
    print(f"KuCoinWebSocket ingest: tickerV2 firehose from kucoin_sim in its own process; median of "
          f"{r['runs']} runs; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print("rates: msgs/s by the wall clock (in brackets: per CPU second of the reading thread)")
    print(row("case", "idle", "busy", "busy/idle"))
    print(row(f"(a) websocket-client recv+orjson+dict ({n_idle // 1000}k / {n_busy / 1000:g}k)",
              rate(r["a_idle"]), rate(r["a_busy"]), f"{r['a_busy'][0] / r['a_idle'][0]:.2f}"))
    print(row(f"(b) KuCoinWebSocket, picows ({n_ours // 1000}k frames)", rate(r["b_idle"]), rate(r["b_busy"]),
              f"{r['b_busy'][0] / r['b_idle'][0]:.2f}"))
    print(row("    same, gil_switch_interval_s=0.0005", "", rate(r["b_busy_sw"]),
              f"{r['b_busy_sw'][0] / r['b_idle'][0]:.2f}"))
    print(row("    ours / baseline", "{:.1f}x ({:.1f}x)".format(r["b_idle"][0] / r["a_idle"][0], r["b_idle"][1] / r["a_idle"][1]),
              "{:.0f}x".format(r["b_busy"][0] / r["a_busy"][0]), ""))
    # The CPU rate counts the loop thread only: websocket-client's frames are read on another one.
    wall = "{0[0]:,.0f}".format
    print(row(f"(b) KuCoinWebSocket, websocket-client ({r['n_wsclient'] // 1000}k frames)", wall(r["w_idle"]),
              wall(r["w_busy"]), f"{r['w_busy'][0] / r['w_idle'][0]:.2f}"))
    print(row("    same, gil_switch_interval_s=0.0005", "", wall(r["w_busy_sw"]),
              f"{r['w_busy_sw'][0] / r['w_idle'][0]:.2f}"))
    print(row("    picows / websocket-client", f"{r['b_idle'][0] / r['w_idle'][0]:.1f}x",
              f"{r['b_busy'][0] / r['w_busy'][0]:.1f}x", ""))
    pair = "{0[0]:,.0f} / {0[1]:,.0f}".format
    print(row(f"(c) send-to-visible @{LATENCY_RATE:,} msgs/s, p50 / p99 us", "", "", ""))
    for suffix, transport in (("", PICOWS), ("_w", WSCLIENT)):
        print(row(f"    {transport}", pair(r["lat_idle" + suffix]), pair(r["lat_busy" + suffix]), ""))
        print(row("    same, gil_switch_interval_s=0.0005", "", pair(r["lat_busy_sw" + suffix]), ""))
    print(row("    floor: bare picows reader, time_ns on arrival", pair(r["lat_floor"]), "", ""))
    print(row("(d) get_ticker, ns per call", f"{r['read_ns']:,.0f}", "", ""))
    print(row("(e) peak RSS, 300 sym x 3 tf x 500 candles + 20 books, MiB", f"{mem['peak_mib']:.1f}", "", ""))
    print(f"    (RSS after imports: {mem['before_mib']:.1f} MiB)")
    print("targets: ours/baseline idle >= 3x; ours busy/idle >= 0.4; p99 < 150 us idle, < 2,000 us busy; "
          "read < 2 us; RSS < 150 MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="more frames and 5 runs per case")
    ap.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory:
        return memory_main()
    mem = memory()  # first: a child's ru_maxrss starts at its parent's high-water mark (Linux)
    proc, base = start_sim()
    try:
        results = measure(base, args.full)
    finally:
        proc.terminate()
        proc.wait(10)
    report(results, mem)


if __name__ == "__main__":
    main()
