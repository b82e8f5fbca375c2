"""The trading loop against the simulator: restart reconciliation, kill switch, stale-data guard."""
from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

import bot
from config import load_settings
from tradebot.journal import Journal
from tradebot.records import ORDER_KINDS
from kucoin_client import KuCoinClient
from kucoin_sim import Simulator
from tradebot.risk import RiskState, utc_day
from tradebot.strategy import Action, ActionKind
from tradebot.trader import Trader

BTC = "BTC/USDT:USDT"


def always_long(candles, position, params) -> Action:
    """A test strategy: enter long with a 1 % stop on every flat symbol."""
    price = candles[-1][4]
    if position.side is not None:
        return Action(ActionKind.HOLD, "holding")
    return Action(ActionKind.ENTER_LONG, "test", price=price, atr=price * 0.005,
                  stop_price=price * 0.99, take_profit_price=price * 1.02)


def long_then_exit(candles, position, params) -> Action:
    """A test strategy: enter long when flat, exit when held."""
    if position.side is not None:
        return Action(ActionKind.EXIT, "test exit")
    return always_long(candles, position, params)


@pytest.fixture
def env(tmp_path: Path):
    with Simulator(seed=9) as sim:
        settings = bot.simulated_settings(load_settings({"STRATEGY": "tests.tradebot.test_trader:always_long",
                                                         "SYMBOLS": BTC}, dotenv_path=None), sim)
        settings = dataclasses.replace(settings, journal_path=str(tmp_path / "j.sqlite3"))
        client = KuCoinClient.from_settings(settings)
        with client:
            yield sim, settings, client


def _trader(client, settings) -> tuple[Trader, Journal]:
    journal = Journal(settings.journal_path).open()
    return Trader(client, client, journal, settings, universe=[BTC]), journal


def _orders_with(sim: Simulator, client_oid: str) -> list[dict]:
    return [o for o in sim.orders() if o["clientOid"] == client_oid]


def test_restart_after_crash_between_send_and_fill_never_resends(env) -> None:
    sim, settings, client = env
    journal = Journal(settings.journal_path).open()
    journal.record_intent("crash-1", BTC, "buy", 3, kind="entry", contract_size=0.001)
    client.create_market_order(BTC, "buy", 3, client_oid="crash-1")  # sent, then the bot "died"
    journal.close()
    trader, journal = _trader(client, settings)
    trader.reconcile()
    assert journal.get_intent("crash-1").status == "filled"
    assert len(_orders_with(sim, "crash-1")) == 1
    assert trader.holdings[BTC].contracts == 3
    before = len(sim.orders())
    trader.scan()  # already holding BTC: the always-long strategy must not add a second entry
    assert len(sim.orders()) == before
    journal.close()


def test_restart_after_crash_before_send_marks_not_placed(env) -> None:
    sim, settings, client = env
    journal = Journal(settings.journal_path).open()
    journal.record_intent("crash-2", BTC, "buy", 2, kind="entry", contract_size=0.001)
    journal.close()
    trader, journal = _trader(client, settings)
    trader.reconcile()
    assert journal.get_intent("crash-2").status == "rejected"
    assert _orders_with(sim, "crash-2") == []
    assert BTC not in trader.blocked
    journal.close()


def test_scan_enters_once_and_journals_before_sending(env) -> None:
    sim, settings, client = env
    trader, journal = _trader(client, settings)
    trader.scan()
    trader.scan()
    intents = journal.intents()
    assert [(i.symbol, i.side, i.kind, i.status) for i in intents] == [
        (BTC, "buy", "entry", "filled"), (BTC, "sell", "stop", "placed"), (BTC, "sell", "take_profit", "placed")]
    assert [o["clientOid"] for o in sim.orders()] == [i.client_oid for i in intents]
    exits = trader.holdings[BTC].exits
    assert exits.stop_price < trader.holdings[BTC].entry_price
    # the stop-loss and take-profit rest on the exchange at the re-anchored exits (a tick apart at most)
    resting = {s["stop"]: (float(s["stopPrice"]), s["stopPriceType"]) for s in sim.stop_orders()}
    assert resting == {"down": (pytest.approx(exits.stop_price, abs=0.1), "MP"),
                       "up": (pytest.approx(exits.take_profit_price, abs=0.1), "MP")}
    journal.close()


