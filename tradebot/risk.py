"""Risk rules as pure functions and frozen values: sizing, leverage, the daily kill switch, entry
guards and protective exits (a run's performance numbers are in performance.py). Nothing here
reads a clock or does I/O; time comes in as ``now_ms`` (epoch milliseconds, for the UTC day) and
data age as seconds measured by the caller.

    size = position_size(equity, risk_per_trade, entry, stop, multiplier, lot_size, max_qty,
                         leverage=lev, available_margin=free)
    state = update_risk_state(state, equity=equity, now_ms=now_ms, limits=limits)
    ok, reason = entry_allowed(symbol, open_symbols=..., state=state, limits=limits,
                               data_age_s=age, ws_reconnecting=flag)
    exit_state = ProtectiveExit.from_entry("long", fill_price, atr, limits=limits)
    exit_state = update_trailing(exit_state, last_price)
    reason = check_exit(exit_state, last_price)  # "stop", "trailing_stop", "take_profit" or None
    plan = plan_entry(action, price=ask, equity=equity, free_margin=free,
                      terms=ContractTerms.from_market(market), limits=limits)  # sized, exits set
    hit = candle_exit(exit_state, open_price=o, high=h, low=l)  # a candle's path, worst first

Protective exits are cheap checks the bot runs on every price update; an exit they trigger is sent
at the executor's HIGH priority, ahead of account reads and market-data fallback. The backtest
runs the same rules: ``plan_entry`` sizes both, ``candle_exit`` applies ``check_exit`` to a
candle, and ``liquidation_price`` is the exchange's formula for an isolated position.
"""
from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any, Literal

from kucoin_futures.errors import InvalidArgument
from tradebot.strategy import Action, ActionKind

__all__ = [
    "DAY_MS",
    "MARGIN_HEADROOM",
    "ContractTerms",
    "EntryPlan",
    "ExitReason",
    "ProtectiveExit",
    "RiskLimits",
    "RiskState",
    "candle_exit",
    "check_exit",
    "effective_leverage",
    "entry_allowed",
    "liquidation_price",
    "plan_entry",
    "position_size",
    "update_risk_state",
    "update_trailing",
    "utc_day",
]

DAY_MS = 86_400_000
# A market order can fill a few ticks worse than the quote it was sized on; sizing against all
# the free margin then meets 300003 (insufficient balance). Leave this share of it unused.
MARGIN_HEADROOM = 0.95

