"""Backtest speed (issue 16): ours against backtesting.py, the same rules on the same data.

    python bench/backtest.py            # 30 symbols x 90 days of 5m candles, and how ours grows
    python bench/backtest.py --quick    # 10 symbols x 30 days (bench/run.py's default row; --full: 30 x 90)

Data: one seeded geometric random walk per symbol (10 sub-steps a candle give its high and low,
2.5 % daily volatility) and a funding settlement every 8 h, written in the backtest's disk cache
format (tradebot/backtest/data.py) under bench/results/backtest_cache/ and read back exactly as
a rerun of `python bot.py backtest` reads it: offline.

Timed (median of runs; data frames and files are prepared outside the timing):
  ours            load_history from the cache + run_backtest: the whole portfolio at once (the
                  strategy's signals per series, max open positions, the daily kill switch,
                  sizing, stops and targets, fees, slippage, funding, liquidation)
  backtesting.py  Backtest(...).run() for each symbol (it backtests one instrument at a time)
                  with a Strategy of the same rules: our indicator functions through self.I,
                  entry when trend and momentum agree, stop and target at 2 / 3 ATR, exit when
                  the EMAs cross back, the size risking 1 % of equity at the stop, leverage 3,
                  taker commission, slippage as spread. It has no portfolio (each symbol trades
                  alone, so no max open positions or shared kill switch) and no funding.
Both fill a signal at the next candle's open and take the stop first when a candle touches both.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from tradebot.backtest.costs import CostModel  # noqa: E402
from tradebot.backtest.data import HistoryCache, load_history, load_markets  # noqa: E402
from tradebot.backtest.engine import BacktestConfig, run_backtest  # noqa: E402
from tradebot.risk import RiskLimits  # noqa: E402
from tradebot.strategy import StrategyParams, atr, ema, macd, rsi, trend_momentum  # noqa: E402

CACHE = BENCH / "results" / "backtest_cache"
SPAN_MS = 300_000
DAY_MS = 86_400_000
START_MS = 1_780_000_000_000 - 1_780_000_000_000 % DAY_MS  # 2026-05-29 00:00 UTC
DAILY_VOL = 0.025
FULL, QUICK = (30, 90), (10, 30)  # symbols, days
GROWTH = ((10, 90), (20, 90), (30, 90), (30, 30), (30, 60))
MARKET = {"contractSize": 0.01, "precision": {"amount": 1.0}, "taker": 0.0006, "maker": 0.0002,
          "limits": {"amount": {"max": 1_000_000.0}, "leverage": {"max": 50.0}}, "linear": True, "settle": "USDT",
          "swap": True, "active": True, "info": {"maintainMargin": 0.005, "turnoverOf24h": 1e8}}
PARAMS = StrategyParams()
LIMITS = RiskLimits()
COSTS = CostModel()


def symbols(n: int) -> list[str]:
    return [f"B{k:02d}/USDT:USDT" for k in range(n)]


def write_cache(n_symbols: int, days: int) -> HistoryCache:
    """Write the seeded walks of `n_symbols` x `days` to the cache (once; reused after)."""
    cache = HistoryCache(CACHE, source="bench-random-walk")
    until = START_MS + days * DAY_MS
    names = symbols(n_symbols)
    cache.save_markets({s: dict(MARKET, symbol=s) for s in names}, now_s=time.time())
    for k, name in enumerate(names):
        rows, covered = cache.read(name, "5m", 6)
        if covered and covered[0][0] <= START_MS and covered[0][1] >= until:
            continue
        rng = np.random.default_rng(1000 + k)
        n, sub = days * 288, 10
        steps = rng.normal(0, DAILY_VOL / np.sqrt(288 * sub), n * sub)
        path = 100.0 * (1 + k) * np.exp(np.cumsum(steps)).reshape(n, sub)
        opens = np.concatenate(([path[0, 0]], path[:-1, -1]))
        rows = np.column_stack([START_MS + np.arange(n) * SPAN_MS, opens, np.maximum(path.max(1), opens),
                                np.minimum(path.min(1), opens), path[:, -1], rng.integers(1, 1000, n)])
        cache.write(name, "5m", rows.astype(float), [(START_MS, until)])
        settlements = np.arange(START_MS + 4 * 3_600_000, until, 8 * 3_600_000)
        funding = np.column_stack([settlements, rng.normal(1e-4, 1e-4, len(settlements))])
        cache.write(name, "funding", funding, [(START_MS, until)])
    return cache


def ours_once(cache: HistoryCache, n_symbols: int, days: int, limits: RiskLimits = LIMITS) -> tuple[float, int]:
    """Seconds for load + run of the portfolio, and its trade count."""
    def offline() -> Any:
        raise RuntimeError("the bench data must come from the cache")
    names = symbols(n_symbols)
    started = time.perf_counter()
    markets = load_markets(cache, offline, now_s=time.time())
    history = load_history(cache, offline, names, "5m", since_ms=START_MS, until_ms=START_MS + days * DAY_MS,
                           now_ms=START_MS + 400 * DAY_MS, markets=markets)
    result = run_backtest(history, trend_momentum, BacktestConfig(limits, PARAMS, COSTS), symbols=names)
    return time.perf_counter() - started, len(result.trades)


def backtesting_py_once(frames: list[Any]) -> tuple[float, int]:
    """Seconds for backtesting.py over every symbol, and its trade count."""
    import backtesting.backtesting as engine
    from backtesting import Backtest
    engine._tqdm = lambda seq, **_: seq  # its progress bar off: it would be timed too
    started, trades = time.perf_counter(), 0
    for frame in frames:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats = Backtest(frame, _rules_class(), cash=10_000, commission=0.0006, spread=2 * COSTS.slippage_bps * 1e-4,
                             margin=1 / LIMITS.leverage, finalize_trades=True).run()
        trades += int(stats["# Trades"])
    return time.perf_counter() - started, trades


def frames_of(cache: HistoryCache, n_symbols: int, days: int) -> list[Any]:
    import pandas as pd
    out = []
    for name in symbols(n_symbols):
        rows, _ = cache.read(name, "5m", 6)
        rows = rows[rows[:, 0] < START_MS + days * DAY_MS]
        out.append(pd.DataFrame(rows[:, 1:6], columns=["Open", "High", "Low", "Close", "Volume"],
                                index=pd.to_datetime(rows[:, 0].astype("int64"), unit="ms")))
    return out


def _rules_class() -> type:
    from backtesting import Strategy

    class TrendMomentum(Strategy):
        """The default strategy's rules, on our own indicator functions."""

        def init(self) -> None:
            close, high, low = self.data.Close, self.data.High, self.data.Low
            self.fast = self.I(ema, close, PARAMS.ema_fast)
            self.slow = self.I(ema, close, PARAMS.ema_slow)
            self.hist = self.I(lambda c: macd(c)[2], close)
            self.strength = self.I(rsi, close, PARAMS.rsi_period)
            self.vol = self.I(atr, high, low, close, PARAMS.atr_period)

        def next(self) -> None:
            if len(self.data) < PARAMS.min_candles:
                return
            fast, slow, vol, price = self.fast[-1], self.slow[-1], self.vol[-1], self.data.Close[-1]
            if self.position:
                if (self.position.is_long and fast < slow) or (self.position.is_short and fast > slow):
                    self.position.close()
                return
            if not vol > 0:
                return
            units = int(self.equity * LIMITS.risk_per_trade / (PARAMS.stop_atr_multiple * vol))
            if units < 1:
                return
            if fast > slow and self.hist[-1] > 0 and 50 < self.strength[-1] < 70:
                self.buy(size=units, sl=price - 2 * vol, tp=price + 3 * vol)
            elif fast < slow and self.hist[-1] < 0 and 30 < self.strength[-1] < 50:
                self.sell(size=units, sl=price + 2 * vol, tp=price - 3 * vol)

    return TrendMomentum


