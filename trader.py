"""The bot's trading loop: scan the universe, decide, size, journal, place, protect, exit.

Pure decisions live in strategy.py and risk.py; this module does the I/O around them through a
KuCoinClient (market data) and a broker (the client itself when trading for real or on the
simulator, a paper.PaperBroker on paper). Every order intent is journaled with its clientOid
before it is sent, and an intent whose outcome is unknown blocks its symbol until it is resolved.
"""
from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from journal import Journal, reconcile
from kucoin_errors import (
    ExchangeRejected, InvalidArgument, KuCoinError, OrderOutcomeUnknown, TransportError,
)
from risk import (
    ProtectiveExit, RiskLimits, RiskState, check_exit, effective_leverage, entry_allowed,
    position_size, update_risk_state, update_trailing, utc_day,
)
from strategy import Action, ActionKind, Position, StrategyParams, load_strategy

log = logging.getLogger(__name__)

MONITOR_INTERVAL_S = 1.0  # protective exits are checked this often between scans
HISTORY_CANDLES = 300  # candles the strategy sees
# A market order can fill a few ticks worse than the quote it was sized on; sizing against all
# the free margin then meets 300003 (insufficient balance). Leave this share of it unused.
MARGIN_HEADROOM = 0.95
DAY_MS = 86_400_000


@dataclass(slots=True)
class Holding:
    """What the bot knows of one open position it manages."""

    side: str  # "long" | "short"
    contracts: int
    entry_price: float
    exits: ProtectiveExit | None = None


@dataclass(slots=True)
class RunStats:
    entries: int = 0
    exits: int = 0
    rejected: int = 0
    unknown: int = 0
    scan_errors: int = 0
    opened: list[str] = field(default_factory=list)


