"""bench/run.py's feed rows: tickerV2 and order-book ingest, update-to-visible latency.

Each row runs against a simulator whose market is paused, so only firehose frames are on the
wire; every contender gets the same firehose (bench/common.Firehose) and the same frame count.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import Any

from common import median, median_of_runs, p50_p99, switch_interval, wait_no_connections

import ceiling  # noqa: E402  (common puts bench/ on sys.path)
import peers  # noqa: E402
import ws_ingest  # noqa: E402
from kucoin_websocket import KuCoinWebSocket  # noqa: E402
from report import Row, attempt, pick, wall_rate  # noqa: E402

LATENCY_RATE = 5000  # msgs/s
SWITCH_S = 0.0005  # the busy rows' second variant (CPython's default switch interval is 5 ms)


INGEST_VARIANTS = (("idle", False, None), ("busy main thread", True, None))
# The 0.5 ms switch interval (KuCoinWebSocket's gil_switch_interval_s) is a latency remedy.
LATENCY_VARIANTS = INGEST_VARIANTS + (("busy, 0.5 ms GIL switch", True, SWITCH_S),)


def repeat(label: str, runs: int, switch_s: float | None, fn: Callable[[Any], Any],
           context: Callable[[], Any] = contextlib.nullcontext) -> Any:
    """``runs`` times fn(ctx) inside one ``context()``, each under the switch interval; or NA."""
    def go() -> list[Any]:
        with context() as ctx:
            out = []
            for _ in range(runs):
                with switch_interval(switch_s):
                    out.append(fn(ctx))
            return out
    return attempt(label, go)


def ingest_rows(base: str, markets: Any, plan: Any, details: dict) -> list[Row]:
    rows, n, runs = [], plan.ingest_frames, plan.ingest_runs
    pro = partial(peers.ProFirehose, base, markets)
    for name, busy, switch in INGEST_VARIANTS:
        got = {
            "ceiling": repeat(f"ingest {name}, raw", runs, switch, lambda _: ceiling.raw_ingest(base, n, busy)),
            "ours": repeat(f"ingest {name}, ours", runs, switch, lambda _: _ours_ingest(base, n, busy)),
            "ccxt_pro": repeat(f"ingest {name}, ccxt.pro", runs, switch, lambda fh: fh.ingest(n, busy), pro),
        }
        details[f"ingest_msgs_per_s_runs ({name})"] = got
        rows.append(Row(f"Feed ingest, {name}", "msgs/s", "higher", **{k: pick(v, median) for k, v in got.items()}))
    return rows


def _ours_ingest(base: str, total: int, busy: bool) -> float:
    wait_no_connections(base)
    return wall_rate(ws_ingest.ours(base, total, busy))


BOOK_COUNTING = (
    "Order-book ingest: a level-2 firehose (each frame one change of the simulator's BTC book, +1 sequence) "
    "into a book synced before the run; msgs/s = deltas from the first seen to the last / the time between. "
    "ours: KuCoinWebSocket.subscribe_order_book, counted by the sequence of each book on_order_book publishes "
    "(once per socket read, after every delta of the read is applied; 0 resyncs checked in stats()); "
    "ccxt.pro: watch_order_book awaited in a consumer loop, every delta counted by a hook after its "
    "handle_order_book applied it to the synced book (the consumer's wake-ups coalesce); ceiling: bare socket "
    "+ orjson parse of each level2 frame, data stored, not applied to a book.")


def book_ingest_rows(base: str, markets: Any, plan: Any, details: dict) -> list[Row]:
    rows, n, runs = [], plan.ingest_frames, plan.ingest_runs
    pro = partial(peers.ProBookFirehose, base, markets)
    details["book_ingest_counting"] = BOOK_COUNTING
    for name, busy, switch in INGEST_VARIANTS:
        got = {
            "ceiling": repeat(f"book ingest {name}, raw", runs, switch,
                              lambda _: ceiling.raw_book_ingest(base, n, busy)),
            "ours": repeat(f"book ingest {name}, ours", runs, switch, lambda _: _ours_book_ingest(base, n, busy)),
            "ccxt_pro": repeat(f"book ingest {name}, ccxt.pro", runs, switch, lambda fh: fh.ingest(n, busy), pro),
        }
        details[f"book_ingest_msgs_per_s_runs ({name})"] = got
        rows.append(Row(f"Feed ingest (order book), {name}", "msgs/s", "higher",
                        **{k: pick(v, median) for k, v in got.items()}))
    return rows


def _ours_book_ingest(base: str, total: int, busy: bool) -> float:
    wait_no_connections(base)
    meter = ceiling.BookMeter(ceiling.book_sequence(base), total)
    with KuCoinWebSocket(rest_url=base, on_order_book=lambda book: meter.hit(book.sequence)) as ws:
        ws.subscribe_order_book(peers.SYMBOL)
        if ws.wait_for_order_book(peers.SYMBOL, timeout_s=10) is None:
            raise RuntimeError("ours: the order book did not sync")
        ceiling.fire_level2(base, total, busy, meter, "ours")
        resyncs = ws.stats().resyncs.get(peers.SYMBOL)
    if resyncs:
        raise RuntimeError(f"ours: {resyncs} order-book resyncs during the run")
    return meter.rate()


def latency_rows(base: str, markets: Any, plan: Any, details: dict) -> list[Row]:
    rows, n, runs = [], plan.latency_frames, plan.latency_runs
    pro = partial(peers.ProFirehose, base, markets)
    for name, busy, switch in LATENCY_VARIANTS:
        got = {
            "ceiling": repeat(f"latency {name}, raw", runs, switch,
                              lambda _: p50_p99(ceiling.raw_latency(base, n, LATENCY_RATE, busy))),
            "ours": repeat(f"latency {name}, ours", runs, switch, lambda _: _ours_latency(base, n, busy)),
            "ccxt_pro": repeat(f"latency {name}, ccxt.pro", runs, switch,
                               lambda fh: p50_p99(fh.latency(n, LATENCY_RATE, busy)), pro),
        }
        details[f"latency_us_runs ({name})"] = got
        medians = {k: pick(v, median_of_runs) for k, v in got.items()}
        rows += [Row(f"Update→visible @5k msgs/s {q}, {name}", "µs", "lower",
                     **{k: pick(v, lambda m: m[i]) for k, v in medians.items()}) for i, q in enumerate(("p50", "p99"))]
    return rows


def _ours_latency(base: str, total: int, busy: bool) -> tuple[float, float]:
    wait_no_connections(base)
    return tuple(ws_ingest.latency(base, total, LATENCY_RATE, busy))
