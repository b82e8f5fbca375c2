"""Indicators against hand-computed and published values; the default strategy on fixed data."""
from __future__ import annotations

import math

import numpy as np
import pytest

from config import Settings
from kucoin_futures.errors import ConfigError, InvalidArgument
from kucoin_futures.protocol.types import Candle
from tradebot.strategy import (
    FLAT,
    Action,
    ActionKind,
    Position,
    StrategyParams,
    atr,
    closed_candles,
    ema,
    load_strategy,
    macd,
    rsi,
    true_range,
    trend_momentum,
    trend_momentum_decide,
    trend_momentum_signals,
)

NAN = float("nan")

# Wilder's RSI worked example as StockCharts ChartSchool publishes it ("Relative Strength Index
# (RSI)", the cs-rsi.xls spreadsheet: QQQQ closes Dec 2009 - Feb 2010, shown there rounded to
# 2 dp), and the spreadsheet's published 14-day RSI column from the 15th close on.
RSI_CLOSES = [
    44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245, 45.8433, 46.0826,
    45.8931, 46.0328, 45.6140, 46.2820, 46.2820, 46.0028, 46.0328, 46.4116, 46.2222, 45.6439,
    46.2122, 46.2521, 45.7137, 46.4515, 45.7835, 45.3548, 44.0288, 44.1783, 44.2181, 44.5672,
    43.4205, 42.6628, 43.1314,
]
RSI_PUBLISHED = [
    70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38, 54.71, 50.42, 39.99,
    41.46, 41.87, 45.46, 37.30, 33.08, 37.77,
]

# StockCharts ChartSchool "Average True Range (ATR)" example (cs-atr.xls), 30 bars of high, low,
# close. Its 14-day ATR column (first value = mean of the first 14 true ranges, the first true
# range being high - low) to 2 dp from the 14th bar, and the last value to 4 dp, as independent
# implementations' test suites also quote it (0.55, 0.59, ..., 1.3163).
ATR_BARS = [
    (48.70, 47.79, 48.16), (48.72, 48.14, 48.61), (48.90, 48.39, 48.75), (48.87, 48.37, 48.63),
    (48.82, 48.24, 48.74), (49.05, 48.64, 49.03), (49.20, 48.94, 49.07), (49.35, 48.86, 49.32),
    (49.92, 49.50, 49.91), (50.19, 49.87, 50.13), (50.12, 49.20, 49.53), (49.66, 48.90, 49.50),
    (49.88, 49.43, 49.75), (50.19, 49.73, 50.03), (50.36, 49.26, 50.31), (50.57, 50.09, 50.52),
    (50.65, 50.30, 50.41), (50.43, 49.21, 49.34), (49.63, 48.98, 49.37), (50.33, 49.61, 50.23),
    (50.29, 49.20, 49.24), (50.17, 49.43, 49.93), (49.32, 48.08, 48.43), (48.50, 47.64, 48.18),
    (48.32, 41.55, 46.57), (46.80, 44.28, 45.41), (47.80, 47.31, 47.77), (48.39, 47.20, 47.72),
    (48.66, 47.90, 48.62), (48.79, 47.73, 47.85),
]
ATR_EXPECTED_2DP = [0.55, 0.59, 0.59, 0.57, 0.61, 0.62, 0.64, 0.67, 0.69, 0.77, 0.78, 1.21, 1.30,
                    1.38, 1.37, 1.34, 1.32]

# StockCharts ChartSchool "Moving Averages" 10-day EMA example, first 12 closes.
EMA_CLOSES = [22.27, 22.19, 22.08, 22.17, 22.18, 22.13, 22.23, 22.43, 22.24, 22.29, 22.15, 22.39]


def _same(actual: np.ndarray, expected: list[float], *, tol: float = 1e-9) -> bool:
    return bool(np.allclose(actual, np.array(expected), atol=tol, rtol=0, equal_nan=True))


def _loop_smooth(values: list[float], period: int, alpha: float) -> list[float]:
    """The textbook recurrence, written independently of strategy's convolution."""
    out = [NAN] * len(values)
    out[period - 1] = sum(values[:period]) / period
    for i in range(period, len(values)):
        out[i] = out[i - 1] + alpha * (values[i] - out[i - 1])
    return out


# -- indicators -------------------------------------------------------------------------------
def test_ema_hand_computed():
    assert _same(ema([1, 2, 3, 4, 5], 3), [NAN, NAN, 2.0, 3.0, 4.0])
    # alpha = 2/3: seed (2+4)/2 = 3, then 3 + 2/3*(6-3) = 5, 5 + 2/3*(8-5) = 7
    assert _same(ema([2, 4, 6, 8], 2), [NAN, 3.0, 5.0, 7.0])
    assert _same(ema([3.0, 7.0, 2.0], 1), [3.0, 7.0, 2.0])


