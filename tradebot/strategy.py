"""The bot's trading decision as a pure function of closed candles and the current position.

    action = trend_momentum(candles, position, StrategyParams.from_settings(settings))

A strategy is any callable ``(candles, position, params) -> Action``; ``load_strategy`` resolves
the ``STRATEGY`` setting (``"module:function"``) to one. Nothing here reads a clock, the network
or the settings: the bot passes closed candles (``closed_candles`` drops the forming one) and the
position, and turns the returned ``Action`` into orders through the risk module.

A ``SignalStrategy`` (the default is one) is also callable that way, and has two parts: its
``signals`` over a whole series, vectorised and computed once, and its ``decide`` on closed
candle i. The live bot calls it on its window (decide on the last candle); the backtest computes
the signals of each series once and asks ``decide`` only where a signal is set (a plain function
runs there too, called on each candle's window: backtest.engine.as_signal_strategy).

The default, ``trend_momentum``, on the last closed candle (defaults in brackets):

    trend       EMA(close, fast [20]) above / below EMA(close, slow [50])
    momentum    MACD(12, 26, 9) histogram above / below 0, and RSI(14) inside the band
                (50, 70) for a long, (30, 50) for a short: the move is under way but not stretched
    flat        trend and momentum agree -> ENTER_LONG / ENTER_SHORT, else HOLD
    in position the trend turned against the position (fast EMA crossed the slow one) -> EXIT,
                else HOLD; stops and take-profits are the risk module's (risk.ProtectiveExit)
    levels      stop = close -/+ stop_atr_multiple x ATR(14), take profit = close +/- take_profit
                _atr_multiple x ATR(14) (long/short); the bot re-anchors them on the fill price
    too few     fewer than min_candles [60] closed candles -> HOLD (indicators not warmed up)

Indicators are vectorised numpy on float arrays, one pure function each, and return an array as
long as the input with NaN where the indicator is not yet defined. Conventions follow Wilder (1978)
and StockCharts' ChartSchool worked examples, which the tests reproduce.
"""
from __future__ import annotations

import enum
import functools
import importlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np

from kucoin_futures.errors import ConfigError, InvalidArgument
from kucoin_futures.protocol.types import Candle

__all__ = [
    "FLAT",
    "HISTORY_CANDLES",
    "Action",
    "ActionKind",
    "Position",
    "SignalStrategy",
    "Signals",
    "Strategy",
    "StrategyParams",
    "atr",
    "candle_rows",
    "closed_candles",
    "ema",
    "load_strategy",
    "macd",
    "ohlc_arrays",
    "rsi",
    "true_range",
    "trend_momentum",
    "trend_momentum_decide",
    "trend_momentum_signals",
]

log = logging.getLogger(__name__)

HISTORY_CANDLES = 300  # candles the bot reads for a decision (and for a stop from the ATR)
_BLOCK = 128  # values per block of the smoothing recurrence (see _first_order)


# -- value types ------------------------------------------------------------------------------
class ActionKind(enum.StrEnum):
    ENTER_LONG = "enter_long"
    ENTER_SHORT = "enter_short"
    EXIT = "exit"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class Position:
    """The strategy's view of one symbol's position: a side and a size, or flat."""

    side: Literal["long", "short"] | None = None
    contracts: int = 0
    entry_price: float = 0.0

    def __post_init__(self) -> None:
        if self.side not in ("long", "short", None):
            raise InvalidArgument(f"side must be 'long', 'short' or None, not {self.side!r}")
        if (self.side is None) != (self.contracts == 0) or self.contracts < 0:
            raise InvalidArgument("a position has a side and contracts > 0, or neither")

    @property
    def is_flat(self) -> bool:
        return self.side is None


FLAT = Position()


@dataclass(frozen=True, slots=True)
class Action:
    """What to do now. Entries carry the reference close, its ATR and the protective levels."""

    kind: ActionKind
    reason: str
    price: float | None = None  # the close the decision was made on
    atr: float | None = None
    stop_price: float | None = None
    take_profit_price: float | None = None

    @property
    def is_entry(self) -> bool:
        return self.kind in (ActionKind.ENTER_LONG, ActionKind.ENTER_SHORT)


