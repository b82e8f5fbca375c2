"""bot.backfill against the simulator: one prefetch for the universe, then every history read
from the WebSocket cache (or REST without it), with the progress bar on stderr."""
from __future__ import annotations

from typing import Any

import pytest

import bot
from kucoin_client import KuCoinClient
from kucoin_sim import Simulator
from tests.helpers import wait_until

UNIVERSE = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]
IDS = ("XBTUSDTM", "ETHUSDTM", "SOLUSDTM")
FULL_BAR = "Backfilling 1m candles [" + "#" * 30 + "] 3/3\n"


def make_client(sim: Simulator, **kwargs: Any) -> KuCoinClient:
    creds = sim.credentials
    return KuCoinClient(creds.api_key, creds.api_secret, creds.api_passphrase, futures_url=sim.url, **kwargs)


def test_backfill_prefetches_the_universe_and_reads_it_from_the_cache(sim: Simulator,
                                                                      capsys: pytest.CaptureFixture) -> None:
    expected_topics = {f"/contractMarket/{kind}:{kid}" for kid in IDS for kind in ("tickerV2", "ticker")}
    expected_topics |= {f"/contractMarket/limitCandle:{kid}_1min" for kid in IDS}
    with make_client(sim) as client:
        bot.backfill(client, UNIVERSE, "1m")
        after_backfill = client.source_counts
        tickers = [client.get_ticker(symbol)["source"] for symbol in UNIVERSE]  # subscribed by the backfill
        wait_until(lambda: sim.subscriptions == expected_topics, what="the universe's ticker and candle topics")
    progress = capsys.readouterr().err.split("\r")
    assert (after_backfill, tickers) == ({"websocket": 3, "rest": 0}, ["websocket"] * 3)
    assert (progress[1:2], progress[-1]) == (["Backfilling 1m candles [" + "#" * 10 + "." * 20 + "] 1/3"], FULL_BAR)


def test_backfill_without_websocket_reads_rest(sim: Simulator, capsys: pytest.CaptureFixture) -> None:
    with make_client(sim, enable_websocket=False) as client:
        bot.backfill(client, UNIVERSE, "1m")
        counts = client.source_counts
    assert (counts, sim.connections_total) == ({"websocket": 0, "rest": 3}, 0)
    assert capsys.readouterr().err.split("\r")[-1] == FULL_BAR
