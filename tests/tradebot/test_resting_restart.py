"""The bot's promise with real processes: SIGKILL it with a position open, move the market
through the stop it left resting on the exchange, restart it. The exchange closed the position;
the restarted bot books that exit once, to the stop's own intent; no order was sent twice."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kucoin_sim import Simulator
from soak.botproc import BotProcess, bot_environment
from tests.helpers import TIMEOUT_S, wait_until

BTC, BTC_ID = "BTC/USDT:USDT", "XBTUSDTM"


def _start(sim: Simulator, tmp_path: Path, index: int) -> BotProcess:
    creds = sim.credentials
    settings = {"KUCOIN_FUTURES_URL": sim.url, "KUCOIN_API_KEY": creds.api_key, "KUCOIN_API_SECRET": creds.api_secret,
                "KUCOIN_API_PASSPHRASE": creds.api_passphrase, "DRY_RUN": "false", "SYMBOLS": BTC,
                "JOURNAL_PATH": str(tmp_path / "journal.sqlite3"), "STRATEGY": "tests.tradebot.test_trader:always_long",
                "SCAN_INTERVAL_S": "1", "TIMEFRAME": "1m", "WEB_ENABLED": "false", "LOG_LEVEL": "INFO"}
    (tmp_path / "empty.env").write_text("")
    return BotProcess(index, env=bot_environment(settings), env_file=str(tmp_path / "empty.env"),
                      output_path=str(tmp_path / f"run-{index}.log"))


def _intents(tmp_path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(tmp_path / "journal.sqlite3") as conn:
        return conn.execute("SELECT client_oid, kind, status FROM intents ORDER BY created_ms").fetchall()


def _fills(tmp_path: Path, client_oid: str) -> list[tuple[int, float]]:
    with sqlite3.connect(tmp_path / "journal.sqlite3") as conn:
        return conn.execute("SELECT amount, price FROM fills WHERE client_oid = ?", (client_oid,)).fetchall()


@pytest.mark.timeout(90)
def test_a_stop_that_fills_while_the_bot_is_killed_is_booked_once_after_the_restart(tmp_path: Path) -> None:
    with Simulator(seed=9) as sim:
        first = _start(sim, tmp_path, 0)
        try:
            resting = wait_until(lambda: [s for s in sim.stop_orders() if s["stop"] == "down"], TIMEOUT_S * 8,
                                 what="the entry's stop-loss resting on the exchange")
            first.kill()  # SIGKILL: nothing of the bot runs from here
        finally:
            first.kill()
        held = sum(int(p["currentQty"]) for p in sim.positions() if p["symbol"] == BTC_ID)
        sim.move_price(BTC_ID, float(resting[0]["stopPrice"]) * 0.99)  # through the stop
        flat_while_down = [p for p in sim.positions() if p["symbol"] == BTC_ID and p["currentQty"]]
        stop_oid = resting[0]["clientOid"]
        second = _start(sim, tmp_path, 1)
        try:
            wait_until(lambda: (stop_oid, "stop", "filled") in _intents(tmp_path), TIMEOUT_S * 8,
                       what="the restarted bot booking the stop's exit")
        finally:
            code = second.terminate(limit_s=5.0, give_up_s=10.0)[1]
        orders = sim.orders()
    oids = [o["clientOid"] for o in orders if o["clientOid"]]
    journaled = {oid for oid, _, _ in _intents(tmp_path)}
    assert (held > 0, flat_while_down, code) == (True, [], 0)
    assert [amount for amount, _ in _fills(tmp_path, stop_oid)] == [held]  # booked once, all of it
    assert len(oids) == len(set(oids)) and set(oids) <= journaled  # nothing sent twice, all journaled
