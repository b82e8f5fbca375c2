"""The backtest loop: the live bot's strategy and risk rules replayed over candles, portfolio-wide.

    result = run_backtest(history, trend_momentum, BacktestConfig(limits=..., params=...))

No rule is written twice: the strategy's ``decide`` (strategy.py), ``entry_allowed`` (max open
positions, the daily loss kill switch), ``plan_entry`` (sizing at the contract-capped leverage
within MARGIN_HEADROOM of the free margin), ``ProtectiveExit.from_entry`` (exits re-anchored on
the fill price), ``update_trailing``/``check_exit`` through ``candle_exit``, ``update_risk_state``
and ``liquidation_price`` are risk.py's, the functions the live trader calls.

Time runs candle by candle over the union of the symbols' candles. At each candle's open, in
this order: funding settles (settlements at or before the open, positions opened before them);
exits decided at the last close fill; entries decided at the last close fill at this open (no
look-ahead: a decision on candle t fills at t+1's open; one whose next candle is missing is
dropped); then every open position meets the candle's path (``candle_exit``: the open, the
adverse extreme, then the favourable one; stop first when both are touched; a gap through a
level fills at the open; liquidation at the liquidation price, losing the margin). At the close:
equity is marked, the risk state updated (a tripped switch with FLATTEN_ON_DAILY_LOSS exits every
position at the next open), and the strategy decides on the candle just closed (exit signals for
held symbols, entries in universe order where ``entry_allowed`` lets them in). Every order is a
market order at the taker fee, with slippage (costs.py). The account is the paper broker's:
isolated margin per position, free = wallet - margins, equity = wallet + unrealised PnL.

A series is cut at its gaps: the strategy's signals are computed per contiguous run (they warm
up again after a gap), so nothing is bridged. Only the candles the strategy flags (``Signals``
masks) and the open positions are touched at each step.
"""
from __future__ import annotations

import bisect
import collections
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kucoin_futures.protocol.types import timeframe_ms
from tradebot.backtest.costs import CostModel
from tradebot.backtest.data import History
from tradebot.risk import (
    ContractTerms,
    EntryPlan,
    ProtectiveExit,
    RiskLimits,
    RiskState,
    candle_exit,
    entry_allowed,
    liquidation_price,
    plan_entry,
    update_risk_state,
    update_trailing,
    utc_day,
)
from tradebot.strategy import (
    FLAT,
    HISTORY_CANDLES,
    Action,
    ActionKind,
    Position,
    SignalStrategy,
    Signals,
    Strategy,
    StrategyParams,
)

__all__ = ["BacktestConfig", "BacktestResult", "Trade", "as_signal_strategy", "run_backtest"]

EXIT_SIGNAL, FLATTEN, END_OF_DATA = "exit_signal", "daily_loss_flatten", "end_of_data"


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    limits: RiskLimits
    params: StrategyParams
    costs: CostModel = field(default_factory=CostModel)
    starting_balance_usdt: float = 10_000.0


@dataclass(frozen=True, slots=True)
class Trade:
    """One round trip; money in USDT, `pnl_usdt` net of fees and funding (costs positive when paid)."""

    symbol: str
    side: str
    opened_ms: int
    closed_ms: int
    entry_price: float
    exit_price: float
    contracts: int
    pnl_usdt: float
    fees_usdt: float
    funding_usdt: float
    exit_reason: str


@dataclass(frozen=True, slots=True)
class BacktestResult:
    trades: tuple[Trade, ...]
    equity_ms: np.ndarray  # each candle's close time
    equity_usdt: np.ndarray  # wallet + unrealised PnL at that close
    starting_balance_usdt: float
    refused_entries: int  # entries the free margin could not pay at the fill
    blocked_entries: dict[str, int]  # entry signals entry_allowed refused, by reason
    kill_switch_days: tuple[int, ...]  # UTC days (utc_day) on which the daily loss limit tripped


