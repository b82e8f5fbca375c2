"""Backtest fixtures: synthetic candle series, a scripted strategy, one simulated run of the CLI."""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tradebot.backtest.data import History, Series
from tradebot.strategy import Action, ActionKind, Position, SignalStrategy, Signals, StrategyParams

T0 = 1_790_000_100_000 - 1_790_000_100_000 % 86_400_000  # a UTC midnight (2026-09-21)
SPAN = 300_000  # 5m
# A linear USDT contract as ccxt's market holds it (the fields the backtest reads).
MARKET = {"symbol": "X/USDT:USDT", "contractSize": 0.01, "precision": {"amount": 1.0},
          "limits": {"amount": {"max": 1_000_000.0}, "leverage": {"max": 50.0}}, "taker": 0.0006,
          "maker": 0.0002, "linear": True, "settle": "USDT", "swap": True, "active": True,
          "info": {"maintainMargin": 0.005}}


def walk(seed: int, n: int, *, sigma: float = 0.004, start: float = 100.0, sub: int = 10) -> np.ndarray:
    """ccxt rows of a geometric random walk from T0, `sub` steps a candle for high and low."""
    rng = np.random.default_rng(seed)
    path = start * np.exp(np.cumsum(rng.normal(0, sigma / math.sqrt(sub), n * sub))).reshape(n, sub)
    opens = np.concatenate(([start], path[:-1, -1]))
    high, low = np.maximum(path.max(axis=1), opens), np.minimum(path.min(axis=1), opens)
    return np.column_stack([T0 + np.arange(n) * SPAN, opens, high, low, path[:, -1], np.ones(n)])


def candles(prices: Iterable[tuple[float, float, float, float]], *, start_ms: int = T0) -> np.ndarray:
    """ccxt rows of (open, high, low, close) tuples, one a candle from start_ms."""
    ohlc = np.array(list(prices), dtype=float)
    return np.column_stack([start_ms + np.arange(len(ohlc)) * SPAN, ohlc, np.ones(len(ohlc))])


def history_of(rows: Mapping[str, np.ndarray], *, funding: Mapping[str, np.ndarray] | None = None,
               market: Mapping | None = None) -> History:
    funding = funding or {}
    series = {s: Series(s, r, funding.get(s, np.empty((0, 2)))) for s, r in rows.items()}
    end = max(int(r[-1, 0]) for r in rows.values()) + SPAN
    return History("test", "5m", T0, end, series, {s: dict(market or MARKET, symbol=s) for s in rows})


@dataclass(frozen=True)
class Script:
    """A strategy for arithmetic tests: enter on given candles, exit on others (ATR fixed)."""

    enter: Mapping[int, str]  # candle index -> "long" | "short"
    exit: frozenset[int] = frozenset()
    atr: float = 1.0

    def signals(self, rows: np.ndarray, params: StrategyParams) -> Signals:
        n = len(rows)
        long = np.array([self.enter.get(i) == "long" for i in range(n)], dtype=bool)
        short = np.array([self.enter.get(i) == "short" for i in range(n)], dtype=bool)
        out = np.array([i in self.exit for i in range(n)], dtype=bool)
        return Signals(rows[:, 4], np.full(n, self.atr), long, short, out, out)

    def decide(self, signals: Signals, i: int, position: Position, params: StrategyParams) -> Action:
        if not position.is_flat:
            return Action(ActionKind.EXIT, "script") if signals.exit_long[i] else Action(ActionKind.HOLD, "held")
        price, sign = float(signals.close[i]), 1.0 if signals.enter_long[i] else -1.0
        if not (signals.enter_long[i] or signals.enter_short[i]):
            return Action(ActionKind.HOLD, "no signal")
        kind = ActionKind.ENTER_LONG if sign > 0 else ActionKind.ENTER_SHORT
        return Action(kind, "script", price=price, atr=self.atr,
                      stop_price=price - sign * params.stop_atr_multiple * self.atr,
                      take_profit_price=price + sign * params.take_profit_atr_multiple * self.atr)

    def strategy(self) -> SignalStrategy:
        return SignalStrategy(self.signals, self.decide)


@pytest.fixture(scope="session")
def simulated_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`python bot.py backtest --simulate` on 3 days of 3 symbols, run twice (the second from the
    cache, with no simulator at all): the outputs and what the second run started."""
    import bot

    root = tmp_path_factory.mktemp("backtest")
    started: list[int] = []
    real = bot._simulator

    def counting(seed: int):
        started.append(seed)
        return real(seed)

    argv = ["backtest", "--simulate", "--timerange", "20261101-20261104", "--symbols", "BTC,ETH,SOL",
            "--cache-dir", str(root / "cache")]
    patch = pytest.MonkeyPatch()
    patch.setattr(bot, "_simulator", counting)
    try:
        first = bot.main([*argv, "--report", str(root / "first")])
        starts_after_first = len(started)
        second = bot.main([*argv, "--report", str(root / "second")])
    finally:
        patch.undo()
    return {"codes": (first, second), "first": Path(root / "first"), "second": Path(root / "second"),
            "starts": (starts_after_first, len(started) - starts_after_first)}
