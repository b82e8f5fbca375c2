"""The backtest's outputs: the terminal summary, summary.json, trades.json and report.html.

    text = summary_text(summary)
    paths = write_report(Path("backtest_results/20261204-1200"), summary, result, history)

trades.json is a list of objects with exactly the keys of ``TRADE_KEYS``; summary.json holds the
run (range, symbols, settings, costs, data and gaps) and every statistic of metrics.py.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tradebot.backtest.charts import render_html
from tradebot.backtest.data import History
from tradebot.backtest.engine import BacktestResult, Trade

__all__ = ["TRADE_KEYS", "summary_text", "trade_dicts", "write_report"]

TRADE_KEYS = ("symbol", "side", "opened_ms", "closed_ms", "entry_price", "exit_price", "contracts",
              "pnl_usdt", "fees_usdt", "funding_usdt", "exit_reason")
SYMBOL_ROWS = 30  # per-symbol lines on the terminal (the JSON and the HTML have them all)


def trade_dicts(trades: tuple[Trade, ...] | list[Trade]) -> list[dict[str, Any]]:
    """Return trades.json's objects (TRADE_KEYS, in that order)."""
    return [{key: value for key, value in asdict(t).items() if key in TRADE_KEYS} for t in trades]


def write_report(out_dir: Path, summary: dict[str, Any], result: BacktestResult, history: History) -> dict[str, Path]:
    """Write summary.json, trades.json and report.html into `out_dir`; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("summary.json", "trades.json", "report.html")}
    # metrics.py gives None for an undefined figure: a NaN or infinity here is a bug, not JSON
    paths["summary.json"].write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    paths["trades.json"].write_text(json.dumps(trade_dicts(result.trades), indent=1) + "\n")
    paths["report.html"].write_text(render_html(summary, result, history))
    return paths


def summary_text(summary: dict[str, Any]) -> str:
    """Return the terminal summary: the headline statistics, then per symbol, exit reason, side."""
    m, run = summary["metrics"], summary["run"]
    lines = [
        f"=== Backtest: {run['strategy']} on {len(run['symbols'])} symbols, {run['timeframe']}, "
        f"{run['from']} -> {run['to']} UTC ({run['days']:.1f} days), data: {run['source']} ===",
        *_pairs([
            ("Trades", f"{m['trades']} (long {m['long']['trades']} / short {m['short']['trades']})"),
            ("Win rate", _pct(m["win_rate_pct"])),
            ("Profit factor", _num(m["profit_factor"], "{:.2f}", "n/a (no losing trade)")),
            ("Expectancy", f"{_num(m['expectancy_usdt'], '{:+.2f} USDT')} per trade "
                           f"(ratio {_num(m['expectancy_ratio'], '{:.2f}')})"),
            ("Net profit", f"{m['net_profit_usdt']:+.2f} USDT ({m['net_profit_pct']:+.2f} %) from "
                           f"{m['starting_balance_usdt']:.2f} USDT"),
            ("CAGR", _pct(m["cagr_pct"])),
            ("Max drawdown", f"{m['max_drawdown_usdt']:.2f} USDT ({m['max_drawdown_pct']:.2f} %), "
                             f"{m['max_drawdown_peak']} -> {m['max_drawdown_trough']}"),
            ("Sharpe / Sortino / Calmar", " / ".join(_num(m[k], "{:.2f}") for k in ("sharpe", "sortino", "calmar"))),
            ("Avg duration (win / loss)", f"{_duration(m['avg_duration_winners_s'])} / "
                                          f"{_duration(m['avg_duration_losers_s'])}"),
            ("Fees / funding paid", f"{m['fees_usdt']:.2f} / {m['funding_usdt']:+.2f} USDT"),
            ("Best / worst trade", f"{_num(m['best_trade_usdt'], '{:+.2f}')} / "
                                   f"{_num(m['worst_trade_usdt'], '{:+.2f}')} USDT"),
            ("Market change", _pct(m["market_change_pct"], signed=True)),
            ("Entries refused / blocked", f"{m['refused_entries']} (margin) / "
                                          f"{sum(m['blocked_entries'].values())} (risk limits)"),
            ("Kill switch tripped", _days(m["kill_switch_days"])),
            ("Costs", f"taker fees per contract, slippage {run['slippage_bps']:g} bps, funding from the "
                      f"rate history, liquidation at the liquidation price"),
            ("Data", _data_line(summary["data"])),
        ]),
        "",
        _table("per symbol", m["per_symbol"], "symbol", limit=SYMBOL_ROWS),
        "",
        _table("per exit reason", m["per_exit_reason"], "exit_reason"),
        "",
        _table("long / short", [{"side": "long", **m["long"]}, {"side": "short", **m["short"]}], "side"),
    ]
    return "\n".join(lines)


def _pairs(rows: list[tuple[str, str]]) -> list[str]:
    width = max(len(label) for label, _ in rows)
    return [f"  {label:<{width}}  {value}" for label, value in rows]


def _table(title: str, rows: list[dict[str, Any]], key: str, *, limit: int | None = None) -> str:
    header = f"  {key.replace('_', ' '):<22}{'trades':>7}{'win %':>8}{'profit USDT':>14}{'avg USDT':>11}" \
             f"{'fees':>10}{'funding':>10}  avg duration"
    lines = [f"{title.upper()}", header]
    shown = rows if limit is None else rows[:limit]
    for row in shown:
        lines.append(f"  {str(row[key]):<22}{row['trades']:>7}{_num(row['win_rate_pct'], '{:.1f}'):>8}"
                     f"{row['profit_usdt']:>+14.2f}{_num(row['expectancy_usdt'], '{:+.2f}'):>11}"
                     f"{row['fees_usdt']:>10.2f}{row['funding_usdt']:>+10.2f}  {_duration(row['avg_duration_s'])}")
    if limit is not None and len(rows) > limit:
        lines.append(f"  ... {len(rows) - limit} more in summary.json")
    if not rows:
        lines.append("  (no trade)")
    return "\n".join(lines)


def _data_line(data: dict[str, Any]) -> str:
    gaps = data["gaps"]
    gap_text = "no gap" if not gaps else (
        f"{len(gaps)} gaps ({sum(g['missing'] for g in gaps)} candles missing, not bridged: "
        + ", ".join(f"{g['symbol']} {g['from']}..{g['to']}" for g in gaps[:3]) + (" ..." if len(gaps) > 3 else "") + ")")
    fetched = "all from the cache" if not data["fetched_ranges"] else f"{data['fetched_ranges']} ranges downloaded"
    return f"{data['candles']} candles, {gap_text}; {fetched} ({data['cache']})"


def _days(days: list[str]) -> str:
    if len(days) <= 3:
        return ", ".join(days) or "never"
    return f"on {len(days)} days ({days[0]}, {days[1]} ... {days[-1]})"


def _pct(value: float | None, *, signed: bool = False) -> str:
    return "n/a" if value is None else (f"{value:+.2f} %" if signed else f"{value:.2f} %")


def _num(value: float | None, fmt: str, missing: str = "n/a") -> str:
    return missing if value is None or not math.isfinite(value) else fmt.format(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    minutes = int(round(seconds / 60))
    days, minutes = divmod(minutes, 1440)
    return (f"{days}d " if days else "") + f"{minutes // 60}:{minutes % 60:02d}"
