"""Candles: REST granularities, period alignment, history rows and the live candles of one symbol.

A row is (open_time_ms, open, high, low, close, volume, turnover) with prices in integer ticks,
volume in lots and turnover in the settle currency. History rows come from CandleHistory (before
the anchor, the minute the live market started); live rows are built from trades from the anchor
on. The period holding the anchor joins both: it starts as the history's partial candle and trades
extend it.
"""
from __future__ import annotations

from itertools import groupby
from typing import Callable

from .candle_history import DAY, H1, H4, M1, M15, MINUTE_MS, WEEK, CandleHistory, Node, week_floor

# REST granularity (minutes) -> (tree level, how many level nodes make one candle)
GRANULARITIES: dict[int, tuple[int, int]] = {
    1: (M1, 1), 5: (M1, 5), 15: (M15, 1), 30: (M15, 2), 60: (H1, 1), 120: (H1, 2),
    240: (H4, 1), 480: (H4, 2), 720: (H4, 3), 1440: (DAY, 1), 10080: (WEEK, 1),
}
WEEK_MIN = 10080
MAX_ROWS = 500  # rows per kline request (docs-new)

Row = tuple[int, int, int, int, int, int, float]
Notional = Callable[[float, int], float]  # (price in ticks, lots) -> value in settle currency


def period_start(t_ms: int, granularity: int) -> int:
    """Return the open time of the candle of `granularity` minutes holding t_ms (weeks open Monday)."""
    if granularity == WEEK_MIN:
        return week_floor(t_ms)
    span = granularity * MINUTE_MS
    return t_ms - t_ms % span


def period_start_at_or_after(t_ms: int, granularity: int) -> int:
    start = period_start(t_ms, granularity)
    return start if start == t_ms else start + granularity * MINUTE_MS


def history_rows(history: CandleHistory, granularity: int, lo_ms: int, hi_ms: int,
                 notional: Notional) -> list[Row]:
    """Return the history's candles opening in [lo_ms, hi_ms) (aligned), oldest first."""
    level, _ = GRANULARITIES[granularity]
    nodes = history.nodes(level, lo_ms, hi_ms)
    return [
        aggregate(start, list(group), notional)
        for start, group in groupby(nodes, key=lambda n: period_start(n[0], granularity))
    ]


def aggregate(start_ms: int, nodes: list[Node], notional: Notional) -> Row:
    high = max(n[3] for n in nodes)
    low = min(n[4] for n in nodes)
    volume = sum(n[6] for n in nodes)
    turnover = sum(notional((n[2] + n[3] + n[4] + n[5]) / 4, n[6]) for n in nodes)
    return (start_ms, nodes[0][2], high, low, nodes[-1][5], volume, turnover)


class LiveCandles:
    """Candles of every granularity from the anchor on, contiguous, updated by trades.

    Periods without trades are filled flat at the last close with zero volume (at the next trade,
    or when read). Each granularity keeps at most max_rows rows; older live rows are dropped.
    """

    def __init__(self, *, anchor_ms: int, partials: dict[int, Row | None], last_close: int,
                 max_rows: int = 5000) -> None:
        self._first = {g: period_start(anchor_ms, g) for g in GRANULARITIES}
        self._rows: dict[int, list[list]] = {
            g: [list(partials[g])] if partials.get(g) else [] for g in GRANULARITIES
        }
        self._close = last_close
        self._max_rows = max_rows

    @property
    def first_ms(self) -> dict[int, int]:
        return self._first

    def add_trade(self, price: int, size: int, turnover: float, ts_ms: int) -> None:
        """Fold one trade into the in-progress candle of every granularity."""
        for g, rows in self._rows.items():
            start = period_start(ts_ms, g)
            if rows and start <= rows[-1][0]:
                row = rows[-1]  # a trade stamped in the past stays in the newest candle
                if price > row[2]:
                    row[2] = price
                elif price < row[3]:
                    row[3] = price
                row[4] = price
                row[5] += size
                row[6] += turnover
                continue
            self._fill_flat(g, rows, start)
            rows.append([start, price, price, price, price, size, turnover])
            if len(rows) > self._max_rows + 500:
                del rows[: len(rows) - self._max_rows]
        self._close = price

    def current(self, granularity: int) -> Row | None:
        rows = self._rows[granularity]
        return tuple(rows[-1]) if rows else None

    def rows(self, granularity: int, lo_ms: int, hi_ms: int) -> list[Row]:
        """Return live candles opening in [lo_ms, hi_ms] (aligned, hi_ms = the newest wanted)."""
        span = granularity * MINUTE_MS
        rows = self._rows[granularity]
        out: list[Row] = []
        if rows:
            first = rows[0][0]
            i0 = max(0, (lo_ms - first) // span)
            i1 = (hi_ms - first) // span + 1
            out = [tuple(r) for r in rows[i0:max(i0, i1)]]
            nxt = rows[-1][0] + span
        else:
            nxt = self._first[granularity]
        close = self._close
        nxt = max(nxt, lo_ms)
        while nxt <= hi_ms:
            out.append((nxt, close, close, close, close, 0, 0.0))
            nxt += span
        return out

    def _fill_flat(self, granularity: int, rows: list[list], until_ms: int) -> None:
        span = granularity * MINUTE_MS
        nxt = rows[-1][0] + span if rows else self._first[granularity]
        close = self._close
        while nxt < until_ms:
            rows.append([nxt, close, close, close, close, 0, 0.0])
            nxt += span
