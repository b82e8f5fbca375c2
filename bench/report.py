"""The comparison table of bench/run.py: rows of figures, the lead ratios, markdown and JSON.

Every row has one unit and one direction ("lower" or "higher" is better). A ratio cell is how
many times better ours is than the other column: other/ours when lower is better, ours/other
when higher is better. So > 1 means we lead.

The ceiling of a row is the best figure measured for it: the bare read-and-parse loop (the raw
reference), or ours where ours beat that loop (a reference we beat is no ceiling: with a CPU-busy
main thread the pure-Python loop, which needs the GIL for every recv, measures slower than our
picows reader). "Of ceiling" is ours as a fraction of it, so it never exceeds 1 (1.00: nothing
measured did better).
"""
from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from common import log, markdown_table

COLUMNS = ("ours", "ccxt_pro", "ccxt", "other", "ceiling")
HEADER = ("row", "unit", "ours", "ccxt.pro", "ccxt (REST)", "other", "ceiling",
          "× ccxt.pro", "× ccxt", "× other", "of ceiling")


@dataclass(frozen=True)
class NA:
    """A figure that could not be measured, with the reason."""

    reason: str

    def __str__(self) -> str:
        return f"n/a ({self.reason})"


Figure = float | NA | None  # None: this contender has no such figure (blank cell)


@dataclass
class Row:
    name: str
    unit: str
    better: str  # "lower" or "higher"
    ours: Figure = None
    ccxt_pro: Figure = None
    ccxt: Figure = None
    other: Figure = None
    ceiling: Figure = None
    other_label: str = ""
    notes: list[str] = field(default_factory=list)

    def lead(self, column: str) -> float | None:
        """How many times better ours is than ``column`` (None when either side is missing)."""
        ours, theirs = self.ours, getattr(self, column)
        if not isinstance(ours, (int, float)) or not isinstance(theirs, (int, float)):
            return None
        if ours == theirs:
            return 1.0  # including 0 and 0 (no REST calls on either side)
        if self.better == "lower":
            return theirs / ours if ours > 0 else math.inf
        return ours / theirs if theirs > 0 else math.inf

    def of_ceiling(self) -> float | None:
        """Ours as a fraction of the row's ceiling (the better of the raw reference and ours): <= 1."""
        lead = self.lead("ceiling")
        return None if lead is None else min(lead, 1.0)

    def beats_raw(self) -> bool:
        """True when ours did better than the raw reference, which is then no ceiling."""
        lead = self.lead("ceiling")
        return lead is not None and lead > 1.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for column in COLUMNS:
            value = getattr(self, column)
            if isinstance(value, NA):
                out[column] = {"na": value.reason}
        out["leads"] = {c: self.lead(c) for c in ("ccxt_pro", "ccxt", "other", "ceiling")}
        out["of_ceiling"] = self.of_ceiling()
        return out


def fmt(value: Figure) -> str:
    if value is None:
        return "—"
    if isinstance(value, NA):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isinf(value):
        return "∞"
    if value >= 100:
        return f"{value:,.0f}×"
    if value >= 10:
        return f"{value:.0f}×"
    return f"{value:.2f}×"


def render(rows: list[Row]) -> str:
    cells = []
    for row in rows:
        name = row.name + (f" (other: {row.other_label})" if row.other_label else "")
        ceiling = f"{fmt(row.ours)} (ours; raw {fmt(row.ceiling)})" if row.beats_raw() else fmt(row.ceiling)
        cells.append((name, row.unit, fmt(row.ours), fmt(row.ccxt_pro), fmt(row.ccxt), fmt(row.other),
                      ceiling, fmt_ratio(row.lead("ccxt_pro")), fmt_ratio(row.lead("ccxt")),
                      fmt_ratio(row.lead("other")), fmt_ratio(row.of_ceiling())))
    return markdown_table(HEADER, cells)


def where_we_trail(rows: list[Row], *, wide: float = 2.0, close: float = 0.5) -> list[str]:
    """Plain statements of every row where we do not lead a peer by ``wide`` or sit below
    ``close`` of the ceiling."""
    out = []
    for row in rows:
        for column, label in (("ccxt_pro", "ccxt.pro"), ("ccxt", "ccxt REST"), ("other", row.other_label)):
            lead = row.lead(column)
            if lead is not None and lead < wide and getattr(row, column) != row.ours:
                out.append(f"{row.name}: ours leads {label} by only {fmt_ratio(lead)}" if lead >= 1
                           else f"{row.name}: {label} beats ours ({fmt_ratio(lead)})")
        share = row.of_ceiling()
        if share is not None and share < close:
            out.append(f"{row.name}: ours is at {fmt_ratio(share)} of the ceiling")
    return out


# -- running a contender -----------------------------------------------------------------------------
def attempt(label: str, fn: Callable[[], Any]) -> Any:
    """fn(), or NA with the reason if it raised (logged with its traceback on stderr)."""
    started = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:  # a contender failing is a result ("n/a"), not the end of the run
        log(f"  ! {label} failed:\n{traceback.format_exc()}")
        return NA(f"{type(exc).__name__}: {str(exc)[:80]}")
    log(f"  {label}: {time.perf_counter() - started:.1f}s")
    return result


def pick(value: Any, fn: Callable[[Any], Any]) -> Any:
    return value if isinstance(value, NA) else fn(value)


def wall_rate(result: Any) -> float:
    # ws_ingest.ours returns msgs/s, or (wall msgs/s, CPU msgs/s) in its newer form.
    return result[0] if isinstance(result, tuple) else result
