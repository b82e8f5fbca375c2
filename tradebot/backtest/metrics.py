"""The backtest's statistics (freqtrade's set), as one JSON-ready dict: pure maths over the trades
and the equity curve.

Returns are per UTC day (the last equity of each day); Sharpe and Sortino are annualised with
365 days (crypto trades every day), with a zero risk-free rate; CAGR compounds over the range's
length in 365-day years, so a range of a few days gives an extreme figure, as freqtrade's does.
The drawdown is performance.underwater's (the live summary's rule). Money in USDT; fees and
funding positive when paid. Durations in seconds.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from tradebot.backtest.engine import BacktestResult, Trade
from tradebot.performance import underwater
from tradebot.risk import DAY_MS

__all__ = ["compute_metrics", "iso_utc"]

YEAR_MS = 365 * DAY_MS


def iso_utc(ts_ms: int | None) -> str | None:
    """Return "YYYY-MM-DD HH:MM" (UTC) of an epoch-ms time."""
    if ts_ms is None:
        return None
    return dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def compute_metrics(result: BacktestResult, *, since_ms: int, until_ms: int,
                    closes: Mapping[str, tuple[float, float]]) -> dict[str, Any]:
    """Return the statistics of a run over [since_ms, until_ms); `closes` is each symbol's first
    and last close (the market change)."""
    trades = list(result.trades)
    start = result.starting_balance_usdt
    times = np.concatenate(([since_ms], result.equity_ms))
    equity = np.concatenate(([start], result.equity_usdt))
    final = float(equity[-1])
    years = (until_ms - since_ms) / YEAR_MS
    dd = _drawdown(times, equity)
    cagr = _cagr(final / start if start > 0 else 0.0, years)
    sharpe, sortino = _ratios(times, equity)
    changes = [last / first - 1 for first, last in closes.values() if first > 0]
    return {
        "starting_balance_usdt": start,
        "final_balance_usdt": final,
        "net_profit_usdt": final - start,
        "net_profit_pct": 100 * (final / start - 1) if start else None,
        **_trade_stats(trades),
        "cagr_pct": None if cagr is None else 100 * cagr,
        **dd,
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": None if cagr is None or not dd["max_drawdown_pct"] else cagr / (dd["max_drawdown_pct"] / 100),
        "market_change_pct": 100 * float(np.mean(changes)) if changes else None,
        "long": _trade_stats(t for t in trades if t.side == "long"),
        "short": _trade_stats(t for t in trades if t.side == "short"),
        "per_symbol": _grouped(trades, "symbol"),
        "per_exit_reason": _grouped(trades, "exit_reason"),
        "refused_entries": result.refused_entries,
        "blocked_entries": dict(sorted(result.blocked_entries.items())),
        "kill_switch_days": [iso_utc(day * DAY_MS)[:10] for day in result.kill_switch_days],  # type: ignore[index]
    }


def _cagr(growth: float, years: float) -> float | None:
    # compounded yearly growth; None when undefined (a wiped account, an empty range) or beyond a
    # float (a fraction of a day's gain compounded over a year)
    if growth <= 0 or years <= 0:
        return None
    rate = math.log(growth) / years
    return math.expm1(rate) if rate < 700 else None


def _trade_stats(trades: Iterable[Trade]) -> dict[str, Any]:
    trades = list(trades)
    pnl = np.array([t.pnl_usdt for t in trades])
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    duration_s = np.array([(t.closed_ms - t.opened_ms) / 1000 for t in trades])
    win_rate = len(wins) / len(trades) if trades else None
    avg_win = float(wins.mean()) if len(wins) else 0.0
    avg_loss = float(-losses.mean()) if len(losses) else 0.0
    return {
        "trades": len(trades),
        "wins": int(len(wins)),
        "losses": int(len(losses)),
        "draws": int(len(trades) - len(wins) - len(losses)),
        "win_rate_pct": None if win_rate is None else 100 * win_rate,
        "profit_usdt": float(pnl.sum()),
        "profit_factor": float(wins.sum() / -losses.sum()) if len(losses) else None,
        "expectancy_usdt": float(pnl.mean()) if trades else None,
        "expectancy_ratio": (1 + avg_win / avg_loss) * win_rate - 1 if avg_loss and win_rate is not None else None,
        "avg_duration_s": float(duration_s.mean()) if trades else None,
        "avg_duration_winners_s": float(duration_s[pnl > 0].mean()) if len(wins) else None,
        "avg_duration_losers_s": float(duration_s[pnl < 0].mean()) if len(losses) else None,
        "fees_usdt": float(sum(t.fees_usdt for t in trades)),
        "funding_usdt": float(sum(t.funding_usdt for t in trades)),
        "best_trade_usdt": float(pnl.max()) if trades else None,
        "worst_trade_usdt": float(pnl.min()) if trades else None,
    }


def _grouped(trades: list[Trade], key: str) -> list[dict[str, Any]]:
    groups: dict[str, list[Trade]] = {}
    for t in trades:
        groups.setdefault(getattr(t, key), []).append(t)
    rows = [{key: name, **_trade_stats(group)} for name, group in groups.items()]
    return sorted(rows, key=lambda row: -row["profit_usdt"])


def _drawdown(times: np.ndarray, equity: np.ndarray) -> dict[str, Any]:
    fall, fraction = underwater(equity)
    trough = int(np.argmax(fall)) if len(fall) else 0
    peak = int(np.argmax(equity[:trough + 1])) if len(fall) else 0
    return {
        "max_drawdown_usdt": float(fall[trough]) if len(fall) else 0.0,
        "max_drawdown_pct": 100 * float(fraction.max()) if len(fall) else 0.0,
        "max_drawdown_peak": iso_utc(int(times[peak])) if len(fall) else None,
        "max_drawdown_trough": iso_utc(int(times[trough])) if len(fall) else None,
    }


def _ratios(times: np.ndarray, equity: np.ndarray) -> tuple[float | None, float | None]:
    days = times // DAY_MS
    last_of_day = np.flatnonzero(np.diff(days, append=days[-1] + 1) != 0)
    daily = equity[last_of_day] if last_of_day[0] == 0 else np.concatenate(([equity[0]], equity[last_of_day]))
    if len(daily) < 3:
        return None, None
    returns = np.diff(daily) / daily[:-1]
    mean, std = float(returns.mean()), float(returns.std(ddof=1))
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    scale = math.sqrt(365)
    return (mean / std * scale if std > 0 else None), (mean / downside * scale if downside > 0 else None)
