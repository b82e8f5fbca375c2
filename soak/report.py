"""The soak's report: counts, runs, invariants and violations as plain text (pure)."""
from __future__ import annotations

import collections
from collections.abc import Sequence

from .model import CheckResult, FaultKind, Recording, Run, RunEnd, Status

_RESTART_ENDS = (RunEnd.SIGTERM, RunEnd.SIGKILL, RunEnd.KILL_AFTER_ORDER, RunEnd.EXITED)


def exit_code(results: Sequence[CheckResult]) -> int:
    """0 if no invariant was violated, else 1 (not checkable is not a violation)."""
    return 1 if any(r.status is Status.VIOLATED for r in results) else 0


def counts(rec: Recording) -> dict[str, int]:
    """The headline counts: faults, restarts, recoveries, orders (what the e2e test asserts)."""
    restarts = sum(r.end in _RESTART_ENDS for r in rec.runs)
    return {
        "faults": len(rec.faults),
        "fault_kinds": len({f.kind for f in rec.faults}),
        "restarts": restarts,
        "recoveries": sum(r.recovery_s is not None for r in rec.runs[1:]),
        "orders": len(rec.orders),
        "fills": len(rec.fills),
    }


def render(rec: Recording, results: Sequence[CheckResult]) -> str:
    """Return the whole report."""
    lines = [f"=== soak report: seed {rec.seed}, {rec.duration_s:.1f}s, {len(rec.runs)} bot runs ===",
             f"workdir (bot outputs, journal): {rec.workdir}", ""]
    lines += _faults(rec) + [""] + _orders(rec) + [""] + _restarts(rec) + [""] + _runs(rec.runs) + [""]
    lines += _invariants(results) + [""] + _violations(results)
    if rec.notes:
        lines += ["", "notes:"] + [f"  {note}" for note in rec.notes]
    lines += ["", f"result: {'FAIL' if exit_code(results) else 'PASS'} (exit code {exit_code(results)})"]
    return "\n".join(lines)


def _faults(rec: Recording) -> list[str]:
    by_kind = collections.Counter(f.kind for f in rec.faults)
    lines = [f"{'faults injected':<34}{'count':>6}"]
    lines += [f"  {kind.value:<32}{by_kind.get(kind, 0):>6}" for kind in FaultKind]
    lines.append(f"  {'total':<32}{len(rec.faults):>6}")
    never_met = sum("(never met)" in f.detail for f in rec.faults)
    if never_met:
        lines.append(f"  ({never_met} fail/lose rules were never met by a request)")
    if rec.sim_faults:
        shown = ", ".join(f"{k}={v}" for k, v in rec.sim_faults.items() if v)
        lines.append(f"  simulator counters: {shown or 'none'}")
    return lines


def _orders(rec: Recording) -> list[str]:
    entries = sum(not o.reduce_only for o in rec.orders)
    filled = sum(o.filled > 0 for o in rec.orders)
    return [f"{'orders on the exchange':<34}{len(rec.orders):>6}   "
            f"(entries {entries}, reduce-only exits {len(rec.orders) - entries}; with fills {filled})",
            f"{'fills':<34}{len(rec.fills):>6}"]


def _restarts(rec: Recording) -> list[str]:
    by_end = collections.Counter(r.end for r in rec.runs)
    lines = [f"{'restarts':<34}{sum(by_end[e] for e in _RESTART_ENDS):>6}"]
    for end in _RESTART_ENDS:
        extra = ""
        if end is RunEnd.SIGTERM:
            times = [r.stop_s for r in rec.runs if r.end in (RunEnd.SIGTERM, RunEnd.FINAL)]
            shown = [f"{t:.2f}s" if t is not None else "killed" for t in times]
            extra = f"   exit times (final included): {', '.join(shown) or '-'}"
        label = "exited on its own (respawned)" if end is RunEnd.EXITED else end.value
        lines.append(f"  {label:<32}{by_end[end]:>6}{extra}")
    recovered = [(r.recovery_s, r.index) for r in rec.runs[1:] if r.recovery_s is not None]
    worst = max(recovered, default=None)
    lines.append(f"{'recoveries (start -> first scan)':<34}{len(recovered):>6}   "
                 + (f"worst {worst[0]:.1f}s (run {worst[1]})" if worst else "worst -")
                 + f"; never scanned: {sum(r.recovery_s is None for r in rec.runs[1:])}")
    return lines


def _runs(runs: Sequence[Run]) -> list[str]:
    lines = ["runs   start     end  how              exit  stop_s  1st scan  scans  orders"
             "  rss MB first/last/max  threads first/last/max"]
    for r in runs:
        stop = "-" if r.stop_s is None else f"{r.stop_s:.2f}"
        first = "-" if r.recovery_s is None else f"{r.recovery_s:.1f}s"
        lines.append(f"  {r.index:>2} {r.started_t:>7.1f} {r.ended_t:>7.1f}  {r.end.value:<15} {r.exit_code!s:>5} "
                     f"{stop:>7} {first:>9} {len(r.scans):>6} {r.orders:>7}  {_fml(r.rss_kb, 1024):>21}"
                     f"  {_fml(r.threads, 1):>22}")
    return lines


def _fml(values: Sequence[int], unit: int) -> str:
    if not values:
        return "-"
    return "/".join(f"{v / unit:.0f}" for v in (values[0], values[-1], max(values)))


def _invariants(results: Sequence[CheckResult]) -> list[str]:
    lines = ["invariants"]
    width = max((len(r.name) for r in results), default=0) + 2
    for r in results:
        status = f"{r.status.value}" + (f" ({len(r.violations)})" if r.violations else "")
        note = f"  [{r.note}]" if r.note else ""
        lines.append(f"  {r.name:<{width}}{status}{note}")
    return lines


def _violations(results: Sequence[CheckResult]) -> list[str]:
    found = sorted((v for r in results for v in r.violations),
                   key=lambda v: (v.t is None, v.t or 0.0))
    lines = [f"violations: {len(found)}"]
    for v in found:
        when = "      -" if v.t is None else f"{v.t:>7.1f}s"
        lines.append(f"  {when}  [{v.invariant}] {v.detail}")
    return lines
