"""What the journal records, as values: order intents and their state table, fills, protective exits.

Pure: no SQLite here (journal.py stores these), no clock (times come in as epoch ms). The trader,
the paper broker and the run summary share this vocabulary.

Intent states (a transition table; re-marking the same state is a no-op update)::

    pending --> placed | rejected | unknown | filled | canceled
    unknown --> placed | rejected | filled | canceled
    placed  --> filled | canceled
    filled, rejected, canceled: final

A Fill is what one order executed (``fill_id = "order:<orderId>"``, cumulative size, average
price, total fee), so seeing an order twice never double-counts.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kucoin_futures.errors import InvalidArgument
from kucoin_futures.protocol.wire import CLIENT_OID_RE

__all__ = ["ACTIVE", "CLIENT_OID_RE", "KINDS", "ORDER_KINDS", "RESTING_KINDS", "TRANSITIONS", "UNRESOLVED", "Fill",
           "Intent", "Protection", "fill_from_order"]

ORDER_KINDS = ("entry", "exit", "close")  # orders that fill (or not) at once
RESTING_KINDS = ("stop", "take_profit")  # stop orders resting on the exchange until triggered (resting.py)
KINDS = ORDER_KINDS + RESTING_KINDS
UNRESOLVED = ("pending", "unknown")
ACTIVE = ("pending", "unknown", "placed")
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"placed", "rejected", "unknown", "filled", "canceled"}),
    "unknown": frozenset({"placed", "rejected", "filled", "canceled"}),
    "placed": frozenset({"filled", "canceled"}),
    "filled": frozenset(),
    "rejected": frozenset(),
    "canceled": frozenset(),
}


@dataclass(frozen=True, slots=True)
class Intent:
    """One order the bot decided to send, and what became of it."""

    client_oid: str
    symbol: str
    side: str  # "buy" | "sell"
    amount: int  # contracts
    kind: str  # "entry" | "exit" | "close" | "stop" | "take_profit"
    reduce_only: bool
    contract_size: float
    reason: str
    created_ms: int
    updated_ms: int
    status: str
    order_id: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    """What an order executed: cumulative contracts at the average price, and the total fee."""

    fill_id: str
    client_oid: str | None
    order_id: str | None
    symbol: str
    side: str
    amount: int
    price: float
    fee: float
    fee_currency: str
    contract_size: float
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Protection:
    """The protective exits of one position, as journaled: the stop, take profit and trailing
    state the running bot enforces, and the ATR they were set from (to re-anchor them on the fill).
    `client_oid` is the entry intent that opened the position (None for an adopted position)."""

    symbol: str
    client_oid: str | None
    side: str  # "long" | "short"
    stop_price: float
    take_profit_price: float | None
    trailing_distance: float | None
    watermark: float | None
    trailing_active: bool
    atr: float | None
    updated_ms: int = 0


def fill_from_order(intent: Intent, order: Mapping[str, Any], order_id: str | None, filled: int,
                    now_ms: int) -> Fill:
    """Return the Fill of a ccxt order dict that filled `filled` contracts of `intent`."""
    price = order.get("average") or order.get("price")
    if not price:
        raise InvalidArgument(f"order for {intent.client_oid} filled {filled} without a price")
    fee = order.get("fee") or {}
    # ccxt's KuCoin orders have no lastTradeTimestamp; their last update is when the last lot
    # filled (a resting stop's timestamp is when it was placed, not when it fired).
    ts_ms = order.get("lastTradeTimestamp") or order.get("lastUpdateTimestamp") or order.get("timestamp") or now_ms
    return Fill(fill_id=f"order:{order_id or intent.client_oid}", client_oid=intent.client_oid,
                order_id=order_id, symbol=intent.symbol, side=intent.side, amount=filled,
                price=float(price), fee=float(fee.get("cost") or 0.0),
                fee_currency=str(fee.get("currency") or "USDT"),
                contract_size=intent.contract_size, ts_ms=int(ts_ms))
