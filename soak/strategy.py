"""A restless strategy for the soak: it trades every minute, so restarts and faults meet orders.

Loaded inside the bot through the STRATEGY setting (``STRATEGY=soak.strategy:churn``); pure, like
every strategy (``(candles, position, params) -> Action``). The bot's default waits for a trend
and may not trade for an hour; a soak needs entries, exits and stops to flow all the time.

    flat        enter in the direction of the last closed candle (up or unchanged: long)
    in position exit when the last closed candle went against the position, else hold
    levels      stop / take profit at the settings' ATR multiples from the last close
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from tradebot.strategy import Action, ActionKind, Position, StrategyParams, atr, ohlc_arrays

MIN_CANDLES = 20  # ATR(14) and a previous close


def churn(candles: Sequence[Sequence[float]], position: Position, params: StrategyParams) -> Action:
    """Return the soak's decision on the last closed candle (module doc)."""
    high, low, close = ohlc_arrays(candles)
    if close.size < max(MIN_CANDLES, params.atr_period + 2):
        return Action(ActionKind.HOLD, f"too few candles: {close.size}")
    rising = bool(close[-1] >= close[-2])
    if position.side == "long":
        return Action(ActionKind.HOLD, "candle up") if rising else Action(ActionKind.EXIT, "candle down")
    if position.side == "short":
        return Action(ActionKind.EXIT, "candle up") if rising else Action(ActionKind.HOLD, "candle down")
    volatility = float(atr(high, low, close, params.atr_period)[-1])
    if not (volatility > 0 and math.isfinite(volatility)):
        return Action(ActionKind.HOLD, "no volatility: ATR is 0")
    price = float(close[-1])
    sign = 1.0 if rising else -1.0
    return Action(ActionKind.ENTER_LONG if rising else ActionKind.ENTER_SHORT,
                  "soak: follow the last candle", price=price, atr=volatility,
                  stop_price=price - sign * params.stop_atr_multiple * volatility,
                  take_profit_price=price + sign * params.take_profit_atr_multiple * volatility)