@dataclass(frozen=True, slots=True)
class StrategyParams:
    """Parameters of the default strategy; periods are in candles."""

    ema_fast: int = 20
    ema_slow: int = 50
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    rsi_period: int = 14
    rsi_long_band: tuple[float, float] = (50.0, 70.0)
    rsi_short_band: tuple[float, float] = (30.0, 50.0)
    atr_period: int = 14
    stop_atr_multiple: float = 2.0
    take_profit_atr_multiple: float = 3.0
    min_candles: int = 60

    def __post_init__(self) -> None:
        periods = (self.ema_fast, self.ema_slow, self.macd_fast, self.macd_slow, self.macd_signal,
                   self.rsi_period, self.atr_period)
        if min(periods) < 1 or self.ema_fast >= self.ema_slow or self.macd_fast >= self.macd_slow:
            raise InvalidArgument("periods must be >= 1 and each fast period below its slow one")
        if not all(0 <= lo < hi <= 100 for lo, hi in (self.rsi_long_band, self.rsi_short_band)):
            raise InvalidArgument("RSI bands must be (low, high) with 0 <= low < high <= 100")
        if not (self.stop_atr_multiple > 0 and self.take_profit_atr_multiple > 0):
            raise InvalidArgument("ATR multiples must be positive")
        if self.min_candles < self.warmup:
            raise InvalidArgument(f"min_candles must be at least {self.warmup} for these periods")

    @property
    def warmup(self) -> int:
        """Fewest candles for which every indicator of the last candle is defined."""
        return max(self.ema_slow, self.macd_slow + self.macd_signal - 1, self.rsi_period + 1,
                   self.atr_period)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> StrategyParams:
        """Return the defaults with the ATR multiples of `settings` (a config.Settings)."""
        values = {"stop_atr_multiple": settings.stop_atr_multiple,
                  "take_profit_atr_multiple": settings.take_profit_atr_multiple}
        values.update(overrides)
        return cls(**values)


Candles: TypeAlias = Sequence[Candle] | np.ndarray | Sequence[Sequence[float]]
Strategy: TypeAlias = Callable[[Candles, Position, StrategyParams], Action]


# -- indicators -------------------------------------------------------------------------------
def ema(values: Any, period: int) -> np.ndarray:
    """Return the exponential moving average, alpha = 2 / (period + 1).

    ``ema[i] = ema[i-1] + alpha * (x[i] - ema[i-1])``, seeded with the simple average of the first
    `period` values (StockCharts' convention), so ``ema[period-1]`` is the first defined value.
    Leading NaNs (e.g. an indicator's own warm-up) are skipped before seeding.
    """
    return _exponential_smooth(values, period, 2.0 / (period + 1))


def true_range(high: Any, low: Any, close: Any) -> np.ndarray:
    """Return Wilder's true range: max(high, previous close) - min(low, previous close).

    The first bar has no previous close, so its true range is high - low.
    """
    h, l_, c = _same_length(high, low, close)
    prev = np.concatenate(([np.nan], c[:-1]))
    tr = np.fmax(h, prev) - np.fmin(l_, prev)  # fmax/fmin ignore the NaN of the first bar
    return tr


def atr(high: Any, low: Any, close: Any, period: int = 14) -> np.ndarray:
    """Return Wilder's average true range: the true range smoothed with alpha = 1 / period.

    ``atr[period-1]`` is the mean of the first `period` true ranges, then
    ``atr[i] = (atr[i-1] * (period-1) + tr[i]) / period``.
    """
    return _exponential_smooth(true_range(high, low, close), period, 1.0 / period)


def rsi(close: Any, period: int = 14) -> np.ndarray:
    """Return Wilder's relative strength index in [0, 100].

    Gains and losses of the close-to-close changes are Wilder-smoothed (alpha = 1 / period, seeded
    with their simple average over the first `period` changes); ``rsi = 100 - 100 / (1 + gain /
    loss)``. The first value is at index `period`. No loss gives 100; no movement at all gives 50.
    """
    c = _as_float_array(close)
    change = np.diff(c)
    gain = _exponential_smooth(np.clip(change, 0.0, None), period, 1.0 / period)
    loss = _exponential_smooth(np.clip(-change, 0.0, None), period, 1.0 / period)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100.0 - 100.0 / (1.0 + gain / loss)
    value = np.where((loss == 0) & (gain > 0), 100.0, value)
    value = np.where((loss == 0) & (gain == 0), 50.0, value)
    return np.concatenate(([np.nan], value))