def test_ema_stockcharts_ten_day_example():
    """Seed = mean of the first 10 closes = 22.221; then +2/11 of each difference."""
    seed = 22.221
    second = seed + 2 / 11 * (22.15 - seed)
    third = second + 2 / 11 * (22.39 - second)
    assert _same(ema(EMA_CLOSES, 10), [NAN] * 9 + [seed, second, third], tol=1e-12)
    assert (round(second, 4), round(third, 4)) == (22.2081, 22.2412)


@pytest.mark.parametrize("period", [1, 2, 14, 50, 200])
def test_ema_and_wilder_match_the_recurrence_on_a_long_series(period):
    """The vectorised form equals the loop, including past the truncated kernel's length."""
    rng = np.random.default_rng(3)
    close = list(100 + np.cumsum(rng.normal(0, 1, 3000)))
    high = [c + abs(x) for c, x in zip(close, rng.normal(0, 1, 3000))]
    low = [c - abs(x) for c, x in zip(close, rng.normal(0, 1, 3000))]
    tr = [high[0] - low[0]] + [max(h, pc) - min(lo, pc)
                               for h, lo, pc in zip(high[1:], low[1:], close[:-1])]
    assert _same(ema(close, period), _loop_smooth(close, period, 2 / (period + 1)), tol=1e-9)
    assert _same(atr(high, low, close, period), _loop_smooth(tr, period, 1 / period), tol=1e-9)


def test_ema_skips_leading_nans_and_short_input():
    assert _same(ema([NAN, NAN, 1, 2, 3], 2), [NAN, NAN, NAN, 1.5, 1.5 + 2 / 3 * 1.5])
    assert _same(ema([1.0, 2.0], 3), [NAN, NAN])


def test_rsi_matches_the_published_wilder_example():
    values = rsi(RSI_CLOSES, 14)
    assert np.isnan(values[:14]).all()
    assert [round(float(v), 2) for v in values[14:]] == RSI_PUBLISHED


def test_rsi_limits():
    assert rsi(list(range(20)), 14)[-1] == 100.0  # no loss
    assert rsi([5.0] * 20, 14)[-1] == 50.0  # no movement
    assert rsi(list(range(20, 0, -1)), 14)[-1] == 0.0  # no gain


def test_true_range_and_atr_hand_computed():
    """TR: 2 (h-l), 13-9 = 4 (gap up), 12.8-11 = 1.8, 12-11.5 = 0.5; Wilder ATR(2) from bar 2."""
    high, low, close = [10, 13, 12.8, 12], [8, 12, 11, 11.6], [9, 12.5, 11.5, 11.8]
    assert _same(true_range(high, low, close), [2.0, 4.0, 1.8, 0.5])
    # (2+4)/2 = 3; (3*1 + 1.8)/2 = 2.4; (2.4 + 0.5)/2 = 1.45
    assert _same(atr(high, low, close, 2), [NAN, 3.0, 2.4, 1.45])


def test_atr_matches_the_stockcharts_example():
    high, low, close = zip(*ATR_BARS)
    values = atr(high, low, close, 14)
    assert np.isnan(values[:13]).all()
    assert [round(float(v), 2) for v in values[13:]] == ATR_EXPECTED_2DP
    assert round(float(values[-1]), 4) == 1.3163


def test_macd_hand_computed():
    """EMA3 seeds at 2 (bar 3), EMA4 at 2.5 (bar 4): line 0.5 while the rise is linear."""
    line, signal, hist = macd([1, 2, 3, 4, 5, 6, 7, 6], 3, 4, 2)
    assert _same(line, [NAN, NAN, NAN, 0.5, 0.5, 0.5, 0.5, 0.3])
    assert _same(signal, [NAN, NAN, NAN, NAN, 0.5, 0.5, 0.5, 0.5 + 2 / 3 * (0.3 - 0.5)])
    assert _same(hist, [NAN, NAN, NAN, NAN, 0.0, 0.0, 0.0, 0.3 - (0.5 + 2 / 3 * (0.3 - 0.5))])


def test_indicators_refuse_bad_input():
    with pytest.raises(InvalidArgument):
        ema([1, 2, 3], 0)
    with pytest.raises(InvalidArgument):
        atr([1, 2], [1], [1, 2], 2)
    with pytest.raises(InvalidArgument):
        rsi([[1, 2], [3, 4]])


