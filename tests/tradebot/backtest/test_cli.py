"""`python bot.py backtest`: the command end to end on the simulator, its arguments, its outputs."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.tradebot.backtest.conftest import T0
from tradebot.backtest.cli import parse_timerange
from tradebot.backtest.report import TRADE_KEYS

DAY = 86_400_000
ROOT = __import__("pathlib").Path(__file__).resolve().parents[3]


def test_simulated_backtest_writes_the_pinned_outputs(simulated_run):
    first = simulated_run["first"]
    trades = json.loads((first / "trades.json").read_text())
    summary = json.loads((first / "summary.json").read_text())
    assert simulated_run["codes"] == (0, 0)
    assert trades and all(list(t) == list(TRADE_KEYS) for t in trades)
    assert {t["symbol"] for t in trades} <= {"BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"}
    assert all(t["side"] in ("long", "short") and t["opened_ms"] < t["closed_ms"] for t in trades)
    assert all(t["pnl_usdt"] == pytest.approx(
        (1 if t["side"] == "long" else -1) * t["contracts"] * _size(t["symbol"]) * (t["exit_price"] - t["entry_price"])
        - t["fees_usdt"] - t["funding_usdt"]) for t in trades)
    metrics = summary["metrics"]
    assert metrics["trades"] == len(trades)
    assert metrics["net_profit_usdt"] == pytest.approx(sum(t["pnl_usdt"] for t in trades))
    assert summary["run"]["from"] == "2026-11-01 00:00" and summary["run"]["days"] == 3.0
    assert summary["data"]["candles"] == 3 * 3 * 288 and summary["data"]["gaps"] == []
    assert (first / "report.html").stat().st_size > 1_000_000  # plotly.js inlined


def test_a_rerun_is_offline_and_gives_the_same_result(simulated_run):
    """The second run reads everything from the cache: no simulator is even started."""
    first, second = (json.loads((simulated_run[k] / "summary.json").read_text()) for k in ("first", "second"))
    assert simulated_run["starts"] == (1, 0)
    assert (first["data"]["fetched_ranges"], second["data"]["fetched_ranges"]) == (6, 0)
    assert first["metrics"] == second["metrics"]
    assert (simulated_run["first"] / "trades.json").read_text() == (simulated_run["second"] / "trades.json").read_text()


def _size(symbol: str) -> float:
    return {"BTC/USDT:USDT": 0.001, "ETH/USDT:USDT": 0.01, "SOL/USDT:USDT": 0.1}[symbol]


NOV_1 = 1_793_491_200_000  # 2026-11-01 00:00 UTC
NOW = NOV_1 + 20 * DAY + 12_345


@pytest.mark.parametrize("text, expected", [
    ("20261101-20261104", (NOV_1, NOV_1 + 3 * DAY)),
    ("20261101-", (NOV_1, NOW)),
    ("-20261104", (NOV_1 + 3 * DAY - 30 * DAY, NOV_1 + 3 * DAY)),
    (None, (NOV_1 - 10 * DAY, NOV_1 + 20 * DAY)),
])
def test_timerange_forms(text, expected):
    assert parse_timerange(text, now_ms=NOW) == expected


@pytest.mark.parametrize("text", ["2026-11-01", "20261104-20261101", "yesterday-", "-"])
def test_bad_timeranges_are_refused(text):
    with pytest.raises(ValueError):
        parse_timerange(text, now_ms=T0)


def test_bad_arguments_exit_2_before_anything_runs(tmp_path):
    out = subprocess.run([sys.executable, "bot.py", "backtest", "--simulate", "--timerange", "20261104-20261101",
                          "--cache-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--timerange" in out.stderr
    assert not any(tmp_path.iterdir())