def test_no_entry_on_a_position_the_exchange_holds_but_the_bot_has_not_adopted(env, caplog) -> None:
    """A second line against a double entry: the holdings lag the exchange (here: a position the
    bot's sync has not seen yet), and the entry is refused on the exchange's word."""
    sim, settings, client = env
    trader, journal = _trader(client, settings)
    client.create_market_order(BTC, "buy", 2, client_oid="elsewhere-1")  # not through the bot
    before = len(sim.orders())
    with caplog.at_level("WARNING", logger="tradebot.trader"):
        trader.scan()
    assert len(sim.orders()) == before and journal.intents() == [] and BTC not in trader.holdings
    assert "the exchange holds 2 lots the bot has not adopted yet" in caplog.text
    trader.sync_positions()  # adopted at the next sync, and protected
    assert trader.holdings[BTC].contracts == 2
    journal.close()


def test_a_strategy_exit_is_not_sent_for_a_position_the_exchange_already_closed(env, caplog) -> None:
    """The holdings lag the exchange until the next sync (here: the position closed behind the
    bot's back, as a resting stop does while the private feed is down): a strategy's exit would
    be an empty reduce-only order. It is not sent, and the next sync is due at once."""
    sim, settings, client = env
    settings = dataclasses.replace(settings, strategy="tests.tradebot.test_trader:long_then_exit")
    trader, journal = _trader(client, settings)
    trader.scan()  # enters
    assert BTC in trader.holdings
    client.close_position(BTC)  # not through the bot
    before = len(sim.orders())
    with caplog.at_level("INFO", logger="tradebot.trader"):
        trader.scan()  # the strategy says exit
    assert len(sim.orders()) == before and [i for i in journal.intents() if i.kind == "exit"] == []
    assert "exit not sent: the exchange holds no position" in caplog.text
    trader.sync_positions()
    assert BTC not in trader.holdings
    journal.close()


def test_kill_switch_blocks_new_entries(env) -> None:
    sim, settings, client = env
    trader, journal = _trader(client, settings)
    now_ms = int(trader.wall_clock() * 1000)
    trader.risk_state = RiskState(day=utc_day(now_ms), start_equity=1e12)  # today's loss is huge
    trader.scan()
    assert trader.risk_state.tripped and sim.orders() == [] and journal.intents() == []
    journal.close()


def test_stale_data_blocks_new_entries(env) -> None:
    sim, settings, client = env
    trader, journal = _trader(client, settings)
    trader.wall_clock = lambda: 4_000_000_000.0  # every ticker now looks decades old
    trader.scan()
    assert sim.orders() == [] and journal.intents() == []
    journal.close()


def test_exchange_lost_mid_run_keeps_positions_protected_and_resumes(env) -> None:
    sim, settings, client = env
    trader, journal = _trader(client, settings)
    trader.scan()
    entry = journal.intents()[0]
    assert BTC in trader.holdings and entry.status == "filled"
    sim.refuse_ws(10_000)
    sim.drop_ws()
    for path in ("/api/v1/ticker", "/api/v1/kline/query", "/api/v1/account-overview", "/api/v1/positions"):
        sim.fail_next("GET", path, status=503, code="500000", msg="Service Unavailable",
                      rate_headers=False, count=10_000)
    trader.run(threading.Event(), duration_s=1.5)  # the loop survives the outage
    assert BTC in trader.holdings and trader.stats.scan_errors > 0
    assert [i.status for i in journal.intents() if i.kind in ORDER_KINDS] == ["filled"]
    sim.call(sim.faults.fail_rules.clear)  # the exchange is back
    sim.refuse_ws(0)
    holding = trader.holdings[BTC]
    holding.exits = dataclasses.replace(holding.exits, stop_price=holding.entry_price * 10)  # now hit
    trader.monitor()
    assert BTC not in trader.holdings
    assert [i.kind for i in journal.intents() if i.kind in ORDER_KINDS] == ["entry", "exit"]
    assert sum(1 for o in sim.orders() if o["symbol"] == "XBTUSDTM" and not o["stop"]) == 2
    assert sim.stop_orders() == []  # the exit cancelled its resting stops
    journal.close()