class Trader:
    """One bot run's state and loop. `broker` has the KuCoinClient order/account methods."""

    def __init__(self, client: Any, broker: Any, journal: Journal, settings: Any, *,
                 universe: list[str], wall_clock: Callable[[], float] = time.time) -> None:
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
        self.holdings: dict[str, Holding] = {}
        self.blocked: set[str] = set()  # symbols with an intent whose outcome is unknown
        self.risk_state: RiskState | None = None
        self.stats = RunStats()
        self._oids = itertools.count(1)
        self._nonce = secrets.token_hex(3)

    # -- startup -------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Resolve intents a previous run left open by looking them up; never re-send them."""
        report = reconcile(self.journal, self._lookup)
        if any(getattr(report, k) for k in report.__dataclass_fields__):
            log.info("journal reconciled: %s", report)
        for oid in report.unresolved:
            intent = self.journal.get_intent(oid)
            if intent is not None:
                self.blocked.add(intent.symbol)
        self.sync_positions()

    def _lookup(self, client_oid: str, symbol: str) -> dict[str, Any] | None:
        try:
            return self.broker.get_order(None, symbol, client_oid=client_oid)
        except ExchangeRejected as exc:
            if exc.code == "100001":  # error.getOrder.orderNotExist: never placed
                return None
            raise

    def sync_positions(self) -> None:
        """Adopt the exchange's positions (after a restart, or when they changed under us)."""
        current = {p["symbol"]: p for p in self.broker.get_positions() if p.get("contracts")}
        for symbol in list(self.holdings):
            if symbol not in current:
                del self.holdings[symbol]
        for symbol, pos in current.items():
            if symbol not in self.holdings:
                self.holdings[symbol] = Holding(pos["side"], int(pos["contracts"]), float(pos["entryPrice"] or 0))

    # -- the loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event, *, duration_s: float | None = None, once: bool = False) -> None:
        """Scan every scan_interval_s and watch exits every second until `stop` or the deadline."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        next_scan = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            self._guarded("monitor", self.monitor)
            if now >= next_scan:
                self._guarded("scan", self.scan, stop)
                next_scan = now + self.settings.scan_interval_s
                if once:
                    break
            wait = min(MONITOR_INTERVAL_S, max(0.0, next_scan - time.monotonic()))
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            stop.wait(wait)

    def _guarded(self, what: str, fn: Callable[..., None], *args: Any) -> None:
        # The exchange may go away mid-run: keep the loop (and the protection) alive.
        try:
            fn(*args)
        except TransportError as exc:
            self.stats.scan_errors += 1
            log.warning("%s: exchange unreachable, will retry: %s", what, exc)
        except KuCoinError as exc:
            self.stats.scan_errors += 1
            log.warning("%s failed: %s", what, exc)

    def scan(self, stop: threading.Event | None = None) -> None:
        """Decide on every symbol of the universe; enter where the strategy and risk agree."""
        equity, free = self._equity()
        self._update_risk(equity)
        for symbol in self.universe:
            if stop is not None and stop.is_set():
                return
            try:
                self._scan_symbol(symbol, equity, free)
            except (TransportError, OrderOutcomeUnknown):
                raise
            except KuCoinError as exc:
                self.stats.scan_errors += 1
                log.warning("scan %s: %s", symbol, exc)
            equity, free = self._equity() if self.stats.entries else (equity, free)

    def _scan_symbol(self, symbol: str, equity: float, free: float) -> None:
        rows = self.client.get_ohlcv(symbol, self.settings.timeframe, limit=HISTORY_CANDLES)
        now_ms = int(self.wall_clock() * 1000)
        closed = [r for r in rows if r[0] + self.timeframe_ms <= now_ms]
        holding = self.holdings.get(symbol)
        position = Position(holding.side, holding.contracts, holding.entry_price) if holding else Position()
        action = self.strategy(closed, position, self.params)
        if action.kind is ActionKind.EXIT and holding is not None:
            self.exit(symbol, f"strategy: {action.reason}")
        elif action.is_entry:
            self._maybe_enter(symbol, action, equity, free)

    def _maybe_enter(self, symbol: str, action: Action, equity: float, free: float) -> None:
        ticker = self.client.get_ticker(symbol)
        age_s = None if ticker.get("timestamp") is None else max(0.0, self.wall_clock() - ticker["timestamp"] / 1000)
        open_symbols = set(self.holdings) | self.blocked
        ok, reason = entry_allowed(symbol, open_symbols=open_symbols, state=self.risk_state,
                                   limits=self.limits, data_age_s=age_s,
                                   ws_reconnecting=self._ws_reconnecting())
        if not ok:
            log.debug("no entry on %s: %s", symbol, reason)
            return
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
            return
        order = self._send(symbol, "buy" if long else "sell", size, kind="entry", leverage=leverage,
                           reason=action.reason, contract_size=float(market["contractSize"]))
        if order is None or not order.get("filled"):
            return
        fill = float(order.get("average") or price)
        side = "long" if long else "short"
        self.holdings[symbol] = Holding(side, int(order["filled"]), fill,
                                        ProtectiveExit.from_entry(side, fill, action.atr, limits=self.limits))
        self.stats.entries += 1
        self.stats.opened.append(symbol)
        log.info("opened %s %s %d lots at %s (stop %.6g, take profit %.6g)", side, symbol, int(order["filled"]),
                 fill, self.holdings[symbol].exits.stop_price, self.holdings[symbol].exits.take_profit_price)

    # -- protection ----------------------------------------------------------------------------
    def monitor(self) -> None:
        """Check stop / take profit / trailing of every open position on the latest ticker."""
        for symbol, holding in list(self.holdings.items()):
            if holding.exits is None:
                continue
            ticker = self.client.get_ticker(symbol)
            last = ticker.get("last") or (ticker["bid"] + ticker["ask"]) / 2
            holding.exits = update_trailing(holding.exits, last)
            reason = check_exit(holding.exits, last)
            if reason is not None:
                self.exit(symbol, reason)
        if self.risk_state is not None and self.risk_state.must_flatten(self.limits) and self.holdings:
            for symbol in list(self.holdings):
                self.exit(symbol, "daily loss limit: flatten")

    def exit(self, symbol: str, reason: str) -> None:
        holding = self.holdings.get(symbol)
        if holding is None:
            return
        side = "sell" if holding.side == "long" else "buy"
        market = self.client.markets[symbol]
        order = self._send(symbol, side, holding.contracts, kind="exit", reduce_only=True,
                           reason=reason, contract_size=float(market["contractSize"]))
        if order is not None and order.get("filled"):
            self.stats.exits += 1
            del self.holdings[symbol]
            log.info("closed %s (%s) at %s", symbol, reason, order.get("average"))

    # -- orders --------------------------------------------------------------------------------
    def _send(self, symbol: str, side: str, amount: int, *, kind: str, reason: str, contract_size: float,
              leverage: int | None = None, reduce_only: bool = False) -> dict[str, Any] | None:
        """Journal the intent, then send it once; return the filled order, or None."""
        oid = f"bot-{self._nonce}-{int(self.wall_clock() * 1000)}-{next(self._oids)}"
        self.journal.record_intent(oid, symbol, side, amount, kind=kind, contract_size=contract_size,
                                   reduce_only=reduce_only, reason=reason)
        try:
            order = self.broker.create_market_order(symbol, side, amount, leverage=leverage,
                                                    reduce_only=reduce_only, client_oid=oid)
            if order.get("status") is None:  # a live answer carries only ids: read the fill
                order = self.broker.get_order(order.get("id"), symbol)
        except OrderOutcomeUnknown as exc:
            self.journal.mark_unknown(oid, str(exc))
            self.blocked.add(symbol)
            self.stats.unknown += 1
            log.warning("order %s on %s: outcome unknown, symbol blocked until resolved", oid, symbol)
            return None
        except (ExchangeRejected, InvalidArgument) as exc:
            self.journal.mark_rejected(oid, str(exc))
            self.stats.rejected += 1
            log.warning("order %s on %s rejected: %s", oid, symbol, exc)
            return None
        self.journal.apply_order(oid, _with_fee(order, self.client.markets[symbol]))
        return order

    # -- account -------------------------------------------------------------------------------
    def _equity(self) -> tuple[float, float]:
        usdt = self.broker.get_balance()["USDT"]
        total, free = float(usdt.get("total") or 0), float(usdt.get("free") or 0)
        self.journal.record_equity(total, free=free)
        return total, free

    def _update_risk(self, equity: float) -> None:
        now_ms = int(self.wall_clock() * 1000)
        day_start = None
        if self.risk_state is None:
            day_start = self.journal.first_equity_since(utc_day(now_ms) * DAY_MS)
        self.risk_state = update_risk_state(self.risk_state, equity=equity, now_ms=now_ms,
                                            limits=self.limits, day_start_equity=day_start)
        if self.risk_state.tripped:
            log.warning("daily loss limit reached: no new entries today")

    def _ws_reconnecting(self) -> bool:
        ws = self.client.websocket
        return ws is not None and ws.state.name == "RECONNECTING"


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
