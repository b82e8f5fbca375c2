"""The trading loop's promises under injected faults and restarts (issue 12, defects 1-4):
one entry per intent when a fill cannot be read back, protection restored after a restart,
start-up that survives a passing 429/5xx, exits that never wait behind a scan, a prompt stop."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import bot
from config import load_settings
from tradebot.journal import Journal
from tradebot.records import ORDER_KINDS
from kucoin_client import KuCoinClient
from kucoin_sim import Simulator
from tradebot.strategy import Action, ActionKind
from tests.helpers import TIMEOUT_S, wait_until
from tradebot.trader import OutageLog, Trader

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
BTC_ID = "XBTUSDTM"


def _settings(sim: Simulator, tmp_path: Path, **env: str):
    values = {"STRATEGY": "tests.tradebot.test_trader:always_long", "SYMBOLS": BTC, **env}
    settings = bot.simulated_settings(load_settings(values, dotenv_path=None), sim)
    return dataclasses.replace(settings, journal_path=str(tmp_path / "j.sqlite3"))


@pytest.fixture
def env(tmp_path: Path):
    """These faults hit the REST reads of orders and positions, which the private WebSocket feed
    serves while it is up: it is kept down (no bullet-private token), so the bot runs on its REST
    fallback, the path these defects were in."""
    with Simulator(seed=5, vol_scale=3.0) as sim:
        _without_private_feed(sim)
        settings = _settings(sim, tmp_path, SYMBOLS=f"{BTC},{ETH}", MAX_OPEN_POSITIONS="1")
        with KuCoinClient.from_settings(settings) as client:
            yield sim, settings, client


def _without_private_feed(sim: Simulator) -> None:
    """No bullet-private token: account reads go to REST, where these tests put their faults."""
    sim.fail_next("POST", "/api/v1/bullet-private", status=503, code="500000", rate_headers=False, count=10**6)


def _trader(client, settings, universe=(BTC,)) -> Trader:
    return Trader(client, client, Journal(settings.journal_path).open(), settings, universe=list(universe))


def _orders(sim: Simulator, symbol_id: str = BTC_ID) -> list[dict]:
    """The orders that traded at once (entries and exits) of `symbol_id` ("": all): resting stops left out."""
    return [o for o in sim.orders() if symbol_id in ("", o["symbol"]) and not o.get("stop")]


def _position_qty(sim: Simulator, symbol_id: str = BTC_ID) -> int:
    return sum(int(p["currentQty"]) for p in sim.positions() if p["symbol"] == symbol_id)


def _fail_next_order_read(sim: Simulator, **kwargs) -> None:
    """Fail the read-back of the next order the account places (the simulator's ids count up)."""
    last = max((int(o["id"]) for o in sim.orders()), default=240_000_000_000_000_000)
    sim.fail_next("GET", f"/api/v1/orders/{last + 1}", **kwargs)


# -- defect 1: an accepted order whose fill cannot be read is a position --------------------------
@pytest.mark.parametrize("fault", [dict(status=500, code="500000", rate_headers=False),
                                   dict(status=429, rate_headers=False)], ids=["5xx", "429"])
def test_failed_fill_read_back_never_enters_twice(env, fault) -> None:
    sim, settings, client = env
    trader = _trader(client, settings, universe=(BTC, ETH))
    _fail_next_order_read(sim, **fault)
    trader.scan()
    trader.scan()  # before the fix: nothing held, nothing blocked, a second entry here
    assert len(_orders(sim)) == 1
    assert [o["symbol"] for o in _orders(sim, "")] == [BTC_ID]  # MAX_OPEN_POSITIONS=1 counts it
    held = trader.holdings[BTC]
    assert held.contracts == _position_qty(sim) and not held.confirmed and held.exits is not None
    assert trader.journal.intents()[0].status == "placed"
    trader.resolve_orders()
    assert trader.holdings[BTC].confirmed and trader.journal.intents()[0].status == "filled"
    assert trader.journal.protection(BTC).stop_price == trader.holdings[BTC].exits.stop_price
    trader.scan()
    assert len(_orders(sim)) == 1
    trader.journal.close()


def test_failed_exit_read_back_sends_no_second_exit(env) -> None:
    sim, settings, client = env
    trader = _trader(client, settings)
    trader.scan()
    holding = trader.holdings[BTC]
    holding.exits = dataclasses.replace(holding.exits, stop_price=holding.entry_price * 10)  # now hit
    _fail_next_order_read(sim, status=500, code="500000", rate_headers=False)
    trader.monitor()
    assert _position_qty(sim) == 0 and holding.exit_oid is not None
    trader.monitor()
    trader.monitor()  # before the fix: a reduce-only order on the flat position each time
    assert len(_orders(sim)) == 2
    trader.resolve_orders()
    assert BTC not in trader.holdings and trader.journal.protection(BTC) is None
    assert [i.status for i in trader.journal.intents() if i.kind in ORDER_KINDS] == ["filled", "filled"]
    trader.journal.close()


def test_refused_exit_rereads_positions_instead_of_repeating(env) -> None:
    sim, settings, client = env
    trader = _trader(client, settings)
    trader.scan()
    client.close_position(BTC)  # closed behind the bot's back: its exit will be refused
    holding = trader.holdings[BTC]
    holding.exits = dataclasses.replace(holding.exits, stop_price=holding.entry_price * 10)
    before = len(_orders(sim))
    trader.protect()
    trader.protect()
    assert len(_orders(sim)) <= before + 1  # at most one refused reduce-only attempt
    trader.sync_positions()
    assert BTC not in trader.holdings
    trader.journal.close()


# -- defect 2: protection survives a restart --------------------------------------------------------
def test_restart_restores_journaled_exits_and_enforces_them(env) -> None:
    sim, settings, client = env
    first = _trader(client, settings)
    first.scan()
    saved = first.holdings[BTC].exits
    crossed = dataclasses.replace(saved, stop_price=first.holdings[BTC].entry_price * 10,
                                  trailing_active=True, watermark=saved.watermark)
    first.journal.save_protection(dataclasses.replace(first.journal.protection(BTC),
                                                      stop_price=crossed.stop_price, trailing_active=True))
    first.journal.close()  # the bot "dies"; the price went through its stop meanwhile

    second = _trader(client, settings)
    second.reconcile()
    assert second.holdings[BTC].exits == crossed  # stop, take profit and trailing state restored
    second.monitor()  # before the fix: adopted without exits, never closed
    assert BTC not in second.holdings and _position_qty(sim) == 0
    assert second.journal.intents()[-1].reason == "trailing_stop"
    second.journal.close()


def test_position_unknown_to_the_journal_gets_atr_exits(env, caplog) -> None:
    sim, settings, client = env
    client.create_market_order(BTC, "buy", 2, client_oid="manual-1")  # not the bot's
    trader = _trader(client, settings)
    with caplog.at_level(logging.WARNING, logger="tradebot.trader"):
        trader.reconcile()
    holding = trader.holdings[BTC]
    assert holding.exits is not None and holding.exits.stop_price < holding.entry_price
    assert holding.exits.take_profit_price > holding.entry_price
    assert trader.journal.protection(BTC).stop_price == holding.exits.stop_price
    assert any("no journaled exits" in r.getMessage() for r in caplog.records)
    trader.journal.close()


# -- defect 4: exits never wait behind a scan -------------------------------------------------------
def test_exits_are_checked_while_a_scan_is_stuck(env) -> None:
    sim, settings, client = env
    trader = _trader(client, settings)
    trader.scan()
    entered, release = threading.Event(), threading.Event()

    def stuck(candles, position, params) -> Action:
        entered.set()
        release.wait(TIMEOUT_S * 4)  # a scan that takes very long (e.g. a rate-limit wait)
        return Action(ActionKind.HOLD, "stuck")

    trader.strategy = stuck
    stop = threading.Event()
    runner = threading.Thread(target=trader.run, args=(stop,))
    runner.start()
    try:
        assert entered.wait(TIMEOUT_S)
        holding = trader.holdings[BTC]
        holding.exits = dataclasses.replace(holding.exits, stop_price=holding.entry_price * 10)
        wait_until(lambda: _position_qty(sim) == 0, what="the stop's exit")
    finally:
        release.set()
        stop.set()
        runner.join(TIMEOUT_S)
    assert BTC not in trader.holdings and not runner.is_alive()
    trader.journal.close()


# -- defects 3 and 4 through bot.run, live mode against the simulator ---------------------------
def _args(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{"simulate": False, "duration": None, "once": False, "seed": 1, **kw})


def _live_settings(sim: Simulator, tmp_path: Path):
    return dataclasses.replace(_settings(sim, tmp_path), scan_interval_s=0.5)


@pytest.mark.parametrize("fault", [dict(status=429, rate_headers=False),
                                   dict(status=503, code="500000", rate_headers=False)],
                         ids=["429", "5xx"])
def test_a_passing_refusal_at_start_is_retried(tmp_path, caplog, fault) -> None:
    with Simulator(seed=5, vol_scale=3.0) as sim:
        _without_private_feed(sim)  # its seed would read the positions first and meet the fault
        sim.fail_next("GET", "/api/v1/positions", **fault)
        sim.fail_next("GET", "/api/v1/contracts/active", **fault)
        with caplog.at_level(logging.WARNING, logger="bot"):
            code = bot.run(_args(once=True), _live_settings(sim, tmp_path), threading.Event())
        assert code == 0  # before the fix: exit 1 on the first refusal
        assert sim.request_count("GET", "/api/v1/positions") >= 2
        assert len(_orders(sim)) == 1  # and it traded
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert any(m.startswith("connecting failed") for m in retries)
    assert any(m.startswith("reconciling the journal") for m in retries)


@contextlib.contextmanager
def _live_bot(sim: Simulator, tmp_path: Path) -> Iterator[dict]:
    """bot.run live on `sim` in a thread; on leaving, stop it and record its exit code and how
    long the stop took (`outcome["code"]`, `outcome["stop_s"]`)."""
    stop = threading.Event()
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.setdefault(
        "code", bot.run(_args(), _live_settings(sim, tmp_path), stop)))
    runner.start()
    try:
        yield outcome
    finally:
        started = time.monotonic()
        stop.set()
        runner.join(40)
        outcome["stop_s"] = time.monotonic() - started


