"""`PriorityExecutor`: the priority scheduler (CRITICAL > HIGH > NORMAL > LOW) with KuCoin-aware
rate-limit pools, under every REST call. Defined in kucoin_futures.scheduling.executor.
"""
from __future__ import annotations

from kucoin_futures.scheduling.executor import (
    DEFAULT_RESERVE_FRACTION,
    DEFAULT_WINDOW_S,
    CallAbandoned,
    PoolState,
    Priority,
    PriorityExecutor,
    RateLimit,
    SchedulerClosed,
    delay_until_allowed,
)

__all__ = [
    "DEFAULT_RESERVE_FRACTION",
    "DEFAULT_WINDOW_S",
    "CallAbandoned",
    "PoolState",
    "Priority",
    "PriorityExecutor",
    "RateLimit",
    "SchedulerClosed",
    "delay_until_allowed",
]
