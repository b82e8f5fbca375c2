"""Regression: a live candle push that arrives before the history fetch must not shrink it.

The history fetch once started from the newest candle held; when a live push landed first (the
REST worker busy with other symbols), only that candle onward was fetched and the series stayed
at one candle, so every read of it fell back to REST.
"""
from __future__ import annotations

from kucoin_sim import Simulator
from kucoin_websocket import KuCoinWebSocket
from tests.helpers import TIMEOUT_S, wait_until

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "XRP/USDT:USDT")


def test_history_is_loaded_even_when_live_pushes_arrive_first() -> None:
    with Simulator(seed=12, vol_scale=3.0) as sim, KuCoinWebSocket(rest_url=sim.url) as ws:
        with sim.delay_rest(0.5, "GET", "/api/v1/kline/query"):  # live pushes win the race
            for symbol in SYMBOLS:
                ws.subscribe_candles(symbol, "1m")

            def lengths() -> list[int]:
                return [len(ws.get_candles(s, "1m", max_age_s=1e9) or ()) for s in SYMBOLS]

            wait_until(lambda: min(lengths()) >= 400, timeout_s=4 * TIMEOUT_S,
                       what="500 candles of history for every symbol")
