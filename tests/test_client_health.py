"""KuCoinClient's degraded-service log lines (pure: no simulator)."""
from __future__ import annotations

import logging

import pytest

from kucoin_health import DegradedLog

KEY = ("candles", "BTC/USDT:USDT", "1m")


def test_degraded_series_log_a_warning_once_then_debug_and_info_on_recovery(caplog: pytest.LogCaptureFixture) -> None:
    degraded = DegradedLog()
    with caplog.at_level(logging.DEBUG, logger="kucoin_health"):
        states = [bool(degraded)]
        degraded.fell_back(KEY)
        degraded.fell_back(KEY)
        states.append(bool(degraded))
        degraded.recovered(KEY)
        degraded.recovered(KEY)  # not degraded any more: nothing to say
        states.append(bool(degraded))
    assert states == [False, True, False]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "candles BTC/USDT:USDT 1m: no fresh WebSocket data; served from REST until it returns"),
        ("DEBUG", "candles BTC/USDT:USDT 1m: no fresh WebSocket data; REST"),
        ("INFO", "candles BTC/USDT:USDT 1m: served from the WebSocket cache again"),
    ]
