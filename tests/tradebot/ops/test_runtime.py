"""The bot as a user runs it (`python bot.py --simulate`) watched and steered from outside: its
health, metrics, API and dashboard (in a real headless browser), its alerts and heartbeat."""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import bot
from config import load_settings
from tests.browser import browser_page
from tests.helpers import TIMEOUT_S, wait_until
from tests.tradebot.ops.receivers import TELEGRAM_TOKEN, Receiver

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = re.compile(r"dashboard: (http://127\.0\.0\.1:(\d+))/\?token=(\S+) ")


@dataclass
class RunningBot:
    proc: subprocess.Popen
    workdir: Path
    webhook: Receiver
    telegram: Receiver
    heartbeat: Receiver
    lines: list[str] = field(default_factory=list)
    url: str = ""
    token: str = ""

    def read(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def call(self, method: str, path: str, *, token: str | None = None, body: Any = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S * 3) as response:
                raw, status, kind = response.read(), response.status, response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raw, status, kind = exc.read(), exc.code, exc.headers.get("Content-Type", "")
        return status, json.loads(raw) if "json" in kind else raw.decode()

    def journal(self, sql: str) -> list[tuple]:
        with sqlite3.connect(self.workdir / "journal.simulate.sqlite3") as conn:
            return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBot]:
    workdir = tmp_path_factory.mktemp("bot")
    with Receiver() as webhook, Receiver() as telegram, Receiver() as heartbeat:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUCOIN_", "WEB", "TELEGRAM", "HEARTBEAT"))}
        env.update({"PYTHONUNBUFFERED": "1", "WEB_PORT": "0",
               "JOURNAL_PATH": str(workdir / "journal.sqlite3"), "WEBHOOK_URL": f"{webhook.url}/hook",
               "TELEGRAM_TOKEN": TELEGRAM_TOKEN, "TELEGRAM_CHAT_ID": "42", "TELEGRAM_API_URL": telegram.url,
               "HEARTBEAT_URL": f"{heartbeat.url}/ping", "HEARTBEAT_INTERVAL_S": "1"})
        proc = subprocess.Popen([sys.executable, str(ROOT / "bot.py"), "--simulate"], cwd=workdir, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        running = RunningBot(proc, workdir, webhook, telegram, heartbeat)
        reader = threading.Thread(target=running.read, daemon=True)
        reader.start()
        try:
            found = wait_until(lambda: DASHBOARD.search(running.text()), TIMEOUT_S * 6, "the dashboard line")
            running.url, running.token = found.group(1), found.group(3)
            wait_until(lambda: "opened" in running.text(), TIMEOUT_S * 4, "a first position")
            yield running
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(TIMEOUT_S)


def test_health_metrics_and_api_of_a_simulate_run(running: RunningBot) -> None:
    status, health = running.call("GET", "/health")
    assert (status, health["status"], health["mode"], health["reasons"]) == (200, "ok", "simulate", [])
    metrics = {f.name for f in text_string_to_metric_families(running.call("GET", "/metrics")[1])}
    assert {"kucoin_bot_healthy", "kucoin_bot_data_age_seconds", "kucoin_bot_orders", "kucoin_bot_rest_calls",
            "kucoin_bot_loop_duration_seconds", "kucoin_bot_equity_usdt"} <= metrics
    assert running.call("GET", "/api/v1/status")[0] == 401
    status, body = running.call("GET", "/api/v1/status", token=running.token)
    held = {symbol for (symbol,) in running.journal("SELECT symbol FROM protections")}
    assert status == 200 and body["positions"] and {p["symbol"] for p in body["positions"]} <= held
    marked = wait_until(lambda: all(p["mark_price"] for p in running.call("GET", "/api/v1/status", token=running.token)[1]
                                    ["positions"]), what="the protection's first price of each position")
    assert marked and all(p["stop_price"] > 0 for p in body["positions"])
    assert running.call("GET", "/api/v1/trades", token=running.token) == (200, {"trades": [], "count": 0})


def test_dashboard_renders_the_positions_in_a_real_browser(running: RunningBot) -> None:
    def resting() -> set[str] | None:
        positions = running.call("GET", "/api/v1/status", token=running.token)[1]["positions"]
        return {p["symbol"] for p in positions} if positions and all(p["stop_resting"] for p in positions) else None
    protected = wait_until(resting, what="every position's stop resting on the exchange")
    with browser_page() as (page, problems):
        page.goto(f"{running.url}/?token={running.token}")
        page.wait_for_selector("#positions tbody tr[data-symbol]")
        shown = page.eval_on_selector_all("#positions tbody tr[data-symbol]", "rows => rows.map(r => r.dataset.symbol)")
        kinds = page.eval_on_selector_all("#positions tbody tr[data-symbol]",
                                          "rows => rows.map(r => [r.dataset.symbol, r.cells[8].innerText])")
        final_url = page.url
        health = page.inner_text("#health")
        curve = page.eval_on_selector("#chart", "svg => svg.children.length")
    status = running.call("GET", "/api/v1/status", token=running.token)[1]
    assert sorted(shown) == sorted(p["symbol"] for p in status["positions"]) and shown
    # A position opened since the status read may show "watched by bot" for the moment its stop takes.
    assert any(symbol in protected for symbol, _ in kinds), (kinds, protected)
    assert [k for symbol, k in kinds if symbol in protected and not k.startswith("on exchange")] == [], kinds
    assert final_url == f"{running.url}/" and health == "healthy" and curve >= 1
    assert problems.all() == []


def test_stopentry_and_forceexit_on_the_running_bot(running: RunningBot) -> None:
    assert running.call("POST", "/api/v1/stopentry", token=running.token) == (200, {"entries_stopped": True, "changed": True})
    symbol = running.call("GET", "/api/v1/status", token=running.token)[1]["positions"][0]["symbol"]
    status, body = running.call("POST", "/api/v1/forceexit", token=running.token, body={"symbol": symbol})
    assert (status, body) == (200, {"symbol": symbol, "result": "closed"})
    exits = running.journal("SELECT symbol, status FROM intents WHERE reason = 'force exit (owner)'")
    assert exits == [(symbol, "filled")]
    assert [a for (a,) in running.journal("SELECT action FROM controls ORDER BY id")] == ["stopentry", "forceexit"]
    # Other positions may close on their own stops meanwhile (a live simulated market).
    forced = wait_until(lambda: [t for t in running.call("GET", "/api/v1/trades", token=running.token)[1]["trades"]
                                 if t["exit_reason"] == "force exit (owner)"],
                        what="the closed trade (the list is replayed at most once a second)")
    assert [t["symbol"] for t in forced] == [symbol]


def test_alerts_heartbeat_and_a_clean_stop(running: RunningBot) -> None:
    running.heartbeat.wait_for(1, TIMEOUT_S * 2)
    running.proc.send_signal(signal.SIGINT)
    out = running.proc.communicate(timeout=TIMEOUT_S * 3)[0]
    assert running.proc.returncode == 0 and "=== Summary (simulate) ===" in out
    hooks = [body for _, _, body in running.webhook.wait_for(4, TIMEOUT_S)]
    kinds = [h["event"] for h in hooks]
    assert kinds[0] == "startup" and kinds[-1] == "shutdown" and {"entry", "exit"} <= set(kinds)
    assert hooks[-1]["reason"] == "signal" and all(h["bot"] == "simulate" for h in hooks)
    assert len(running.telegram.requests) == len(hooks)
    assert {(m, p) for m, p, _ in running.heartbeat.requests} == {("GET", "/ping")}
    err = running.text()
    assert err.count(running.token) == 1  # the one dashboard line, however the API was called
    assert TELEGRAM_TOKEN not in err + out and "Traceback" not in err


def test_a_port_in_use_leaves_the_bot_trading(tmp_path: Path, capsys: pytest.CaptureFixture, caplog) -> None:
    with socket.socket() as taken, caplog.at_level(logging.INFO):
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = load_settings({"WEB_PORT": str(taken.getsockname()[1]),
                                  "JOURNAL_PATH": str(tmp_path / "j.sqlite3")}, dotenv_path=None)
        stop = threading.Event()
        code = bot.run(bot.parse_args(["--simulate", "--once", "--seed", "3"]), settings, stop)
        stop.set()
    web_lines = [r for r in caplog.records if r.name == "tradebot.ops.web"]
    assert code == 0 and "=== Summary (simulate) ===" in capsys.readouterr().out
    assert [r.levelname for r in web_lines] == ["WARNING"] and "in use" in web_lines[0].getMessage()
    assert any(r.getMessage().startswith("scan: ") for r in caplog.records)  # it traded on


def test_a_reachable_host_without_a_token_is_refused(monkeypatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("WEB_HOST", "0.0.0.0")
    monkeypatch.delenv("WEB_TOKEN", raising=False)
    assert bot.main(["--simulate", "--once", "--env-file", str(ROOT / ".env.example")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: WEB_TOKEN must be set") and "WEB_HOST=0.0.0.0" in err[0]
