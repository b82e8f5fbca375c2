"""A level-2 order book in integer ticks: market-maker liquidity plus the account's resting orders.

Prices are integers (multiples of the contract's tick size) so there is no float drift; PriceFormat
turns ticks into KuCoin's decimal strings. Every change of a level's total size advances the book
sequence by exactly one and records a BookDelta, which is what KuCoin's level2 topic promises.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from decimal import Decimal

from .events import BookDelta, Side


class PriceFormat:
    """Convert between integer ticks and decimal strings for one tick size (e.g. "0.1")."""

    __slots__ = ("tick", "_num", "_scale", "_decimals")

    def __init__(self, tick_size: str) -> None:
        tick = Decimal(tick_size)
        if tick <= 0:
            raise ValueError(f"tick size must be positive, got {tick_size!r}")
        self.tick = tick
        self._decimals = max(0, -tick.as_tuple().exponent)
        self._scale = 10 ** self._decimals
        self._num = int(tick * self._scale)

    def to_str(self, ticks: int) -> str:
        """Return the price of `ticks` as KuCoin writes it ("67158.4")."""
        units = ticks * self._num
        if self._decimals == 0:
            return str(units)
        sign = "-" if units < 0 else ""
        whole, frac = divmod(abs(units), self._scale)
        return f"{sign}{whole}.{frac:0{self._decimals}d}".rstrip("0").rstrip(".")

    def to_float(self, ticks: int) -> float:
        return float(self.to_str(ticks))

    def to_ticks(self, price: Decimal | str | float) -> int:
        """Return the tick count of an exact price; raise ValueError when off the tick grid."""
        value = Decimal(str(price))
        ticks, rem = divmod(value, self.tick)
        if rem != 0:
            raise ValueError(f"price {price} is not a multiple of tick size {self.tick}")
        return int(ticks)

    def nearest_ticks(self, price: float) -> int:
        return int(round(price * self._scale / self._num))


@dataclass(slots=True)
class Level:
    mm: int = 0  # market-maker liquidity, the part a taker order consumes
    user: int = 0  # the account's own resting orders (not self-matched, see kucoin_sim/README.md)

    @property
    def total(self) -> int:
        return self.mm + self.user


class Book:
    """Bids ("buy") and asks ("sell") keyed by ticks, with a strictly +1 change sequence."""

    def __init__(self, symbol: str, fmt: PriceFormat, *, start_sequence: int) -> None:
        self.symbol = symbol
        self.fmt = fmt
        self.sequence = start_sequence
        self._levels: dict[Side, dict[int, Level]] = {"buy": {}, "sell": {}}
        # ascending tick lists; bids are read from the end, asks from the start
        self._sorted: dict[Side, list[int]] = {"buy": [], "sell": []}
        self._deltas: list[BookDelta] = []
        self.ts_ms = 0

    # -- reads ---------------------------------------------------------------------------------
    def best(self, side: Side) -> int | None:
        keys = self._sorted[side]
        if not keys:
            return None
        return keys[-1] if side == "buy" else keys[0]

    def best_mm(self, side: Side) -> int | None:
        """Best price that has market-maker liquidity (what a taker order can hit)."""
        keys, book = self._sorted[side], self._levels[side]
        for ticks in (reversed(keys) if side == "buy" else keys):
            if book[ticks].mm > 0:
                return ticks
        return None

    def size_at(self, side: Side, ticks: int) -> int:
        level = self._levels[side].get(ticks)
        return level.total if level else 0

    def mm_at(self, side: Side, ticks: int) -> int:
        level = self._levels[side].get(ticks)
        return level.mm if level else 0

    def prices(self, side: Side) -> list[int]:
        """Prices best first."""
        keys = self._sorted[side]
        return keys[::-1] if side == "buy" else list(keys)

    def levels(self, side: Side, depth: int | None = None) -> list[tuple[int, int]]:
        """(ticks, total size) pairs, best first, at most `depth` of them."""
        keys = self.prices(side)
        if depth is not None:
            keys = keys[:depth]
        book = self._levels[side]
        return [(k, book[k].total) for k in keys]

    # -- writes --------------------------------------------------------------------------------
    def set_mm(self, side: Side, ticks: int, size: int, ts_ms: int) -> None:
        """Set the market maker's size at a price (0 removes it)."""
        if size < 0:
            raise ValueError("size must be >= 0")
        if size == 0 and ticks not in self._levels[side]:
            return
        level = self._level(side, ticks)
        if level.mm != size:
            level.mm = size
            self._changed(side, ticks, level, ts_ms)

    def add_user(self, side: Side, ticks: int, qty: int, ts_ms: int) -> None:
        level = self._level(side, ticks)
        level.user += qty
        self._changed(side, ticks, level, ts_ms)

    def remove_user(self, side: Side, ticks: int, qty: int, ts_ms: int) -> None:
        level = self._levels[side].get(ticks)
        if level is None or level.user < qty:
            raise ValueError(f"no {qty} user lots resting at {ticks} on {side}")
        level.user -= qty
        self._changed(side, ticks, level, ts_ms)

    def take_mm(self, side: Side, ticks: int, qty: int, ts_ms: int) -> int:
        """Consume up to qty market-maker lots at one price; return how many were taken."""
        level = self._levels[side].get(ticks)
        if level is None or level.mm == 0:
            return 0
        taken = min(qty, level.mm)
        level.mm -= taken
        self._changed(side, ticks, level, ts_ms)
        return taken

    def drain_deltas(self) -> list[BookDelta]:
        deltas, self._deltas = self._deltas, []
        return deltas

    def skip_sequence(self) -> int:
        """Fault injection: burn one sequence number without a delta; return the skipped one."""
        self.sequence += 1
        return self.sequence

    # -- internals -----------------------------------------------------------------------------
    def _level(self, side: Side, ticks: int) -> Level:
        book = self._levels[side]
        level = book.get(ticks)
        if level is None:
            level = book[ticks] = Level()
            bisect.insort(self._sorted[side], ticks)
        return level

    def _changed(self, side: Side, ticks: int, level: Level, ts_ms: int) -> None:
        total = level.total
        if total == 0:
            del self._levels[side][ticks]
            keys = self._sorted[side]
            del keys[bisect.bisect_left(keys, ticks)]
        self.sequence += 1
        self.ts_ms = ts_ms
        self._deltas.append(
            BookDelta(self.symbol, self.sequence, self.fmt.to_str(ticks), side, total, ts_ms)
        )
