"""Fault injection state, driven by tests through Simulator methods (loop-thread only).

Each fault is observable: counters record how often it fired.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class FailRule:
    """Answer matching requests with an error instead of serving them."""

    method: str
    path: str  # the concrete request path, e.g. /api/v1/orders
    status: int
    code: str
    msg: str
    rate_headers: bool  # include gw-ratelimit-* headers (quota exhausted) or not (overload)
    remaining: int  # how many more requests this rule answers


@dataclass(slots=True)
class LoseRule:
    """Serve matching requests (the action happens) but never deliver the response."""

    method: str
    path: str
    mode: str  # "timeout": hold the response until the sim stops; "reset": close the connection
    remaining: int


@dataclass(slots=True)
class Faults:
    fail_rules: list[FailRule] = field(default_factory=list)
    lose_rules: list[LoseRule] = field(default_factory=list)
    delay_s: float = 0.0
    delay_method: str | None = None
    delay_path: str | None = None
    refuse_ws_remaining: int = 0
    # counters, for assertions
    failed: int = 0
    lost: int = 0
    delayed: int = 0
    ws_refused: int = 0
    ws_dropped: int = 0
    malformed_sent: int = 0
    tokens_expired: int = 0
    sequences_skipped: int = 0

    def take_fail(self, method: str, path: str) -> FailRule | None:
        for rule in self.fail_rules:
            if rule.method == method and rule.path == path and rule.remaining > 0:
                rule.remaining -= 1
                self.failed += 1
                if rule.remaining == 0:
                    self.fail_rules.remove(rule)
                return rule
        return None

    def take_lose(self, method: str, path: str) -> LoseRule | None:
        for rule in self.lose_rules:
            if rule.method == method and rule.path == path and rule.remaining > 0:
                rule.remaining -= 1
                self.lost += 1
                if rule.remaining == 0:
                    self.lose_rules.remove(rule)
                return rule
        return None

    def delay_for(self, method: str, path: str) -> float:
        if self.delay_s <= 0:
            return 0.0
        if self.delay_method not in (None, method) or self.delay_path not in (None, path):
            return 0.0
        self.delayed += 1
        return self.delay_s
