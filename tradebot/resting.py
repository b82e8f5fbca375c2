"""Protection that rests on the exchange: each held position's stop-loss and take-profit as
KuCoin stop orders, so a crash, a reboot or a lost network never leaves a position naked.

After an entry fills, ``protect`` places a stop-market at the position's stop (closeOrder: it
closes the whole position, mark price) and a reduce-only take-profit; the bot's own monitor
stays the second line. Every stop is an order: journaled (kind "stop" or "take_profit") before it
is sent, with our clientOid, never re-sent; an ambiguous send is resolved by lookup.

- ``trail`` moves the stop when the trailing stop has moved by at least ``trail_step`` of the
  price (and ``trail_interval_s`` since the last move): the new stop is placed first and the old
  one cancelled after, so there is never a moment without one, and never more than one.
- ``clear`` cancels a position's stops once it is closed.
- ``settle`` then ``reconcile`` (every position re-read, and at start) make the exchange match
  the holdings: a journaled stop that left the exchange's list is looked up (a fill is booked:
  the exit a stop made while the bot was down, with its price and fee, once), a missing stop is
  placed, an orphan of ours (no position) and extras are cancelled.

Stops rest only where the broker is the exchange (live and --simulate); the paper broker has none.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from kucoin_futures.errors import (
    InvalidArgument,
    KuCoinError,
    OrderNotFound,
    OrderOutcomeUnknown,
    TransportError,
)
from tradebot.journal import Journal
from tradebot.order_desk import with_fee
from tradebot.records import ACTIVE, RESTING_KINDS, Intent
from tradebot.risk import ProtectiveExit

# The run's trade lines keep the trader's logger (operators filter on it).
log = logging.getLogger("tradebot.trader")

__all__ = ["ExchangeStops", "Held", "StopFilled"]

TRAIL_STEP = 0.002  # move the resting stop once the trailing stop moved 0.2 % of the price
TRAIL_INTERVAL_S = 5.0  # and at most this often per position
STOP, TAKE_PROFIT = RESTING_KINDS


@dataclass(frozen=True, slots=True)
class Held:
    """A position as the resting stops see it."""

    side: str  # "long" | "short"
    contracts: int
    exits: ProtectiveExit


@dataclass(frozen=True, slots=True)
class StopFilled:
    """A resting stop that filled: the exit the exchange made (booked in the journal)."""

    symbol: str
    kind: str  # "stop" | "take_profit"
    intent: Intent
    order: Mapping[str, Any]


@dataclass(slots=True)
class _Resting:
    client_oid: str
    order_id: str | None
    price: float
    moved_at: float = 0.0


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def run(self: ExchangeStops, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)
    return run


class ExchangeStops:
    """The stops of the held positions, resting on the exchange. Thread-safe: the scans (an
    entry that filled at once) and the protection thread both call it; one operation at a time
    (a lock held across its REST calls, so two threads never place the same stop)."""

    def __init__(self, client: Any, journal: Journal, *, new_oid: Callable[[], str],
                 monotonic: Callable[[], float] = time.monotonic, trail_step: float = TRAIL_STEP,
                 trail_interval_s: float = TRAIL_INTERVAL_S) -> None:
        self.client = client
        self.journal = journal
        self._new_oid = new_oid
        self._monotonic = monotonic
        self._trail_step = trail_step
        self._trail_interval_s = trail_interval_s
        self._lock = threading.RLock()
        self._resting: dict[tuple[str, str], _Resting] = {}  # (symbol, kind) -> the stop we keep
        self._listed: dict[str, Mapping[str, Any]] = {}  # clientOid -> untriggered stop, as last read
        self._retired: list[tuple[str, _Resting]] = []  # replaced stops whose cancel failed: tidy() retries
        self._retired_failed = False
        self._passed: set[str] = set()  # symbols whose stop-loss the mark had passed when it was to rest
        for intent in journal.active_intents():
            if intent.kind in RESTING_KINDS:
                self._resting[(intent.symbol, intent.kind)] = _Resting(intent.client_oid, intent.order_id,
                                                                       _price_of(intent))

    @_locked
    def stop_passed(self, symbol: str) -> bool:
        """True when the stop-loss could not rest because the mark price had passed it (it would
        trigger the wrong way): the position is past its stop, and the bot must close it."""
        return symbol in self._passed

    @_locked
    def has_stop(self, symbol: str) -> bool:
        """True when a stop-loss of ours rests (or was sent) for ``symbol``."""
        return (symbol, STOP) in self._resting

    @_locked
    def complete(self, symbol: str, exits: ProtectiveExit) -> bool:
        """True when the stop (and the take-profit, if the exits have one) are resting or sent."""
        return (symbol, STOP) in self._resting and (
            exits.take_profit_price is None or (symbol, TAKE_PROFIT) in self._resting)

    @_locked
    def covers(self, symbol: str, kind: str, side: str, price: float) -> bool:
        """True when our ``kind`` of ``symbol`` is known to rest where it fires at ``price`` or
        sooner (a long's stop at or above it, its take-profit at or below it; a short's mirrored)."""
        resting = self._resting.get((symbol, kind))
        if resting is None or resting.order_id is None:
            return False
        wanted = self._on_tick(symbol, price)
        fires_on_fall = (side == "long") == (kind == STOP)
        return resting.price >= wanted if fires_on_fall else resting.price <= wanted

    # -- placing -----------------------------------------------------------------------------------
    @_locked
    def protect(self, symbol: str, held: Held) -> bool:
        """Place what is missing of the position's stop and take-profit. False when the price has
        already passed the stop (the caller exits at market: a stop there would trigger the wrong way)."""
        ok = True
        if (symbol, STOP) not in self._resting:
            ok = self._place(symbol, STOP, held, held.exits.stop_price)
        if held.exits.take_profit_price is not None and (symbol, TAKE_PROFIT) not in self._resting:
            self._place(symbol, TAKE_PROFIT, held, held.exits.take_profit_price)
        return ok

    @_locked
    def trail(self, symbol: str, held: Held) -> None:
        """Move the resting stop up to the trailing stop (new one first, then cancel the old)."""
        old = self._resting.get((symbol, STOP))
        if old is None or old.order_id is None:
            return  # nothing confirmed resting yet: protect/reconcile handle it
        new_price = self._on_tick(symbol, held.exits.stop_price)
        better = new_price > old.price if held.side == "long" else new_price < old.price
        now = self._monotonic()
        if (not better or abs(new_price - old.price) < self._trail_step * old.price
                or now - old.moved_at < self._trail_interval_s):
            return
        del self._resting[(symbol, STOP)]
        if not self._place(symbol, STOP, held, new_price):
            self._resting[(symbol, STOP)] = old  # keep the old one: it still protects
            return
        self._resting[(symbol, STOP)].moved_at = now
        self._cancel(symbol, old)

    @_locked
    def clear(self, symbol: str) -> list[StopFilled]:
        """Cancel the stops of a position that is closed; return any that filled meanwhile (booked)."""
        self._passed.discard(symbol)
        filled = []
        for kind in RESTING_KINDS:
            resting = self._resting.pop((symbol, kind), None)
            if resting is not None and not self._cancel(symbol, resting):
                found = self._settle_one(symbol, kind, resting)  # gone: triggered, or cancelled
                if found is not None:
                    filled.append(found)
        return filled

    # -- matching the exchange ---------------------------------------------------------------------
    @_locked
    def settle(self, *, force_rest: bool = False) -> list[StopFilled]:
        """Read the exchange's untriggered stops (over REST with ``force_rest``); look up ours that
        left the list and book those that filled (each once). Call before reading positions, then
        ``reconcile``."""
        listed = self.client.get_stop_orders(force_rest=True) if force_rest else self.client.get_stop_orders()
        self._listed = {str(s.get("clientOrderId")): s for s in listed}
        filled = []
        for (symbol, kind), resting in list(self._resting.items()):
            listed = self._listed.get(resting.client_oid)
            if listed is not None:
                if resting.order_id is None:  # an ambiguous send: it did arrive
                    resting.order_id = str(listed.get("id"))
                    self.journal.mark_placed(resting.client_oid, resting.order_id)
                continue
            if self._resting.get((symbol, kind)) is resting:
                found = self._settle_one(symbol, kind, resting)
                if found is not None:
                    filled.append(found)
        return filled

    @_locked
    def reconcile(self, held: Mapping[str, Held], *, keep: set[str]) -> list[StopFilled]:
        """After ``settle``: place what ``held`` is missing, then cancel our stops of symbols not
        in ``keep`` (positions the exchange holds, orders in flight) and extra ones. Returns the
        stops found filled on the way (booked)."""
        filled = [f for symbol in {sym for sym, _ in self._resting} - keep for f in self.clear(symbol)]
        for symbol, position in held.items():  # first: a replacement rests before an extra goes
            if not self.protect(symbol, position):
                log.warning("%s: the mark is past its stop; the monitor closes it now", symbol)
        kept = {r.client_oid for r in self._resting.values()}
        for oid, s in self._listed.items():
            symbol = str(s.get("symbol"))
            if oid in kept or not self._is_ours(oid):
                continue
            intent = self.journal.get_intent(oid)
            if intent is not None and intent.status not in ACTIVE:
                continue  # ended since the listing (cancelled or filled above): nothing to cancel
            if symbol in keep:  # an extra: cancelled once the one we keep is known to rest
                ours = self._resting.get((symbol, intent.kind if intent is not None else STOP))
                if ours is None or ours.order_id is None:
                    continue
            log.info("%s: cancelling resting stop %s (%s)", symbol, oid,
                     "no position" if symbol not in keep else "an extra one")
            self._cancel(symbol, _Resting(oid, str(s.get("id")), 0.0))
        return filled

    def _settle_one(self, symbol: str, kind: str, resting: _Resting) -> StopFilled | None:
        # A stop of ours no longer waiting: what became of it (None: not filled, or not known yet).
        try:
            order = self.client.get_order(None, symbol, client_oid=resting.client_oid)
        except OrderNotFound:
            order = None
        except KuCoinError as exc:
            log.debug("lookup of stop %s failed, next time: %s", resting.client_oid, exc)
            self._resting.setdefault((symbol, kind), resting)
            return None
        if self._resting.get((symbol, kind)) is resting:
            del self._resting[(symbol, kind)]
        if order is None:
            self.journal.mark_rejected(resting.client_oid, "not on the exchange: never placed")
            return None
        intent = self.journal.apply_order(resting.client_oid, with_fee(order, self.client.markets[symbol]))
        if intent.status != "filled":
            return None
        log.info("%s: resting %s %s filled: %s lots at %s", symbol, kind, resting.client_oid,
                 order.get("filled"), order.get("average"))
        return StopFilled(symbol, kind, intent, order)

    # -- one order ---------------------------------------------------------------------------------
    def _place(self, symbol: str, kind: str, held: Held, price: float) -> bool:
        closing = "sell" if held.side == "long" else "buy"
        # A long's stop-loss triggers on a fall ("down"), its take-profit on a rise; a short's the opposite.
        loss_side = (held.side == "long") == (kind == STOP)
        expect = "down" if loss_side else "up"
        on_tick = self._on_tick(symbol, price)
        oid = self._new_oid()
        market = self.client.markets[symbol]
        self.journal.record_intent(oid, symbol, closing, held.contracts, kind=kind, reduce_only=True,
                                   contract_size=float(market["contractSize"]), reason=f"{kind} at {on_tick}")
        try:
            order = self.client.create_stop_order(symbol, closing, held.contracts, on_tick, price_type="mark",
                                                  close_order=kind == STOP, client_oid=oid,
                                                  expect_direction=expect)
        except OrderOutcomeUnknown as exc:
            self.journal.mark_unknown(oid, str(exc))
            self._resting[(symbol, kind)] = _Resting(oid, None, on_tick)  # looked up at reconcile
            log.warning("%s: %s %s outcome unknown, looked up later", symbol, kind, oid)
            return True
        except InvalidArgument as exc:
            self.journal.mark_rejected(oid, str(exc))
            log.warning("%s: %s at %s not placed: %s", symbol, kind, on_tick, exc)
            if kind == STOP:
                self._passed.add(symbol)
            return kind != STOP
        except KuCoinError as exc:
            self.journal.mark_rejected(oid, str(exc))
            log.warning("%s: %s at %s refused, retried at the next reconcile: %s", symbol, kind, on_tick, exc)
            return True
        order_id = None if order.get("id") is None else str(order["id"])
        self.journal.mark_placed(oid, order_id)
        self._resting[(symbol, kind)] = _Resting(oid, order_id, on_tick, self._monotonic())
        if kind == STOP:
            self._passed.discard(symbol)
        log.info("%s: %s resting at %s (%s %d, %s)", symbol, kind, on_tick, closing, held.contracts, oid)
        return True

    @_locked
    def tidy(self) -> None:
        """Retry the cancels of replaced stops that failed (a 5xx, a timeout): none piles up."""
        for symbol, resting in list(self._retired):
            if self._cancel(symbol, resting, retry=False) or not self._retired_failed:
                self._retired.remove((symbol, resting))

    def _cancel(self, symbol: str, resting: _Resting, *, retry: bool = True) -> bool:
        # True once cancelled; False if it was gone (triggered or cancelled): the caller looks it
        # up. A cancel that failed (no answer, busy) is retried by tidy() while it is still ours.
        self._retired_failed = False
        try:
            if resting.order_id is not None:
                order = self.client.cancel_stop_order(resting.order_id, symbol=symbol)
            else:
                order = self.client.cancel_stop_order(client_oid=resting.client_oid, symbol=symbol)
        except (TransportError, OrderOutcomeUnknown) as exc:
            log.warning("%s: cancel of stop %s failed, retried: %s", symbol, resting.client_oid, exc)
            self._retired_failed = True
            if retry:
                self._retired.append((symbol, resting))
            return False
        except KuCoinError as exc:
            log.info("%s: cancel of stop %s: %s", symbol, resting.client_oid, exc)
            return False
        if self.journal.get_intent(resting.client_oid) is not None and order.get("status") not in (None, "open"):
            self.journal.apply_order(resting.client_oid, order)
        return True

    def _on_tick(self, symbol: str, price: float) -> float:
        tick = Decimal(str(self.client.markets[symbol]["precision"]["price"]))
        return float((Decimal(repr(price)) / tick).quantize(Decimal(1), rounding=ROUND_HALF_UP) * tick)

    def _is_ours(self, client_oid: str) -> bool:
        return client_oid.startswith("bot-") or self.journal.get_intent(client_oid) is not None


def _price_of(intent: Intent) -> float:
    # The journal keeps the stop's price in its reason ("stop at 95.5"); 0 if unreadable.
    try:
        return float(intent.reason.rsplit(" ", 1)[-1])
    except ValueError:
        return 0.0
