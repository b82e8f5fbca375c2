"""The soak's invariants: pure checks over a Recording, each returning a CheckResult.

Everything is judged from outside the bot: the simulator's orders, fills, positions and prices,
the bot's journal read read-only, the bot's output and exit codes. Allowances:

- a fault's window (FaultEvent.window_start .. window_end) is time the bot may fairly be degraded:
  stale data, blocked calls, a reconnect. Time-based checks do not count it; those that need only
  the bot's REST path (journaling, adopting, scanning) excuse only the REST_FAULTS.
- `Sample.bot_up` is false between a signal and the next start: a dead bot protects nothing.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .model import (
    REST_FAULTS, CheckResult, Fill, Order, Recording, Run, RunEnd, Sample, Secret, Status, Violation, in_window,
)
from .resting import check_resting_stops

PROTECTION_GRACE_S = 10.0  # an open position must have its protections row within this
STALE_ROW_GRACE_S = 25.0  # a row for a flat symbol goes within this (the bot re-reads positions every 15 s)
STOP_GRACE_S = 5.0  # the price may sit beyond the stop this long before the bot must have exited
QUIET_LIMIT_S = 30.0  # a running bot scans at least this often (fault windows not counted)
SIGTERM_LIMIT_S = 5.0
# An exit that found nothing this soon after a resting stop closed the position raced it. The
# second line re-reads REST; a strategy or owner exit decides on holdings that may lag the stop's
# fill by the private feed's quiet bound (4 s) and the reconnect's re-read.
STOP_RACE_S = 6.0
# memory and threads: judged on runs with this many seconds of samples, after a warm-up; the
# second half may exceed the first half's peak by at most the slack (RSS: ratio and MB; threads)
RESOURCE_MIN_RUN_S = 120.0
RESOURCE_WARMUP_S = 30.0
RSS_SLACK = (1.10, 8 * 1024)  # x first-half peak + KB
THREAD_SLACK = 2
TRACEBACK = "Traceback"  # any, not only "(most recent call last)": a logged exc_info counts too
_EXCEPTION_LINE = re.compile(r"^\w[\w.]*(Error|Exception|Exit|Interrupt|Closed|Unknown|Rejected)\b.*")

Windows = Sequence[tuple[float, float]]


def check_all(rec: Recording) -> list[CheckResult]:
    """Run every invariant over the recording, in the report's order."""
    every, rest = fault_windows(rec), fault_windows(rec, rest_only=True)
    return [
        check_single_entry(rec.orders, rec.fills),
        check_exits_reduce(rec.orders, rec.fills),
        check_max_open(rec.fills, rec.max_open_positions),
        check_client_oids(rec.orders, rec.journal_oids),
        check_protected(rec.samples, rest),  # journaling and adopting need REST, not the WebSocket
        check_no_stale_rows(rec.samples, rest),
        check_stops(rec.samples, every),  # a WebSocket fault may leave the bot a stale price
        check_resting_stops(rec.samples, rest),  # placing a stop needs REST only
        check_keeps_trading(rec.runs, rest),  # scans fall back to REST without the WebSocket
        check_no_crash(rec.runs, rec.outputs),
        check_sigterm(rec.runs, rec.outputs),
        check_resources(rec.runs),
        check_outputs(rec.outputs, rec.secrets),
    ]


def fault_windows(rec: Recording, *, rest_only: bool = False) -> list[tuple[float, float]]:
    """The faults' windows (only those of REST_FAULTS with `rest_only`)."""
    return [(f.window_start, f.window_end) for f in rec.faults
            if f.window_end > f.window_start and (not rest_only or f.kind in REST_FAULTS)]


def uncovered_s(start: float, end: float, windows: Windows) -> float:
    """Seconds of [start, end] outside every window."""
    covered, cursor = 0.0, start
    for w_start, w_end in sorted(windows):
        lo, hi = max(w_start, cursor), min(w_end, end)
        if hi > lo:
            covered += hi - lo
            cursor = hi
    return max(0.0, end - start - covered)


# -- one entry per intent -------------------------------------------------------------------------
@dataclass(slots=True)
class _Episode:
    """One symbol's position from a flat moment to the next."""

    entries: list[str]
    first_size: int
    oversize_reported: bool = False


