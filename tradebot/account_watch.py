"""What the exchange tells the bot on its private feed, acted on: liquidations and auto-deleveraging
booked and announced, funding settlements booked, fills and stop triggers of its own orders
making the protection re-read the exchange at once (instead of at its next periodic sync).

The events come from ``KuCoinClient.account_events()`` (the private WebSocket; nothing is
polled from REST for them). Pure bookkeeping here: the Guard (protection.py) drains the events
on its thread and does what ``AccountWatch.handle`` says.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kucoin_futures.protocol.private import (
    FundingSettlement,
    OrderUpdate,
    PositionChange,
    PositionChangeReason,
    StopChange,
    StopOrderUpdate,
    TradeType,
)
from tradebot.events import EventBus, EventKind
from tradebot.journal import Journal
from tradebot.records import RESTING_KINDS, Fill

# The run's trade lines keep the trader's logger (operators filter on it).
log = logging.getLogger("tradebot.trader")

__all__ = ["AccountWatch"]

FORCED = {PositionChangeReason.LIQUIDATION: "liquidated", PositionChangeReason.ADL: "auto-deleveraged"}


class AccountWatch:
    """Turns account events into bookings, announcements and "re-read now" for the Guard."""

    def __init__(self, journal: Journal, events: EventBus, *, contract_size: Callable[[str], float]) -> None:
        self.journal = journal
        self.events = events
        self._contract_size = contract_size
        self.forced_exits = 0  # positions the exchange closed by liquidation or ADL

    def handle(self, events: Iterable[Any], held: Mapping[str, tuple[str, int]]) -> bool:
        """Book and announce what ``events`` say; True when the Guard should re-read the exchange
        now. ``held``: symbol -> (side, contracts) of the positions the bot holds."""
        resync = False
        for event in events:
            if isinstance(event, FundingSettlement):
                self._funding(event)
            elif isinstance(event, PositionChange) and event.reason in FORCED:
                self._forced(event, held.get(event.symbol))
                resync = True
            elif isinstance(event, StopOrderUpdate) and event.change is StopChange.TRIGGERED:
                resync = True  # one of the resting stops fired: book its exit now
            elif isinstance(event, OrderUpdate) and event.is_fill and event.symbol in held:
                # a fill of a held position the bot does not read back itself: a liquidation's or
                # ADL's execution, a resting stop's, or an order not of this bot
                resync = resync or self._not_read_back(event)
        return resync

    def _not_read_back(self, fill: OrderUpdate) -> bool:
        if fill.trade_type in (TradeType.LIQUID, TradeType.ADL) or fill.client_oid is None:
            return True
        intent = self.journal.get_intent(fill.client_oid)
        return intent is None or intent.kind in RESTING_KINDS

    def _funding(self, event: FundingSettlement) -> None:
        self.journal.record_funding(event.symbol, event.funding_time_ms, event.fee, event.funding_rate, event.qty)
        log.info("%s: funding settled: %+.4f USDT (rate %+.6f on %d lots)", event.symbol, event.fee,
                 event.funding_rate, event.qty)

    def _forced(self, event: PositionChange, held: tuple[str, int] | None) -> None:
        what = FORCED[event.reason]  # type: ignore[index]
        left = abs(event.qty or 0)
        if held is None:
            log.warning("%s: %s by the exchange (%d lots left)", event.symbol, what, left)
            return
        side, contracts = held
        closed = max(contracts - left, 0)
        price = event.mark_price or 0.0
        if closed and price:
            self.journal.record_fill(Fill(
                fill_id=f"{event.reason.value}:{event.symbol}:{event.ts_ms}", client_oid=None, order_id=None,
                symbol=event.symbol, side="sell" if side == "long" else "buy", amount=closed, price=price, fee=0.0,
                fee_currency="USDT", contract_size=self._contract_size(event.symbol), ts_ms=event.ts_ms))
        self.forced_exits += 1
        log.warning("%s: %s %s by the exchange: %d of %d lots closed near %s", event.symbol, side, what, closed,
                    contracts, price)
        self.events.emit(EventKind.LIQUIDATION, f"{event.symbol} {side} {what}: {closed} lots closed near {price}",
                         symbol=event.symbol, reason=event.reason.value, contracts=closed, price=price)