ExitReason = Literal["stop", "trailing_stop", "take_profit"]


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The risk settings the rules need (a subset of config.Settings)."""

    leverage: int = 3
    risk_per_trade: float = 0.01
    max_open_positions: int = 3
    daily_loss_limit: float = 0.05
    flatten_on_daily_loss: bool = False
    stop_atr_multiple: float = 2.0
    take_profit_atr_multiple: float = 3.0
    trailing_atr_multiple: float = 0.0  # 0 disables the trailing stop
    max_data_age_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Any) -> RiskLimits:
        """Return the limits of a config.Settings."""
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})


# -- sizing -----------------------------------------------------------------------------------
def position_size(
    equity: float,
    risk_per_trade: float,
    entry_price: float,
    stop_price: float,
    multiplier: float,
    lot_size: int,
    max_order_qty: int,
    *,
    leverage: int,
    available_margin: float,
    taker_fee_rate: float = 0.0,
    inverse: bool = False,
) -> int:
    """Return the order size in contracts (a multiple of `lot_size`), 0 when nothing fits.

    The size loses ``equity * risk_per_trade`` if the stop is hit, rounded DOWN to the lot size,
    and is capped by ``max_order_qty`` and by the margin: each contract needs ``value / leverage``
    plus its opening fee ``value * taker_fee_rate`` out of `available_margin`.

    Linear (USDT) contracts: one contract is ``multiplier`` coins, worth ``multiplier * price``
    USDT, and loses ``|entry - stop| * multiplier``. Inverse contracts (``inverse=True``, equity
    and margin in the base coin): one contract is worth ``|multiplier| / price`` coins and loses
    ``|multiplier| * |1/entry - 1/stop|`` coins.

    Raises:
        InvalidArgument: a non-positive or non-finite price, stop equal to entry, or a bad lot
            size, leverage or multiplier (the caller's bug, not "nothing fits").
    """
    numbers = (equity, risk_per_trade, entry_price, stop_price, multiplier, available_margin,
               taker_fee_rate)
    if not all(map(math.isfinite, numbers)):
        raise InvalidArgument("position_size needs finite numbers")
    if entry_price <= 0 or stop_price <= 0 or stop_price == entry_price:
        raise InvalidArgument(f"need positive prices with a stop distance (entry {entry_price}, "
                              f"stop {stop_price})")
    if lot_size < 1 or leverage < 1 or multiplier == 0 or taker_fee_rate < 0:
        raise InvalidArgument("lot_size and leverage must be >= 1, multiplier non-zero")
    if equity <= 0 or risk_per_trade <= 0 or available_margin <= 0:
        return 0
    unit = abs(multiplier)
    if inverse:
        loss_per_contract = unit * abs(1.0 / entry_price - 1.0 / stop_price)
        value_per_contract = unit / entry_price
    else:
        loss_per_contract = unit * abs(entry_price - stop_price)
        value_per_contract = unit * entry_price
    by_risk = equity * risk_per_trade / loss_per_contract
    by_margin = available_margin / (value_per_contract * (1.0 / leverage + taker_fee_rate))
    # A relative 1e-12 keeps float noise (2.9999999999999996) from costing a contract; the
    # overshoot it can allow is ~1e-12 of the margin, far below any exchange's rounding.
    contracts = min(math.floor(min(by_risk, by_margin) * (1 + 1e-12)), max_order_qty)
    return max(0, contracts - contracts % lot_size)


@dataclass(frozen=True, slots=True)
class ContractTerms:
    """What the rules need of one contract (KuCoin's contract object as ccxt's market has it)."""

    multiplier: float  # coins per contract (ccxt contractSize)
    lot_size: int = 1
    max_order_qty: int = 1_000_000
    max_leverage: float | None = None
    taker_fee_rate: float = 0.0
    maker_fee_rate: float = 0.0
    maintenance_margin_rate: float = 0.0  # KuCoin's maintainMargin (the first risk-limit tier)

    @classmethod
    def from_market(cls, market: Any) -> ContractTerms:
        """Return the terms of a ccxt market dict (KuCoinClient.markets[symbol])."""
        info = market.get("info") or {}
        return cls(multiplier=float(market["contractSize"]), lot_size=int(market["precision"]["amount"] or 1),
                   max_order_qty=int(market["limits"]["amount"]["max"] or 1_000_000),
                   max_leverage=market["limits"]["leverage"]["max"],
                   taker_fee_rate=float(market.get("taker") or 0), maker_fee_rate=float(market.get("maker") or 0),
                   maintenance_margin_rate=float(info.get("maintainMargin") or 0))


@dataclass(frozen=True, slots=True)
class EntryPlan:
    """An entry the rules allow: its side, size and leverage, and the exits planned at `price`
    (the bot re-anchors them on the fill price with ProtectiveExit.from_entry)."""

    side: Literal["long", "short"]
    contracts: int
    leverage: int
    price: float
    exits: ProtectiveExit


def plan_entry(action: Action, *, price: float, equity: float, free_margin: float,
               terms: ContractTerms, limits: RiskLimits) -> EntryPlan | None:
    """Return the entry order for an entry `action` at `price` (the ask for a long, the bid for a
    short), or None when its size rounds to 0 lots.

    The stop keeps the action's distance from its reference close; the size risks
    ``risk_per_trade`` of `equity` at that stop, within MARGIN_HEADROOM of `free_margin` at the
    contract-capped leverage (position_size).
    """
    side: Literal["long", "short"] = "long" if action.kind is ActionKind.ENTER_LONG else "short"
    if not action.is_entry or action.price is None or action.stop_price is None or action.atr is None:
        raise InvalidArgument(f"plan_entry needs an entry action with its price, stop and ATR: {action}")
    stop_price = price - (action.price - action.stop_price)  # keep the ATR distance
    leverage = effective_leverage(limits.leverage, terms.max_leverage)
    size = position_size(equity, limits.risk_per_trade, price, stop_price, terms.multiplier, terms.lot_size,
                         terms.max_order_qty, leverage=leverage, available_margin=free_margin * MARGIN_HEADROOM,
                         taker_fee_rate=terms.taker_fee_rate)
    if size <= 0:
        return None
    return EntryPlan(side, size, leverage, price, ProtectiveExit.from_entry(side, price, action.atr, limits=limits))


def effective_leverage(configured: int, contract_max: float | None) -> int:
    """Return the configured leverage capped by the contract's maximum (at least 1)."""
    if configured < 1:
        raise InvalidArgument(f"leverage must be >= 1, not {configured}")
    if contract_max is None or contract_max <= 0:
        return int(configured)
    return max(1, min(int(configured), int(contract_max)))


# -- daily kill switch ------------------------------------------------------------------------
def utc_day(now_ms: int) -> int:
    """Return the UTC day number (days since 1970-01-01) of an epoch-ms time."""
    return now_ms // DAY_MS


@dataclass(frozen=True, slots=True)
class RiskState:
    """The day's starting equity and whether the daily loss limit has tripped."""

    day: int  # utc_day() of the day this state belongs to
    start_equity: float
    tripped: bool = False
    tripped_at_ms: int | None = None

    def loss_fraction(self, equity: float) -> float:
        """Return the day's loss as a fraction of its starting equity (negative on a gain)."""
        return (self.start_equity - equity) / self.start_equity if self.start_equity > 0 else 0.0

    def must_flatten(self, limits: RiskLimits) -> bool:
        """True when the switch has tripped and the settings ask to close every position."""
        return self.tripped and limits.flatten_on_daily_loss


def update_risk_state(
    state: RiskState | None, *, equity: float, now_ms: int, limits: RiskLimits,
    day_start_equity: float | None = None,
) -> RiskState:
    """Return the state after observing `equity` (realised + unrealised) at `now_ms`.

    A new UTC day (or no state yet) starts from `day_start_equity` when the caller restored it
    (e.g. the journal's first equity snapshot of the day, after a restart), else from `equity`.
    The switch trips when the day's loss reaches ``daily_loss_limit`` and stays tripped until the
    next UTC day, even if equity recovers: a limit that re-arms on a bounce would not limit.
    """
    day = utc_day(now_ms)
    if state is None or state.day != day:
        start = day_start_equity if day_start_equity is not None else equity
        state = RiskState(day=day, start_equity=start)
    if not state.tripped and state.loss_fraction(equity) >= limits.daily_loss_limit:
        state = replace(state, tripped=True, tripped_at_ms=now_ms)
    return state


# -- entry guards -----------------------------------------------------------------------------
def entry_allowed(
    symbol: str,
    *,
    open_symbols: Collection[str],
    state: RiskState | None,
    limits: RiskLimits,
    data_age_s: float | None,
    ws_reconnecting: bool,
) -> tuple[bool, str]:
    """Return (allowed, reason) for a new entry on `symbol`; the reason names the first blocker.

    `open_symbols` holds the symbols with a position OR an entry intent not yet resolved (so a
    slow fill cannot let a second entry through); `data_age_s` is the age of the symbol's newest
    market data by the local monotonic clock (None: no data yet).
    """
    if state is not None and state.tripped:
        return False, "daily loss limit reached"
    if symbol in open_symbols:
        return False, "already in a position on this symbol"
    if len(open_symbols) >= limits.max_open_positions:
        return False, f"max open positions ({limits.max_open_positions}) reached"
    if ws_reconnecting:
        return False, "websocket reconnecting"
    if data_age_s is None:
        return False, "no market data"
    if data_age_s > limits.max_data_age_s:
        return False, f"stale data: {data_age_s:.1f}s old > {limits.max_data_age_s:g}s"
    return True, "ok"


# -- protective exits -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProtectiveExit:
    """Stop, take profit and trailing stop of one open position.

    `watermark` is the best price since entry (highest for a long, lowest for a short); the
    trailing stop sits `trailing_distance` behind it and only ever moves in the position's favour
    (a trailing distance shorter than the stop distance tightens the stop at the first update).
    """

    side: Literal["long", "short"]
    stop_price: float
    take_profit_price: float | None = None
    trailing_distance: float | None = None  # price units; None disables trailing
    watermark: float | None = None
    trailing_active: bool = False  # the stop has been moved by trailing

    def __post_init__(self) -> None:
        if self.side not in ("long", "short"):
            raise InvalidArgument(f"side must be 'long' or 'short', not {self.side!r}")

    @classmethod
    def from_entry(cls, side: Literal["long", "short"], entry_price: float, atr: float, *,
                   limits: RiskLimits) -> ProtectiveExit:
        """Return the exits of a new position: stop and take profit at the ATR multiples."""
        if not (atr > 0 and entry_price > 0):
            raise InvalidArgument("entry price and ATR must be positive")
        sign = 1.0 if side == "long" else -1.0
        trailing = limits.trailing_atr_multiple * atr if limits.trailing_atr_multiple > 0 else None
        return cls(side=side,
                   stop_price=entry_price - sign * limits.stop_atr_multiple * atr,
                   take_profit_price=entry_price + sign * limits.take_profit_atr_multiple * atr,
                   trailing_distance=trailing, watermark=entry_price)


def update_trailing(state: ProtectiveExit, last_price: float) -> ProtectiveExit:
    """Return `state` with the watermark and trailing stop moved by `last_price` (if better)."""
    if state.trailing_distance is None:
        return state
    if state.side == "long":
        mark = last_price if state.watermark is None else max(state.watermark, last_price)
        candidate = mark - state.trailing_distance
        better = candidate > state.stop_price
    else:
        mark = last_price if state.watermark is None else min(state.watermark, last_price)
        candidate = mark + state.trailing_distance
        better = candidate < state.stop_price
    if better:
        return replace(state, watermark=mark, stop_price=candidate, trailing_active=True)
    return replace(state, watermark=mark) if mark != state.watermark else state


def check_exit(state: ProtectiveExit, last_price: float) -> ExitReason | None:
    """Return why the position must be closed at `last_price`, or None."""
    long = state.side == "long"
    if (last_price <= state.stop_price) if long else (last_price >= state.stop_price):
        return "trailing_stop" if state.trailing_active else "stop"
    target = state.take_profit_price
    if target is not None and ((last_price >= target) if long else (last_price <= target)):
        return "take_profit"
    return None


def candle_exit(state: ProtectiveExit, *, open_price: float, high: float, low: float,
                liquidation_price: float | None = None) -> tuple[str, float] | None:
    """Return (reason, price) of the first exit one candle triggers, or None.

    Which came first inside a candle is unknown, so its path is taken in the order worst for the
    position: the open, then the adverse extreme (a long's low, a short's high), then the
    favourable one; ``check_exit`` judges each point, as it judges each live price. A level the
    open is already past exits at the open (a gap); otherwise the stop exits at the stop price and
    the take profit at its price. "liquidation" (at `liquidation_price`) when the adverse path
    reaches it before the stop (an open past it, or a liquidation price nearer than the stop).
    """
    long = state.side == "long"
    adverse, favourable = (low, high) if long else (high, low)
    if liquidation_price is not None:
        sign = 1.0 if long else -1.0  # > 0: the price is on the safe side of the level
        if sign * (open_price - liquidation_price) <= 0 or (
                sign * (adverse - liquidation_price) <= 0 and sign * (liquidation_price - state.stop_price) >= 0):
            return "liquidation", float(liquidation_price)  # past it at the open, or reached before the stop
    reason = check_exit(state, open_price)
    if reason is not None:
        return reason, open_price
    reason = check_exit(state, adverse)
    if reason is not None:
        return reason, state.stop_price
    reason = check_exit(state, favourable)
    if reason is not None:
        return reason, float(state.take_profit_price)  # type: ignore[arg-type]
    return None


def liquidation_price(side: str, entry_price: float, *, contracts: int, multiplier: float, margin: float,
                      maintenance_margin_rate: float) -> tuple[float, float]:
    """Return (liquidation, bankruptcy) price of an isolated linear (USDT) position, as KuCoin
    computes them (the position object's liquidationPrice / bankruptPrice): bankrupt where the
    margin plus the PnL is 0, liquidated where it falls to the maintenance margin of the entry
    value. With q = contracts x multiplier coins, E the entry, M the margin, r the rate:

        long    Pb = E - M/q    Pl = Pb + r E        (M = qE/L: Pl = E (1 - 1/L + r))
        short   Pb = E + M/q    Pl = Pb - r E
    """
    size = contracts * abs(multiplier)
    if size <= 0 or entry_price <= 0:
        raise InvalidArgument("liquidation_price needs contracts and a positive entry price")
    if side == "long":
        bankrupt = entry_price - margin / size
        liquidation = bankrupt + maintenance_margin_rate * entry_price
    else:
        bankrupt = entry_price + margin / size
        liquidation = bankrupt - maintenance_margin_rate * entry_price
    return max(liquidation, 0.0), max(bankrupt, 0.0)