def check_single_entry(orders: Sequence[Order], fills: Sequence[Fill]) -> CheckResult:
    """Per symbol, at most one opening order between two flat moments, and |position| never
    above that entry's size. Rebuilt from the exchange's fills, so it holds whatever the bot
    believed."""
    by_id = {o.order_id: o for o in orders}
    qty: dict[str, int] = {}
    episodes: dict[str, _Episode] = {}
    found: list[Violation] = []
    for fill in fills:
        before = qty.get(fill.symbol, 0)
        after = before + (fill.size if fill.side == "buy" else -fill.size)
        order = by_id.get(fill.order_id or "")
        opening = order is not None and not order.reduce_only
        episode = episodes.get(fill.symbol)
        if opening and before != 0 and _sign(after - before) != _sign(before):
            found.append(Violation(fill.t, "single_entry",
                                   f"{fill.symbol}: entry order {order.client_oid} ({order.side} {order.size}) "
                                   f"traded against an open position of {before}"))
        if after == 0 or (before != 0 and _sign(after) != _sign(before)):
            episodes.pop(fill.symbol, None)  # flat (or flipped through flat)
            episode = None
        if after != 0 and episode is None:
            episode = episodes[fill.symbol] = _Episode([], order.size if opening else abs(after))
        if episode is not None and opening and order.order_id not in episode.entries:
            episode.entries.append(order.order_id)
            if len(episode.entries) > 1:
                oids = [by_id[i].client_oid for i in episode.entries]
                found.append(Violation(fill.t, "single_entry",
                                       f"{fill.symbol}: {len(oids)} entries without a flat moment between "
                                       f"them: {', '.join(oids)}"))
        if episode is not None and abs(after) > episode.first_size and not episode.oversize_reported:
            episode.oversize_reported = True
            found.append(Violation(fill.t, "single_entry",
                                   f"{fill.symbol}: |position| {abs(after)} above its entry's size "
                                   f"{episode.first_size}"))
        qty[fill.symbol] = after
    return CheckResult.of("one entry per intent", found)


def check_exits_reduce(orders: Sequence[Order], fills: Sequence[Fill]) -> CheckResult:
    """Every reduce-only order (an exit) is sent while there is a position for it to reduce: a
    second exit of a position already closed means the bot lost track of its first one. A stop
    order acts when it triggers, so its fills are judged instead: each only shrinks a position.

    One race is allowed: an exit that filled nothing, sent within ``STOP_RACE_S`` after a resting
    stop closed the position on the exchange (the bot's second line decided on a read taken just
    before; reduce-only is what makes that race harmless)."""
    qty: dict[str, int] = {}
    closed_by_stop: dict[str, float] = {}  # symbol -> when a stop's fill last made it flat
    found: list[Violation] = []
    stops = {o.order_id: o for o in orders if o.stop}
    # an order's fills carry its own creation time: at equal times the order comes first
    placed = {o.order_id: o.t for o in orders}
    # A fill never precedes its order (the simulator may stamp a triggered stop's fill with the
    # time of the market tick that triggered it, before the order object was written).
    events = sorted([(o.t, 0, i) for i, o in enumerate(orders) if not o.stop]
                    + [(max(f.t, placed.get(f.order_id or "", f.t)), 1, i) for i, f in enumerate(fills)])
    for _, is_fill, i in events:
        if is_fill:
            fill = fills[i]
            held = qty.get(fill.symbol, 0)
            change = fill.size if fill.side == "buy" else -fill.size
            stop = stops.get(fill.order_id or "")
            if stop is not None and (held == 0 or (held > 0) == (change > 0) or abs(change) > abs(held)):
                found.append(Violation(fill.t, "exits_reduce", f"{fill.symbol}: stop {stop.client_oid} filled "
                                       f"{fill.side} {fill.size} on a position of {held}"))
            qty[fill.symbol] = held + change
            if stop is not None and held + change == 0:
                closed_by_stop[fill.symbol] = fill.t
            continue
        order = orders[i]
        held = qty.get(order.symbol, 0)
        reduces = held < 0 if order.side == "buy" else held > 0
        raced = (not held and not order.filled
                 and 0 <= order.t - closed_by_stop.get(order.symbol, -math.inf) <= STOP_RACE_S)
        if order.reduce_only and not reduces and not raced:
            found.append(Violation(order.t, "exits_reduce",
                                   f"{order.symbol}: exit {order.client_oid} ({order.side} {order.size}) sent "
                                   f"with {'no position' if not held else f'a position of {held}'} to reduce"))
    return CheckResult.of("exits only while a position is open", found)


