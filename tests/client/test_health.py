"""KuCoinClient's reporting parts: degraded-service log lines, read counts (pure: no simulator)."""
from __future__ import annotations

import logging
import threading

import pytest

from kucoin_futures.client.health import DegradedLog, SourceCounts

KEY = ("candles", "BTC/USDT:USDT", "1m")


def test_degraded_series_log_a_warning_once_then_debug_and_info_on_recovery(caplog: pytest.LogCaptureFixture) -> None:
    degraded = DegradedLog()
    with caplog.at_level(logging.DEBUG, logger="kucoin_futures.client.health"):
        states = [bool(degraded.keys)]
        degraded.fell_back(KEY)
        degraded.fell_back(KEY)
        states.append(bool(degraded.keys))
        degraded.recovered(KEY)
        degraded.recovered(KEY)  # not degraded any more: nothing to say
        states.append(bool(degraded.keys))
    assert states == [False, True, False]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "candles BTC/USDT:USDT 1m: no fresh WebSocket data; served from REST until it returns"),
        ("DEBUG", "candles BTC/USDT:USDT 1m: no fresh WebSocket data; REST"),
        ("INFO", "candles BTC/USDT:USDT 1m: served from the WebSocket cache again"),
    ]


def test_source_counts_lose_no_count_across_threads() -> None:
    counts = SourceCounts()
    start = threading.Barrier(4)

    def reader(source: str) -> None:
        start.wait()
        add = counts.add_websocket if source == "websocket" else (lambda: counts.add("rest"))
        for _ in range(50_000):
            add()

    threads = [threading.Thread(target=reader, args=(s,)) for s in ("websocket", "websocket", "rest", "rest")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts.snapshot() == {"websocket": 100_000, "rest": 100_000}
