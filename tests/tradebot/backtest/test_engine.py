"""The backtest loop on synthetic candles: no look-ahead, intra-candle order, costs, liquidation,
and the live bot's risk limits applied by the live bot's own functions."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import tradebot.trader
from tests.tradebot.backtest.conftest import MARKET, SPAN, T0, Script, candles, history_of, walk
from tradebot import risk
from tradebot.backtest import engine
from tradebot.backtest.costs import CostModel
from tradebot.backtest.engine import BacktestConfig, as_signal_strategy, run_backtest
from tradebot.strategy import FLAT, HISTORY_CANDLES, StrategyParams, trend_momentum

PARAMS = StrategyParams()
ZERO = CostModel(0.0)


def _config(**limits) -> BacktestConfig:
    return BacktestConfig(limits=risk.RiskLimits(**{"daily_loss_limit": 1.0, **limits}), params=PARAMS, costs=ZERO)


def test_extending_the_data_changes_no_trade_closed_before_the_cut():
    """No look-ahead: trades closed before a date are the same whatever comes after it."""
    full = {f"S{k}": walk(k, 3000) for k in range(3)}
    cut_ms = T0 + 2000 * SPAN
    short = {s: rows[:2000] for s, rows in full.items()}
    changed = {}
    for k, (s, rows) in enumerate(full.items()):  # the same past, a different future
        future = walk(99 + k, 1000, start=float(rows[1999, 4]))
        future[:, 0] += cut_ms - T0
        changed[s] = np.vstack([rows[:2000], future])
    config = replace(_config(max_open_positions=2), costs=CostModel())
    runs = [run_backtest(history_of(data), trend_momentum, config) for data in (full, short, changed)]
    before = [[t for t in run.trades if t.closed_ms < cut_ms] for run in runs]
    assert len(before[0]) > 20
    assert before[0] == before[1] == before[2]
    assert [t for t in runs[0].trades if t.closed_ms >= cut_ms] != [t for t in runs[2].trades if t.closed_ms >= cut_ms]


def test_a_signal_on_a_candle_fills_at_the_next_candles_open():
    rows = walk(4, 2000)
    config = replace(_config(), costs=CostModel(5.0))
    result = run_backtest(history_of({"S": rows}), trend_momentum, config)
    signals = trend_momentum.signals(rows, PARAMS)
    assert len(result.trades) > 10
    for t in result.trades:
        row = int((t.opened_ms - T0) // SPAN)
        action = trend_momentum.decide(signals, row - 1, FLAT, PARAMS)  # decided on the candle before
        assert action.kind.value == f"enter_{t.side}"
        assert t.entry_price == pytest.approx(rows[row, 1] * (1.0005 if t.side == "long" else 0.9995))


# Long entry decided on candle 60 (close 100), filled at candle 61's open 100; ATR 1, so the stop
# sits at 98 and the take profit at 103 (StrategyParams' 2 and 3 ATR).
FLAT_60 = [(100.0, 100.2, 99.8, 100.0)] * 61
QUIET = (100.0, 100.2, 99.8, 100.0)


@pytest.mark.parametrize("candle, reason, price, closed_ms", [
    ((100.0, 103.5, 97.5, 101.0), "stop", 98.0, T0 + 63 * SPAN),  # both touched: the stop first
    ((100.0, 103.5, 99.0, 101.0), "take_profit", 103.0, T0 + 63 * SPAN),
    ((96.0, 96.5, 95.0, 96.2), "stop", 96.0, T0 + 62 * SPAN),  # gapped through the stop: the open
    ((104.0, 105.0, 103.8, 104.5), "take_profit", 104.0, T0 + 62 * SPAN),  # gapped through the target
])
def test_the_candle_after_entry_exits_pessimistically(candle, reason, price, closed_ms):
    rows = candles([*FLAT_60, QUIET, candle, *[QUIET] * 3])
    result = run_backtest(history_of({"S": rows}), Script({60: "long"}).strategy(), _config())
    (trade,) = result.trades
    assert (trade.exit_reason, trade.exit_price, trade.opened_ms, trade.closed_ms) == (
        reason, price, T0 + 61 * SPAN, closed_ms)


def test_fees_slippage_and_funding_add_up():
    """A long of 100 contracts x 0.01: in at 100 (+3 bps), one settlement at 0.1 % at the open of
    105, out on the exit signal at 110 (-3 bps), taker 0.06 % both ways."""
    path = [*FLAT_60, (100.0, 100.5, 99.9, 100.4), (105.0, 105.5, 104.9, 105.0), (110.0, 110.5, 109.9, 110.0),
            (110.0, 110.1, 109.9, 110.0)]
    rows = candles(path)
    funding = np.array([[T0 + 61 * SPAN, 0.5], [T0 + 62 * SPAN, 0.001]])  # the first: at the fill, not paid
    script = Script({60: "long"}, exit=frozenset({62}), atr=10.0)  # stop 80, target 130: never hit
    config = BacktestConfig(limits=risk.RiskLimits(daily_loss_limit=1.0, risk_per_trade=0.1), params=PARAMS,
                            costs=CostModel(3.0), starting_balance_usdt=10_000.0)
    result = run_backtest(history_of({"S": rows}, funding={"S": funding}), script.strategy(), config)
    (trade,) = result.trades
    entry, exit_ = 100.0 * 1.0003, 110.0 * 0.9997
    lots = risk.position_size(10_000, 0.1, entry, entry - 20.0, 0.01, 1, 1_000_000, leverage=3,
                              available_margin=10_000 * risk.MARGIN_HEADROOM, taker_fee_rate=0.0006)
    fees = lots * 0.01 * (entry + exit_) * 0.0006
    funding_paid = lots * 0.01 * 105.0 * 0.001
    assert (trade.entry_price, trade.exit_price, trade.contracts) == (pytest.approx(entry), pytest.approx(exit_), lots)
    assert trade.fees_usdt == pytest.approx(fees) and trade.funding_usdt == pytest.approx(funding_paid)
    assert trade.pnl_usdt == pytest.approx(lots * 0.01 * (exit_ - entry) - fees - funding_paid)
    assert result.equity_usdt[-1] == pytest.approx(10_000 + trade.pnl_usdt)
    assert trade.exit_reason == "exit_signal" and trade.closed_ms == T0 + 63 * SPAN


def test_a_short_receives_a_positive_funding_rate():
    rows = candles([*FLAT_60, *[(100.0, 100.2, 99.8, 100.0)] * 4])
    funding = np.array([[T0 + 62 * SPAN, 0.002]])
    result = run_backtest(history_of({"S": rows}, funding={"S": funding}), Script({60: "short"}).strategy(), _config())
    (trade,) = result.trades
    assert trade.funding_usdt == pytest.approx(-trade.contracts * 0.01 * 100.0 * 0.002)
    assert trade.exit_reason == "end_of_data"


def test_liquidation_at_the_liquidation_price_loses_the_margin():
    """At 50x a long's liquidation price (100 x (1 - 1/50 + 0.005) = 98.5) is nearer than its
    stop (95, ATR 2.5): a fall to 97 liquidates it at the bankruptcy price 98, margin lost."""
    rows = candles([*FLAT_60, (100.0, 100.1, 97.0, 97.5), (97.5, 97.6, 97.4, 97.5)])
    config = BacktestConfig(limits=risk.RiskLimits(daily_loss_limit=1.0, leverage=50, risk_per_trade=0.01),
                            params=PARAMS, costs=ZERO)
    result = run_backtest(history_of({"S": rows}), Script({60: "long"}, atr=2.5).strategy(), config)
    (trade,) = result.trades
    margin = trade.contracts * 0.01 * 100.0 / 50
    assert (trade.exit_reason, trade.exit_price) == ("liquidation", pytest.approx(98.0))
    assert risk.liquidation_price("long", 100.0, contracts=trade.contracts, multiplier=0.01, margin=margin,
                                  maintenance_margin_rate=0.005) == (pytest.approx(98.5), pytest.approx(98.0))
    assert trade.pnl_usdt == pytest.approx(-margin - trade.fees_usdt)
    assert trade.fees_usdt == pytest.approx(trade.contracts * 0.01 * 100.0 * 0.0006)  # no fee on the liquidation


def test_the_live_traders_risk_functions_are_the_ones_applied():
    assert engine.entry_allowed is risk.entry_allowed is tradebot.trader.entry_allowed
    assert engine.plan_entry is risk.plan_entry is tradebot.trader.plan_entry
    assert engine.update_risk_state is risk.update_risk_state is tradebot.trader.update_risk_state


def test_max_open_positions_holds_at_every_moment():
    data = {f"S{k}": walk(10 + k, 1500) for k in range(6)}
    result = run_backtest(history_of(data), trend_momentum, _config(max_open_positions=2))
    events = sorted([(t.opened_ms, 1) for t in result.trades] + [(t.closed_ms, -1) for t in result.trades])
    held = np.cumsum([step for _, step in events])
    assert held.max() == 2
    assert result.blocked_entries["max open positions (2) reached"] > 0


def test_the_daily_loss_limit_stops_entries_until_the_next_utc_day_and_may_flatten():
    """Candle 61 stops a long out (-2 % of equity at risk_per_trade 0.02); entries on candles 70
    and 80 the same day are refused; the next day's entry goes through."""
    day = 86_400_000 // SPAN
    path = [*FLAT_60, (100.0, 100.1, 97.0, 97.5), *[(97.5, 97.6, 97.4, 97.5)] * (day + 40)]
    rows = candles(path)
    script = Script({60: "long", 70: "long", 80: "long", day + 10: "long"})
    limits = dict(daily_loss_limit=0.015, risk_per_trade=0.02)
    result = run_backtest(history_of({"S": rows}), script.strategy(), _config(**limits))
    assert [t.opened_ms for t in result.trades] == [T0 + 61 * SPAN, T0 + (day + 11) * SPAN]
    assert result.blocked_entries == {"daily loss limit reached": 2}
    assert result.kill_switch_days == (risk.utc_day(T0),)
    # with FLATTEN_ON_DAILY_LOSS an open position is closed at the next open once it trips
    two = {"A": candles([*FLAT_60, (100.0, 100.1, 97.0, 97.5), (97.5, 97.6, 97.4, 97.5), (97.5, 97.6, 97.4, 97.5)]),
           "B": candles([*FLAT_60, *[(100.0, 100.1, 99.9, 100.0)] * 3])}
    result = run_backtest(history_of(two), Script({60: "long"}).strategy(),
                          _config(flatten_on_daily_loss=True, **limits))
    assert sorted((t.symbol, t.exit_reason, t.closed_ms) for t in result.trades) == [
        ("A", "stop", T0 + 62 * SPAN), ("B", "daily_loss_flatten", T0 + 62 * SPAN)]


