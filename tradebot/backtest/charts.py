"""report.html: one self-contained page (plotly.js inlined, nothing fetched at view time).

Charts: the equity curve, the underwater (drawdown) curve, profit per symbol, and the trades
marked on the price of a symbol picked from a menu (the one with most trades first). Curves longer
than MAX_POINTS are thinned for drawing (every k-th point, the drawdown's peak and trough kept);
the statistics are computed on every point. Laid out for a laptop screen (1366 x 800).
"""
from __future__ import annotations

import html
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from tradebot.backtest.data import History
from tradebot.backtest.engine import BacktestResult
from tradebot.performance import underwater

__all__ = ["render_html"]

MAX_POINTS = 3000  # per curve drawn
MAX_PRICE_SYMBOLS = 30  # symbols in the price chart's menu
UP, DOWN, LINE, GRID = "#1a9850", "#d73027", "#3366cc", "#e5e5e5"
CONFIG = {"displaylogo": False, "responsive": True}
CSS = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1320px; padding: 12px 20px; color: #222; }
h1 { font-size: 20px; margin: 4px 0 2px; } h2 { font-size: 16px; margin: 18px 0 4px; }
.sub { color: #666; font-size: 13px; margin-bottom: 10px; }
.cards { display: grid; grid-template-columns: repeat(6, 1fr); gap: 8px; }
.card { background: #f6f7f9; border-radius: 6px; padding: 8px 10px; }
.card b { display: block; font-size: 17px; } .card span { color: #666; font-size: 12px; }
.row { display: grid; grid-template-columns: 3fr 2fr; gap: 16px; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
td, th { padding: 3px 8px; text-align: right; border-bottom: 1px solid #eee; }
td:first-child, th:first-child { text-align: left; }
.chart { height: 330px; } .tall { height: 420px; }
"""


def render_html(summary: dict[str, Any], result: BacktestResult, history: History) -> str:
    """Return the whole report page."""
    m, run = summary["metrics"], summary["run"]
    times = np.concatenate(([history.since_ms], result.equity_ms))
    equity = np.concatenate(([result.starting_balance_usdt], result.equity_usdt))
    charts = [
        ("Equity (USDT, wallet + unrealised PnL at each close)", _equity(times, equity), "chart"),
        ("Drawdown (% below the running peak)", _underwater(times, equity), "chart"),
    ]
    body = [
        f"<h1>Backtest: {_e(run['strategy'])}, {len(run['symbols'])} symbols, {_e(run['timeframe'])}</h1>",
        f"<div class='sub'>{_e(run['from'])} to {_e(run['to'])} UTC ({run['days']:.1f} days), data: "
        f"{_e(run['source'])}; slippage {run['slippage_bps']:g} bps, taker fees, funding, liquidation</div>",
        _cards(m),
        *(f"<h2>{_e(title)}</h2>{_div(fig, css)}" for title, fig, css in charts),
        "<div class='row'><div><h2>Profit per symbol (USDT, net)</h2>"
        f"{_div(_per_symbol(m['per_symbol']), 'chart')}</div>"
        f"<div><h2>Exit reasons</h2>{_reasons(m['per_exit_reason'])}</div></div>",
        f"<h2>Trades on the price (pick a symbol)</h2>{_div(_trades_on_price(result, history), 'tall')}",
    ]
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<link rel='icon' href='data:,'><title>Backtest report</title>"
            f"<style>{CSS}</style><script>{get_plotlyjs()}</script></head><body>"
            + "\n".join(body) + "</body></html>\n")


def _cards(m: dict[str, Any]) -> str:
    def fmt(value: float | None, pattern: str) -> str:
        return "n/a" if value is None else pattern.format(value)
    cards = [
        ("net profit", f"{m['net_profit_usdt']:+.2f} USDT ({m['net_profit_pct']:+.2f} %)"),
        ("trades / win rate", f"{m['trades']} / {fmt(m['win_rate_pct'], '{:.1f} %')}"),
        ("profit factor", fmt(m["profit_factor"], "{:.2f}")),
        ("max drawdown", f"{m['max_drawdown_pct']:.2f} %"),
        ("Sharpe / Sortino", f"{fmt(m['sharpe'], '{:.2f}')} / {fmt(m['sortino'], '{:.2f}')}"),
        ("fees / funding paid", f"{m['fees_usdt']:.2f} / {m['funding_usdt']:+.2f}"),
    ]
    return "<div class='cards'>" + "".join(f"<div class='card'><b>{_e(v)}</b><span>{_e(k)}</span></div>"
                                           for k, v in cards) + "</div>"


def _reasons(rows: list[dict[str, Any]]) -> str:
    head = "<tr><th>reason</th><th>trades</th><th>win %</th><th>profit USDT</th></tr>"
    cells = "".join(
        f"<tr><td>{_e(r['exit_reason'])}</td><td>{r['trades']}</td>"
        f"<td>{'' if r['win_rate_pct'] is None else format(r['win_rate_pct'], '.1f')}</td>"
        f"<td>{r['profit_usdt']:+.2f}</td></tr>" for r in rows)
    return f"<table>{head}{cells or '<tr><td>no trade</td></tr>'}</table>"


def _equity(times: np.ndarray, equity: np.ndarray) -> go.Figure:
    keep = _thin(len(equity), extra=(int(np.argmax(underwater(equity)[0])),))
    fig = go.Figure(go.Scatter(x=_dates(times[keep]), y=equity[keep], mode="lines", line={"color": LINE},
                               name="equity"))
    fig.add_hline(y=float(equity[0]), line={"color": "#999", "dash": "dot"})
    return _layout(fig, "USDT")


def _underwater(times: np.ndarray, equity: np.ndarray) -> go.Figure:
    fraction = underwater(equity)[1]
    keep = _thin(len(equity), extra=(int(np.argmax(fraction)),))
    fig = go.Figure(go.Scatter(x=_dates(times[keep]), y=-100 * fraction[keep], mode="lines", fill="tozeroy",
                               line={"color": DOWN}, name="drawdown"))
    return _layout(fig, "%")


def _per_symbol(rows: list[dict[str, Any]]) -> go.Figure:
    rows = sorted(rows, key=lambda r: r["profit_usdt"])
    fig = go.Figure(go.Bar(x=[r["profit_usdt"] for r in rows], y=[r["symbol"] for r in rows], orientation="h",
                           marker={"color": [UP if r["profit_usdt"] >= 0 else DOWN for r in rows]},
                           text=[f"{r['trades']} trade{'s' if r['trades'] != 1 else ''}" for r in rows], hoverinfo="x+y+text"))
    return _layout(fig, "USDT", showgrid_y=False)


def _trades_on_price(result: BacktestResult, history: History) -> go.Figure:
    counts: dict[str, int] = {}
    for t in result.trades:
        counts[t.symbol] = counts.get(t.symbol, 0) + 1
    symbols = sorted(history.series, key=lambda s: (-counts.get(s, 0), s))[:MAX_PRICE_SYMBOLS]
    fig = go.Figure()
    per_symbol = 5  # traces per symbol: price, long entries, short entries, exits, links
    for k, symbol in enumerate(symbols):
        rows = history.series[symbol].rows
        keep = _thin(len(rows))
        visible = k == 0
        fig.add_trace(go.Scatter(x=_dates(rows[keep, 0]), y=rows[keep, 4], mode="lines", name=f"{symbol} close",
                                 line={"color": "#555", "width": 1}, visible=visible))
        trades = [t for t in result.trades if t.symbol == symbol]
        for side, symbol_shape, color in (("long", "triangle-up", UP), ("short", "triangle-down", DOWN)):
            mine = [t for t in trades if t.side == side]
            fig.add_trace(go.Scatter(
                x=_dates(np.array([t.opened_ms for t in mine])), y=[t.entry_price for t in mine], mode="markers",
                name=f"{side} entry", marker={"symbol": symbol_shape, "size": 10, "color": color}, visible=visible,
                text=[f"{t.contracts} contracts" for t in mine]))
        fig.add_trace(go.Scatter(
            x=_dates(np.array([t.closed_ms for t in trades])), y=[t.exit_price for t in trades], mode="markers",
            name="exit", marker={"symbol": "x", "size": 9, "color": "#222"}, visible=visible,
            text=[f"{t.exit_reason}: {t.pnl_usdt:+.2f} USDT" for t in trades]))
        xs: list[Any] = []
        ys: list[Any] = []
        for t in trades:
            xs += [*_dates(np.array([t.opened_ms, t.closed_ms])), None]
            ys += [t.entry_price, t.exit_price, None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="round trip", visible=visible,
                                 line={"color": "#999", "width": 1, "dash": "dot"}, hoverinfo="skip"))
    buttons = [{"label": f"{s} ({counts.get(s, 0)} trades)", "method": "update",
                "args": [{"visible": [j // per_symbol == k for j in range(per_symbol * len(symbols))]}]}
               for k, s in enumerate(symbols)]
    fig.update_layout(updatemenus=[{"buttons": buttons, "x": 0, "y": 1.14, "xanchor": "left", "showactive": True}])
    return _layout(fig, "price", legend=True)


def _layout(fig: go.Figure, y_title: str, *, legend: bool = False, showgrid_y: bool = True) -> go.Figure:
    fig.update_layout(margin={"l": 60, "r": 20, "t": 40 if legend else 10, "b": 30}, showlegend=legend,
                      plot_bgcolor="white", yaxis_title=y_title, autosize=True,
                      legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.12})
    fig.update_xaxes(gridcolor=GRID)
    fig.update_yaxes(gridcolor=GRID, showgrid=showgrid_y)
    return fig


def _div(fig: go.Figure, css: str) -> str:
    inner = pio.to_html(fig, full_html=False, include_plotlyjs=False, config=CONFIG, default_height="100%")
    return f"<div class='{css}'>{inner}</div>"


def _thin(n: int, *, extra: tuple[int, ...] = ()) -> np.ndarray:
    if n <= MAX_POINTS:
        return np.arange(n)
    step = -(-n // MAX_POINTS)
    return np.unique(np.concatenate((np.arange(0, n, step), [n - 1], np.asarray(extra, dtype=int))))


def _dates(ts_ms: np.ndarray) -> np.ndarray:
    return np.asarray(ts_ms, dtype="int64").astype("datetime64[ms]")


def _e(text: Any) -> str:
    return html.escape(str(text))