class _Symbol:
    """One symbol's candles as lists (fast scalar access), its signals per contiguous run."""

    def __init__(self, name: str, rows: np.ndarray, funding: np.ndarray, terms: ContractTerms,
                 strategy: SignalStrategy, params: StrategyParams, span_ms: int) -> None:
        self.name, self.terms = name, terms
        ts = rows[:, 0].astype(np.int64)
        self.ts = ts.tolist()
        self.open, self.high, self.low, self.close = (rows[:, k].tolist() for k in (1, 2, 3, 4))
        cuts = [0, *(np.flatnonzero(np.diff(ts) != span_ms) + 1).tolist(), len(ts)]
        self.runs: list[tuple[int, Signals]] = []
        parts = []
        for a, b in zip(cuts, cuts[1:]):
            signals = strategy.signals(rows[a:b], params)
            self.runs.append((a, signals))
            parts.append(signals)
        self.run_of = np.repeat(np.arange(len(parts)), np.diff(cuts)).tolist()
        self.enter = np.concatenate([p.enter_long | p.enter_short for p in parts]) if parts else np.zeros(0, bool)
        self.exit_long = np.concatenate([p.exit_long for p in parts]).tolist() if parts else []
        self.exit_short = np.concatenate([p.exit_short for p in parts]).tolist() if parts else []
        self.funding_ms = funding[:, 0].astype(np.int64).tolist()
        self.funding_rate = funding[:, 1].tolist()
        self.at: list[int] = []  # grid step -> row, or -1 (set by the run)

    def signals_at(self, row: int) -> tuple[Signals, int]:
        start, signals = self.runs[self.run_of[row]]
        return signals, row - start


@dataclass(slots=True)
class _Position:
    symbol: _Symbol
    side: str
    contracts: int
    entry_price: float
    opened_ms: int
    margin: float
    exits: ProtectiveExit
    liquidation: float
    bankrupt: float
    entry_fee: float
    funding_next: int
    last_close: float
    funding: float = 0.0


@dataclass(frozen=True, slots=True)
class _PerWindow:
    # A plain strategy in the two-part form: no vectorisation, decided on each candle's window of
    # the HISTORY_CANDLES closed candles the live bot would pass it.
    strategy: Strategy

    def signals(self, rows: np.ndarray, params: StrategyParams) -> Signals:
        every = np.ones(len(rows), dtype=bool)
        return Signals(rows[:, 4], np.full(len(rows), np.nan), every, every, every, every, rows=rows)

    def decide(self, signals: Signals, i: int, position: Position, params: StrategyParams) -> Action:
        assert signals.rows is not None
        return self.strategy(signals.rows[max(0, i + 1 - HISTORY_CANDLES):i + 1], position, params)


def as_signal_strategy(strategy: Strategy) -> SignalStrategy:
    """Return `strategy` (the STRATEGY setting's callable) in the two-part form: itself when it is
    one, else a wrapper that calls the plain function on each candle's window of HISTORY_CANDLES
    candles, as the live bot would (correct, not fast: every candle is asked)."""
    if isinstance(strategy, SignalStrategy):
        return strategy
    wrapped = _PerWindow(strategy)
    return SignalStrategy(wrapped.signals, wrapped.decide)


def run_backtest(history: History, strategy: SignalStrategy, config: BacktestConfig, *,
                 symbols: Sequence[str] | None = None) -> BacktestResult:
    """Replay `strategy` and the risk rules over `history` (module doc); `symbols` in universe order."""
    return _Run(history, strategy, config, list(symbols or history.series)).run()


