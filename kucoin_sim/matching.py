"""Taking market-maker liquidity: which book levels an incoming order would consume.

Only `Level.mm` is ever taken: the account's own resting orders (`Level.user`) are never matched
by its own incoming orders (no self-trade; a documented departure from a real venue, where another
participant could trade against them).
"""
from __future__ import annotations

from .book import Book
from .events import Side


def opposite(side: Side) -> Side:
    return "sell" if side == "buy" else "buy"


def plan_take(book: Book, taker_side: Side, size: int, limit_ticks: int | None) -> list[tuple[int, int]]:
    """Return the (ticks, lots) a taker on `taker_side` would take, best price first.

    The book is not changed. `limit_ticks` None means a market order (no price limit).
    """
    plan: list[tuple[int, int]] = []
    left = size
    book_side = opposite(taker_side)
    for ticks in book.prices(book_side):
        if left == 0 or not _within(taker_side, ticks, limit_ticks):
            break
        lots = min(left, book.mm_at(book_side, ticks))
        if lots:
            plan.append((ticks, lots))
            left -= lots
    return plan


def would_take(book: Book, taker_side: Side, limit_ticks: int) -> bool:
    """True when a limit order at `limit_ticks` would take market-maker liquidity (post-only)."""
    best = book.best_mm(opposite(taker_side))
    return best is not None and _within(taker_side, best, limit_ticks)


def crossed_by_quote(side: Side, ticks: int, bid_ticks: int, ask_ticks: int) -> bool:
    """True when a resting account order at `ticks` is crossed by the new best bid/ask."""
    return ticks >= ask_ticks if side == "buy" else ticks <= bid_ticks


def _within(taker_side: Side, ticks: int, limit_ticks: int | None) -> bool:
    if limit_ticks is None:
        return True
    return ticks <= limit_ticks if taker_side == "buy" else ticks >= limit_ticks