def check_max_open(fills: Sequence[Fill], max_open: int) -> CheckResult:
    """Open positions (rebuilt from fills) never above MAX_OPEN_POSITIONS."""
    qty: dict[str, int] = {}
    found: list[Violation] = []
    breached = False
    for fill in fills:
        qty[fill.symbol] = qty.get(fill.symbol, 0) + (fill.size if fill.side == "buy" else -fill.size)
        open_now = sorted(s for s, q in qty.items() if q)
        if len(open_now) > max_open and not breached:
            found.append(Violation(fill.t, "max_open_positions",
                                   f"{len(open_now)} positions open ({', '.join(open_now)}), "
                                   f"MAX_OPEN_POSITIONS={max_open}"))
        breached = len(open_now) > max_open
    return CheckResult.of("open positions <= MAX_OPEN_POSITIONS", found)


# -- every order is ours ----------------------------------------------------------------------------
def check_client_oids(orders: Sequence[Order], journal_oids: frozenset[str] | None) -> CheckResult:
    """Every order on the exchange carries a clientOid the journal's `intents` table knows."""
    name = "every order's clientOid journaled"
    if journal_oids is None:
        return CheckResult(name, Status.NOT_CHECKABLE, note="the journal could not be read")
    found = [Violation(o.t, "client_oid",
                       f"{o.symbol} order {o.order_id} ({o.side} {o.size}): "
                       + ("no clientOid" if not o.client_oid else f"clientOid {o.client_oid} not in the journal"))
             for o in orders if not o.client_oid or o.client_oid not in journal_oids]
    return CheckResult.of(name, found)


# -- every open position protected ------------------------------------------------------------------
def check_protected(samples: Sequence[Sample], windows: Windows, *,
                    grace_s: float = PROTECTION_GRACE_S) -> CheckResult:
    """A position open while the bot is up has a protections row of its side within grace_s.

    The time counted is the bot's up time outside fault windows since the position was last
    seen unprotected; a restart starts the count again (a new process gets its own grace).
    """
    name = "open positions protected (journal row)"
    if not samples or all(s.protections is None for s in samples):
        return CheckResult(name, Status.NOT_CHECKABLE, note="the journal has no `protections` table")
    found: list[Violation] = []
    owed: dict[str, float] = {}  # symbol -> unprotected seconds counted so far
    reported: set[str] = set()
    previous: Sample | None = None
    judged = 0.0
    for s in samples:
        dt = 0.0 if previous is None else s.t - previous.t
        restarted = previous is not None and (previous.bot_up != s.bot_up or previous.run != s.run)
        if s.bot_up and s.protections is not None and any(s.positions.values()) and not in_window(s.t, windows):
            judged += dt
        for symbol in set(owed) | set(s.positions):
            qty = s.positions.get(symbol, 0)
            row = (s.protections or {}).get(symbol)
            if not qty or (row is not None and row.side == _side(qty)) or restarted:
                owed.pop(symbol, None)
                reported.discard(symbol)
                continue
            if not s.bot_up or s.protections is None or in_window(s.t, windows):
                owed.setdefault(symbol, 0.0)
                continue
            owed[symbol] = owed.get(symbol, 0.0) + dt
            if owed[symbol] > grace_s and symbol not in reported:
                reported.add(symbol)
                what = "no protections row" if row is None else f"a {row.side} row for a {_side(qty)} position"
                found.append(Violation(s.t, "protected",
                                       f"{symbol}: {_side(qty)} {abs(qty)} open for {owed[symbol]:.1f}s "
                                       f"of bot time with {what}"))
        previous = s
    return CheckResult.of(name, found, f"{judged:.0f}s judged: bot up, a position open, no fault window")


