"""The bot's trading loop: scan the universe, decide, size, journal, place, protect, exit.

Pure decisions live in strategy.py and risk.py; this module does the I/O around them through a
KuCoinClient (market data) and a broker (the client itself when trading for real or on the
simulator, a paper.PaperBroker on paper). Every order intent is journaled with its clientOid
before it is sent, and an intent whose outcome is unknown blocks its symbol until it is resolved.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tradebot.journal import KINDS, Intent, Journal, Protection
from tradebot.journal_ops import reconcile
from kucoin_futures.errors import OrderNotFound
from kucoin_futures.errors import ClientClosed, KuCoinError, OrderOutcomeUnknown, TransportError
from tradebot.risk import (
    ProtectiveExit,
    RiskLimits,
    RiskState,
    check_exit,
    effective_leverage,
    entry_allowed,
    position_size,
    update_risk_state,
    update_trailing,
    utc_day,
)
from tradebot.strategy import Action, ActionKind, Position, StrategyParams, atr, load_strategy, ohlc_arrays

log = logging.getLogger(__name__)

MONITOR_INTERVAL_S = 1.0  # protective exits are checked this often, on their own thread
RESOLVE_INTERVAL_S = 2.0  # orders whose outcome is not known are looked up this often
SYNC_INTERVAL_S = 15.0  # the exchange's positions are re-read this often
EXIT_RETRY_S = 5.0  # after an exit was refused, wait this long (and re-read positions) first
GUARD_JOIN_S = 3.0
SCAN_LOG_INTERVAL_S = 15.0  # at most one "scan:" line this often
HISTORY_CANDLES = 300  # candles the strategy sees
# A market order can fill a few ticks worse than the quote it was sized on; sizing against all
# the free margin then meets 300003 (insufficient balance). Leave this share of it unused.
MARGIN_HEADROOM = 0.95
DAY_MS = 86_400_000


@dataclass(slots=True)
class Holding:
    """What the bot knows of one open position it manages.

    A position whose entry order the exchange accepted but whose fill is not read yet is a
    holding too (`confirmed` False): it counts toward MAX_OPEN_POSITIONS and its stop is watched
    until the exchange says otherwise. `exit_oid` is an exit order sent whose outcome is not known
    yet: no second exit goes out while it is set.
    """

    side: str  # "long" | "short"
    contracts: int
    entry_price: float
    exits: ProtectiveExit | None = None
    atr: float | None = None  # the ATR the exits were set from (re-anchored on the fill)
    entry_oid: str | None = None
    confirmed: bool = True
    exit_oid: str | None = None
    exit_retry_at: float = 0.0  # monotonic: no new exit attempt before this (after a refusal)


@dataclass(frozen=True, slots=True)
class Sent:
    """What became of one order the bot sent: the journal's status and the order, if read."""

    client_oid: str
    status: str  # filled | placed | unknown | rejected | canceled
    order: dict[str, Any] | None = None

    @property
    def filled(self) -> int:
        return int(round(float((self.order or {}).get("filled") or 0)))


