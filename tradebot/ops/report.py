"""What the trading loop reports to its owner, built on the trader's threads: loop timings, a
snapshot of the open positions, and the entry/exit events of the journal's fills.

The web server and the heartbeat only read these values (an attribute read, a lock for a dict
copy): they never call the exchange and never wait on the trader.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tradebot.events import EventKind

__all__ = ["LoopTimes", "PositionView", "ReadTap", "fill_event", "funding_usdt", "mark_price", "position_view",
           "position_views"]

LOOPS = ("scan", "monitor")  # Trader.run's loops: the scans, and the protection thread's rounds


@dataclass(frozen=True, slots=True)
class LoopRound:
    """The latest round of one of the trader's loops (monotonic seconds)."""

    started_at: float
    finished_at: float
    duration_s: float
    ok: bool  # finished without an error


class LoopTimes:
    """The trader's loops ("scan", "monitor"): whether the run is on, and each loop's last round."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._rounds: dict[str, LoopRound] = {}
        self._last_ok: dict[str, float] = {}
        self.running = False  # set while Trader.run runs
        self.started_at: float | None = None  # when Trader.run began

    def start_run(self) -> None:
        self.started_at = self._monotonic()
        self.running = True

    def record(self, loop: str, started_at: float, ok: bool) -> None:
        if loop not in LOOPS:  # another guarded call (a force exit) is no loop of its own
            return
        now = self._monotonic()
        with self._lock:
            self._rounds[loop] = LoopRound(started_at, now, now - started_at, ok)
            if ok:
                self._last_ok[loop] = now

    def rounds(self) -> dict[str, LoopRound]:
        with self._lock:
            return dict(self._rounds)

    def last_ok(self, loop: str) -> float | None:
        with self._lock:
            return self._last_ok.get(loop)


@dataclass(frozen=True, slots=True)
class PositionView:
    """One open position as the owner sees it (prices in USDT, money in the settle currency)."""

    symbol: str
    side: str  # long | short
    contracts: int
    entry_price: float
    mark_price: float | None
    unrealised_pnl_usdt: float | None
    stop_price: float | None
    take_profit_price: float | None
    trailing_active: bool
    stop_resting: bool  # False: the running bot watches the stop (it is no order on the exchange)
    confirmed: bool  # False: the entry's fill is not read yet
    exit_pending: bool  # an exit order is out, its outcome not read yet

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def position_view(symbol: str, holding: Any, *, last_price: float | None, contract_size: float,
                  stop_resting: bool = False) -> PositionView:
    """The view of a protection.Holding marked at `last_price` (None: no price); `stop_resting`:
    its stop-loss rests on the exchange (else only the running bot watches it)."""
    exits = holding.exits
    sign = 1.0 if holding.side == "long" else -1.0
    usable = last_price is not None and math.isfinite(last_price) and last_price > 0
    upnl = sign * holding.contracts * contract_size * (last_price - holding.entry_price) if usable else None
    return PositionView(symbol, holding.side, holding.contracts, holding.entry_price,
                        last_price if usable else None, upnl,
                        None if exits is None else exits.stop_price,
                        None if exits is None else exits.take_profit_price,
                        bool(exits is not None and exits.trailing_active), stop_resting, holding.confirmed,
                        holding.exit_oid is not None)


def fill_event(intent: Any, fill: Any, *, entry_price: float | None) -> tuple[EventKind, str, dict[str, Any]]:
    """Return (kind, message, details) of the entry or exit event of a fill the journal recorded.

    `intent` and `fill` are the journal's records.Intent and records.Fill; `entry_price` is the
    position's entry (for an exit's PnL; None when the bot does not know it, e.g. at a restart).
    """
    notional = fill.amount * fill.contract_size * fill.price
    details: dict[str, Any] = {"symbol": intent.symbol, "contracts": fill.amount, "price": fill.price,
                               "notional_usdt": round(notional, 6), "fee_usdt": round(fill.fee, 6),
                               "reason": intent.reason, "client_oid": intent.client_oid}
    if intent.kind == "entry":
        side = "long" if intent.side == "buy" else "short"
        details["side"] = side
        return EventKind.ENTRY, (f"opened {side} {intent.symbol}: {fill.amount} lots at {fill.price:g} "
                                 f"({intent.reason})"), details
    side = "long" if intent.side == "sell" else "short"  # the side of the position being closed
    details["side"] = side
    pnl = None
    if entry_price:
        sign = 1.0 if side == "long" else -1.0
        pnl = sign * fill.amount * fill.contract_size * (fill.price - entry_price)
        details.update(entry_price=entry_price, pnl_usdt=round(pnl, 6))
    shown = "PnL unknown" if pnl is None else f"gross PnL {pnl:+.2f} USDT"
    return EventKind.EXIT, (f"closed {side} {intent.symbol} ({intent.reason}): {fill.amount} lots at "
                            f"{fill.price:g}, {shown}"), details


class ReadTap:
    """Stands in for the client (or broker) the protection thread reads through and remembers the
    last ticker of each symbol and the last positions it read, so the owner's view of the
    positions costs no exchange call of its own. Everything else passes through unchanged."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self.tickers: dict[str, Mapping[str, Any]] = {}
        self.positions: list[Mapping[str, Any]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    def get_ticker(self, symbol: str) -> Any:
        ticker = self._target.get_ticker(symbol)
        self.tickers[symbol] = ticker
        return ticker

    def get_positions(self, **kwargs: Any) -> Any:
        positions = self._target.get_positions(**kwargs)
        self.positions = list(positions)
        return positions


def mark_price(ticker: Mapping[str, Any] | None) -> float | None:
    """The price the protection checks exits on: the last trade, else the mid."""
    if not ticker:
        return None
    last = ticker.get("last")
    if not last and ticker.get("bid") and ticker.get("ask"):
        last = (ticker["bid"] + ticker["ask"]) / 2
    return float(last) if isinstance(last, float | int) else None


def position_views(holdings: Mapping[str, Any], tickers: Mapping[str, Mapping[str, Any]],
                   markets: Mapping[str, Any], *, has_resting_stop: Callable[[str], bool] | None = None
                   ) -> list[PositionView]:
    """The view of every holding, marked at the last ticker the protection read; `has_resting_stop`
    (resting.ExchangeStops.has_stop) says whose stop rests on the exchange (None: none does)."""
    return [position_view(symbol, holding, last_price=mark_price(tickers.get(symbol)),
                          contract_size=float(markets[symbol]["contractSize"]),
                          stop_resting=bool(has_resting_stop is not None and has_resting_stop(symbol)))
            for symbol, holding in sorted(holdings.items())]


def funding_usdt(positions: list[Mapping[str, Any]] | None) -> float | None:
    """The funding the exchange reports on the open positions (KuCoin's posFunding, isolated
    margin only: cross positions leave it out), None when no position reports it."""
    values = [float(p["info"]["posFunding"]) for p in positions or ()
              if isinstance(p.get("info"), Mapping) and p["info"].get("posFunding") is not None]
    return sum(values) if values else None
