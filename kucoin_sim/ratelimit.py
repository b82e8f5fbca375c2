"""KuCoin's resource-pool rate limits: a quota per 30 s window, each endpoint charging a weight.

The window starts with the first request after the previous window ended (protocol notes §5.1).
Every response carries gw-ratelimit-limit / -remaining / -reset (ms until the window resets);
an exhausted pool answers HTTP 429 with code 429000.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

WINDOW_MS = 30_000
POOL_QUOTAS = {"public": 2000, "futures": 2000, "management": 2000}  # VIP0 quotas


@dataclass(slots=True)
class _Window:
    start_ms: int
    used: int


@dataclass(frozen=True, slots=True)
class Charge:
    """Outcome of one request against its pool."""

    allowed: bool
    limit: int
    remaining: int
    reset_ms: int

    def headers(self) -> dict[str, str]:
        return {
            "gw-ratelimit-limit": str(self.limit),
            "gw-ratelimit-remaining": str(self.remaining),
            "gw-ratelimit-reset": str(self.reset_ms),
        }


class RateLimiter:
    """Per (pool, key) windows; key is the client IP for the public pool, the API key otherwise."""

    def __init__(self, quotas: Mapping[str, int] | None = None, *, enabled: bool = True) -> None:
        self.quotas = {**POOL_QUOTAS, **(quotas or {})}
        self.enabled = enabled
        self._windows: dict[tuple[str, str], _Window] = {}
        self.rejections = 0

    def charge(self, pool: str, key: str, weight: int, now_ms: int) -> Charge:
        limit = self.quotas[pool]
        window = self._windows.get((pool, key))
        if window is None or now_ms - window.start_ms >= WINDOW_MS:
            window = self._windows[(pool, key)] = _Window(now_ms, 0)
        reset_ms = max(0, window.start_ms + WINDOW_MS - now_ms)
        if self.enabled and window.used + weight > limit:
            self.rejections += 1
            return Charge(False, limit, max(0, limit - window.used), reset_ms)
        window.used += weight
        return Charge(True, limit, max(0, limit - window.used), reset_ms)

    def reset(self) -> None:
        self._windows.clear()