class OutageLog:
    """When to log an exchange outage: its start (with the reason), reminders at a doubling
    interval while it lasts, and its end (with the downtime and the failures counted). Thread-safe;
    `now` is a monotonic time passed in."""

    def __init__(self, first_reminder_s: float = 30.0, max_reminder_s: float = 900.0) -> None:
        self._lock = threading.Lock()
        self._first, self._max = first_reminder_s, max_reminder_s
        self._since: float | None = None
        self._next_reminder = 0.0
        self._interval = first_reminder_s
        self._failures = 0

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, reason: str, now: float) -> str | None:
        """Record one failed call; return the line to log now, if any."""
        with self._lock:
            self._failures += 1
            if self._since is None:
                self._since, self._interval = now, self._first
                self._next_reminder = now + self._interval
                return f"exchange unreachable ({reason}); retrying, protection keeps running"
            if now < self._next_reminder:
                return None
            self._interval = min(self._interval * 2, self._max)
            self._next_reminder = now + self._interval
            return (f"exchange still unreachable after {_duration(now - self._since)} "
                    f"({self._failures} failed calls; last: {reason})")

    def recovered(self, now: float) -> str | None:
        """Record a successful round; return the line to log if it ends an outage."""
        with self._lock:
            if self._since is None:
                return None
            line = (f"exchange reachable again after {_duration(now - self._since)} "
                    f"({self._failures} failed calls)")
            self._since, self._failures = None, 0
            return line


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass(slots=True)
class RunStats:
    entries: int = 0
    exits: int = 0
    rejected: int = 0
    unknown: int = 0
    scan_errors: int = 0
    resolved: int = 0
    adopted: int = 0
    opened: list[str] = field(default_factory=list)
    starting_equity: float | None = None  # the account's equity at the run's first balance read