class _Run:
    def __init__(self, history: History, strategy: SignalStrategy, config: BacktestConfig,
                 order: list[str]) -> None:
        self.span = timeframe_ms(history.timeframe)
        self.strategy, self.config = strategy, config
        self.limits, self.params, self.costs = config.limits, config.params, config.costs
        self.symbols = [_Symbol(s, history.series[s].rows, history.series[s].funding,
                                ContractTerms.from_market(history.markets[s]), strategy, config.params, self.span)
                        for s in order if len(history.series[s].rows)]
        stamps = [np.asarray(sym.ts, dtype=np.int64) for sym in self.symbols]
        self.grid = np.unique(np.concatenate(stamps)) if stamps else np.zeros(0, np.int64)
        self.candidates: dict[int, list[_Symbol]] = collections.defaultdict(list)
        for sym, ts in zip(self.symbols, stamps):
            at = np.full(len(self.grid), -1, dtype=np.int64)
            steps = np.searchsorted(self.grid, ts)
            at[steps] = np.arange(len(ts))
            sym.at = at.tolist()
            for step in steps[sym.enter].tolist():
                self.candidates[step].append(sym)  # symbols in universe order at each step
        self.wallet = config.starting_balance_usdt
        self.positions: dict[str, _Position] = {}
        self.exits_due: dict[str, str] = {}  # symbol -> reason, filled at its next open
        self.entries_due: dict[str, tuple[_Symbol, int, float, EntryPlan]] = {}
        self.state: RiskState | None = None
        self.trades: list[Trade] = []
        self.refused = 0
        self.blocked: collections.Counter[str] = collections.Counter()
        self.tripped_days: list[int] = []

    def run(self) -> BacktestResult:
        equity = np.empty(len(self.grid))
        for g, t in enumerate(self.grid.tolist()):
            if self.positions:
                self._settle_funding(g, t)
            if self.exits_due:
                self._fill_exits(g, t)
            if self.entries_due:
                self._fill_entries(g, t)
            if self.positions:
                self._protect(g, t)
            equity[g] = self._mark()
            self._update_risk(equity[g], t + self.span)
            self._decide(g)
        for pos in list(self.positions.values()):
            last = pos.symbol.ts[-1] + self.span
            self._close(pos, self.costs.fill_price(pos.last_close, buy=pos.side == "short"), last, END_OF_DATA)
        if len(equity):
            equity[-1] = self.wallet
        return BacktestResult(tuple(self.trades), self.grid + self.span, equity, self.config.starting_balance_usdt,
                              self.refused, dict(self.blocked), tuple(self.tripped_days))

    # -- at the open ------------------------------------------------------------------------------
    def _settle_funding(self, g: int, t: int) -> None:
        for pos in self.positions.values():
            sym = pos.symbol
            while pos.funding_next < len(sym.funding_ms) and sym.funding_ms[pos.funding_next] <= t:
                row = sym.at[g]
                price = sym.open[row] if row >= 0 else pos.last_close
                paid = self.costs.funding(pos.side, pos.contracts, sym.terms.multiplier, price,
                                          sym.funding_rate[pos.funding_next])
                pos.funding += paid
                self.wallet -= paid
                pos.funding_next += 1

    def _fill_exits(self, g: int, t: int) -> None:
        for name, reason in list(self.exits_due.items()):
            pos = self.positions[name]
            row = pos.symbol.at[g]
            if row < 0:
                continue  # no candle now: at its next one
            del self.exits_due[name]
            self._close(pos, self.costs.fill_price(pos.symbol.open[row], buy=pos.side == "short"), t, reason)

    def _fill_entries(self, g: int, t: int) -> None:
        due, self.entries_due = self.entries_due, {}
        for sym, decided_row, atr, plan in due.values():
            row = sym.at[g]
            if row != decided_row + 1 or sym.ts[row] != sym.ts[decided_row] + self.span:
                continue  # the next candle is missing: the signal is stale
            terms, long = sym.terms, plan.side == "long"
            price = self.costs.fill_price(sym.open[row], buy=long)
            margin = plan.contracts * terms.multiplier * price / plan.leverage
            fee = self.costs.fee(plan.contracts, terms.multiplier, price, terms.taker_fee_rate)
            if margin + fee > self._free() * (1 + 1e-9):
                self.refused += 1  # the exchange would refuse it (300003)
                continue
            self.wallet -= fee
            exits = ProtectiveExit.from_entry(plan.side, price, atr, limits=self.limits)  # re-anchored
            liq, bankrupt = liquidation_price(plan.side, price, contracts=plan.contracts, multiplier=terms.multiplier,
                                              margin=margin, maintenance_margin_rate=terms.maintenance_margin_rate)
            self.positions[sym.name] = _Position(
                sym, plan.side, plan.contracts, price, t, margin, exits, liq, bankrupt, fee,
                bisect.bisect_right(sym.funding_ms, t), sym.close[row])

    def _protect(self, g: int, t: int) -> None:
        for pos in list(self.positions.values()):
            sym = pos.symbol
            row = sym.at[g]
            if row < 0 or sym.name in self.exits_due:
                continue
            o, h, low = sym.open[row], sym.high[row], sym.low[row]
            hit = candle_exit(pos.exits, open_price=o, high=h, low=low, liquidation_price=pos.liquidation)
            if hit is None:
                pos.exits = update_trailing(pos.exits, h if pos.side == "long" else low)
                pos.last_close = sym.close[row]
                continue
            reason, level = hit
            closed_ms = t if level == o else t + self.span
            if reason == "liquidation":
                self._close(pos, pos.bankrupt, closed_ms, reason, fee_rate=0.0)
            else:
                self._close(pos, self.costs.fill_price(level, buy=pos.side == "short"), closed_ms, reason)

    # -- at the close -----------------------------------------------------------------------------
    def _mark(self) -> float:
        upnl = sum((1 if p.side == "long" else -1) * p.contracts * p.symbol.terms.multiplier
                   * (p.last_close - p.entry_price) for p in self.positions.values())
        return self.wallet + upnl

    def _update_risk(self, equity: float, close_ms: int) -> None:
        was = self.state is not None and self.state.tripped
        self.state = update_risk_state(self.state, equity=equity, now_ms=close_ms, limits=self.limits)
        if self.state.tripped and not was:
            self.tripped_days.append(utc_day(close_ms))
        if self.state.must_flatten(self.limits):
            for name in self.positions:
                self.exits_due.setdefault(name, FLATTEN)

    def _decide(self, g: int) -> None:
        decide, params = self.strategy.decide, self.params
        for name, pos in self.positions.items():
            sym = pos.symbol
            row = sym.at[g]
            if row < 0 or name in self.exits_due:
                continue
            if (sym.exit_long if pos.side == "long" else sym.exit_short)[row]:
                signals, i = sym.signals_at(row)
                action = decide(signals, i, Position(pos.side, pos.contracts, pos.entry_price), params)  # type: ignore[arg-type]
                if action.kind is ActionKind.EXIT:
                    self.exits_due[name] = EXIT_SIGNAL
        candidates = self.candidates.get(g)
        if candidates:
            self._enter(g, candidates)

    def _enter(self, g: int, candidates: list[_Symbol]) -> None:
        equity, free = self._mark(), self._free()
        held = set(self.positions) | set(self.entries_due)  # open or ordered: each counts (the live rule)
        state, limits, blocked = self.state, self.limits, self.blocked
        for sym in candidates:
            if sym.name in held:
                continue
            ok, reason = entry_allowed(sym.name, open_symbols=held, state=state, limits=limits,
                                       data_age_s=0.0, ws_reconnecting=False)
            if not ok:
                blocked[reason] += 1
                continue
            row = sym.at[g]
            signals, i = sym.signals_at(row)
            action = self.strategy.decide(signals, i, FLAT, self.params)
            if not action.is_entry:
                continue
            long = action.kind is ActionKind.ENTER_LONG
            plan = plan_entry(action, price=self.costs.fill_price(sym.close[row], buy=long), equity=equity,
                              free_margin=free, terms=sym.terms, limits=self.limits)
            if plan is None:
                self.blocked["size rounds to 0 lots"] += 1
                continue
            self.entries_due[sym.name] = (sym, row, float(action.atr), plan)  # type: ignore[arg-type]
            held.add(sym.name)
            value = plan.contracts * sym.terms.multiplier * plan.price
            free -= value / plan.leverage + value * sym.terms.taker_fee_rate

    # -- the account ------------------------------------------------------------------------------
    def _free(self) -> float:
        return self.wallet - sum(p.margin for p in self.positions.values())

    def _close(self, pos: _Position, price: float, closed_ms: int, reason: str, *,
               fee_rate: float | None = None) -> None:
        terms = pos.symbol.terms
        rate = terms.taker_fee_rate if fee_rate is None else fee_rate
        fee = self.costs.fee(pos.contracts, terms.multiplier, price, rate)
        gross = (1 if pos.side == "long" else -1) * pos.contracts * terms.multiplier * (price - pos.entry_price)
        self.wallet += gross - fee
        del self.positions[pos.symbol.name]
        self.exits_due.pop(pos.symbol.name, None)
        fees = pos.entry_fee + fee
        self.trades.append(Trade(pos.symbol.name, pos.side, pos.opened_ms, closed_ms, pos.entry_price, price,
                                 pos.contracts, gross - fees - pos.funding, fees, pos.funding, reason))
