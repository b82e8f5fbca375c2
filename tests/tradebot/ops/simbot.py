"""A trader on the simulator (one symbol, test_trader's strategy that always enters long), wired to an EventBus."""
from __future__ import annotations

import dataclasses
from typing import Any
from pathlib import Path

import bot
from config import load_settings
from kucoin_client import KuCoinClient
from kucoin_sim import Simulator
from tradebot.events import Event, EventBus
from tradebot.journal import Journal
from tradebot.trader import Trader

BTC = "BTC/USDT:USDT"


@dataclasses.dataclass
class SimTrader:
    sim: Simulator
    settings: object
    client: KuCoinClient
    journal: Journal
    trader: Trader
    bus: EventBus
    events: list[Event]

    def kinds(self) -> list[str]:
        return [e.kind.value for e in self.events]


def start_sim_trader(tmp_path: Path, **trader_kwargs: Any):
    """Yield a SimTrader (a context manager body for the fixture); ``trader_kwargs`` go to Trader."""
    with Simulator(seed=9) as sim:
        settings = bot.simulated_settings(load_settings({"STRATEGY": "tests.tradebot.test_trader:always_long",
                                                         "SYMBOLS": BTC}, dotenv_path=None), sim)
        settings = dataclasses.replace(settings, journal_path=str(tmp_path / "j.sqlite3"))
        with KuCoinClient.from_settings(settings) as client, Journal(settings.journal_path) as journal:
            bus, events = EventBus(), []
            bus.subscribe(events.append)
            trader = Trader(client, client, journal, settings, universe=[BTC], events=bus, **trader_kwargs)
            yield SimTrader(sim, settings, client, journal, trader, bus, events)