def check_no_stale_rows(samples: Sequence[Sample], windows: Windows, *,
                        grace_s: float = STALE_ROW_GRACE_S) -> CheckResult:
    """The journal matches the exchange the other way round too: a protections row for a flat
    symbol goes within grace_s of a trading bot's time (fault windows not counted)."""
    name = "no journal row for a flat symbol"
    if not samples or all(s.protections is None for s in samples):
        return CheckResult(name, Status.NOT_CHECKABLE, note="the journal has no `protections` table")
    found: list[Violation] = []
    owed: dict[str, float] = {}
    previous: Sample | None = None
    for s in samples:
        dt = 0.0 if previous is None else s.t - previous.t
        restarted = previous is not None and previous.run != s.run
        for symbol in set(owed) | set(s.protections or {}):
            if s.positions.get(symbol) or symbol not in (s.protections or {}) or restarted:
                owed.pop(symbol, None)
                continue
            if not s.bot_ready or in_window(s.t, windows):
                owed.setdefault(symbol, 0.0)
                continue
            before = owed.get(symbol, 0.0)
            owed[symbol] = before + dt
            if before <= grace_s < owed[symbol]:
                found.append(Violation(s.t, "stale_row", f"{symbol}: flat, but its protections row stayed "
                                                         f"{owed[symbol]:.1f}s of bot time"))
        previous = s
    return CheckResult.of(name, found)


def check_stops(samples: Sequence[Sample], windows: Windows, *,
                grace_s: float = STOP_GRACE_S) -> CheckResult:
    """No position stays open while both its last and mark price are beyond its journaled stop
    for more than grace_s, with the bot up, trading and no fault window open."""
    name = "stops enforced"
    if not samples or all(s.protections is None for s in samples):
        return CheckResult(name, Status.NOT_CHECKABLE, note="the journal has no `protections` table")
    found: list[Violation] = []
    since: dict[str, float] = {}  # symbol -> start of the current beyond-the-stop streak
    reported: set[str] = set()
    judged, previous_t = 0.0, None
    for s in samples:
        fair = s.bot_up and s.bot_ready and not in_window(s.t, windows)
        if fair and previous_t is not None and any(s.positions.values()):
            judged += s.t - previous_t
        previous_t = s.t
        for symbol, qty in s.positions.items():
            row = (s.protections or {}).get(symbol)
            beyond = (fair and qty != 0 and row is not None and row.side == _side(qty)
                      and _beyond(row.side, row.stop_price, s.last.get(symbol), s.mark.get(symbol)))
            if not beyond:
                since.pop(symbol, None)
                reported.discard(symbol)
                continue
            start = since.setdefault(symbol, s.t)
            if s.t - start > grace_s and symbol not in reported:
                reported.add(symbol)
                found.append(Violation(s.t, "stop",
                                       f"{symbol}: {_side(qty)} {abs(qty)} still open {s.t - start:.1f}s after "
                                       f"last {s.last.get(symbol)} / mark {s.mark.get(symbol)} passed "
                                       f"its stop {row.stop_price}"))
        for symbol in set(since) - set(s.positions):
            since.pop(symbol, None)
            reported.discard(symbol)
    return CheckResult.of(name, found, f"{judged:.0f}s judged: bot trading, a position open, no fault window")


# -- the bot keeps going ----------------------------------------------------------------------------
def check_keeps_trading(runs: Sequence[Run], windows: Windows, *,
                        quiet_limit_s: float = QUIET_LIMIT_S) -> CheckResult:
    """Every run scans within quiet_limit_s of its start and of its previous scan, counting only
    time outside fault windows, until it is signalled."""
    found: list[Violation] = []
    for run in runs:
        end = run.signalled_t if run.signalled_t is not None else run.ended_t
        marks = [run.started_t, *[t for t in run.scans if t <= end], end]
        for a, b in zip(marks, marks[1:]):
            quiet = uncovered_s(a, b, windows)
            if quiet > quiet_limit_s:
                what = "after it started" if a == run.started_t else "after its last scan"
                found.append(Violation(a + quiet_limit_s, "keeps_trading",
                                       f"run {run.index}: no scan for {quiet:.1f}s {what} "
                                       f"(outside fault windows)"))
    return CheckResult.of("keeps trading after restarts", found)


def check_no_crash(runs: Sequence[Run], outputs: Mapping[int, str] | None = None) -> CheckResult:
    """No bot process ends on its own (every end is the soak's signal)."""
    found = []
    for run in runs:
        if run.end is RunEnd.EXITED:
            tail = _last_line((outputs or {}).get(run.index, ""))
            found.append(Violation(run.ended_t, "no_crash",
                                   f"run {run.index} exited on its own with code {run.exit_code}: {tail}"))
    return CheckResult.of("bot never exits on its own", found)


