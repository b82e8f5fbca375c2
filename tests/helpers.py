"""Test helpers: one scalable timeout, waiting on conditions, ccxt pointed at the simulator."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

# Slow CI gets more time without code edits: TEST_TIMEOUT_FACTOR=3 python -m pytest
TIMEOUT_S = 5.0 * float(os.environ.get("TEST_TIMEOUT_FACTOR", "1"))

# Every ccxt URL key that can carry a REST call (protocol notes §2, §8.1).
CCXT_URL_KEYS = ("public", "private", "futuresPublic", "futuresPrivate", "utaPrivate", "uta", "utaV2",
                 "webExchange", "broker", "earn")


def wait_until(predicate: Callable[[], Any], timeout_s: float = TIMEOUT_S, what: str = "condition") -> Any:
    """Re-check predicate until it returns something truthy; fail clearly after timeout_s."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:.1f}s waiting for {what}")
        pause.wait(0.01)


def ccxt_config(sim: Any, *, credentials: bool = True, **extra: Any) -> dict[str, Any]:
    """ccxt.kucoinfutures options with only the URLs pointed at the simulator."""
    config: dict[str, Any] = {"urls": {"api": {key: sim.url for key in CCXT_URL_KEYS}}, "timeout": 10_000}
    if credentials:
        config.update(apiKey=sim.credentials.api_key, secret=sim.credentials.api_secret,
                      password=sim.credentials.api_passphrase)
    config.update(extra)
    return config


def start_gateway(sim: Any, *, timeout_ms: int = 10_000, credentials: Any = None, **gateway_kwargs: Any) -> Any:
    """A started RestGateway whose exchange is built like production's, pointed at the simulator."""
    from kucoin_futures.rest.gateway import RestGateway, build_exchange

    creds = credentials if credentials is not None else sim.credentials
    exchange = build_exchange(sim.url, api_key=creds.api_key, api_secret=creds.api_secret,
                              api_passphrase=creds.api_passphrase, timeout_ms=timeout_ms)
    gateway = RestGateway(exchange, **gateway_kwargs)
    gateway.start()
    return gateway


class StartLog:
    """An executor on_start callback recording (priority, label) in start order."""

    def __init__(self) -> None:
        self.starts: list[tuple[Any, str]] = []
        self._lock = threading.Lock()

    def __call__(self, priority: Any, label: str) -> None:
        with self._lock:
            self.starts.append((priority, label))

    def snapshot(self) -> list[tuple[Any, str]]:
        with self._lock:
            return list(self.starts)


def open_fd_count() -> int:
    """Number of file descriptors this process has open (Linux /proc)."""
    return len(os.listdir("/proc/self/fd"))


def approx_numbers(expected: dict[str, Any], **tolerance: Any) -> dict[str, Any]:
    """``expected`` with its numbers wrapped in ``pytest.approx`` and everything else (strings,
    booleans, None) left to compare exactly: a record compared for what it means, on every pytest
    (9.2 refuses ``pytest.approx`` of a mapping that holds strings)."""
    import pytest

    def wrap(value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return pytest.approx(value, **tolerance)
        return value

    return {key: wrap(value) for key, value in expected.items()}
