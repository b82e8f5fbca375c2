"""The bot's trading decision as a pure function of closed candles and the current position.

    action = trend_momentum(candles, position, StrategyParams.from_settings(settings))

A strategy is any callable ``(candles, position, params) -> Action``; ``load_strategy`` resolves
the ``STRATEGY`` setting (``"module:function"``) to one. Nothing here reads a clock, the network
or the settings: the bot passes closed candles (``closed_candles`` drops the forming one) and the
position, and turns the returned ``Action`` into orders through the risk module.

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
    "Strategy",
    "StrategyParams",
    "atr",
    "closed_candles",
    "ema",
    "load_strategy",
    "macd",
    "ohlc_arrays",
    "rsi",
    "true_range",
    "trend_momentum",
]

log = logging.getLogger(__name__)

HISTORY_CANDLES = 300  # candles the bot reads for a decision (and for a stop from the ATR)
# Beyond this many bars a geometric weight is below 1e-18 of the newest one: the truncated kernel
# reproduces the exact recurrence to float precision (see _exponential_smooth).
_NEGLIGIBLE_WEIGHT = 1e-18


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
    # The first-order recurrence y[i] = d*y[i-1] + alpha*x[i] (d = 1 - alpha) unrolls into
    #   y[s+k] = d**k * y[s] + alpha * sum_{j=1..k} d**(k-j) * x[s+j],
    # a convolution of x with the geometric kernel alpha * d**m: numpy computes it in C instead
    # of a Python loop. The kernel is cut where d**m < 1e-18, far below float precision.
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
        decay = 1.0 - alpha
        span = rest.size if decay == 0 else min(
            rest.size, math.ceil(math.log(_NEGLIGIBLE_WEIGHT) / math.log(decay)) + 1)
        kernel = alpha * decay ** np.arange(span)
        out[seed_at + 1:] = (np.convolve(rest, kernel)[:rest.size]
                             + out[seed_at] * decay ** np.arange(1, rest.size + 1))
    return out


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
    if isinstance(candles, np.ndarray) or (len(candles) and not isinstance(candles[0], Candle)):
        rows = np.asarray(candles, dtype=float)
        if rows.size == 0:
            return np.empty(0), np.empty(0), np.empty(0)
        if rows.ndim != 2 or rows.shape[1] < 5:
            raise InvalidArgument("candle rows must be [ts_ms, open, high, low, close, ...]")
        return rows[:, 2], rows[:, 3], rows[:, 4]
    n = len(candles)
    high = np.fromiter((c.high for c in candles), float, n)
    low = np.fromiter((c.low for c in candles), float, n)
    close = np.fromiter((c.close for c in candles), float, n)
    return high, low, close


# -- the default strategy ---------------------------------------------------------------------
def trend_momentum(candles: Candles, position: Position, params: StrategyParams) -> Action:
    """Return the default trend-and-momentum decision on the last closed candle (module doc)."""
    high, low, close = ohlc_arrays(candles)
    if close.size < params.min_candles:
        return Action(ActionKind.HOLD, f"too few candles: {close.size} < {params.min_candles}")
    fast = ema(close, params.ema_fast)[-1]
    slow = ema(close, params.ema_slow)[-1]
    if position.side == "long":
        return Action(ActionKind.EXIT, "trend reversed against the long") if fast < slow \
            else Action(ActionKind.HOLD, "long: trend intact")
    if position.side == "short":
        return Action(ActionKind.EXIT, "trend reversed against the short") if fast > slow \
            else Action(ActionKind.HOLD, "short: trend intact")
    hist = macd(close, params.macd_fast, params.macd_slow, params.macd_signal)[2][-1]
    strength = rsi(close, params.rsi_period)[-1]
    volatility = float(atr(high, low, close, params.atr_period)[-1])
    price = float(close[-1])
    if not (volatility > 0 and math.isfinite(volatility)):
        return Action(ActionKind.HOLD, "no volatility: ATR is 0")
    lo_long, hi_long = params.rsi_long_band
    lo_short, hi_short = params.rsi_short_band
    if fast > slow and hist > 0 and lo_long < strength < hi_long:
        return _entry(ActionKind.ENTER_LONG, "uptrend with rising momentum", price, volatility,
                      params)
    if fast < slow and hist < 0 and lo_short < strength < hi_short:
        return _entry(ActionKind.ENTER_SHORT, "downtrend with falling momentum", price, volatility,
                      params)
    return Action(ActionKind.HOLD, "no signal", price=price, atr=volatility)


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
