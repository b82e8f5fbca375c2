"""Performance: the exit summary of a run, from the journal's fills and equity snapshots.

    result = summary(journal, since_ms=started_ms, source_counts={"websocket": n_ws, "rest": n_rest})
    result = summarize(fills, equity_curve, source_counts=...)   # the same from plain values

Pure maths over the rows (replay_fills, max_drawdown, underwater, summarize); only ``summary`` reads
a journal. The backtest's report (tradebot/backtest/metrics.py) uses the same drawdown rule.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tradebot.journal import Journal

__all__ = ["FillLike", "Summary", "max_drawdown", "replay_fills", "summarize", "summary", "underwater"]


class FillLike(Protocol):
    """A fill as the journal stores it (records.Fill): one order's cumulative execution."""

    symbol: str
    side: str  # "buy" | "sell"
    amount: int  # contracts
    price: float
    fee: float
    contract_size: float


@dataclass(frozen=True, slots=True)
class Summary:
    """The exit summary; money in the settle currency (USDT)."""

    trades: int  # round trips closed (position back to flat, or flipped)
    realised_pnl: float  # gross, before fees
    fees: float
    net_pnl: float
    max_drawdown: float  # largest peak-to-trough fall of the equity curve
    max_drawdown_fraction: float  # largest fall as a fraction of its peak
    ws_share: float | None  # share of market data that came by WebSocket (None: no data)
    open_positions: int  # symbols the fills leave not flat


def replay_fills(fills: Iterable[FillLike]) -> tuple[int, float, dict[str, int]]:
    """Return (round trips closed, gross realised PnL, signed open contracts by symbol).

    One-way positions at their average entry price: a fill that crosses zero closes the trip and
    opens the rest on the other side at the fill price. Linear PnL: qty x price move x size.
    """
    trades, realised = 0, 0.0
    qty: dict[str, int] = {}
    avg: dict[str, float] = {}
    for f in fills:
        held, signed = qty.get(f.symbol, 0), f.amount if f.side == "buy" else -f.amount
        if held == 0 or (held > 0) == (signed > 0):
            avg[f.symbol] = (abs(held) * avg.get(f.symbol, 0.0) + f.amount * f.price) \
                / (abs(held) + f.amount)
            qty[f.symbol] = held + signed
            continue
        closing = min(f.amount, abs(held))
        realised += closing * (f.price - avg[f.symbol]) * f.contract_size * (1 if held > 0 else -1)
        rest = f.amount - closing
        qty[f.symbol] = held + (closing if signed > 0 else -closing)
        if qty[f.symbol] == 0:
            trades += 1
            if rest:
                qty[f.symbol], avg[f.symbol] = (rest if signed > 0 else -rest), f.price
    return trades, realised, {s: q for s, q in qty.items() if q}


def underwater(equity: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    """Return (fall below the running peak, that fall as a fraction of the peak) at every point
    of an equity curve (the fraction is 0 while the peak is not positive)."""
    values = np.asarray(list(equity) if not isinstance(equity, np.ndarray) else equity, dtype=float)
    peak = np.maximum.accumulate(values) if values.size else values
    fall = peak - values
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(peak > 0, fall / np.where(peak > 0, peak, 1.0), 0.0)
    return fall, fraction


def max_drawdown(equity: Iterable[float]) -> tuple[float, float]:
    """Return (largest peak-to-trough fall, largest fall as a fraction of its running peak)."""
    fall, fraction = underwater(equity)
    return (float(fall.max()), float(fraction.max())) if fall.size else (0.0, 0.0)


def summarize(fills: Iterable[FillLike], equity: Iterable[float], *,
              source_counts: Mapping[str, int] | None = None) -> Summary:
    """Return the Summary of fills and an equity curve; `source_counts` counts market-data
    updates by source ("websocket", "rest") as the bot saw them."""
    fills = list(fills)
    trades, realised, still_open = replay_fills(fills)
    fees = float(sum(f.fee for f in fills))
    drawdown, fraction = max_drawdown(equity)
    counts = source_counts or {}
    seen = counts.get("websocket", 0) + counts.get("rest", 0)
    return Summary(trades=trades, realised_pnl=realised, fees=fees, net_pnl=realised - fees,
                   max_drawdown=drawdown, max_drawdown_fraction=fraction,
                   ws_share=counts.get("websocket", 0) / seen if seen else None,
                   open_positions=len(still_open))


def summary(journal: Journal, *, since_ms: int | None = None,
            source_counts: Mapping[str, int] | None = None) -> Summary:
    """Return the Summary of the journal's fills and equity snapshots since `since_ms`."""
    return summarize(journal.fills(since_ms), [e for _, e in journal.equity_curve(since_ms)],
                     source_counts=source_counts)
