"""What the bot holds: one open position's state as the protection keeps it, and its journal row.

Pure values and conversions (no I/O): the Guard (protection.py) owns the holdings, the journal
stores the rows, the trader reads both.
"""
from __future__ import annotations

from dataclasses import dataclass

from tradebot.records import Protection
from tradebot.risk import ProtectiveExit

__all__ = ["Holding", "exits_of", "fmt_price", "protection_record"]


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
    resting_due_at: float | None = None  # monotonic: the exchange's resting stop should have fired by then
    resting_retry_at: float = 0.0  # monotonic: no new attempt to place a missing resting stop before this
    resting_pause_s: float = 0.0


def protection_record(symbol: str, client_oid: str | None, exits: ProtectiveExit,
                      atr_value: float | None) -> Protection:
    """The journal's row of a position's exits."""
    return Protection(symbol, client_oid, exits.side, exits.stop_price, exits.take_profit_price,
                      exits.trailing_distance, exits.watermark, exits.trailing_active, atr_value)


def exits_of(saved: Protection) -> ProtectiveExit:
    return ProtectiveExit(saved.side, saved.stop_price, saved.take_profit_price,  # type: ignore[arg-type]
                          saved.trailing_distance, saved.watermark, saved.trailing_active)


def fmt_price(price: float | None) -> str:
    return "none" if price is None else f"{price:.6g}"