# -- the default strategy ---------------------------------------------------------------------
def _zigzag(n: int, *, up: float = 3.0, down: float = 2.0, accel: float = 0.01) -> list[float]:
    """Up `up + accel*t` on odd bars, down `down` on even ones: a trend with pullbacks."""
    closes = [100.0]
    for t in range(1, n):
        closes.append(closes[-1] + (up + accel * t if t % 2 else -down))
    return closes


def _candles(closes: list[float]) -> list[Candle]:
    return [Candle(ts_ms=i * 60_000, open=c, high=c + 0.5, low=c - 0.5, close=c, volume=1.0,
                   received_at=0.0, source="rest") for i, c in enumerate(closes)]


UPTREND = _candles(_zigzag(80))
DOWNTREND = _candles([200.0 - c for c in _zigzag(80)])
PARAMS = StrategyParams()


def _atr_of(candles: list[Candle]) -> float:
    return float(atr([c.high for c in candles], [c.low for c in candles],
                     [c.close for c in candles], 14)[-1])


def test_uptrend_enters_long_with_atr_stop_and_target():
    price, vol = UPTREND[-1].close, _atr_of(UPTREND)
    assert trend_momentum(UPTREND, FLAT, PARAMS) == Action(
        ActionKind.ENTER_LONG, "uptrend with rising momentum", price=price, atr=vol,
        stop_price=price - 2.0 * vol, take_profit_price=price + 3.0 * vol)
    assert price == 158.0 and 3.0 < vol < 3.5  # the fixture is what its docstring says


def test_downtrend_enters_short_with_atr_stop_and_target():
    params = StrategyParams(stop_atr_multiple=1.5, take_profit_atr_multiple=4.0)
    price, vol = DOWNTREND[-1].close, _atr_of(DOWNTREND)
    assert trend_momentum(DOWNTREND, FLAT, params) == Action(
        ActionKind.ENTER_SHORT, "downtrend with falling momentum", price=price, atr=vol,
        stop_price=price + 1.5 * vol, take_profit_price=price - 4.0 * vol)


def test_ccxt_rows_decide_like_candles():
    rows = np.array([[c.ts_ms, c.open, c.high, c.low, c.close, c.volume] for c in UPTREND])
    assert trend_momentum(rows, FLAT, PARAMS) == trend_momentum(UPTREND, FLAT, PARAMS)
    assert trend_momentum(rows.tolist(), FLAT, PARAMS) == trend_momentum(UPTREND, FLAT, PARAMS)


LONG, SHORT = Position("long", 3, 150.0), Position("short", 2, 60.0)


@pytest.mark.parametrize("candles, position, expected", [
    (DOWNTREND, LONG, Action(ActionKind.EXIT, "trend reversed against the long")),
    (UPTREND, SHORT, Action(ActionKind.EXIT, "trend reversed against the short")),
    (UPTREND, LONG, Action(ActionKind.HOLD, "long: trend intact")),
    (DOWNTREND, SHORT, Action(ActionKind.HOLD, "short: trend intact")),
])
def test_in_position_exits_only_on_trend_reversal(candles, position, expected):
    assert trend_momentum(candles, position, PARAMS) == expected


FADING_UP = _zigzag(80, accel=-0.01)  # rising, RSI 55.7, but the MACD histogram is negative
STRAIGHT_UP = [100.0 + t + 0.01 * t * t for t in range(80)]  # never falls: RSI 100


@pytest.mark.parametrize("closes", [
    FADING_UP, [200.0 - c for c in FADING_UP], STRAIGHT_UP, [200.0 - c for c in STRAIGHT_UP],
], ids=["fading-up", "fading-down", "straight-up", "straight-down"])
def test_trend_without_agreeing_momentum_holds(closes):
    """Each entry condition matters: the trend alone is not enough."""
    candles = _candles(closes)
    assert trend_momentum(candles, FLAT, PARAMS) == Action(
        ActionKind.HOLD, "no signal", price=closes[-1], atr=_atr_of(candles))


def test_hold_fixtures_isolate_one_condition():
    """FADING_UP fails only on the MACD histogram, STRAIGHT_UP only on the RSI band."""
    assert ema(FADING_UP, 20)[-1] > ema(FADING_UP, 50)[-1]
    assert 50 < rsi(FADING_UP)[-1] < 70 and macd(FADING_UP)[2][-1] < 0
    assert ema(STRAIGHT_UP, 20)[-1] > ema(STRAIGHT_UP, 50)[-1] and macd(STRAIGHT_UP)[2][-1] > 0
    assert rsi(STRAIGHT_UP)[-1] == 100.0


def test_too_few_candles_hold():
    assert trend_momentum(UPTREND[:59], FLAT, PARAMS) == Action(
        ActionKind.HOLD, "too few candles: 59 < 60")
    assert trend_momentum([], FLAT, PARAMS) == Action(ActionKind.HOLD, "too few candles: 0 < 60")


