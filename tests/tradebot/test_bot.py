"""The bot end to end: `python bot.py --simulate` runs, trades, journals and exits cleanly."""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import TIMEOUT_S

ROOT = Path(__file__).resolve().parents[2]
BOT = str(ROOT / "bot.py")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUCOIN_")}
    # WEB_PORT=0: a test bot never takes the default dashboard port from a bot running here
    env.update(JOURNAL_PATH=str(tmp_path / "journal.sqlite3"), PYTHONUNBUFFERED="1", WEB_PORT="0", **extra)
    return env


def _journal_rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.timeout(120)
def test_simulate_20s_trades_journals_and_exits_cleanly_with_and_without_websocket(tmp_path: Path) -> None:
    """Both runs at once (they are independent processes), each exactly as a user types it."""
    runs = {}
    for ws in ("true", "false"):
        workdir = tmp_path / f"ws-{ws}"
        workdir.mkdir()
        runs[ws] = (workdir, subprocess.Popen(
            [sys.executable, BOT, "--simulate", "--duration", "20"], cwd=workdir,
            env=_env(workdir, ENABLE_WEBSOCKET=ws), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for ws, (workdir, proc) in runs.items():
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err
        expected = "WebSocket API: ENABLED (Real-time market data)" if ws == "true" else "WebSocket API: DISABLED"
        assert expected in err
        # stderr is a pipe, not a terminal: no progress bar, no carriage return, one backfill line
        backfill = [line.split("bot: ")[1] for line in err.splitlines() if "bot: backfill: " in line]
        assert "\r" not in err and len(backfill) == 1
        assert backfill[0].endswith("from REST" if ws == "false" else "from REST)"), backfill
        assert ws == "true" or "WebSocket cache" not in err
        assert "=== Summary (simulate) ===" in out
        opened = int(out.split("positions opened: ")[1].split()[0])
        assert opened >= 1, out
        journal = workdir / "journal.simulate.sqlite3"
        filled = _journal_rows(journal, "SELECT symbol, side, amount FROM intents WHERE status = 'filled'")
        assert len(filled) >= opened
        fills = _journal_rows(journal, "SELECT price, fee FROM fills")
        assert fills and all(price > 0 and fee > 0 for price, fee in fills)
        assert _journal_rows(journal, "SELECT COUNT(*) FROM intents WHERE status IN ('pending', 'unknown')") == [(0,)]
        share = out.split("websocket share ")[1].split(")")[0]
        if ws == "false":
            assert share == "0%"
        else:
            assert int(share.rstrip("%")) >= 50


@pytest.mark.parametrize("mode", [0o644, 0o600])
def test_unreachable_exchange_is_one_clear_line(tmp_path: Path, mode: int) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    settings_file = tmp_path / ".env"
    settings_file.write_text("LOG_LEVEL=INFO\n")
    settings_file.chmod(mode)  # readable by others: the bot warns (a .env may hold API secrets)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, BOT, "--once"], cwd=tmp_path, capture_output=True, text=True,
                          env=_env(tmp_path, KUCOIN_FUTURES_URL=f"http://127.0.0.1:{port}"), timeout=60)
    lines = proc.stderr.splitlines()
    warned = [line for line in lines if "chmod 600" in line]
    assert len(warned) == (1 if mode & 0o077 else 0)
    assert proc.returncode == 1
    assert time.monotonic() - t0 < 20
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and f"http://127.0.0.1:{port}" in errors[0] and "--simulate" in errors[0]
    # nothing else around it at INFO: no worker counts, no "stopped" for a socket never opened
    assert lines == warned + errors


def test_bad_setting_is_one_clear_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, BOT, "--simulate", "--once"], cwd=tmp_path, capture_output=True,
                          text=True, env=_env(tmp_path, LEVERAGE="lots"), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: LEVERAGE must be a whole number from 1 to 125 (got 'lots')"]


@pytest.mark.timeout(90)
def test_sigint_stops_within_5s_with_a_summary(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, BOT, "--simulate"], cwd=tmp_path, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # wait until the loop runs: the first scan has decided
            if "opened" in line or "bot: backfill: 24 symbols" in line:
                break
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=TIMEOUT_S * 6)
        assert time.monotonic() - t0 < 5.0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "=== Summary (simulate) ===" in out and "Traceback" not in err


@pytest.mark.timeout(90)
def test_paper_mode_on_live_data_sends_no_order(tmp_path: Path) -> None:
    """No keys: paper trading on the exchange's market data (here the simulator's), no order sent."""
    from kucoin_sim import Simulator

    with Simulator(seed=2) as sim:
        proc = subprocess.run([sys.executable, BOT, "--duration", "8"], cwd=tmp_path, capture_output=True,
                              text=True, env=_env(tmp_path, KUCOIN_FUTURES_URL=sim.url, SCAN_INTERVAL_S="2"),
                              timeout=80)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "mode: paper" in proc.stderr and "=== Summary (paper) ===" in proc.stdout
        assert sim.orders() == []  # paper fills are simulated locally
        assert sim.request_count("POST", "/api/v1/orders") == 0
    opened = int(proc.stdout.split("positions opened: ")[1].split()[0])
    filled = _journal_rows(tmp_path / "journal.sqlite3", "SELECT COUNT(*) FROM intents WHERE status = 'filled'")
    assert filled == [(opened,)] and opened >= 1


def test_a_named_env_file_must_exist(tmp_path: Path, capsys) -> None:
    import bot

    missing = tmp_path / "nope.env"
    assert bot.main(["--env-file", str(missing), "--once"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --env-file {missing}: no such file"]


def test_live_without_keys_is_refused_not_quietly_paper(tmp_path: Path, capsys, monkeypatch) -> None:
    import bot

    for name in ("KUCOIN_API_KEY", "KUCOIN_API_SECRET", "KUCOIN_API_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DRY_RUN", "false")
    empty = tmp_path / "empty.env"
    empty.write_text("")
    assert bot.main(["--env-file", str(empty), "--once"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: DRY_RUN=false asks for live trading") and "DRY_RUN=true" in err


def test_paper_balance_is_a_setting(tmp_path: Path) -> None:
    import bot
    from config import load_settings
    from tradebot.journal import Journal
    from tradebot.paper import PaperBroker

    class Client:  # only what make_broker reads
        markets = {"BTC/USDT:USDT": {"settle": "USDT", "linear": True, "contractSize": 0.001, "taker": 0.0006,
                                     "precision": {"amount": 1}, "limits": {"leverage": {"max": 125}}}}

    settings = load_settings({"PAPER_BALANCE_USDT": "2500"}, dotenv_path=None)
    with Journal(str(tmp_path / "j.sqlite3")) as journal:
        broker = bot.make_broker(Client(), settings, journal, "paper")
        assert isinstance(broker, PaperBroker)
        assert broker.get_balance()["USDT"]["total"] == 2500.0
