"""The protection side of a run: the positions the bot holds and the exits that close them.

A Guard adopts what the exchange holds (with the journaled exits, else exits from the current ATR),
keeps each position's stop and take profit resting on the exchange (``stops``: live and simulated
runs), checks every position's stop / take profit / trailing stop on the latest price as a second
line, sends the exit, re-reads the exchange's positions now and then (booking the exits its stops
made), and resolves orders whose outcome was not read by looking them up. Trader.run calls `protect` on its own thread, so a scan waiting on the exchange
never delays a stop.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from kucoin_futures.errors import KuCoinError
from tradebot.account_watch import AccountWatch
from tradebot.events import EventKind
from tradebot.holdings import Holding, exits_of, fmt_price, protection_record
from tradebot.journal import Journal
from tradebot.order_desk import OrderDesk, with_fee
from tradebot.records import RESTING_KINDS, Intent
from tradebot.resting import ExchangeStops, Held, StopFilled
from tradebot.risk import (
    ProtectiveExit,
    RiskLimits,
    RiskState,
    check_exit,
    effective_leverage,
    update_trailing,
)
from tradebot.strategy import HISTORY_CANDLES, StrategyParams, atr, closed_candles, ohlc_arrays

# The run's trade lines keep the logger they had before the Trader was cut in three (operators'
# logging settings and tests filter on it), not getLogger(__name__).
log = logging.getLogger("tradebot.trader")

RESOLVE_INTERVAL_S = 2.0  # orders whose outcome is not known are looked up this often
SYNC_INTERVAL_S = 15.0  # the exchange's positions are re-read this often
EXIT_RETRY_S = 5.0  # after an exit was refused, wait this long (and re-read positions) first
SECOND_LINE_S = 2.0  # an exit a resting stop should make: the bot's own waits this long for it
RESTING_RETRY_S = 1.0  # a resting stop that could not be placed is tried again after this (doubling)


class Guard:
    """The holdings of one run and their protection; orders go out through `desk`, whose lock
    guards the holdings too. `risk_state` is the scans' latest (it may ask to flatten)."""

    def __init__(self, client: Any, broker: Any, journal: Journal, settings: Any, *, desk: OrderDesk,
                 limits: RiskLimits, params: StrategyParams, timeframe_ms: int,
                 wall_clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic, stops: ExchangeStops | None = None) -> None:
        self.client = client
        self.stops = stops
        # where the exchange is the broker, its private feed's events (liquidation, funding, fills)
        self.watch = AccountWatch(journal, desk.events, contract_size=self._contract_size) \
            if stops is not None else None
        self.broker = broker
        self.journal = journal
        self.settings = settings
        self.limits = limits
        self.params = params
        self.timeframe_ms = timeframe_ms
        self.wall_clock = wall_clock
        self.monotonic = monotonic
        self.stats = desk.stats
        self.holdings: dict[str, Holding] = {}
        self.risk_state: RiskState | None = None
        self._desk = desk
        self._lock = desk.lock
        self._next_sync = 0.0
        self._next_resolve = 0.0

    def open_symbols(self) -> set[str]:
        """Symbols held, or with an order not final yet: each counts as an open position."""
        with self._lock:
            return set(self.holdings) | self._desk.blocked

    def exchange_contracts(self, symbol: str) -> int:
        """The contracts the exchange holds in ``symbol``, read now (raises ``KuCoinError``)."""
        return sum(int(p.get("contracts") or 0) for p in self.broker.get_positions() if p.get("symbol") == symbol)

    def confirm_held(self, symbol: str) -> bool:
        """Before an exit that is not protection (a strategy's): False when the exchange holds no
        position in ``symbol`` (a resting stop closed it and the holdings lag until the next
        sync: the exit would be empty); the next protection tick re-reads the exchange. A read
        that fails says True: the exit is reduce-only."""
        try:
            if self.exchange_contracts(symbol):
                return True
        except KuCoinError as exc:
            log.debug("%s: positions not read before an exit (%s); sending it", symbol, exc)
            return True
        log.info("%s: exit not sent: the exchange holds no position (a resting stop closed it?); re-reading "
                 "the exchange", symbol)
        self._next_sync = 0.0
        return False

    def hold(self, symbol: str, holding: Holding) -> None:
        with self._lock:
            self.holdings[symbol] = holding

    # -- the exchange's positions ----------------------------------------------------------------
    def sync_positions(self, *, force_rest: bool = False) -> None:
        """Make the holdings what the exchange holds: adopt positions we do not know (with their
        journaled exits, else exits from the current ATR), drop those that are gone. Symbols with
        an order in flight or an intent not yet final are left alone until it is resolved.
        ``force_rest``: read over REST, not the private feed's caches (a push may be in flight)."""
        settled = self.stops.settle(force_rest=force_rest) if self.stops is not None else []  # before the positions
        read = self.broker.get_positions(force_rest=True) if force_rest else self.broker.get_positions()
        current = {p["symbol"]: p for p in read if p.get("contracts")}
        self._desk.refresh_unresolved()
        for filled in settled:
            self._stop_filled(filled)
        with self._lock:
            skip = self._desk.blocked
            symbols = (set(self.holdings) | set(current)) - skip
        for symbol in sorted(symbols):
            pos, holding = current.get(symbol), self.holdings.get(symbol)
            if pos is None:
                if holding is not None:
                    log.info("%s is flat on the exchange: no longer held", symbol)
                    self._forget(symbol)
                continue
            side, contracts = str(pos["side"]), int(pos["contracts"])
            if holding is None or holding.side != side:
                self._adopt(symbol, side, contracts, float(pos.get("entryPrice") or 0))
            elif holding.contracts != contracts or not holding.confirmed:
                with self._lock:
                    holding.contracts, holding.confirmed = contracts, True
        if self.stops is not None:
            with self._lock:
                held = {s: Held(h.side, h.contracts, h.exits) for s, h in self.holdings.items()
                        if s in current and s not in skip and h.exits is not None and h.exit_oid is None}
            for filled in self.stops.reconcile(held, keep=set(current) | skip):
                self._stop_filled(filled)

    def _stop_filled(self, filled: StopFilled) -> None:
        """An exit a resting stop made (booked in the journal by the stops): the holding goes."""
        symbol, order = filled.symbol, filled.order
        with self._lock:
            holding = self.holdings.pop(symbol, None)
        self.journal.delete_protection(symbol)
        self.stats.exits += 1
        if self.stops is not None:
            for other in self.stops.clear(symbol):  # the take-profit left behind
                log.info("%s: resting %s %s filled too", symbol, other.kind, other.intent.client_oid)
        price = float(order.get("average") or 0)
        filled_lots = int(round(float(order.get("filled") or 0)))
        what = "stop" if filled.kind == "stop" else "take profit"
        if holding is not None and price:
            sign = 1.0 if holding.side == "long" else -1.0
            pnl = sign * filled_lots * self._contract_size(symbol) * (price - holding.entry_price)
            log.info("closed %s %s (resting %s on the exchange): %d lots at %s, gross PnL %+.2f USDT",
                     holding.side, symbol, what, filled_lots, price, pnl)
        else:  # it filled before this process held the position (e.g. while the bot was down)
            log.info("closed %s (resting %s on the exchange): %d lots at %s", symbol, what, filled_lots, price)
        if filled.kind == "stop":  # the exit itself was announced when its fill was booked (journal listener)
            self._desk.events.emit(EventKind.STOP_TRIGGERED, f"resting {what} closed {symbol}: {filled_lots} lots at "
                                   f"{price}", symbol=symbol, reason=filled.kind, contracts=filled_lots, price=price,
                                   resting=True, client_oid=filled.intent.client_oid)

    def _adopt(self, symbol: str, side: str, contracts: int, entry_price: float) -> None:
        saved = self.journal.protection(symbol)
        holding = Holding(side, contracts, entry_price)
        if saved is not None and saved.side == side:
            holding.exits, holding.atr = exits_of(saved), saved.atr
            holding.entry_oid = saved.client_oid
            log.info("adopted %s %s %d lots at %s with its journaled exits (stop %.6g, take profit %s)",
                     side, symbol, contracts, entry_price, holding.exits.stop_price,
                     fmt_price(holding.exits.take_profit_price))
        with self._lock:
            self.holdings[symbol] = holding
        self.stats.adopted += 1
        if holding.exits is None:
            self._protect_from_atr(symbol, holding)

    def _protect_from_atr(self, symbol: str, holding: Holding) -> None:
        """Give a position the journal knows no exits for the configured ATR rules, from the
        current candles (retried at the next monitor tick if the data cannot be read)."""
        try:
            atr = self._current_atr(symbol)
        except KuCoinError as exc:
            log.warning("%s: cannot read candles for its stop yet, will retry: %s", symbol, exc)
            return
        if atr is None or holding.entry_price <= 0:
            log.warning("%s: not enough data for an ATR stop yet, will retry", symbol)
            return
        exits = ProtectiveExit.from_entry(holding.side, holding.entry_price, atr, limits=self.limits)
        with self._lock:
            holding.exits, holding.atr = exits, atr
        self._save_protection(symbol, holding)
        log.warning("%s %s has no journaled exits: set from the current ATR %.6g (stop %.6g, take "
                    "profit %.6g)", holding.side, symbol, atr, exits.stop_price, exits.take_profit_price)

    def _current_atr(self, symbol: str) -> float | None:
        rows = self.client.get_ohlcv(symbol, self.settings.timeframe, limit=HISTORY_CANDLES)
        now_ms = int(self.wall_clock() * 1000)
        closed = closed_candles(rows, timeframe_ms=self.timeframe_ms, now_ms=now_ms)
        if len(closed) <= self.params.atr_period:
            return None
        high, low, close = ohlc_arrays(closed)
        value = float(atr(high, low, close, self.params.atr_period)[-1])
        return value if math.isfinite(value) and value > 0 else None

    # -- protection ----------------------------------------------------------------------------
    def protect(self) -> None:
        """One protection tick: resolve orders whose outcome is not known, re-read the exchange's
        positions now and then, and check every open position's exits."""
        now = self.monotonic()
        if self.watch is not None:  # the private feed's news: no REST polled for it
            with self._lock:
                held = {s: (h.side, h.contracts) for s, h in self.holdings.items()}
            if self.watch.handle(self.client.account_events(0.0), held):
                self._next_sync = 0.0
        if now >= self._next_resolve:
            self._next_resolve = now + RESOLVE_INTERVAL_S
            self.resolve_orders()
        if now >= self._next_sync:
            self._next_sync = now + SYNC_INTERVAL_S
            self.sync_positions()
        self.monitor()

    def monitor(self) -> None:
        """Check stop / take profit / trailing of every open position on the latest ticker."""
        with self._lock:
            held = list(self.holdings.items())
        for symbol, holding in held:
            if self.holdings.get(symbol) is not holding:
                continue  # closed or replaced since the snapshot (a sync for another symbol)
            if holding.exits is None:
                self._protect_from_atr(symbol, holding)
                if holding.exits is None:
                    continue
            if holding.exit_oid is not None:
                continue  # an exit is out; its outcome is resolved first
            if self.stops is not None and holding.confirmed:
                self._keep_resting(symbol, holding)
            ticker = self.client.get_ticker(symbol)
            last = ticker.get("last") or (ticker["bid"] + ticker["ask"]) / 2
            if not (isinstance(last, float | int) and math.isfinite(last) and last > 0):
                log.warning("%s: no usable price to check its exits (%r)", symbol, last)
                continue
            exits = update_trailing(holding.exits, last)
            if exits != holding.exits:
                with self._lock:
                    holding.exits = exits
                self._save_protection(symbol, holding)
                if self.stops is not None:
                    self.stops.trail(symbol, Held(holding.side, holding.contracts, exits))
            reason = check_exit(exits, last)
            if reason is None and self.stops is not None and self.stops.stop_passed(symbol):
                reason = "stop"  # the mark passed the stop (what the exchange's stop watches), if not the last price
            if reason is None:
                holding.resting_due_at = None
            elif self._second_line_due(symbol, holding, reason):
                self.exit(symbol, reason)
        if self.risk_state is not None and self.risk_state.must_flatten(self.limits) and self.holdings:
            for symbol in list(self.holdings):
                self.exit(symbol, "daily loss limit: flatten")

    def _keep_resting(self, symbol: str, holding: Holding) -> None:
        """Place a stop or take-profit missing on the exchange (a refusal, a rate limit), retrying
        with a doubling pause from RESTING_RETRY_S up to SYNC_INTERVAL_S."""
        assert self.stops is not None and holding.exits is not None
        self.stops.tidy()
        if self.stops.complete(symbol, holding.exits) or self.monotonic() < holding.resting_retry_at:
            return
        self.stops.protect(symbol, Held(holding.side, holding.contracts, holding.exits))
        if self.stops.complete(symbol, holding.exits):
            holding.resting_pause_s = 0.0
            return
        holding.resting_pause_s = min(max(2 * holding.resting_pause_s, RESTING_RETRY_S), SYNC_INTERVAL_S)
        holding.resting_retry_at = self.monotonic() + holding.resting_pause_s

    def _second_line_due(self, symbol: str, holding: Holding, reason: str) -> bool:
        """True when the bot itself must exit on `reason`. Where a resting stop (or take-profit) of
        that exit waits on the exchange, it is the first line: the bot gives it SECOND_LINE_S, then
        re-reads the exchange (settling its stops) and exits only if the position is still there."""
        kind = "take_profit" if reason == "take_profit" else "stop"
        exits = holding.exits
        price = exits.take_profit_price if kind == "take_profit" else exits.stop_price  # type: ignore[union-attr]
        if self.stops is None or price is None or not self.stops.covers(symbol, kind, holding.side, price):
            return True  # nothing rests that fires there (yet): the bot is the only line
        now = self.monotonic()
        if holding.resting_due_at is None:
            holding.resting_due_at = now + SECOND_LINE_S
            return False
        if now < holding.resting_due_at:
            return False
        holding.resting_due_at = None
        self.sync_positions(force_rest=True)  # books the exchange's exit if its stop fired
        with self._lock:
            still = self.holdings.get(symbol) is holding
        if still:
            log.warning("%s: %s passed but the exchange's resting %s did not fire within %.0fs: closing it "
                        "from the bot", symbol, reason.replace("_", " "), kind.replace("_", "-"), SECOND_LINE_S)
        return still

    def exit(self, symbol: str, reason: str) -> None:
        """Close the held position with one reduce-only market order, unless an exit for it is
        already out or was just refused (then the exchange's positions are re-read first)."""
        with self._desk.claim(symbol, kinds=("exit", "close")) as claimed:
            holding = self.holdings.get(symbol)
            if not claimed or holding is None or holding.exit_oid is not None:
                return
            if self.monotonic() < holding.exit_retry_at:
                return
            side = "sell" if holding.side == "long" else "buy"
            market = self.client.markets[symbol]
            oid = self._desk.new_oid()
            sent = self._desk.send(oid, symbol, side, holding.contracts, kind="exit", reduce_only=True,
                                   reason=reason, contract_size=float(market["contractSize"]))
            if sent.status == "filled":
                self._exit_filled(symbol, holding, sent.filled, (sent.order or {}).get("average"), reason)
            elif sent.status in ("placed", "unknown"):
                with self._lock:
                    holding.exit_oid = oid
            else:  # refused (e.g. the position is already flat): look before trying again
                with self._lock:
                    holding.exit_retry_at = self.monotonic() + EXIT_RETRY_S
                self._next_sync = 0.0

    def _exit_filled(self, symbol: str, holding: Holding, filled: int, price: Any, reason: str) -> None:
        with self._lock:
            holding.exit_oid = None
            remaining = holding.contracts - filled
            if remaining > 0:
                holding.contracts = remaining
            elif self.holdings.get(symbol) is holding:
                del self.holdings[symbol]
        if remaining > 0:
            log.warning("exit of %s (%s) filled %d lots, %d still held", symbol, reason, filled, remaining)
            return
        self.journal.delete_protection(symbol)
        if self.stops is not None:
            self.stops.clear(symbol)
        self.stats.exits += 1
        exit_price = float(price or 0)
        sign = 1.0 if holding.side == "long" else -1.0
        size = filled * self._contract_size(symbol)
        log.info("closed %s %s (%s): %d lots at %s, notional %.2f USDT, gross PnL %+.2f USDT", holding.side,
                 symbol, reason, filled, price, size * exit_price,
                 sign * size * (exit_price - holding.entry_price) if exit_price else float("nan"))

    def _forget(self, symbol: str) -> None:
        if self.stops is not None:
            # A resting stop of ours that filled closed it (its push may trail the positions read):
            # booked while the holding is still there to give the exit's entry price and PnL.
            for filled in self.stops.clear(symbol):
                self._stop_filled(filled)
        with self._lock:
            self.holdings.pop(symbol, None)
        self.journal.delete_protection(symbol)

    # -- orders whose outcome was not read -----------------------------------------------------
    def resolve_orders(self) -> None:
        """Look up every journaled intent that is not final (by clientOid, never re-sending) and
        apply what the exchange says to the holdings."""
        for intent in self.journal.active_intents():
            if self._desk.is_busy(intent.symbol) or intent.kind in RESTING_KINDS:  # the stops settle those
                continue
            try:
                order = self._desk.lookup(intent.client_oid, intent.symbol)
            except KuCoinError as exc:
                log.debug("lookup of %s failed, still unresolved: %s", intent.client_oid, exc)
                continue
            if order is None:
                if intent.status == "placed":
                    log.warning("order %s (%s) was accepted but the exchange no longer knows it",
                                intent.client_oid, intent.order_id)
                    continue
                status = self.journal.mark_rejected(intent.client_oid, "not placed: clientOid unknown "
                                                    "to the exchange").status
            else:
                market = self.client.markets[intent.symbol]
                status = self.journal.apply_order(intent.client_oid, with_fee(order, market)).status
            if status != "placed":
                self.stats.resolved += 1
                log.info("order %s on %s resolved: %s", intent.client_oid, intent.symbol, status)
                self._apply_resolved(intent, status, order or {})
        self._desk.refresh_unresolved()

    def _apply_resolved(self, intent: Intent, status: str, order: Mapping[str, Any]) -> None:
        symbol = intent.symbol
        holding = self.holdings.get(symbol)
        if intent.kind == "entry":
            if holding is None or holding.entry_oid != intent.client_oid:
                self._next_sync = 0.0  # closed or replaced meanwhile: the exchange says what is held
            elif status == "filled":
                self.confirm_entry(symbol, holding, order)
            else:
                self._forget(symbol)  # never opened
            return
        if holding is None or holding.exit_oid != intent.client_oid:
            self._next_sync = 0.0  # an exit we no longer track: let the exchange say what is held
            return
        if status == "filled":
            filled = int(round(float(order.get("filled") or 0)))
            self._exit_filled(symbol, holding, filled, order.get("average"), intent.reason)
        else:
            with self._lock:
                holding.exit_oid = None

    def confirm_entry(self, symbol: str, holding: Holding, order: Mapping[str, Any]) -> None:
        """Record an entry's fill: the lots and price it filled at, exits re-anchored on it."""
        filled = int(round(float(order.get("filled") or 0)))
        fill = float(order.get("average") or holding.entry_price)
        exits = holding.exits
        if holding.atr is not None and holding.atr > 0:
            exits = ProtectiveExit.from_entry(holding.side, fill, holding.atr, limits=self.limits)
        with self._lock:
            holding.contracts, holding.entry_price, holding.exits = filled, fill, exits
            holding.confirmed = True
        self._save_protection(symbol, holding)
        if self.stops is not None and exits is not None and not self.stops.protect(
                symbol, Held(holding.side, filled, exits)):
            log.warning("%s: the mark passed its stop before it could rest; the monitor closes it now", symbol)
        self.stats.entries += 1
        self.stats.opened.append(symbol)
        notional = filled * self._contract_size(symbol) * fill
        log.info("opened %s %s %d lots at %s: notional %.2f USDT, margin %.2f USDT at %dx (stop %.6g, "
                 "take profit %s)", holding.side, symbol, filled, fill, notional,
                 notional / self._leverage(symbol), self._leverage(symbol),
                 exits.stop_price if exits else float("nan"), fmt_price(exits.take_profit_price if exits else None))

    # -- what is held ----------------------------------------------------------------------------
    def _save_protection(self, symbol: str, holding: Holding) -> None:
        if holding.exits is not None:
            self.journal.save_protection(
                protection_record(symbol, holding.entry_oid, holding.exits, holding.atr))

    def _contract_size(self, symbol: str) -> float:
        return float(self.client.markets[symbol]["contractSize"])

    def _leverage(self, symbol: str) -> int:
        return effective_leverage(self.settings.leverage, self.client.markets[symbol]["limits"]["leverage"]["max"])