def test_stop_is_prompt_while_a_call_waits_for_a_rate_limit_reset(tmp_path, monkeypatch) -> None:
    balance_calls: list[float] = []
    called = threading.Condition()
    real_get_balance = KuCoinClient.get_balance

    def counted_get_balance(self, *args, **kwargs):
        with called:
            balance_calls.append(time.monotonic())
            called.notify_all()
        return real_get_balance(self, *args, **kwargs)

    monkeypatch.setattr(KuCoinClient, "get_balance", counted_get_balance)
    with Simulator(seed=5, vol_scale=3.0) as sim:
        _without_private_feed(sim)
        with _live_bot(sim, tmp_path) as outcome:
            wait_until(lambda: len(_orders(sim)) == 1, TIMEOUT_S * 4, what="the first entry")
            # The next balance read is answered 429 with the futures pool reported exhausted for
            # its 30 s window; the scan after it queues its balance read until the reset.
            failed = sim.call(lambda: sim.faults.failed)
            sim.fail_next("GET", "/api/v1/account-overview", status=429, rate_headers=True)
            wait_until(lambda: sim.call(lambda: sim.faults.failed) > failed, TIMEOUT_S * 2, what="the 429")
            with called:  # a balance read started after the 429 was answered: it waits
                seen = len(balance_calls)
                assert called.wait_for(lambda: len(balance_calls) > seen, TIMEOUT_S * 2)
    assert outcome["code"] == 0 and outcome["stop_s"] < 5.0, f"stopped in {outcome['stop_s']:.1f}s"