def check_sigterm(runs: Sequence[Run], outputs: Mapping[int, str] | None = None, *,
                  limit_s: float = SIGTERM_LIMIT_S) -> CheckResult:
    """A SIGTERM'd bot exits with code 0 within limit_s. (Exit code -15: SIGTERM's default action,
    so no handler ran: it came before main() or after the bot had begun exiting by itself, which
    its last output line then tells.)"""
    found = []
    for run in runs:
        if run.end not in (RunEnd.SIGTERM, RunEnd.FINAL):
            continue
        if run.stop_s is None or run.stop_s > limit_s:
            took = "did not exit: killed" if run.stop_s is None else f"took {run.stop_s:.2f}s"
            found.append(Violation(run.signalled_t, "sigterm", f"run {run.index}: SIGTERM {took} (limit {limit_s:g}s)"))
        if run.stop_s is not None and run.exit_code != 0:
            tail = _last_line((outputs or {}).get(run.index, ""))
            found.append(Violation(run.ended_t, "sigterm",
                                   f"run {run.index}: exit code {run.exit_code} after SIGTERM; last output: {tail}"))
    return CheckResult.of("SIGTERM: exit 0 within 5 s", found)


def check_resources(runs: Sequence[Run], *, sample_s: float = 0.5) -> CheckResult:
    """Memory (RSS) and threads flat: in every run long enough to tell, after a warm-up, the
    second half's peak stays within a small slack of the first half's."""
    found, judged = [], []
    warmup = int(RESOURCE_WARMUP_S / sample_s)
    for run in runs:
        if min(len(run.rss_kb), len(run.threads)) * sample_s < RESOURCE_MIN_RUN_S:
            continue
        rss, threads = run.rss_kb[warmup:], run.threads[warmup:]
        half_rss, half_threads = len(rss) // 2, len(threads) // 2
        rss_before, rss_after = max(rss[:half_rss]), max(rss[half_rss:])
        threads_before, threads_after = max(threads[:half_threads]), max(threads[half_threads:])
        judged.append(f"run {run.index}: {len(run.rss_kb) * sample_s:.0f}s, RSS {rss_before / 1024:.0f}->"
                      f"{rss_after / 1024:.0f} MB, threads {threads_before}->{threads_after}")
        if rss_after > rss_before * RSS_SLACK[0] + RSS_SLACK[1]:
            found.append(Violation(run.ended_t, "resources", f"run {run.index}: RSS grew from "
                                   f"{rss_before / 1024:.0f} to {rss_after / 1024:.0f} MB"))
        if threads_after > threads_before + THREAD_SLACK:
            found.append(Violation(run.ended_t, "resources", f"run {run.index}: threads grew from "
                                   f"{threads_before} to {threads_after}"))
    name = "memory and threads flat"
    if not judged:
        return CheckResult(name, Status.NOT_CHECKABLE, note=f"no run of {RESOURCE_MIN_RUN_S:.0f}s or more")
    return CheckResult.of(name, found, "; ".join(judged))


def check_outputs(outputs: Mapping[int, str], secrets: Iterable[Secret]) -> CheckResult:
    """No 'Traceback' and no credential in any run's output."""
    found = []
    for index, text in sorted(outputs.items()):
        if TRACEBACK in text:
            found.append(Violation(None, "output", f"run {index}: Traceback: {_exception_of(text)}"))
        for secret in secrets:
            if secret.value and secret.value in text:
                found.append(Violation(None, "output", f"run {index}: the {secret.name} appears in the output"))
    return CheckResult.of("no Traceback, no secret in output", found)


# -- helpers ----------------------------------------------------------------------------------------
def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def _side(qty: int) -> str:
    return "long" if qty > 0 else "short"


def _beyond(side: str, stop: float, last: float | None, mark: float | None) -> bool:
    if last is None or mark is None:
        return False
    return (last < stop and mark < stop) if side == "long" else (last > stop and mark > stop)


def _exception_of(text: str) -> str:
    lines = text[text.index(TRACEBACK):].splitlines()
    for line in lines[1:]:
        if _EXCEPTION_LINE.match(line):
            return line.strip()[:200]
    return (lines[-1] if lines else "").strip()[:200]


def _last_line(text: str) -> str:
    """The bot's last word: its last `error: ...` line (bot.py's fatal message), else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["(no output)"])[-1][:200]