def macd(close: Any, fast: int = 12, slow: int = 26, signal: int = 9
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (macd line, signal line, histogram): EMA(fast) - EMA(slow), its EMA(signal), and
    the line minus the signal. The signal's first value is at index ``slow + signal - 2``."""
    c = _as_float_array(close)
    line = ema(c, fast) - ema(c, slow)
    sig = ema(line, signal)
    return line, sig, line - sig


def _exponential_smooth(values: Any, period: int, alpha: float) -> np.ndarray:
    if period < 1:
        raise InvalidArgument(f"period must be >= 1, not {period}")
    x = _as_float_array(values)
    out = np.full(x.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(x))
    if finite.size == 0 or finite[0] + period > x.size:
        return out
    seed_at = finite[0] + period - 1
    out[seed_at] = x[finite[0]:seed_at + 1].mean()
    rest = x[seed_at + 1:]
    if rest.size:
        out[seed_at + 1:] = _first_order(rest, 1.0 - alpha, alpha, out[seed_at])
    return out


def _first_order(x: np.ndarray, decay: float, alpha: float, start: float) -> np.ndarray:
    # y[i] = decay*y[i-1] + alpha*x[i] from y[-1] = start, exactly, in C: in blocks of _BLOCK,
    # y[b+k] = decay**(k+1) * y[b-1] + sum_{m<=k} alpha*decay**(k-m) * x[b+m], one lower-triangular
    # matrix product for all blocks at once; a short loop carries y from block to block (~7x
    # faster than a full-length convolution on a 90-day 5m series). A non-finite value poisons
    # every value after it, as in the recurrence.
    size = min(_BLOCK, x.size)
    weights, carry = _block_weights(decay, alpha, size)
    padded = np.zeros(-(-x.size // size) * size)
    padded[:x.size] = np.nan_to_num(x)
    local = padded.reshape(-1, size) @ weights
    y = start
    for row in local:
        row += carry * y
        y = row[-1]
    out = local.reshape(-1)[:x.size]
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        out[bad[0]:] = np.nan
    return out


@functools.lru_cache(maxsize=64)
def _block_weights(decay: float, alpha: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    lag = np.subtract.outer(np.arange(size), np.arange(size))
    weights = np.where(lag >= 0, alpha * decay ** np.maximum(lag, 0), 0.0)
    return np.ascontiguousarray(weights.T), decay ** np.arange(1, size + 1)


def _as_float_array(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise InvalidArgument(f"expected a 1-D series, got shape {array.shape}")
    return array


def _same_length(*series: Any) -> list[np.ndarray]:
    arrays = [_as_float_array(s) for s in series]
    if len({a.size for a in arrays}) != 1:
        raise InvalidArgument("high, low and close must have the same length")
    return arrays


# -- candles ----------------------------------------------------------------------------------
def closed_candles(candles: Candles, *, timeframe_ms: int, now_ms: int) -> list[Any]:
    """Return the candles whose period has ended at `now_ms` (epoch ms); drops the forming one.
    Takes Candle values or ccxt rows [ts_ms, o, h, l, c, v] (KuCoinClient.get_ohlcv's)."""
    if len(candles) and not isinstance(candles[0], Candle):
        return [row for row in candles if row[0] + timeframe_ms <= now_ms]
    return [c for c in candles if c.ts_ms + timeframe_ms <= now_ms]


def ohlc_arrays(candles: Candles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (high, low, close) arrays from Candle values or ccxt rows [ts_ms, o, h, l, c, v]."""
    rows = candle_rows(candles)
    return rows[:, 2], rows[:, 3], rows[:, 4]


# -- the two-part form: signals once per series, a decision per candle ----------------------
@dataclass(frozen=True, slots=True)
class Signals:
    """A strategy's verdicts on every candle of one series, computed once (vectorised numpy).

    Index i is the decision on closed candle i. ``decide`` returns HOLD wherever no mask is set
    (``active`` False), so a backtest skips those candles without asking. `rows`: the candles,
    for a strategy decided per window.
    """

    close: np.ndarray
    atr: np.ndarray
    enter_long: np.ndarray  # bool: flat -> ENTER_LONG
    enter_short: np.ndarray
    exit_long: np.ndarray  # bool: long -> EXIT
    exit_short: np.ndarray
    rows: np.ndarray | None = None

    @property
    def active(self) -> np.ndarray:
        """Where decide() may return something other than HOLD, for some position."""
        return self.enter_long | self.enter_short | self.exit_long | self.exit_short


@dataclass(frozen=True, slots=True)
class SignalStrategy:
    """A strategy in two parts: ``signals(rows, params)`` over a whole series of ccxt rows
    [ts_ms, o, h, l, c, v] (vectorised, once) and ``decide(signals, i, position, params)`` on
    closed candle i (O(1)). Called like a plain strategy, it decides on the last of `candles`:
    that is the live bot's call; the backtest calls the two parts."""

    signals: Callable[[np.ndarray, StrategyParams], Signals]
    decide: Callable[[Signals, int, Position, StrategyParams], Action]

    def __call__(self, candles: Candles, position: Position, params: StrategyParams) -> Action:
        rows = candle_rows(candles)
        return self.decide(self.signals(rows, params), len(rows) - 1, position, params)


def candle_rows(candles: Candles) -> np.ndarray:
    """Return an (n, 6) float array [ts_ms, o, h, l, c, v] of Candle values or ccxt rows."""
    if isinstance(candles, np.ndarray) or (len(candles) and not isinstance(candles[0], Candle)):
        rows = np.asarray(candles, dtype=float)
        if rows.size == 0:
            return np.empty((0, 6))
        if rows.ndim != 2 or rows.shape[1] < 5:
            raise InvalidArgument("candle rows must be [ts_ms, open, high, low, close, ...]")
        return rows
    return np.array([(c.ts_ms, c.open, c.high, c.low, c.close, c.volume) for c in candles],
                    dtype=float).reshape(-1, 6)


# -- the default strategy ---------------------------------------------------------------------
def trend_momentum_signals(rows: np.ndarray, params: StrategyParams) -> Signals:
    """Return the default strategy's verdicts on every candle of `rows` (module doc)."""
    high, low, close = rows[:, 2], rows[:, 3], rows[:, 4]
    n = close.size
    if n == 0:
        none = np.zeros(0, dtype=bool)
        return Signals(close, np.empty(0), none, none, none, none)
    fast, slow = ema(close, params.ema_fast), ema(close, params.ema_slow)
    hist = macd(close, params.macd_fast, params.macd_slow, params.macd_signal)[2]
    strength = rsi(close, params.rsi_period)
    volatility = atr(high, low, close, params.atr_period)
    ready = np.arange(n) >= params.min_candles - 1  # fewer closed candles: indicators not warm
    up, down = ready & (fast > slow), ready & (fast < slow)
    volatile = np.isfinite(volatility) & (volatility > 0)
    (lo_long, hi_long), (lo_short, hi_short) = params.rsi_long_band, params.rsi_short_band
    enter_long = up & volatile & (hist > 0) & (strength > lo_long) & (strength < hi_long)
    enter_short = down & volatile & (hist < 0) & (strength > lo_short) & (strength < hi_short)
    return Signals(close, volatility, enter_long, enter_short, exit_long=down, exit_short=up)


def trend_momentum_decide(signals: Signals, i: int, position: Position,
                          params: StrategyParams) -> Action:
    """Return the default strategy's decision on closed candle i of a series (module doc)."""
    if i + 1 < params.min_candles:
        return Action(ActionKind.HOLD, f"too few candles: {i + 1} < {params.min_candles}")
    if position.side == "long":
        return Action(ActionKind.EXIT, "trend reversed against the long") if signals.exit_long[i] \
            else Action(ActionKind.HOLD, "long: trend intact")
    if position.side == "short":
        return Action(ActionKind.EXIT, "trend reversed against the short") if signals.exit_short[i] \
            else Action(ActionKind.HOLD, "short: trend intact")
    price, volatility = float(signals.close[i]), float(signals.atr[i])
    if signals.enter_long[i]:
        return _entry(ActionKind.ENTER_LONG, "uptrend with rising momentum", price, volatility, params)
    if signals.enter_short[i]:
        return _entry(ActionKind.ENTER_SHORT, "downtrend with falling momentum", price, volatility,
                      params)
    if not (volatility > 0 and math.isfinite(volatility)):
        return Action(ActionKind.HOLD, "no volatility: ATR is 0")
    return Action(ActionKind.HOLD, "no signal", price=price, atr=volatility)


# ``trend_momentum(candles, position, params)`` decides on the last closed candle (the live bot);
# the backtest calls its two parts.
trend_momentum = SignalStrategy(trend_momentum_signals, trend_momentum_decide)


def _entry(kind: ActionKind, reason: str, price: float, volatility: float,
           params: StrategyParams) -> Action:
    sign = 1.0 if kind is ActionKind.ENTER_LONG else -1.0
    return Action(kind, reason, price=price, atr=volatility,
                  stop_price=price - sign * params.stop_atr_multiple * volatility,
                  take_profit_price=price + sign * params.take_profit_atr_multiple * volatility)


# -- pluggability -----------------------------------------------------------------------------
# STRATEGY values written before the bot moved into its package keep working
MOVED_MODULES = {"strategy": "tradebot.strategy"}


def load_strategy(spec: str) -> Strategy:
    """Return the callable named by ``"module:function"`` (the STRATEGY setting).

    Raises:
        ConfigError: the module cannot be imported or has no such callable (variable STRATEGY).
    """
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise ConfigError(f"STRATEGY must be module:function (got {spec!r})", variable="STRATEGY")
    module_name = MOVED_MODULES.get(module_name, module_name)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"STRATEGY module {module_name!r} cannot be imported: {exc}",
                          variable="STRATEGY") from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ConfigError(f"STRATEGY {spec!r}: {module_name} has no callable {func_name!r}",
                          variable="STRATEGY")
    return func
