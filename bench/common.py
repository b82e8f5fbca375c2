"""Shared helpers of the benchmark scripts: the simulator process and its /sim/ controls, waiting,
percentiles, a CPU-busy main thread, the machine description, JSON and markdown output.

Not a script. ``bench/run.py`` and its row modules import it; the older scripts keep their own
copies of a few of these helpers so that each still runs on its own.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
for _path in (ROOT, BENCH):
    if _path not in sys.path:
        sys.path.insert(0, _path)

SIM_START_TIMEOUT_S = 20.0
CONTROL_TIMEOUT_S = 600.0  # a paced firehose answers only when it has sent everything
POLL_S = 0.002


# -- the simulator in its own process -------------------------------------------------------------
class SimProcess:
    """``python -m kucoin_sim --port 0`` in a subprocess (its own GIL); ``url`` is its REST base."""

    def __init__(self, *, rate_limits: bool = False, tick_ms: int | None = None) -> None:
        self.args = [sys.executable, "-m", "kucoin_sim", "--port", "0", "--log-level", "WARNING"]
        if not rate_limits:
            self.args.append("--no-rate-limits")
        if tick_ms is not None:
            self.args += ["--tick-ms", str(tick_ms)]
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> SimProcess:
        return self.spawn().ready()

    def spawn(self) -> SimProcess:
        """Start the process without waiting (several can boot at once); then ``ready()``."""
        self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        return self

    def ready(self) -> SimProcess:
        """Wait for the "listening on" line and set ``url``."""
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on " not in line:
            self.stop()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.url = line.split("listening on ")[1].split()[0]
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def post(url: str, timeout_s: float = CONTROL_TIMEOUT_S) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=timeout_s) as resp:
        return json.loads(resp.read())


def get(url: str, timeout_s: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return json.loads(resp.read())


def sim_state(base: str) -> dict[str, Any]:
    """GET /sim/state: connections, connectionsTotal, topics (subscribed now), faults."""
    return get(base + "/sim/state")


def pause_market(base: str, paused: bool) -> None:
    """Freeze (or resume) the simulated market: no ticks, no market pushes."""
    post(f"{base}/sim/pause_market?paused={'true' if paused else 'false'}")


def drop_ws(base: str) -> int:
    """Abort every open WebSocket connection of the simulator; return how many."""
    return post(base + "/sim/drop_ws")["dropped"]


def ws_url(base: str) -> str:
    """A public WebSocket URL with a fresh bullet token."""
    token = post(base + "/api/v1/bullet-public")["data"]["token"]
    return f"{base.replace('http', 'ws', 1)}/endpoint?token={token}&connectId=bench"


class Firehose:
    """POST /sim/firehose on a thread (the call answers when every frame is sent); ``join()``.

    ``topic="level2"``: the frames are changes of the simulator's own book (each continues its
    level-2 sequence by one), so a snapshot plus the deltas stays in sync.
    """

    def __init__(self, base: str, total: int, symbols: Sequence[str], rate: float | None = None,
                 topic: str = "tickerV2") -> None:
        query = f"total={total}&symbols={','.join(symbols)}" + (f"&rate={rate}" if rate else "")
        query += f"&topic={topic}" if topic != "tickerV2" else ""
        self.result: dict[str, Any] = {}
        self._url = f"{base}/sim/firehose?{query}"
        self._thread = threading.Thread(target=self._run, name="bench-firehose", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.result = post(self._url)

    def join(self, timeout_s: float = CONTROL_TIMEOUT_S) -> dict[str, Any]:
        self._thread.join(timeout_s)
        return self.result


class Meter:
    """Counts firehose frames where they become visible; sets ``done`` at the run's last frame.

    The firehose numbers each symbol's frames from FIRST_SEQ + 1, so the last one of a run of
    ``total`` frames on one symbol is FIRST_SEQ + total. The rate runs from the first frame seen
    to the last, so frames lost before the subscription took effect cannot inflate it.
    """

    FIRST_SEQ = 1_000_000

    def __init__(self, total: int) -> None:
        self.last_seq = self.FIRST_SEQ + total
        self.n = 0
        self.t_first = self.t_last = 0.0
        self.done = threading.Event()

    def hit(self, sequence: int) -> None:
        self.n += 1
        if self.n == 1:
            self.t_first = time.perf_counter()
        if sequence >= self.last_seq:
            self.t_last = time.perf_counter()
            self.done.set()

    def rate(self) -> float:
        span = self.t_last - self.t_first
        return (self.n - 1) / span if span > 0 else 0.0


# -- waiting ---------------------------------------------------------------------------------------
def wait_until(predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    """tests/helpers.wait_until, polling every POLL_S (imported on first use: the memory child of
    bench/peers.py must not hold our library)."""
    from tests.helpers import wait_until as wait

    return wait(predicate, timeout_s, what, poll_s=POLL_S)


def wait_subscribed(base: str, topics: Iterable[str], timeout_s: float = 10.0) -> None:
    """Wait until the simulator has a subscriber on every topic."""
    wanted = set(topics)
    wait_until(lambda: wanted <= set(sim_state(base)["topics"]), timeout_s, f"subscriptions {sorted(wanted)[:3]}")


def wait_no_connections(base: str, timeout_s: float = 10.0) -> None:
    """Wait until the previous case's sockets are gone, so its subscriptions cannot stand in."""
    wait_until(lambda: sim_state(base)["connections"] == 0, timeout_s, "no open WebSocket connections")


def spin_until(done: threading.Event, timeout_s: float = 600.0) -> None:
    """Keep the calling (main) thread CPU-busy in pure-Python arithmetic until ``done`` is set."""
    deadline = time.monotonic() + timeout_s
    x = 0
    while not done.is_set() and time.monotonic() < deadline:
        for i in range(2000):
            x += i * i % 7


@contextlib.contextmanager
def switch_interval(seconds: float | None) -> Iterator[None]:
    """Run the block with ``sys.setswitchinterval(seconds)`` (None: leave it), then restore it.

    Process-wide, so it applies to every contender of a row alike: ``KuCoinWebSocket``'s
    ``gil_switch_interval_s`` option sets the same interpreter value.
    """
    if seconds is None:
        yield
        return
    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


# -- statistics ----------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank of the sorted values."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def p50_p99(values: Sequence[float]) -> tuple[float, float]:
    return percentile(values, 0.5), percentile(values, 0.99)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def median_of_runs(runs: Sequence[Sequence[float]]) -> list[float]:
    """Element-wise median of per-run tuples, e.g. [(p50, p99), ...] -> [median p50, median p99]."""
    return [statistics.median(column) for column in zip(*runs)]


def timer_overhead_ns(samples: int = 20_000) -> float:
    """Median cost of one back-to-back perf_counter_ns pair (included in every per-call timing)."""
    clock = time.perf_counter_ns
    out = []
    for _ in range(samples):
        start = clock()
        out.append(clock() - start)
    return statistics.median(out)


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM), in MiB.

    Not ``ru_maxrss``: a child started by a large parent inherits the parent's high-water mark
    through fork, so ru_maxrss would report the parent's size; VmHWM belongs to the address
    space that exec created.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


# -- machine, JSON, markdown -------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """Date (UTC), CPU model (/proc/cpuinfo), core count, Python and platform."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_avg_1m": os.getloadavg()[0],
    }


def write_json(path: str, data: Any) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False, default=str)
        f.write("\n")
    os.replace(tmp, path)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(message, file=sys.stderr, flush=True)