def test_stop_is_prompt_while_a_sent_call_gets_no_answer(tmp_path) -> None:
    # Seen in a soak: SIGTERM while a worker waited for an answer that never came took 6.75 s
    # (1.5 s grace, then 5 s joining that worker). A sent call cannot be recalled; it is left.
    with Simulator(seed=5, vol_scale=3.0) as sim:
        _without_private_feed(sim)
        with _live_bot(sim, tmp_path) as outcome:
            wait_until(lambda: len(_orders(sim)) == 1, TIMEOUT_S * 4, what="the first entry")
            lost = sim.call(lambda: sim.faults.lost)
            sim.lose_response("GET", "/api/v1/account-overview", mode="timeout")
            wait_until(lambda: sim.call(lambda: sim.faults.lost) > lost, TIMEOUT_S * 2,
                       what="a balance read left unanswered")
    assert outcome["code"] == 0 and outcome["stop_s"] < 5.0, f"stopped in {outcome['stop_s']:.1f}s"


def test_stop_is_prompt_while_the_start_waits_for_a_rate_limit_reset(tmp_path, caplog, monkeypatch) -> None:
    # The markets read is answered 429 with the public pool exhausted for 30 s: the retried start
    # queues behind the reset. Before the fix close() waited for that start (~30 s).
    clients: list[KuCoinClient] = []
    real_check = KuCoinClient.check_credentials  # live with keys: the first call of a start

    def recorded_check(self):
        clients.append(self)
        return real_check(self)

    monkeypatch.setattr(KuCoinClient, "check_credentials", recorded_check)
    with Simulator(seed=5, vol_scale=3.0) as sim:
        sim.fail_next("GET", "/api/v1/contracts/active", status=429, rate_headers=True)
        with caplog.at_level(logging.INFO, logger="bot"), _live_bot(sim, tmp_path) as outcome:
            wait_until(lambda: len(clients) >= 2, TIMEOUT_S * 2, what="the retried start")
            wait_until(lambda: clients[-1].health()["queue_depths"]["HIGH"] == 1, TIMEOUT_S,
                       what="the markets read queued behind the reset")
        assert sim.orders() == []
    assert outcome["code"] == 0 and outcome["stop_s"] < 5.0, f"stopped in {outcome['stop_s']:.1f}s"
    assert any(r.getMessage() == "stopped during start-up" for r in caplog.records)