def measure(*, quick: bool, runs: int = 3) -> dict[str, Any]:
    """Return the figures (medians of `runs`): ours and backtesting.py at the headline size, ours
    with every symbol free to trade (as backtesting.py's runs are), and how ours grows."""
    n_symbols, days = QUICK if quick else FULL
    cache = write_cache(n_symbols, days)
    frames = frames_of(cache, n_symbols, days)
    ours, theirs = [], []
    for _ in range(runs):  # interleaved: a busy moment of the machine hits both
        ours.append(ours_once(cache, n_symbols, days))
        theirs.append(backtesting_py_once(frames))
    free = RiskLimits(max_open_positions=n_symbols, daily_loss_limit=1.0)
    unlimited = [ours_once(cache, n_symbols, days, free) for _ in range(runs)]
    growth = {} if quick else {f"{s} symbols x {d} days": statistics.median(ours_once(cache, s, d)[0]
                                                                            for _ in range(runs))
                               for s, d in GROWTH}
    ours_s, theirs_s = statistics.median(t for t, _ in ours), statistics.median(t for t, _ in theirs)
    return {"symbols": n_symbols, "days": days, "candles": n_symbols * days * 288, "runs": runs,
            "ours_s": ours_s, "ours_trades": ours[0][1], "backtesting_py_s": theirs_s,
            "backtesting_py_trades": theirs[0][1], "ratio": theirs_s / ours_s,
            "ours_unlimited_s": statistics.median(t for t, _ in unlimited), "ours_unlimited_trades": unlimited[0][1],
            "growth_s": growth}


def bench_rows(*, full: bool, details: dict) -> list:
    """bench/run.py's row: ours vs backtesting.py ("other")."""
    from report import Row, attempt, pick
    got = attempt("backtest", lambda: measure(quick=not full, runs=3 if full else 1))
    details["backtest"] = got
    n_symbols, days = FULL if full else QUICK
    return [Row(f"Backtest, {n_symbols} symbols × {days} days of 5m from the cache", "s", "lower",
                ours=pick(got, lambda r: r["ours_s"]), other=pick(got, lambda r: r["backtesting_py_s"]),
                other_label="backtesting.py, same rules")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK[0]} symbols x {QUICK[1]} days, no growth table")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (the median is shown)")
    args = parser.parse_args()
    r = measure(quick=args.quick, runs=args.runs)
    print(f"backtest of {r['symbols']} symbols x {r['days']} days of 5m candles ({r['candles']:,} candles), from the disk cache")
    print(f"  ours            {r['ours_s']:7.2f} s  ({r['ours_trades']} trades, one portfolio)")
    print(f"  backtesting.py  {r['backtesting_py_s']:7.2f} s  ({r['backtesting_py_trades']} trades, one run per symbol)")
    print(f"  ours is {r['ratio']:.1f}x faster (medians of {r['runs']} runs, interleaved)")
    print(f"  ours, every symbol free to trade {r['ours_unlimited_s']:.2f} s  ({r['ours_unlimited_trades']} trades: "
          f"max open positions {r['symbols']}, no kill switch, like backtesting.py's separate runs)")
    for label, seconds in r["growth_s"].items():
        print(f"  ours, {label:<22} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
