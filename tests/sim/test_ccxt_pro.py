"""ccxt.pro (unmodified, URLs pointed at the simulator) receives live updates over WebSocket."""
from __future__ import annotations

import asyncio
import time

import ccxt.pro
import pytest

from kucoin_sim import Simulator
from tests.helpers import TIMEOUT_S, ccxt_config

BTC = "BTC/USDT:USDT"


async def _with_exchange(sim: Simulator, body) -> object:
    ex = ccxt.pro.kucoinfutures(ccxt_config(sim, credentials=False))
    try:
        return await asyncio.wait_for(body(ex), 4 * TIMEOUT_S)
    finally:
        await ex.close()


def test_watch_ticker_receives_updates(sim: Simulator) -> None:
    async def body(ex):
        first = await ex.watch_ticker(BTC)
        second = await ex.watch_ticker(BTC)
        return first, second

    first, second = asyncio.run(_with_exchange(sim, body))
    assert first["symbol"] == BTC and first["last"] > 0
    assert second["timestamp"] >= first["timestamp"]
    assert abs(second["timestamp"] - time.time() * 1000) < 60_000
    assert "/contractMarket/ticker:XBTUSDTM" in sim.call(lambda: set(sim.hub.by_topic)) or sim.connections_total >= 1


def test_watch_ohlcv_receives_candles(sim: Simulator) -> None:
    async def body(ex):
        return await ex.watch_ohlcv(BTC, "1m")

    candles = asyncio.run(_with_exchange(sim, body))
    ts, o, h, low, c, v = candles[-1]
    assert ts % 60_000 == 0 and abs(ts - time.time() * 1000) < 120_000
    assert low <= min(o, c) <= max(o, c) <= h and v >= 0


@pytest.mark.parametrize("limit", [None, 5])
def test_watch_order_book_syncs(sim: Simulator, limit: int | None) -> None:
    async def body(ex):
        book = await ex.watch_order_book(BTC, limit)
        for _ in range(5):
            book = await ex.watch_order_book(BTC, limit)
        return book

    book = asyncio.run(_with_exchange(sim, body))
    assert book["bids"] and book["asks"]
    assert book["bids"][0][0] < book["asks"][0][0]
    if limit:
        assert len(book["bids"]) == limit
