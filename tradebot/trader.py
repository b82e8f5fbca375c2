"""The bot's trading loop: scan the universe, decide, size, journal, place; protection beside it.

Pure decisions live in strategy.py and risk.py; this module does the I/O around them through a
KuCoinClient (market data) and a broker (the client itself when trading for real or on the
simulator, a paper.PaperBroker on paper). A Trader is composed of an OrderDesk (order_desk.py:
every intent journaled with its clientOid before it is sent; an intent whose outcome is unknown
blocks its symbol until it is resolved) and a Guard (protection.py: the holdings, their exits,
position sync and order resolution), which runs on its own thread while the scans run here.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kucoin_futures.errors import ClientClosed, KuCoinError, OrderOutcomeUnknown, TransportError
from kucoin_futures.protocol.types import timeframe_ms
from tradebot.events import EventBus, EventKind
from tradebot.journal import Journal
from tradebot.ops.control import Controls
from tradebot.ops.report import LoopTimes, PositionView, ReadTap, fill_event, position_views
from tradebot.order_desk import OrderDesk, RunStats
from tradebot.outage import OutageLog
from tradebot.records import Fill, Intent
from tradebot.resting import ExchangeStops
from tradebot.holdings import Holding, protection_record
from tradebot.protection import Guard
from tradebot.reconcile import reconcile
from tradebot.risk import (
    DAY_MS,
    ContractTerms,
    RiskLimits,
    RiskState,
    entry_allowed,
    plan_entry,
    update_risk_state,
    utc_day,
)
from tradebot.strategy import (
    HISTORY_CANDLES,
    Action,
    ActionKind,
    Position,
    StrategyParams,
    closed_candles,
    load_strategy,
)

__all__ = ["HISTORY_CANDLES", "OutageLog", "Trader"]

log = logging.getLogger(__name__)

MONITOR_INTERVAL_S = 1.0  # protective exits are checked this often, on their own thread
GUARD_JOIN_S = 3.0
SCAN_LOG_INTERVAL_S = 15.0  # at most one "scan:" line this often


class Trader:
    """One bot run's state and loop. `broker` has the KuCoinClient order/account methods.

    Two threads share it while `run` runs: the caller's scans (market data, strategy, entries)
    and a protection thread (the Guard: exits every MONITOR_INTERVAL_S, order resolution, position
    sync), so a scan waiting on the exchange never delays a stop. A symbol is claimed by one
    thread while an order for it is in flight (the OrderDesk).
    """

    def __init__(self, client: Any, broker: Any, journal: Journal, settings: Any, *,
                 universe: list[str], wall_clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 events: EventBus | None = None, controls: Controls | None = None) -> None:
        self.client = client
        self.broker = broker
        self.journal = journal
        self.settings = settings
        self.universe = universe
        self.limits = RiskLimits.from_settings(settings)
        self.params = StrategyParams.from_settings(settings)
        self.strategy = load_strategy(settings.strategy)
        self.timeframe_ms = timeframe_ms(settings.timeframe)
        self.wall_clock = wall_clock
        self.monotonic = monotonic
        self.stats = RunStats()
        # The owner's view (tradebot/ops): events out, controls in, what the loops did. The
        # protection reads through taps, so the view's prices cost no exchange call.
        self.events = events if events is not None else EventBus()
        self.controls = controls if controls is not None else Controls()
        self.controls.attach(journal)
        self.loops = LoopTimes(monotonic=monotonic)
        self.tap, self.broker_tap = ReadTap(client), ReadTap(broker)
        self._markets: Any = None  # the client's markets, kept once read (position views after a stop)
        journal.add_fill_listener(self._on_fill)
        self._desk = OrderDesk(client, broker, journal, stats=self.stats, wall_clock=wall_clock, events=self.events)
        # Stops rest on the exchange where the broker is the exchange (live, --simulate), not on paper.
        stops = ExchangeStops(client, journal, new_oid=self._desk.new_oid, monotonic=monotonic) \
            if broker is client else None
        self._guard = Guard(self.tap, self.broker_tap, journal, settings, desk=self._desk, limits=self.limits,
                            params=self.params, timeframe_ms=self.timeframe_ms,
                            wall_clock=wall_clock, monotonic=monotonic, stops=stops)
        self._outage = OutageLog()
        self._next_scan_log = 0.0
        self._scan_signals = 0
        self._scan_oldest_s: float | None = None

    # -- the protection side (the Guard) ---------------------------------------------------------
    @property
    def holdings(self) -> dict[str, Holding]:
        return self._guard.holdings

    @property
    def risk_state(self) -> RiskState | None:
        return self._guard.risk_state

    @risk_state.setter
    def risk_state(self, state: RiskState | None) -> None:
        self._guard.risk_state = state  # the Guard flattens on it when the settings ask

    @property
    def blocked(self) -> set[str]:
        """Symbols no new order may be sent for: an intent on them is not final yet."""
        return self._desk.blocked

    def protect(self) -> None:
        self._guard.protect()

    def monitor(self) -> None:
        self._guard.monitor()

    def exit(self, symbol: str, reason: str) -> None:
        self._guard.exit(symbol, reason)

    def sync_positions(self) -> None:
        self._guard.sync_positions()

    def resolve_orders(self) -> None:
        self._guard.resolve_orders()

    def open_pnl(self) -> list[tuple[str, str, int, float | None]]:
        """(symbol, side, contracts, unrealised PnL in USDT) of every open position, marked at the
        last price the protection read: no exchange call (the summary runs during a stop, when a
        REST read may wait out a rate-limit reset)."""
        try:
            views = self.position_views()
        except KuCoinError:  # the client closed before its markets were read once
            return [(symbol, h.side, h.contracts, None) for symbol, h in list(self.holdings.items())]
        return [(v.symbol, v.side, v.contracts, v.unrealised_pnl_usdt) for v in views]

    def position_views(self) -> list[PositionView]:
        """The open positions marked at the last price the protection read (no exchange call)."""
        stops = self._guard.stops
        if self._markets is None:
            self._markets = self.client.markets  # loaded at start; kept for a stop after the client closed
        with self._desk.lock:
            return position_views(self.holdings, self.tap.tickers, self._markets,
                                  has_resting_stop=None if stops is None else stops.has_stop)

    @property
    def exchange_down(self) -> bool:
        """True while the loop's calls fail for want of the exchange (an outage is on)."""
        return self._outage.down

    # -- startup -------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Resolve intents a previous run left open by looking them up (never re-sending them),
        then adopt the exchange's positions with their journaled (or fresh ATR) exits."""
        report = reconcile(self.journal, self._desk.lookup)
        if any(getattr(report, k) for k in report.__dataclass_fields__):
            log.info("journal reconciled: %s", report)
        self._desk.refresh_unresolved()
        self.sync_positions()
        self.controls.restore()

    # -- the loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event, *, duration_s: float | None = None, once: bool = False) -> None:
        """Scan every scan_interval_s in this thread while a protection thread watches exits every
        MONITOR_INTERVAL_S, until `stop`, the deadline, or after one scan with `once`."""
        deadline = None if duration_s is None else self.monotonic() + duration_s
        log.info("trading %d symbols on %s candles, a scan every %gs, exits checked every %gs; "
                 "stop with Ctrl-C (or SIGTERM)", len(self.universe), self.settings.timeframe,
                 self.settings.scan_interval_s, MONITOR_INTERVAL_S)
        finished = threading.Event()
        guard = threading.Thread(target=self._protect_loop, args=(finished,), name="bot-protect",
                                 daemon=True)
        self.loops.start_run()
        guard.start()
        try:
            next_scan = self.monotonic()
            while not stop.is_set():
                now = self.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if now >= next_scan:
                    self._guarded("scan", self.scan, stop)
                    next_scan = now + self.settings.scan_interval_s
                    if once:
                        break
                wait = max(0.0, next_scan - self.monotonic())
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - self.monotonic()))
                stop.wait(wait)
        finally:
            finished.set()
            guard.join(GUARD_JOIN_S)
            self.loops.running = False
            for request in self.controls.take_exit_requests():
                request.resolve("not running")

    def _protect_loop(self, finished: threading.Event) -> None:
        # Protection goes on while a stopping scan unwinds; it ends with the run.
        while not finished.is_set():
            self._guarded("monitor", self.protect)
            self._force_exits()
            finished.wait(MONITOR_INTERVAL_S)

    def _force_exits(self) -> None:
        # The owner's force exits (POST /api/v1/forceexit), on this thread through the journaled
        # exit path, never on the web server's thread.
        for request in self.controls.take_exit_requests():
            if request.symbol not in self.holdings:
                request.resolve("not held")
                continue
            self._guarded("force exit", self.exit, request.symbol, "force exit (owner)")
            holding = self.holdings.get(request.symbol)
            request.resolve("closed" if holding is None else "exit sent" if holding.exit_oid is not None
                            else "not closed")

    def _guarded(self, what: str, fn: Callable[..., None], *args: Any) -> None:
        # The exchange may go away mid-run: keep the loop (and the protection) alive. An outage
        # is logged (and published) when it starts, as a reminder at a growing interval, and
        # logged when it ends.
        started, ok = self.monotonic(), False
        try:
            fn(*args)
        except ClientClosed:
            log.debug("%s: client closed", what)
        except TransportError as exc:
            self.stats.scan_errors += 1
            message = self._outage.failed(f"{what}: {exc}", self.monotonic())
            if message is not None:
                log.warning("%s", message)
                self.events.emit(EventKind.ERROR, message, loop=what, error=type(exc).__name__)
        except KuCoinError as exc:
            self.stats.scan_errors += 1
            log.warning("%s failed: %s", what, exc)
            self.events.emit(EventKind.ERROR, f"{what} failed: {exc}", loop=what, error=type(exc).__name__)
        else:
            ok = True
            message = self._outage.recovered(self.monotonic())
            if message is not None:
                log.warning("%s", message)
        finally:
            self.loops.record(what, started, ok)

    def scan(self, stop: threading.Event | None = None) -> None:
        """Decide on every symbol of the universe; enter where the strategy and risk agree."""
        equity, free = self._equity()
        self._update_risk(equity)
        self._scan_signals, self._scan_oldest_s = 0, None
        scanned = entries = 0
        for symbol in self.universe:
            if stop is not None and stop.is_set():
                return
            try:
                entered = self._scan_symbol(symbol, equity, free)
            except (TransportError, OrderOutcomeUnknown):
                raise
            except KuCoinError as exc:
                self.stats.scan_errors += 1
                log.warning("scan %s: %s", symbol, exc)
                continue
            scanned += 1
            if entered:
                entries += 1
                equity, free = self._equity()
        self._log_scan(scanned, self._scan_signals, entries, self._scan_oldest_s)

    def _scan_symbol(self, symbol: str, equity: float, free: float) -> bool:
        rows = self.client.get_ohlcv(symbol, self.settings.timeframe, limit=HISTORY_CANDLES)
        now_ms = int(self.wall_clock() * 1000)
        closed = closed_candles(rows, timeframe_ms=self.timeframe_ms, now_ms=now_ms)
        holding = self.holdings.get(symbol)
        position = Position(holding.side, holding.contracts, holding.entry_price) if holding else Position()
        action = self.strategy(closed, position, self.params)
        if action.kind is ActionKind.EXIT and holding is not None:
            if self._guard.confirm_held(symbol):
                self.exit(symbol, f"strategy: {action.reason}")
        elif action.is_entry:
            self._scan_signals += 1
            return self._maybe_enter(symbol, action, equity, free)
        return False

    def _maybe_enter(self, symbol: str, action: Action, equity: float, free: float) -> bool:
        ticker = self.tap.get_ticker(symbol)  # through the tap: the scan log marks a new position at it
        age_s = None if ticker.get("timestamp") is None else max(0.0, self.wall_clock() - ticker["timestamp"] / 1000)
        if age_s is not None:
            self._scan_oldest_s = age_s if self._scan_oldest_s is None else max(self._scan_oldest_s, age_s)
        open_symbols = self._guard.open_symbols()
        ok, reason = entry_allowed(symbol, open_symbols=open_symbols, state=self.risk_state,
                                   limits=self.limits, data_age_s=age_s,
                                   ws_reconnecting=self._ws_reconnecting())
        if ok and self.controls.entries_stopped:
            ok, reason = False, "entries stopped by the owner (POST /api/v1/startentry resumes them)"
        if not ok:
            log.debug("no entry on %s: %s", symbol, reason)
            return False
        market = self.client.markets[symbol]
        long = action.kind is ActionKind.ENTER_LONG
        # the backtest sizes and protects with the same plan_entry (tradebot/backtest/engine.py)
        plan = plan_entry(action, price=ticker["ask"] if long else ticker["bid"], equity=equity,
                          free_margin=free, terms=ContractTerms.from_market(market), limits=self.limits)
        if plan is None:
            log.info("no entry on %s: size rounds to 0 lots", symbol)
            return False
        side, size, leverage, price, planned = plan.side, plan.contracts, plan.leverage, plan.price, plan.exits
        with self._desk.claim(symbol) as claimed:
            if not claimed or self.controls.entries_stopped:  # a stop that came while this was sized
                return False
            # A second line against a double entry: the holdings may lag the exchange (a position
            # not adopted yet), and one entry on a position already open doubles it.
            try:
                on_exchange = self._guard.exchange_contracts(symbol)
            except KuCoinError as exc:
                log.warning("no entry on %s: the exchange's positions could not be read (%s)", symbol, exc)
                return False
            if on_exchange:
                log.warning("no entry on %s: the exchange holds %d lots the bot has not adopted yet",
                            symbol, on_exchange)
                return False
            oid = self._desk.new_oid()
            protection = protection_record(symbol, oid, planned, action.atr)
            sent = self._desk.send(oid, symbol, "buy" if long else "sell", size, kind="entry",
                                   leverage=leverage, reason=action.reason,
                                   contract_size=float(market["contractSize"]), protection=protection)
            if sent.status in ("rejected", "canceled"):
                self.journal.delete_protection(symbol)
                return False
            holding = Holding(side, size, price, planned, action.atr, entry_oid=oid, confirmed=False)
            self._guard.hold(symbol, holding)
            if sent.status == "filled":
                self._guard.confirm_entry(symbol, holding, sent.order or {})
            else:
                log.warning("entry %s on %s %s, fill not read yet: held as open (%d lots) and "
                            "protected until the exchange says otherwise", oid, symbol, sent.status, size)
        return True

    # -- what the bot is doing ------------------------------------------------------------------
    def _log_scan(self, scanned: int, signals: int, entered: int, oldest_age_s: float | None) -> None:
        """One INFO line a scan (at most one every SCAN_LOG_INTERVAL_S): what was scanned and
        decided, the open positions with their unrealised PnL, and the oldest data seen."""
        now = self.monotonic()
        if now < self._next_scan_log:
            return
        self._next_scan_log = now + SCAN_LOG_INTERVAL_S
        held = self.open_pnl()
        parts = [f"{symbol} {side} {contracts} " + ("(no price)" if upnl is None else f"uPnL {upnl:+.2f}")
                 for symbol, side, contracts, upnl in held]
        age = "n/a" if oldest_age_s is None else f"{oldest_age_s:.1f}s"
        log.info("scan: %d symbols, %d signals, %d entered; open %d/%d%s; oldest data %s", scanned, signals,
                 entered, len(held), self.limits.max_open_positions, f" ({'; '.join(parts)})" if parts else "", age)

    # -- account -------------------------------------------------------------------------------
    def _equity(self) -> tuple[float, float]:
        usdt = self.broker.get_balance()["USDT"]
        total, free = float(usdt.get("total") or 0), float(usdt.get("free") or 0)
        self.journal.record_equity(total, free=free)
        if self.stats.starting_equity is None:
            self.stats.starting_equity = total
        return total, free

    def _update_risk(self, equity: float) -> None:
        now_ms = int(self.wall_clock() * 1000)
        day_start = None
        if self.risk_state is None:
            day_start = self.journal.first_equity_since(utc_day(now_ms) * DAY_MS)
        was_tripped = self.risk_state is not None and self.risk_state.tripped
        self.risk_state = update_risk_state(self.risk_state, equity=equity, now_ms=now_ms,
                                            limits=self.limits, day_start_equity=day_start)
        if self.risk_state.tripped and not was_tripped:  # once, not at every scan
            log.warning("daily loss limit reached: no new entries today")
            state = self.risk_state
            self.events.emit(EventKind.KILL_SWITCH, f"daily loss limit reached ({state.loss_fraction(equity):.1%} of "
                             f"the day's starting equity): no new entries until the next UTC day",
                             equity_usdt=equity, day_start_equity_usdt=state.start_equity,
                             loss_fraction=round(state.loss_fraction(equity), 6),
                             flatten=self.limits.flatten_on_daily_loss)

    def _on_fill(self, intent: Intent, fill: Fill) -> None:
        # The journal recorded a fill (on whichever thread applied it): an entry or an exit event.
        holding = self.holdings.get(intent.symbol)
        kind, message, details = fill_event(intent, fill, entry_price=None if holding is None else holding.entry_price)
        self.events.emit(kind, message, **details)

    def _ws_reconnecting(self) -> bool:
        ws = self.client.websocket
        return ws is not None and ws.state.name == "RECONNECTING"