class Trader:
    """One bot run's state and loop. `broker` has the KuCoinClient order/account methods.

    Two threads share it while `run` runs: the caller's scans (market data, strategy, entries)
    and a protection thread (exits every MONITOR_INTERVAL_S, order resolution, position sync), so
    a scan waiting on the exchange never delays a stop. A symbol is claimed by one thread while an
    order for it is in flight; state changes are made under a short lock.
    """

    def __init__(self, client: Any, broker: Any, journal: Journal, settings: Any, *,
                 universe: list[str], wall_clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.broker = broker
        self.journal = journal
        self.settings = settings
        self.universe = universe
        self.limits = RiskLimits.from_settings(settings)
        self.params = StrategyParams.from_settings(settings)
        self.strategy = load_strategy(settings.strategy)
        self.timeframe_ms = _timeframe_ms(settings.timeframe)
        self.wall_clock = wall_clock
        self.monotonic = monotonic
        self.holdings: dict[str, Holding] = {}
        self.risk_state: RiskState | None = None
        self.stats = RunStats()
        self._oids = itertools.count(1)
        self._nonce = secrets.token_hex(3)
        self._lock = threading.RLock()  # holdings and claims; never held across a REST call
        self._busy: set[str] = set()  # symbols with an order being sent right now
        self._unresolved: set[str] = set()  # symbols with a journaled intent not yet final
        self._next_sync = 0.0
        self._next_resolve = 0.0
        self._outage = OutageLog()
        self._next_scan_log = 0.0
        self._scan_signals = 0
        self._scan_oldest_s: float | None = None

    @property
    def blocked(self) -> set[str]:
        """Symbols no new order may be sent for: an intent on them is not final yet."""
        with self._lock:
            return set(self._unresolved) | set(self._busy)

    # -- startup -------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Resolve intents a previous run left open by looking them up (never re-sending them),
        then adopt the exchange's positions with their journaled (or fresh ATR) exits."""
        report = reconcile(self.journal, self._lookup)
        if any(getattr(report, k) for k in report.__dataclass_fields__):
            log.info("journal reconciled: %s", report)
        self._refresh_unresolved()
        self.sync_positions()

    def _lookup(self, client_oid: str, symbol: str) -> dict[str, Any] | None:
        try:
            return self.broker.get_order(None, symbol, client_oid=client_oid)
        except OrderNotFound:  # error.getOrder.orderNotExist: never placed
            return None

    def _refresh_unresolved(self) -> None:
        symbols = {i.symbol for i in self.journal.active_intents()}
        with self._lock:
            self._unresolved = symbols

    def sync_positions(self) -> None:
        """Make the holdings what the exchange holds: adopt positions we do not know (with their
        journaled exits, else exits from the current ATR), drop those that are gone. Symbols with
        an order in flight or an intent not yet final are left alone until it is resolved."""
        current = {p["symbol"]: p for p in self.broker.get_positions() if p.get("contracts")}
        self._refresh_unresolved()
        with self._lock:
            skip = self._busy | self._unresolved
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

    def _adopt(self, symbol: str, side: str, contracts: int, entry_price: float) -> None:
        saved = self.journal.protection(symbol)
        holding = Holding(side, contracts, entry_price)
        if saved is not None and saved.side == side:
            holding.exits, holding.atr = _exits_of(saved), saved.atr
            holding.entry_oid = saved.client_oid
            log.info("adopted %s %s %d lots at %s with its journaled exits (stop %.6g, take profit %s)",
                     side, symbol, contracts, entry_price, holding.exits.stop_price,
                     _fmt(holding.exits.take_profit_price))
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
        closed = [r for r in rows if r[0] + self.timeframe_ms <= now_ms]
        if len(closed) <= self.params.atr_period:
            return None
        high, low, close = ohlc_arrays(closed)
        value = float(atr(high, low, close, self.params.atr_period)[-1])
        return value if math.isfinite(value) and value > 0 else None

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

    def _protect_loop(self, finished: threading.Event) -> None:
        # Protection goes on while a stopping scan unwinds; it ends with the run.
        while not finished.is_set():
            self._guarded("monitor", self.protect)
            finished.wait(MONITOR_INTERVAL_S)

    def protect(self) -> None:
        """One protection tick: resolve orders whose outcome is not known, re-read the exchange's
        positions now and then, and check every open position's exits."""
        now = self.monotonic()
        if now >= self._next_resolve:
            self._next_resolve = now + RESOLVE_INTERVAL_S
            self.resolve_orders()
        if now >= self._next_sync:
            self._next_sync = now + SYNC_INTERVAL_S
            self.sync_positions()
        self.monitor()

    def _guarded(self, what: str, fn: Callable[..., None], *args: Any) -> None:
        # The exchange may go away mid-run: keep the loop (and the protection) alive. An outage
        # is logged when it starts, as a reminder at a growing interval, and when it ends.
        try:
            fn(*args)
        except ClientClosed:
            log.debug("%s: client closed", what)
        except TransportError as exc:
            self.stats.scan_errors += 1
            message = self._outage.failed(f"{what}: {exc}", self.monotonic())
            if message is not None:
                log.warning("%s", message)
        except KuCoinError as exc:
            self.stats.scan_errors += 1
            log.warning("%s failed: %s", what, exc)
        else:
            message = self._outage.recovered(self.monotonic())
            if message is not None:
                log.warning("%s", message)

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
        closed = [r for r in rows if r[0] + self.timeframe_ms <= now_ms]
        holding = self.holdings.get(symbol)
        position = Position(holding.side, holding.contracts, holding.entry_price) if holding else Position()
        action = self.strategy(closed, position, self.params)
        if action.kind is ActionKind.EXIT and holding is not None:
            self.exit(symbol, f"strategy: {action.reason}")
        elif action.is_entry:
            self._scan_signals += 1
            return self._maybe_enter(symbol, action, equity, free)
        return False

    def _maybe_enter(self, symbol: str, action: Action, equity: float, free: float) -> bool:
        ticker = self.client.get_ticker(symbol)
        age_s = None if ticker.get("timestamp") is None else max(0.0, self.wall_clock() - ticker["timestamp"] / 1000)
        if age_s is not None:
            self._scan_oldest_s = age_s if self._scan_oldest_s is None else max(self._scan_oldest_s, age_s)
        with self._lock:
            open_symbols = set(self.holdings) | self._unresolved | self._busy
        ok, reason = entry_allowed(symbol, open_symbols=open_symbols, state=self.risk_state,
                                   limits=self.limits, data_age_s=age_s,
                                   ws_reconnecting=self._ws_reconnecting())
        if not ok:
            log.debug("no entry on %s: %s", symbol, reason)
            return False
        market = self.client.markets[symbol]
        long = action.kind is ActionKind.ENTER_LONG
        price = ticker["ask"] if long else ticker["bid"]
        stop_price = price - (action.price - action.stop_price)  # keep the ATR distance
        leverage = effective_leverage(self.settings.leverage, market["limits"]["leverage"]["max"])
        size = position_size(equity, self.limits.risk_per_trade, price, stop_price,
                             float(market["contractSize"]), int(market["precision"]["amount"] or 1),
                             int(market["limits"]["amount"]["max"] or 1_000_000), leverage=leverage,
                             available_margin=free * MARGIN_HEADROOM,
                             taker_fee_rate=float(market.get("taker") or 0))
        if size <= 0:
            log.info("no entry on %s: size rounds to 0 lots", symbol)
            return False
        side = "long" if long else "short"
        planned = ProtectiveExit.from_entry(side, price, action.atr, limits=self.limits)
        with self._claim(symbol) as claimed:
            if not claimed:
                return False
            oid = self._new_oid()
            protection = _protection(symbol, oid, planned, action.atr)
            sent = self._send(oid, symbol, "buy" if long else "sell", size, kind="entry",
                              leverage=leverage, reason=action.reason,
                              contract_size=float(market["contractSize"]), protection=protection)
            if sent.status in ("rejected", "canceled"):
                self.journal.delete_protection(symbol)
                return False
            holding = Holding(side, size, price, planned, action.atr, entry_oid=oid, confirmed=False)
            with self._lock:
                self.holdings[symbol] = holding
            if sent.status == "filled":
                self._confirm_entry(symbol, holding, sent.order or {})
            else:
                log.warning("entry %s on %s %s, fill not read yet: held as open (%d lots) and "
                            "protected until the exchange says otherwise", oid, symbol, sent.status, size)
        return True

    def _confirm_entry(self, symbol: str, holding: Holding, order: Mapping[str, Any]) -> None:
        filled = int(round(float(order.get("filled") or 0)))
        fill = float(order.get("average") or holding.entry_price)
        exits = holding.exits
        if holding.atr is not None and holding.atr > 0:
            exits = ProtectiveExit.from_entry(holding.side, fill, holding.atr, limits=self.limits)
        with self._lock:
            holding.contracts, holding.entry_price, holding.exits = filled, fill, exits
            holding.confirmed = True
        self._save_protection(symbol, holding)
        self.stats.entries += 1
        self.stats.opened.append(symbol)
        notional = filled * self._contract_size(symbol) * fill
        log.info("opened %s %s %d lots at %s: notional %.2f USDT, margin %.2f USDT at %dx (stop %.6g, "
                 "take profit %s)", holding.side, symbol, filled, fill, notional,
                 notional / self._leverage(symbol), self._leverage(symbol),
                 exits.stop_price if exits else float("nan"), _fmt(exits.take_profit_price if exits else None))

    # -- protection ----------------------------------------------------------------------------
    def monitor(self) -> None:
        """Check stop / take profit / trailing of every open position on the latest ticker."""
        with self._lock:
            held = list(self.holdings.items())
        for symbol, holding in held:
            if holding.exits is None:
                self._protect_from_atr(symbol, holding)
                if holding.exits is None:
                    continue
            if holding.exit_oid is not None:
                continue  # an exit is out; its outcome is resolved first
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
            reason = check_exit(exits, last)
            if reason is not None:
                self.exit(symbol, reason)
        if self.risk_state is not None and self.risk_state.must_flatten(self.limits) and self.holdings:
            for symbol in list(self.holdings):
                self.exit(symbol, "daily loss limit: flatten")

    def exit(self, symbol: str, reason: str) -> None:
        """Close the held position with one reduce-only market order, unless an exit for it is
        already out or was just refused (then the exchange's positions are re-read first)."""
        with self._claim(symbol, kinds=("exit", "close")) as claimed:
            holding = self.holdings.get(symbol)
            if not claimed or holding is None or holding.exit_oid is not None:
                return
            if self.monotonic() < holding.exit_retry_at:
                return
            side = "sell" if holding.side == "long" else "buy"
            market = self.client.markets[symbol]
            oid = self._new_oid()
            sent = self._send(oid, symbol, side, holding.contracts, kind="exit", reduce_only=True,
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
        self.stats.exits += 1
        exit_price = float(price or 0)
        sign = 1.0 if holding.side == "long" else -1.0
        size = filled * self._contract_size(symbol)
        log.info("closed %s %s (%s): %d lots at %s, notional %.2f USDT, gross PnL %+.2f USDT", holding.side,
                 symbol, reason, filled, price, size * exit_price,
                 sign * size * (exit_price - holding.entry_price) if exit_price else float("nan"))

    def _forget(self, symbol: str) -> None:
        with self._lock:
            self.holdings.pop(symbol, None)
        self.journal.delete_protection(symbol)

    # -- orders whose outcome was not read -----------------------------------------------------
    def resolve_orders(self) -> None:
        """Look up every journaled intent that is not final (by clientOid, never re-sending) and
        apply what the exchange says to the holdings."""
        for intent in self.journal.active_intents():
            with self._lock:
                if intent.symbol in self._busy:
                    continue
            try:
                order = self._lookup(intent.client_oid, intent.symbol)
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
                status = self.journal.apply_order(intent.client_oid, _with_fee(order, market)).status
            if status != "placed":
                self.stats.resolved += 1
                log.info("order %s on %s resolved: %s", intent.client_oid, intent.symbol, status)
                self._apply_resolved(intent, status, order or {})
        self._refresh_unresolved()

    def _apply_resolved(self, intent: Intent, status: str, order: Mapping[str, Any]) -> None:
        symbol = intent.symbol
        holding = self.holdings.get(symbol)
        if intent.kind == "entry":
            if holding is None or holding.entry_oid != intent.client_oid:
                self._next_sync = 0.0  # closed or replaced meanwhile: the exchange says what is held
            elif status == "filled":
                self._confirm_entry(symbol, holding, order)
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

    # -- orders --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _claim(self, symbol: str, *, kinds: tuple[str, ...] = KINDS) -> Iterator[bool]:
        """Hold `symbol` for one order decision; False if another thread holds it or an intent of
        one of `kinds` on it is not final yet (checked against the journal, the source of truth).
        An exit passes `kinds=("exit",)`: a position whose entry fill is not read yet is still
        protected, but never by two exits at once."""
        with self._lock:
            free = symbol not in self._busy
            if free:
                self._busy.add(symbol)
        if not free:
            yield False
            return
        try:
            yield not any(i.kind in kinds for i in self.journal.active_intents(symbol))
        finally:
            with self._lock:
                self._busy.discard(symbol)
            self._refresh_unresolved()

    def _new_oid(self) -> str:
        return f"bot-{self._nonce}-{int(self.wall_clock() * 1000)}-{next(self._oids)}"

    def _send(self, oid: str, symbol: str, side: str, amount: int, *, kind: str, reason: str,
              contract_size: float, leverage: int | None = None, reduce_only: bool = False,
              protection: Protection | None = None) -> Sent:
        """Journal the intent, send it once, and read its fill. Never raises for the order itself:
        an accepted order whose fill cannot be read is `placed`, an ambiguous one `unknown`; both
        stay in the journal to be resolved by lookup, and block the symbol until then."""
        self.journal.record_intent(oid, symbol, side, amount, kind=kind, contract_size=contract_size,
                                   reduce_only=reduce_only, reason=reason, protection=protection)
        try:
            ack = self.broker.create_market_order(symbol, side, amount, leverage=leverage,
                                                  reduce_only=reduce_only, client_oid=oid)
        except OrderOutcomeUnknown as exc:
            self.journal.mark_unknown(oid, str(exc))
            self.stats.unknown += 1
            log.warning("order %s on %s: outcome unknown, symbol blocked until resolved", oid, symbol)
            return Sent(oid, "unknown")
        except KuCoinError as exc:  # a definitive answer, or never sent: not placed
            self.journal.mark_rejected(oid, str(exc))
            self.stats.rejected += 1
            log.warning("order %s on %s not placed: %s", oid, symbol, exc)
            if isinstance(exc, TransportError):
                raise
            return Sent(oid, "rejected")
        order = ack
        if ack.get("status") is None:  # a live answer carries only ids: read the fill
            try:
                order = self.broker.get_order(ack.get("id"), symbol)
            except KuCoinError as exc:
                self.journal.mark_placed(oid, None if ack.get("id") is None else str(ack["id"]))
                log.warning("order %s on %s placed; reading its fill failed, it will be looked up: %s",
                            oid, symbol, exc)
                return Sent(oid, "placed", ack)
        intent = self.journal.apply_order(oid, _with_fee(order, self.client.markets[symbol]))
        return Sent(oid, intent.status, order)

    def _save_protection(self, symbol: str, holding: Holding) -> None:
        if holding.exits is not None:
            self.journal.save_protection(_protection(symbol, holding.entry_oid, holding.exits, holding.atr))

    def _contract_size(self, symbol: str) -> float:
        return float(self.client.markets[symbol]["contractSize"])

    def _leverage(self, symbol: str) -> int:
        return effective_leverage(self.settings.leverage, self.client.markets[symbol]["limits"]["leverage"]["max"])

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

    def open_pnl(self) -> list[tuple[str, str, int, float | None]]:
        """(symbol, side, contracts, unrealised PnL in USDT) of every open position, marked at the
        last price (None when no price can be read, e.g. after the client closed)."""
        with self._lock:
            held = list(self.holdings.items())
        result: list[tuple[str, str, int, float | None]] = []
        for symbol, holding in held:
            try:
                ticker = self.client.get_ticker(symbol)
            except KuCoinError:
                result.append((symbol, holding.side, holding.contracts, None))
                continue
            last = ticker.get("last") or ticker.get("bid") or 0.0
            sign = 1.0 if holding.side == "long" else -1.0
            upnl = sign * holding.contracts * self._contract_size(symbol) * (last - holding.entry_price)
            result.append((symbol, holding.side, holding.contracts, upnl))
        return result

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

    def _ws_reconnecting(self) -> bool:
        ws = self.client.websocket
        return ws is not None and ws.state.name == "RECONNECTING"


def _protection(symbol: str, client_oid: str | None, exits: ProtectiveExit, atr_value: float | None) -> Protection:
    return Protection(symbol, client_oid, exits.side, exits.stop_price, exits.take_profit_price,
                      exits.trailing_distance, exits.watermark, exits.trailing_active, atr_value)


def _exits_of(saved: Protection) -> ProtectiveExit:
    return ProtectiveExit(saved.side, saved.stop_price, saved.take_profit_price,  # type: ignore[arg-type]
                          saved.trailing_distance, saved.watermark, saved.trailing_active)


def _fmt(price: float | None) -> str:
    return "none" if price is None else f"{price:.6g}"


def _with_fee(order: dict[str, Any], market: Any) -> dict[str, Any]:
    """KuCoin's order answers carry no fee (it is on the fills): a market order pays the taker rate."""
    if (order.get("fee") or {}).get("cost") is not None or not order.get("filled"):
        return order
    rate = float(market.get("taker") or 0.0)
    cost = order.get("cost") or float(order["filled"]) * float(market["contractSize"]) * float(order.get("average") or 0)
    return {**order, "fee": {"cost": cost * rate, "currency": market.get("settle") or "USDT", "rate": rate}}


def _timeframe_ms(timeframe: str) -> int:
    units = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
    return int(timeframe[:-1]) * units[timeframe[-1]]
