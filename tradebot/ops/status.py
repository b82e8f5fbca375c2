"""The owner's view of a running bot: its health verdict, its status and its closed trades.

    view = BotView(trader=trader, client=client, journal=journal, settings=settings, mode="paper",
                   recent=recent_events)
    verdict = view.health()        # Verdict(ok, reasons, checks): GET /health and the heartbeat
    view.status()                  # GET /api/v1/status (and the dashboard)
    view.trades(limit=100)         # GET /api/v1/trades

Everything is read from what the bot already keeps (KuCoinClient.health() counters, the trader's
loop times and positions, the journal): nothing here calls the exchange, so a dashboard or a
probe never costs rate limit nor waits on a REST call. The verdict is a pure function of its
inputs (`health_verdict`), tested without a bot.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tradebot.events import RecentEvents
from tradebot.ops.report import funding_usdt
from tradebot.performance import replay_fills
from tradebot.records import Fill

__all__ = ["BotView", "HealthInputs", "Verdict", "closed_trades", "health_verdict"]

MONITOR_STALL_S = 15.0  # the protection loop runs every second: this long without a round is a stall
SCAN_GRACE_S = 60.0  # a scan may wait out a rate-limit reset: stalled after 2 intervals plus this
EQUITY_POINTS = 300  # the dashboard's equity curve is thinned to this many points
EQUITY_WINDOW_MS = 86_400_000  # ... over the last day of the run
STATUS_CACHE_S = 1.0  # many dashboards or a tight probe read the journal at most this often
RECENT_EVENTS_SHOWN = 20
TICKER_FEED = "tickerV2"  # the entry data: the feeds whose age decides "stale data"


@dataclass(frozen=True, slots=True)
class HealthInputs:
    """What the verdict is decided on (ages in seconds, None: never)."""

    running: bool
    ever_started: bool
    monitor_age_s: float | None
    scan_age_s: float | None
    run_age_s: float | None  # since Trader.run began
    scan_interval_s: float
    max_data_age_s: float
    websocket: Mapping[str, Any]  # KuCoinClient.health()["websocket"]
    exchange_down: bool
    kill_switch: bool
    client_closed: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """ok, or the reasons it is not (each one readable line)."""

    ok: bool
    reasons: tuple[str, ...] = ()
    checks: Mapping[str, Any] = field(default_factory=dict)


def health_verdict(i: HealthInputs) -> Verdict:
    """Decide whether the bot is healthy: the loop runs, the market data is fresh, the WebSocket is
    up, the exchange answers and the kill switch has not tripped."""
    reasons: list[str] = []
    if not i.running or i.client_closed:
        reasons.append("stopped: the trading loop has ended" if i.ever_started else
                       "starting: the trading loop has not started yet")
        return Verdict(False, tuple(reasons), {"running": False})
    scan_limit_s = 2 * i.scan_interval_s + SCAN_GRACE_S
    if _older(i.monitor_age_s, i.run_age_s, MONITOR_STALL_S):
        reasons.append(f"protection loop stalled: no round for {_age(i.monitor_age_s, i.run_age_s)}")
    if _older(i.scan_age_s, i.run_age_s, scan_limit_s):
        reasons.append(f"scan loop stalled: no scan for {_age(i.scan_age_s, i.run_age_s)}")
    if i.exchange_down:
        reasons.append("exchange unreachable: the loop's calls fail")
    ws = i.websocket
    stale: list[str] = []
    tickers: list[str] = []
    if ws.get("enabled"):
        if ws.get("state") != "RUNNING":
            reasons.append(f"WebSocket down ({ws.get('state')}, {ws.get('reconnects', 0)} reconnects)")
        ages = ws.get("data_ages_s") or {}
        tickers = [topic for topic in ages if TICKER_FEED in topic]
        stale = [t for t in tickers if ages[t] is None or ages[t] > i.max_data_age_s]
        if tickers and 2 * len(stale) > len(tickers):
            reasons.append(f"stale data: {len(stale)} of {len(tickers)} ticker feeds older than "
                           f"{i.max_data_age_s:g}s")
    if i.kill_switch:
        reasons.append("kill switch: the daily loss limit is reached, no new entries today")
    checks = {"running": True, "exchange_down": i.exchange_down, "kill_switch": i.kill_switch,
              "stale_feeds": len(stale), "ticker_feeds": len(tickers),
              "websocket": ws.get("state") if ws.get("enabled") else "disabled"}
    return Verdict(not reasons, tuple(reasons), checks)


def _older(age_s: float | None, run_age_s: float | None, limit_s: float) -> bool:
    # Never run yet: stalled once the run itself is older than the limit.
    return (run_age_s or 0.0) > limit_s if age_s is None else age_s > limit_s


def _age(age_s: float | None, run_age_s: float | None) -> str:
    return f"{age_s if age_s is not None else run_age_s or 0.0:.0f}s"


@dataclass(slots=True)
class _OpenTrade:
    qty: int  # signed contracts: long > 0
    avg: float  # average entry price of what is still open
    opened_ms: int
    entry_reason: str | None
    entry_cost: float = 0.0  # sum of contracts x price of the fills that opened it
    entry_qty: int = 0
    exit_cost: float = 0.0
    exit_qty: int = 0
    pnl: float = 0.0
    fees: float = 0.0

    def add(self, contracts: int, price: float, fee: float) -> None:
        held = abs(self.qty)
        self.avg = (held * self.avg + contracts * price) / (held + contracts)
        self.qty += contracts if self.qty > 0 else -contracts
        self.entry_cost += contracts * price
        self.entry_qty += contracts
        self.fees += fee


def closed_trades(rows: list[tuple[Fill, str | None, str | None]]) -> list[dict[str, Any]]:
    """Return the round trips the fills closed, oldest first (one-way positions, average entry).

    `rows` are the journal's (fill, intent kind, intent reason), oldest first; a trade's exit reason
    is the reason of the fill that brought its position back to flat.
    """
    trades: list[dict[str, Any]] = []
    book: dict[str, _OpenTrade] = {}
    for fill, _kind, reason in rows:
        signed = fill.amount if fill.side == "buy" else -fill.amount
        pos = book.get(fill.symbol)
        if pos is None:
            book[fill.symbol] = _OpenTrade(signed, fill.price, fill.ts_ms, reason, fill.amount * fill.price,
                                           fill.amount, fees=fill.fee)
            continue
        if (pos.qty > 0) == (signed > 0):
            pos.add(fill.amount, fill.price, fill.fee)
            continue
        closing = min(fill.amount, abs(pos.qty))
        direction = 1.0 if pos.qty > 0 else -1.0
        pos.pnl += closing * (fill.price - pos.avg) * fill.contract_size * direction
        pos.exit_cost += closing * fill.price
        pos.exit_qty += closing
        pos.fees += fill.fee * closing / fill.amount
        pos.qty += closing if signed > 0 else -closing
        if pos.qty != 0:
            continue
        trades.append({"symbol": fill.symbol, "side": "long" if direction > 0 else "short",
                       "contracts": pos.exit_qty, "entry_price": pos.entry_cost / pos.entry_qty,
                       "exit_price": pos.exit_cost / pos.exit_qty, "opened_ms": pos.opened_ms,
                       "closed_ms": fill.ts_ms, "pnl_usdt": pos.pnl, "fees_usdt": pos.fees,
                       "net_pnl_usdt": pos.pnl - pos.fees, "entry_reason": pos.entry_reason,
                       "exit_reason": reason})
        del book[fill.symbol]
        rest = fill.amount - closing
        if rest:  # the fill flipped the position: the rest opens a new one at its price
            book[fill.symbol] = _OpenTrade(rest if signed > 0 else -rest, fill.price, fill.ts_ms, reason,
                                           rest * fill.price, rest, fees=fill.fee * rest / fill.amount)
    return trades


def thin(points: list[tuple[int, float]], max_points: int) -> list[tuple[int, float]]:
    """Every n-th point (and always the last) so at most about `max_points` remain."""
    if len(points) <= max_points:
        return points
    step = math.ceil(len(points) / max_points)
    kept = points[::step]
    return kept if kept[-1] == points[-1] else [*kept, points[-1]]


class BotView:
    """Reads a running bot for its owner; every method is safe from any thread."""

    def __init__(self, *, trader: Any, client: Any, journal: Any, settings: Any, mode: str,
                 recent: RecentEvents | None = None, monotonic: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.trader = trader
        self.client = client
        self.journal = journal
        self.settings = settings
        self.mode = mode
        self.recent = recent if recent is not None else RecentEvents()
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self.started_ms = int(wall_clock() * 1000)
        self._started_at = monotonic()
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._cached_trades: tuple[float, list[dict[str, Any]]] | None = None

    def uptime_s(self) -> float:
        return self._monotonic() - self._started_at

    def health_inputs(self, client_health: Mapping[str, Any] | None = None) -> HealthInputs:
        loops, now = self.trader.loops, self._monotonic()
        last_scan, last_monitor = loops.rounds().get("scan"), loops.rounds().get("monitor")
        risk = self.trader.risk_state
        client_health = client_health if client_health is not None else self.client.health()
        return HealthInputs(
            running=loops.running, ever_started=loops.started_at is not None,
            monitor_age_s=None if last_monitor is None else now - last_monitor.finished_at,
            scan_age_s=None if last_scan is None else now - last_scan.finished_at,
            run_age_s=None if loops.started_at is None else now - loops.started_at,
            scan_interval_s=self.settings.scan_interval_s, max_data_age_s=self.settings.max_data_age_s,
            websocket=client_health.get("websocket", {}), exchange_down=self.trader.exchange_down,
            kill_switch=bool(risk is not None and risk.tripped), client_closed=bool(client_health.get("closed")))

    def health(self) -> Verdict:
        return health_verdict(self.health_inputs())

    def status(self) -> dict[str, Any]:
        """The status document (cached for STATUS_CACHE_S; a fresh copy each call)."""
        with self._lock:
            now = self._monotonic()
            if self._cached is None or now - self._cached[0] >= STATUS_CACHE_S:
                self._cached = (now, self._build_status())
            return dict(self._cached[1])

    def _build_status(self) -> dict[str, Any]:
        client_health = self.client.health()
        verdict = health_verdict(self.health_inputs(client_health))
        positions = self.trader.position_views()
        fills = self.journal.fills(self.started_ms)
        now_ms = int(self._wall_clock() * 1000)
        curve = self.journal.equity_curve(max(self.started_ms, now_ms - EQUITY_WINDOW_MS))
        risk = self.trader.risk_state
        _trips, realised, _open = replay_fills(fills)
        return {
            "mode": self.mode, "started_ms": self.started_ms, "uptime_s": round(self.uptime_s(), 3),
            "health": {"ok": verdict.ok, "reasons": list(verdict.reasons)},
            "entries_stopped": self.trader.controls.entries_stopped,
            "kill_switch": bool(risk is not None and risk.tripped),
            "universe": len(self.trader.universe), "timeframe": self.settings.timeframe,
            "max_open_positions": self.settings.max_open_positions,
            "positions": [p.to_json() for p in positions],
            "equity_usdt": curve[-1][1] if curve else None,
            "starting_equity_usdt": self.trader.stats.starting_equity,
            "unrealised_pnl_usdt": sum(p.unrealised_pnl_usdt or 0.0 for p in positions),
            "realised_pnl_usdt": realised, "fees_usdt": sum(f.fee for f in fills),
            "funding_usdt": funding_usdt(self.trader.broker_tap.positions),
            "equity_curve": [list(p) for p in thin(curve, EQUITY_POINTS)],
            "feeds": feeds(client_health),
            "loops": self._loops(),
            "events": [e.payload() for e in reversed(self.recent.snapshot()[-RECENT_EVENTS_SHOWN:])],
            "controls": [{"ts_ms": ts, "action": a, "detail": d} for ts, a, d in self.journal.controls(limit=10)],
        }

    def _loops(self) -> dict[str, Any]:
        now = self._monotonic()
        return {name: {"age_s": round(now - r.finished_at, 3), "duration_s": round(r.duration_s, 6), "ok": r.ok}
                for name, r in self.trader.loops.rounds().items()}

    def trades(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest `limit` closed trades of the journal, newest first (replayed from every fill
        at most every STATUS_CACHE_S: a dashboard polling it adds no load on the journal)."""
        with self._lock:
            now = self._monotonic()
            if self._cached_trades is None or now - self._cached_trades[0] >= STATUS_CACHE_S:
                self._cached_trades = (now, closed_trades(self.journal.fills_with_reasons()))
            trades = self._cached_trades[1]
        return list(reversed(trades[-limit:])) if limit > 0 else []


def feeds(client_health: Mapping[str, Any]) -> dict[str, Any]:
    """The market-data and REST side of KuCoinClient.health(), summed up for a person."""
    ws = client_health.get("websocket", {})
    ages = [a for a in (ws.get("data_ages_s") or {}).values() if a is not None]
    summary: dict[str, Any] = {"websocket": {"enabled": bool(ws.get("enabled"))}}
    if ws.get("enabled"):
        summary["websocket"].update(
            state=ws.get("state"), healthy=ws.get("healthy"), reconnects=ws.get("reconnects"),
            messages=ws.get("messages"), feeds=len(ws.get("data_ages_s") or {}),
            newest_age_s=min(ages) if ages else None, oldest_age_s=max(ages) if ages else None)
    summary["rest"] = {key: client_health.get(key) for key in ("rate_limit", "queue_depths", "in_flight",
                                                                "calls_started")}
    summary["source_counts"] = client_health.get("source_counts")
    return summary
