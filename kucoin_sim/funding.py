"""Funding rates, settlement times and open interest: deterministic functions of (seed, symbol, time).

A perpetual's funding rate for settlement k is a pure function of k (a slow wave plus per-period
noise), so the history endpoint, the current rate and the settlement Trading performs all agree:
the "current" rate before a settlement is exactly the rate the history shows for it afterwards.
"""
from __future__ import annotations

import math
from random import Random

HOUR_MS = 3_600_000
FUNDING_OFFSET_MS = 4 * HOUR_MS  # KuCoin settles 8 h funding at 04:00, 12:00 and 20:00 UTC
FUNDING_CAP = 0.003  # fundingRateCap / fundingRateFloor of the current-rate endpoint
MAX_HISTORY_ROWS = 100


class FundingSchedule:
    """The funding rates of one perpetual at its settlement times."""

    def __init__(self, key: str, granularity_ms: int) -> None:
        rng = Random(f"{key}|funding")
        self.granularity_ms = granularity_ms
        self._key = key
        self._phase1 = rng.uniform(0, 2 * math.pi)
        self._phase2 = rng.uniform(0, 2 * math.pi)
        self._level = rng.uniform(0.5e-4, 1.2e-4)

    def settlement_ms(self, k: int) -> int:
        return k * self.granularity_ms + FUNDING_OFFSET_MS % self.granularity_ms

    def last_index(self, t_ms: int) -> int:
        """Return k of the latest settlement at or before t_ms."""
        return (t_ms - FUNDING_OFFSET_MS % self.granularity_ms) // self.granularity_ms

    def rate(self, k: int) -> float:
        """Return the funding rate settled at settlement k (a fraction, e.g. 0.0001)."""
        wave = 0.6 * math.sin(2 * math.pi * k / 21 + self._phase1) + 0.4 * math.sin(
            2 * math.pi * k / 90 + self._phase2)
        noise = Random(f"{self._key}|funding|{k}").gauss(0.0, 1.0)
        value = self._level + 1.2e-4 * wave + 0.6e-4 * noise
        return round(min(FUNDING_CAP, max(-FUNDING_CAP, value)), 6)

    def current(self, now_ms: int) -> tuple[int, int, float, float]:
        """Return (last settlement ms, next settlement ms, current rate, predicted next rate)."""
        k = self.last_index(now_ms)
        return self.settlement_ms(k), self.settlement_ms(k + 1), self.rate(k + 1), self.rate(k + 2)

    def history(self, from_ms: int, to_ms: int) -> list[tuple[int, float]]:
        """Return (settlement ms, rate) for settlements in [from_ms, to_ms], newest first, at most 100."""
        newest = self.last_index(to_ms)
        oldest = max(self.last_index(from_ms - 1) + 1, newest - MAX_HISTORY_ROWS + 1)
        return [(self.settlement_ms(k), self.rate(k)) for k in range(newest, oldest - 1, -1)]


def open_interest(key_phase: float, base_lots: float, now_ms: int) -> int:
    """Return a slowly varying open interest in lots (a 3-day wave around base_lots)."""
    wave = math.sin(2 * math.pi * now_ms / (3 * 24 * HOUR_MS) + key_phase)
    return max(1, int(base_lots * (1 + 0.15 * wave)))