def test_a_gap_is_not_bridged_the_strategy_warms_up_again():
    rows = walk(21, 1200)
    holed = np.vstack([rows[:500], rows[520:]])  # 20 candles missing
    result = run_backtest(history_of({"S": holed}), trend_momentum, _config())
    after_gap = T0 + 520 * SPAN
    opened = [t.opened_ms for t in result.trades]
    assert not any(after_gap <= ms < after_gap + PARAMS.min_candles * SPAN for ms in opened)
    assert any(ms >= after_gap + PARAMS.min_candles * SPAN for ms in opened)


def test_a_plain_strategy_runs_per_window_in_the_two_part_form():
    calls = []

    def plain(candles, position, params):
        calls.append(len(candles))
        return trend_momentum(candles, position, params)

    wrapped = as_signal_strategy(plain)
    rows = walk(6, 350)
    signals = wrapped.signals(rows, PARAMS)
    assert wrapped.decide(signals, 340, FLAT, PARAMS) == trend_momentum(rows[41:341], FLAT, PARAMS)
    assert calls == [HISTORY_CANDLES] and signals.active.all()
    assert as_signal_strategy(trend_momentum) is trend_momentum


def test_on_a_random_walk_without_costs_the_strategy_neither_wins_nor_loses():
    """The engine has no bias of its own: with no fee, slippage or funding, trend following on a
    driftless random walk nets about nothing (targets hit as often as a walk reaches them)."""
    data = {f"S{k}": walk(40 + k, 4000, sigma=0.003) for k in range(4)}
    market = dict(MARKET, taker=0.0)
    result = run_backtest(history_of(data, market=market), trend_momentum, _config(max_open_positions=4))
    pnl = np.array([t.pnl_usdt for t in result.trades])
    targets = sum(t.exit_reason == "take_profit" for t in result.trades)
    stops = sum(t.exit_reason == "stop" for t in result.trades)
    assert len(pnl) > 300 and abs(pnl.sum()) < 0.1 * np.abs(pnl).sum()
    assert 0.3 < targets / (targets + stops) < 0.5  # 2 ATR stop, 3 ATR target: 2/5 on a walk