def test_flat_market_holds():
    assert trend_momentum(_candles([100.0] * 80)[:], FLAT, PARAMS).kind is ActionKind.HOLD
    flat = [Candle(i * 60_000, 5.0, 5.0, 5.0, 5.0, 0.0, 0.0, "rest") for i in range(80)]
    assert trend_momentum(flat, FLAT, PARAMS) == Action(ActionKind.HOLD, "no volatility: ATR is 0")


def _random_walk(rng: np.random.Generator, n: int, *, sigma: float = 0.002) -> np.ndarray:
    """ccxt rows of a geometric random walk, 10 sub-steps per candle for high and low."""
    path = 100 * np.exp(np.cumsum(rng.normal(0, sigma / math.sqrt(10), n * 10))).reshape(n, 10)
    opens = np.concatenate(([100.0], path[:-1, -1]))
    high = np.maximum(path.max(axis=1), opens)
    low = np.minimum(path.min(axis=1), opens)
    return np.column_stack([np.arange(n) * 60_000, opens, high, low, path[:, -1], np.ones(n)])


def test_random_walks_give_entries_often():
    """The offline demo decides on backfilled history: a good share of symbols must signal."""
    rng = np.random.default_rng(11)
    kinds = [trend_momentum(_random_walk(rng, 300), FLAT, PARAMS).kind for _ in range(300)]
    longs, shorts = kinds.count(ActionKind.ENTER_LONG), kinds.count(ActionKind.ENTER_SHORT)
    assert 0.3 < (longs + shorts) / len(kinds) < 0.55
    assert longs > 40 and shorts > 40


# -- plumbing ---------------------------------------------------------------------------------
def test_closed_candles_drop_the_forming_one():
    candles = _candles([1.0, 2.0, 3.0])  # periods start at 0, 60 s, 120 s
    assert closed_candles(candles, timeframe_ms=60_000, now_ms=179_999) == candles[:2]
    assert closed_candles(candles, timeframe_ms=60_000, now_ms=180_000) == candles


def test_params_from_settings_and_validation():
    settings = Settings(stop_atr_multiple=1.5, take_profit_atr_multiple=4.5)
    assert StrategyParams.from_settings(settings) == StrategyParams(
        stop_atr_multiple=1.5, take_profit_atr_multiple=4.5)
    assert StrategyParams().warmup == 50
    with pytest.raises(InvalidArgument):
        StrategyParams(min_candles=40)
    with pytest.raises(InvalidArgument):
        StrategyParams(ema_fast=50, ema_slow=20)


def test_position_validation():
    assert FLAT.is_flat and not Position("short", 1, 10.0).is_flat
    with pytest.raises(InvalidArgument):
        Position("long", 0, 10.0)
    with pytest.raises(InvalidArgument):
        Position(None, 2, 10.0)


def test_load_strategy_resolves_module_function():
    assert load_strategy("strategy:trend_momentum") is trend_momentum
    assert load_strategy(Settings().strategy) is trend_momentum


@pytest.mark.parametrize("spec", ["strategy", "no_such_module_xyz:decide", "strategy:nope",
                                  "strategy:FLAT"])
def test_load_strategy_errors_name_the_setting(spec):
    with pytest.raises(ConfigError) as info:
        load_strategy(spec)
    assert info.value.variable == "STRATEGY"


# -- the two-part form (the backtest's) ----------------------------------------------------------
def test_signals_once_decide_like_the_live_call_on_every_candle():
    """decide(signals of the whole series, i) is the live call on the candles up to i, for every
    i and position: the backtest runs the live bot's rule, not a copy of it (the same action; its
    prices to float rounding, as the smoothing's matrix products group their sums by length)."""
    rows = _random_walk(np.random.default_rng(5), 400)
    signals = trend_momentum_signals(rows, PARAMS)
    kinds = set()
    for i in range(0, 400, 3):
        for position in (FLAT, LONG, SHORT):
            live = trend_momentum(rows[:i + 1], position, PARAMS)
            backtest = trend_momentum_decide(signals, i, position, PARAMS)
            assert (backtest.kind, backtest.reason) == (live.kind, live.reason)
            assert _prices(backtest) == pytest.approx(_prices(live), rel=1e-12, nan_ok=True)
            kinds.add(live.kind)
    assert kinds == set(ActionKind)
    assert not signals.active[:PARAMS.min_candles - 1].any()  # HOLD while warming up: nothing to ask


def _prices(action: Action) -> list[float]:
    values = (action.price, action.atr, action.stop_price, action.take_profit_price)
    return [NAN if v is None else v for v in values]
