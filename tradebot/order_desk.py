"""Where the bot's orders go out: journal the intent with our clientOid, send it once, read its fill.

Both threads of a run send through one OrderDesk: the scans (entries) and the protection thread
(exits). A symbol is claimed by one thread while an order for it is in flight, and an intent whose
outcome is unknown blocks its symbol until a lookup by clientOid resolves it (never a re-send).
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kucoin_futures.errors import KuCoinError, OrderNotFound, OrderOutcomeUnknown, TransportError
from tradebot.events import EventBus, EventKind
from tradebot.journal import Journal
from tradebot.records import ORDER_KINDS, Protection

# The run's trade lines keep the logger they had before the Trader was cut in three (operators'
# logging settings and tests filter on it), not getLogger(__name__).
log = logging.getLogger("tradebot.trader")

STOP_REASONS = ("stop", "trailing_stop")  # risk.check_exit's reasons that are a stop being hit


@dataclass(slots=True)
class RunStats:
    """What one run did, counted by its parts (the desk, the protection, the scans)."""

    entries: int = 0
    exits: int = 0
    rejected: int = 0
    unknown: int = 0
    scan_errors: int = 0
    resolved: int = 0
    adopted: int = 0
    opened: list[str] = field(default_factory=list)
    starting_equity: float | None = None  # the account's equity at the run's first balance read


@dataclass(frozen=True, slots=True)
class Sent:
    """What became of one order the bot sent: the journal's status and the order, if read."""

    client_oid: str
    status: str  # filled | placed | unknown | rejected | canceled
    order: dict[str, Any] | None = None

    @property
    def filled(self) -> int:
        return int(round(float((self.order or {}).get("filled") or 0)))


class OrderDesk:
    """Sends orders for `broker` (the KuCoinClient order/account methods, or a paper broker) and
    keeps the symbol claims. `lock` also guards the protection's holdings, so a claim and a
    holding are always seen together; it is never held across a REST call."""

    def __init__(self, client: Any, broker: Any, journal: Journal, *, stats: RunStats,
                 wall_clock: Callable[[], float] = time.time, events: EventBus | None = None) -> None:
        self.client = client
        self.events = events if events is not None else EventBus()
        self.broker = broker
        self.journal = journal
        self.stats = stats
        self.wall_clock = wall_clock
        self.lock = threading.RLock()
        self._oids = itertools.count(1)
        self._nonce = secrets.token_hex(3)
        self._busy: set[str] = set()  # symbols with an order being sent right now
        self._unresolved: set[str] = set()  # symbols with a journaled intent not yet final

    @property
    def blocked(self) -> set[str]:
        """Symbols no new order may be sent for: an intent on them is not final yet."""
        with self.lock:
            return set(self._unresolved) | set(self._busy)

    def is_busy(self, symbol: str) -> bool:
        """True while an order for `symbol` is being sent."""
        with self.lock:
            return symbol in self._busy

    def lookup(self, client_oid: str, symbol: str) -> dict[str, Any] | None:
        try:
            return self.broker.get_order(None, symbol, client_oid=client_oid)
        except OrderNotFound:  # error.getOrder.orderNotExist: never placed
            return None

    def refresh_unresolved(self) -> None:
        # Resting stops stay active until they trigger; they block nothing (tradebot/resting.py).
        symbols = {i.symbol for i in self.journal.active_intents() if i.kind in ORDER_KINDS}
        with self.lock:
            self._unresolved = symbols

    @contextlib.contextmanager
    def claim(self, symbol: str, *, kinds: tuple[str, ...] = ORDER_KINDS) -> Iterator[bool]:
        """Hold `symbol` for one order decision; False if another thread holds it or an intent of
        one of `kinds` on it is not final yet (checked against the journal, the source of truth).
        An exit passes `kinds=("exit",)`: a position whose entry fill is not read yet is still
        protected, but never by two exits at once."""
        with self.lock:
            free = symbol not in self._busy
            if free:
                self._busy.add(symbol)
        if not free:
            yield False
            return
        try:
            yield not any(i.kind in kinds for i in self.journal.active_intents(symbol))
        finally:
            with self.lock:
                self._busy.discard(symbol)
            self.refresh_unresolved()

    def new_oid(self) -> str:
        # The bot's own form: kucoin_futures/orders formats the library's ("kc-<ms>-<nonce>-<seq>"),
        # a layer the bot may not import (tests/test_layout.py).
        return f"bot-{self._nonce}-{int(self.wall_clock() * 1000)}-{next(self._oids)}"

    def send(self, oid: str, symbol: str, side: str, amount: int, *, kind: str, reason: str,
             contract_size: float, leverage: int | None = None, reduce_only: bool = False,
             protection: Protection | None = None) -> Sent:
        """Journal the intent, send it once, and read its fill. Never raises for the order itself:
        an accepted order whose fill cannot be read is `placed`, an ambiguous one `unknown`; both
        stay in the journal to be resolved by lookup, and block the symbol until then."""
        if kind == "exit" and reason in STOP_REASONS:  # the bot's own stop fired: its exit goes out now
            self.events.emit(EventKind.STOP_TRIGGERED, f"{reason.replace('_', ' ')} hit on {symbol}: closing "
                             f"{amount} lots", symbol=symbol, reason=reason, contracts=amount, client_oid=oid,
                             resting=False)
        self.journal.record_intent(oid, symbol, side, amount, kind=kind, contract_size=contract_size,
                                   reduce_only=reduce_only, reason=reason, protection=protection)
        try:
            ack = self.broker.create_market_order(symbol, side, amount, leverage=leverage,
                                                  reduce_only=reduce_only, client_oid=oid)
        except OrderOutcomeUnknown as exc:
            self.journal.mark_unknown(oid, str(exc))
            self.stats.unknown += 1
            log.warning("order %s on %s: outcome unknown, symbol blocked until resolved", oid, symbol)
            self.events.emit(EventKind.ERROR, f"{kind} order {oid} on {symbol}: outcome unknown, the symbol is "
                             "blocked until a lookup resolves it", symbol=symbol, client_oid=oid,
                             error="OrderOutcomeUnknown")
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
        intent = self.journal.apply_order(oid, with_fee(order, self.client.markets[symbol]))
        return Sent(oid, intent.status, order)


def with_fee(order: dict[str, Any], market: Any) -> dict[str, Any]:
    """KuCoin's order answers carry no fee (it is on the fills): a market order pays the taker rate."""
    if (order.get("fee") or {}).get("cost") is not None or not order.get("filled"):
        return order
    rate = float(market.get("taker") or 0.0)
    cost = order.get("cost") or float(order["filled"]) * float(market["contractSize"]) * float(order.get("average") or 0)
    return {**order, "fee": {"cost": cost * rate, "currency": market.get("settle") or "USDT", "rate": rate}}
