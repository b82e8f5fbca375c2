"""What the bot says at start and at the end (issue 13, item 6): refused API keys are one line
naming the setting, found before the WebSocket opens; the summary is the last thing printed."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import bot
from config import Settings, load_settings
from kucoin_futures.errors import AccountModeError, AuthError
from kucoin_sim import Simulator

BOT = str(Path(__file__).resolve().parents[2] / "bot.py")
SETTINGS = ("KUCOIN_API_KEY", "KUCOIN_API_SECRET", "KUCOIN_API_PASSPHRASE")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")  # configure_logging's format


def _settings(tmp_path: Path, sim: Simulator, *, wrong: str, dry_run: bool) -> Settings:
    creds = sim.credentials
    env = dict(zip(SETTINGS, (creds.api_key, creds.api_secret, creds.api_passphrase)))
    env[wrong] = "not-" + env[wrong]
    env.update(KUCOIN_FUTURES_URL=sim.url, DRY_RUN=str(dry_run).lower(), SCAN_INTERVAL_S="2",
               JOURNAL_PATH=str(tmp_path / "journal.sqlite3"))
    return load_settings(env, dotenv_path=None)


@pytest.mark.parametrize(("code", "named", "not_named"), [
    ("400003", {"KUCOIN_API_KEY"}, {"KUCOIN_API_SECRET", "KUCOIN_API_PASSPHRASE"}),
    ("400004", {"KUCOIN_API_SECRET", "KUCOIN_API_PASSPHRASE"}, {"KUCOIN_API_KEY"}),
    ("400005", {"KUCOIN_API_SECRET"}, {"KUCOIN_API_KEY", "KUCOIN_API_PASSPHRASE"}),
    ("400002", {"clock"}, set(SETTINGS)),
    ("400006", {"IP"}, set(SETTINGS)),
    (None, set(SETTINGS), set()),
])
def test_auth_hint_names_the_likely_setting(code: str | None, named: set[str], not_named: set[str]) -> None:
    hint = bot.auth_hint(AuthError("fetch_balance: KuCoin refused", code=code))
    assert ({word for word in named if word in hint}, {word for word in not_named if word in hint}) == (named, set())


@pytest.mark.parametrize(("wrong", "named"), [
    ("KUCOIN_API_KEY", "KUCOIN_API_KEY"),
    ("KUCOIN_API_SECRET", "KUCOIN_API_SECRET"),  # KuCoin answers 400004, "Invalid KC-API-PASSPHRASE"
    ("KUCOIN_API_PASSPHRASE", "KUCOIN_API_PASSPHRASE"),
])
def test_live_bad_keys_are_one_line_before_the_websocket(tmp_path: Path, sim: Simulator, capsys: pytest.CaptureFixture,
                                                         wrong: str, named: str) -> None:
    """DRY_RUN=false: one balance read checks the keys; refused, the run ends with exit code 1
    and one line naming the setting, and no bullet token, socket or subscription was asked for."""
    settings = _settings(tmp_path, sim, wrong=wrong, dry_run=False)
    stop = threading.Event()
    code = bot.run(bot.parse_args(["--once"]), settings, stop)
    stop.set()  # ends the run's stop watcher
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert (code, out, len(lines)) == (1, "", 1)
    assert lines[0].startswith(f"error: KuCoin Futures at {sim.url} refused the API keys: ")
    assert named in lines[0] and "Invalid KC-API-PASSPHRASE" not in lines[0]
    assert sim.request_count("GET", "/api/v1/account-overview") == 1
    assert (sim.request_count("POST", "/api/v1/bullet-public"), sim.connections_total, sim.subscriptions) == (
        0, 0, frozenset())


@pytest.mark.timeout(60)
def test_paper_mode_goes_on_with_refused_keys(tmp_path: Path, sim: Simulator, capsys: pytest.CaptureFixture) -> None:
    """Paper trading needs no keys: refused ones are checked (and warned about), the run goes on."""
    settings = _settings(tmp_path, sim, wrong="KUCOIN_API_SECRET", dry_run=True)
    stop = threading.Event()
    code = bot.run(bot.parse_args(["--once"]), settings, stop)
    stop.set()  # ends the run's stop watcher
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out.startswith("=== Summary (paper) ===\nstarting equity: ")
    assert sim.request_count("GET", "/api/v1/account-overview") == 1  # the refused check; paper reads none
    assert sim.orders() == []


@pytest.mark.timeout(90)
def test_summary_is_printed_after_the_last_log_line(tmp_path: Path) -> None:
    """With every log line on (DEBUG) and both streams in one pipe, the summary ends the output:
    closing the client and the WebSocket logs nothing after it. It tells the starting equity,
    the open positions' unrealised PnL and the failed exchange calls."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUCOIN_")}
    env.update(JOURNAL_PATH=str(tmp_path / "journal.sqlite3"), PYTHONUNBUFFERED="1", LOG_LEVEL="DEBUG")
    proc = subprocess.run([sys.executable, BOT, "--simulate", "--duration", "3"], cwd=tmp_path, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=80)
    assert proc.returncode == 0, proc.stdout[-3000:]
    tail = proc.stdout.split("=== Summary (simulate) ===\n")[-1].splitlines()
    assert len(tail) == 6 and not [line for line in tail if LOG_LINE.match(line)], tail
    assert re.fullmatch(r"starting equity: 100000\.00 USDT   unrealised PnL of open positions: "
                        r"([+-]\d+\.\d\d USDT on \d+ open positions?|0\.00 USDT \(no open position\))", tail[0])
    assert tail[-1].endswith("failed exchange calls: 0")


@pytest.mark.parametrize(("arrange", "message"), [
    (lambda sim: sim.set_position_mode(True), "hedge position mode"),
    (lambda sim: sim.set_account_mode("UNIFIED"), "UNIFIED"),
])
def test_live_start_refuses_an_account_it_cannot_trade_before_any_order(tmp_path: Path, sim: Simulator,
                                                                        arrange, message: str) -> None:
    """A UNIFIED account or hedge mode ends the start with one AccountModeError (main prints it
    and exits 2), before the journal opens or anything is ordered."""
    arrange(sim)
    creds = sim.credentials
    env = dict(zip(SETTINGS, (creds.api_key, creds.api_secret, creds.api_passphrase)))
    env.update(KUCOIN_FUTURES_URL=sim.url, DRY_RUN="false", SYMBOLS="BTC/USDT:USDT",
               JOURNAL_PATH=str(tmp_path / "journal.sqlite3"), WEB_ENABLED="false")
    stop = threading.Event()
    with pytest.raises(AccountModeError, match=message):
        bot.run(bot.parse_args(["--once"]), load_settings(env, dotenv_path=None), stop)
    stop.set()
    assert (sim.request_count("POST", "/api/v1/orders"), (tmp_path / "journal.sqlite3").exists()) == (0, False)