def test_entry_whose_fill_is_unread_is_still_protected(env) -> None:
    sim, settings, client = env
    trader = _trader(client, settings)
    _fail_next_order_read(sim, status=500, code="500000", rate_headers=False)
    trader.scan()
    holding = trader.holdings[BTC]
    assert not holding.confirmed
    holding.exits = dataclasses.replace(holding.exits, stop_price=holding.entry_price * 10)  # now hit
    trader.monitor()
    assert _position_qty(sim) == 0 and BTC not in trader.holdings
    trader.resolve_orders()  # the entry's fill, read at last, does not bring the position back
    assert BTC not in trader.holdings
    assert [(i.kind, i.status) for i in trader.journal.intents() if i.kind in ORDER_KINDS] == [
        ("entry", "filled"), ("exit", "filled")]
    trader.journal.close()


def test_an_outage_is_logged_at_its_start_with_growing_reminders_and_at_its_end() -> None:
    outage = OutageLog(first_reminder_s=30.0, max_reminder_s=120.0)
    lines = [(t, outage.failed("scan: timeout", t)) for t in range(0, 400)]  # a failure a second
    logged = [(t, line) for t, line in lines if line is not None]
    assert [t for t, _ in logged] == [0, 30, 90, 210, 330]  # 30 s, then 60, 120, 120 (the cap)
    assert logged[0][1].startswith("exchange unreachable (scan: timeout)")
    assert "still unreachable after 1m30s (91 failed calls" in logged[2][1]
    assert outage.recovered(400.0) == "exchange reachable again after 6m40s (400 failed calls)"
    assert outage.recovered(401.0) is None and not outage.down
    assert outage.failed("monitor: 503", 500.0).startswith("exchange unreachable (monitor: 503)")


def test_a_scan_says_what_it_did_and_trades_say_their_notional(env, caplog) -> None:
    sim, settings, client = env
    trader = _trader(client, settings)
    with caplog.at_level(logging.INFO, logger="tradebot.trader"):
        trader.scan()
    lines = [r.getMessage() for r in caplog.records if r.name == "tradebot.trader"]
    opened = next(line for line in lines if line.startswith("opened long BTC/USDT:USDT"))
    lots, price = trader.holdings[BTC].contracts, trader.holdings[BTC].entry_price
    assert f"notional {lots * 0.001 * price:.2f} USDT" in opened and "margin" in opened
    scan = next(line for line in lines if line.startswith("scan:"))
    assert scan.startswith("scan: 1 symbols, 1 signals, 1 entered; open 1/1 (BTC/USDT:USDT long ")
    assert "uPnL" in scan and "oldest data" in scan
    trader.journal.close()


def test_the_daily_loss_limit_is_logged_once_not_at_every_scan(env, caplog) -> None:
    sim, settings, client = env
    trader = _trader(client, settings)
    trader.journal.record_equity(1e9, free=1e9)  # the day began far richer: the limit is reached
    with caplog.at_level(logging.WARNING, logger="tradebot.trader"):
        for _ in range(3):
            trader.scan()
    warned = [r.getMessage() for r in caplog.records if "daily loss limit" in r.getMessage()]
    assert warned == ["daily loss limit reached: no new entries today"]  # before the fix: one per scan
    assert sim.orders() == []
    trader.journal.close()
