"""Test helpers: one scalable timeout, waiting on conditions, a fake monotonic clock, routing a
decoded frame to its parser, ccxt pointed at the simulator."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kucoin_futures.protocol.parse import parse_candle, parse_frame, parse_level2, parse_ticker, parse_ticker_v2

# Slow CI gets more time without code edits: TEST_TIMEOUT_FACTOR=3 python -m pytest
TIMEOUT_S = 5.0 * float(os.environ.get("TEST_TIMEOUT_FACTOR", "1"))

# A push's subject names its parser, as in MarketFeed's dispatch table (ws/feed.py).
PUSH_PARSERS = {"tickerV2": parse_ticker_v2, "ticker": parse_ticker, "level2": parse_level2,
                "candle.stick": parse_candle}


def wait_until(predicate: Callable[[], Any], timeout_s: float = TIMEOUT_S, what: str = "condition", *,
               poll_s: float = 0.01) -> Any:
    """Re-check predicate every ``poll_s`` until it returns something truthy (returned); an
    AssertionError naming ``what`` after timeout_s. The benchmarks use it too (bench/common.py)."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:.1f}s waiting for {what}")
        pause.wait(poll_s)


class FakeClock:
    """Monotonic seconds that move only when told: ``advance(s)``, or ``wait(s)`` standing in for
    an Event's wait that times out (it moves the clock and returns False)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return False


def parse_message(message: Mapping[str, Any], *, received_at: float) -> Any:
    """Parse a decoded frame the way the WebSocket thread routes it: a push whose subject the feed
    handles by that subject's parser, any other frame by ``parse_frame`` (the session's)."""
    subject = message.get("subject")
    parser = PUSH_PARSERS.get(subject) if isinstance(subject, str) else None
    if parser is None:
        return parse_frame(message, received_at=received_at)
    return parser(message, received_at=received_at)


def ccxt_config(sim: Any, *, credentials: bool = True, **extra: Any) -> dict[str, Any]:
    """ccxt.kucoinfutures options with only the URLs pointed at the simulator."""
    from kucoin_futures.rest.gateway import URL_KEYS

    config: dict[str, Any] = {"urls": {"api": {key: sim.url for key in URL_KEYS}}, "timeout": 10_000}
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
    """An executor on_start callback recording (priority, label) in start order; thread-safe."""

    def __init__(self) -> None:
        self.starts: list[tuple[Any, str]] = []
        self._cond = threading.Condition()

    def __call__(self, priority: Any, label: str) -> None:
        with self._cond:
            self.starts.append((priority, label))
            self._cond.notify_all()

    def snapshot(self) -> list[tuple[Any, str]]:
        with self._cond:
            return list(self.starts)

    def wait_for_count(self, count: int) -> list[tuple[Any, str]]:
        """The starts once there are at least ``count`` (AssertionError after TIMEOUT_S)."""
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.starts) >= count, TIMEOUT_S), self.starts
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
