"""The simulated price process and the market maker that quotes it into a Book.

PriceDriver is a log-price random walk per base currency (XBTUSDTM, XBTUSDM and the XBT quarterly
futures move together). MarketMaker keeps ~`depth` levels on each side of one Book: the best
level at the quoted bid/ask and the rest on a grid of `step` ticks beyond it. When the quote
moves it changes only what moved (the levels that enter or leave the window), and it perturbs a
few sizes every tick, so the level-2 stream looks like a live book. It only ever sets the
market-maker part of a level (Level.mm); the account's own resting orders are left alone.
"""
from __future__ import annotations

import math
from random import Random

from .book import Book
from .events import Side

NEAR_LEVELS = 20  # size perturbations hit the best levels, where books are busiest


class PriceDriver:
    """A log-price random walk advanced once per tick; factor() = price / start price."""

    __slots__ = ("_gauss", "_sigma", "log")

    def __init__(self, rng: Random, sigma_per_tick: float) -> None:
        self._gauss = rng.gauss
        self._sigma = sigma_per_tick
        self.log = 0.0

    def step(self, ticks: int = 1) -> None:
        self.log += self._gauss(0.0, self._sigma * math.sqrt(ticks))

    def factor(self) -> float:
        return math.exp(self.log)


def _outside(lo: int, hi: int, other_lo: int, other_hi: int) -> list[range]:
    """Return the parts of [lo, hi] outside [other_lo, other_hi] as ranges."""
    if hi < other_lo or lo > other_hi:
        return [range(lo, hi + 1)]
    return [range(lo, other_lo), range(other_hi + 1, hi + 1)]


class MarketMaker:
    """Quote one symbol's book around a moving best bid / best ask."""

    def __init__(self, book: Book, rng: Random, *, step: int, depth: int, base_size: int,
                 max_ticks: int) -> None:
        self.book = book
        self.step = step
        self.depth = depth
        self.base_size = base_size
        self.top: dict[Side, int | None] = {"buy": None, "sell": None}
        self.levels: dict[Side, dict[int, int]] = {"buy": {}, "sell": {}}  # price -> quoted size
        self._rng = rng
        self._max_ticks = max_ticks

    # -- quoting -------------------------------------------------------------------------------
    def quote(self, bid: int, ask: int, ts_ms: int) -> None:
        """Move the quotes to best bid `bid` / best ask `ask` (removals first, then additions)."""
        book = self.book
        bid_adds = self._remove("buy", bid, ts_ms)
        ask_adds = self._remove("sell", ask, ts_ms)
        # never cross resting account orders the hooks left in the book
        best_ask, best_bid = book.best("sell"), book.best("buy")
        if best_ask is not None and best_ask <= bid:
            bid_adds = [p for p in bid_adds if p < best_ask]
        if best_bid is not None and best_bid >= ask:
            ask_adds = [p for p in ask_adds if p > best_bid]
        self._add("buy", bid, bid_adds, ts_ms)
        self._add("sell", ask, ask_adds, ts_ms)

    def perturb(self, count: int, ts_ms: int) -> None:
        """Change `count` sizes among the best levels (refilling what takers consumed)."""
        rng = self._rng
        for _ in range(count):
            side: Side = "buy" if rng.random() < 0.5 else "sell"
            top = self.top[side]
            if top is None:
                continue
            levels = self.levels[side]
            offset = 0 if rng.random() < 0.25 else rng.randrange(1, NEAR_LEVELS)
            price = self._grid_price(side, top, offset)
            if price not in levels:
                continue
            size = max(1, int(levels[price] * math.exp(rng.gauss(0.0, 0.3))))
            if size == self.book.mm_at(side, price):
                size += 1
            levels[price] = size
            self.book.set_mm(side, price, size, ts_ms)

    # -- internals -----------------------------------------------------------------------------
    def _units(self, side: Side, top: int) -> tuple[int, int]:
        # grid levels (in units of step) strictly beyond the best level
        if side == "buy":
            hi = (top - 1) // self.step
            return max(1, hi - self.depth + 2), hi
        lo = top // self.step + 1
        return lo, min(self._max_ticks // self.step, lo + self.depth - 2)

    def _grid_price(self, side: Side, top: int, offset: int) -> int:
        if offset == 0:
            return top
        lo, hi = self._units(side, top)
        return (hi - offset + 1) * self.step if side == "buy" else (lo + offset - 1) * self.step

    def _remove(self, side: Side, top: int, ts_ms: int) -> list[int]:
        """Remove levels that leave the window; return the prices that must be added."""
        step, levels = self.step, self.levels[side]
        lo, hi = self._units(side, top)
        old_top = self.top[side]
        if old_top is None:
            return [top] + [u * step for u in range(lo, hi + 1)]
        if old_top == top:
            return [] if top in levels else [top]  # re-place a top a crossing guard held back
        old_lo, old_hi = self._units(side, old_top)
        candidates = [old_top] + [u * step for r in _outside(old_lo, old_hi, lo, hi) for u in r]
        for price in candidates:
            if price in levels and price != top and not (price % step == 0 and lo <= price // step <= hi):
                del levels[price]
                if self.book.mm_at(side, price):  # set_mm(0) on a missing level would create it
                    self.book.set_mm(side, price, 0, ts_ms)
        adds = [top] + [u * step for r in _outside(lo, hi, old_lo, old_hi) for u in r]
        return [p for p in adds if p not in levels]

    def _add(self, side: Side, top: int, prices: list[int], ts_ms: int) -> None:
        rng, levels, book = self._rng, self.levels[side], self.book
        self.top[side] = top
        for price in prices:
            if price < 1 or price > self._max_ticks:
                continue
            distance = abs(price - top) / (self.step * self.depth)
            size = max(1, int(self.base_size * (1 + 2 * distance) * math.exp(rng.gauss(0.0, 0.5))))
            levels[price] = size
            book.set_mm(side, price, size, ts_ms)
