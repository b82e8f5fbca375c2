"""Sizing, leverage, the daily kill switch, entry guards and protective exits on fixed numbers."""
from __future__ import annotations

import datetime as dt

import pytest

from config import Settings
from kucoin_futures.errors import InvalidArgument
from tradebot.strategy import Action, ActionKind
from tradebot.risk import (
    MARGIN_HEADROOM,
    ContractTerms,
    EntryPlan,
    ProtectiveExit,
    RiskLimits,
    RiskState,
    candle_exit,
    check_exit,
    effective_leverage,
    entry_allowed,
    liquidation_price,
    plan_entry,
    position_size,
    update_risk_state,
    update_trailing,
    utc_day,
)


def _ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp() * 1000)


# -- sizing -----------------------------------------------------------------------------------
# (equity, risk, entry, stop, multiplier, lot, max_qty, leverage, free margin, fee) -> contracts
SIZING = [
    # 100 USDT at risk; 1000 USDT stop distance x 0.001 BTC = 1 USDT per contract -> 100
    pytest.param(10_000, 0.01, 50_000, 49_000, 0.001, 1, 1_000_000, 5, 10_000, 0.0, 100,
                 id="risk-bound"),
    pytest.param(10_000, 0.01, 50_000, 51_000, 0.001, 1, 1_000_000, 5, 10_000, 0.0, 100,
                 id="short-stop-above"),
    # 100 / 1.75 = 57.1 -> rounded down to the lot of 10 -> 50
    pytest.param(10_000, 0.01, 100, 98.25, 1, 10, 1_000_000, 5, 10_000, 0.0, 50, id="lot-rounding"),
    # margin per contract 50_000 x 0.001 / 2 = 25 USDT; 200 free -> 8
    pytest.param(10_000, 0.01, 50_000, 49_000, 0.001, 1, 1_000_000, 2, 200, 0.0, 8,
                 id="margin-cap"),
    # plus the opening fee 50 x 0.0006 = 0.03 -> 200 / 25.03 = 7.99 -> 7
    pytest.param(10_000, 0.01, 50_000, 49_000, 0.001, 1, 1_000_000, 2, 200, 0.0006, 7,
                 id="margin-and-fee"),
    pytest.param(10_000, 0.01, 50_000, 49_000, 0.001, 1, 60, 5, 10_000, 0.0, 60,
                 id="max-order-qty"),
    # 0.1 USDT at risk, 1 USDT per contract -> nothing fits
    pytest.param(10, 0.01, 50_000, 49_000, 0.001, 1, 1_000_000, 5, 10, 0.0, 0, id="zero"),
    pytest.param(0, 0.01, 50_000, 49_000, 0.001, 1, 1_000_000, 5, 10, 0.0, 0, id="no-equity"),
    pytest.param(10_000, 0.01, 50_000, 49_000, 0.001, 1, 1_000_000, 5, 0, 0.0, 0, id="no-margin"),
    # 30 x 0.01 = 0.3 over (1.1 - 1.0) = 0.10000000000000009 per contract: 2.9999999999999973 -> 3
    pytest.param(30, 0.01, 1.1, 1.0, 1, 1, 1_000_000, 5, 30, 0.0, 3, id="float-noise"),
]


@pytest.mark.parametrize(
    "equity, risk, entry, stop, multiplier, lot, max_qty, leverage, free, fee, expected", SIZING)
def test_position_size_table(equity, risk, entry, stop, multiplier, lot, max_qty, leverage, free,
                             fee, expected):
    assert position_size(equity, risk, entry, stop, multiplier, lot, max_qty, leverage=leverage,
                         available_margin=free, taker_fee_rate=fee) == expected


def test_position_size_inverse_contract():
    """XBTUSDM: 1 USD per contract; 0.001 BTC at risk / (1/49000 - 1/50000) BTC = 2450."""
    assert position_size(0.1, 0.01, 50_000, 49_000, -1, 1, 1_000_000, leverage=10,
                         available_margin=0.1, inverse=True) == 2450
    # margin: 1/50000 BTC per contract at 10x = 2e-6 BTC; 0.001 BTC free -> 500
    assert position_size(0.1, 0.01, 50_000, 49_000, -1, 1, 1_000_000, leverage=10,
                         available_margin=0.001, inverse=True) == 500


@pytest.mark.parametrize("entry, stop, lot, leverage", [
    (100, 100, 1, 1), (100, -5, 1, 1), (100, 99, 0, 1), (100, 99, 1, 0), (float("nan"), 99, 1, 1),
])
def test_position_size_rejects_caller_bugs(entry, stop, lot, leverage):
    with pytest.raises(InvalidArgument):
        position_size(1000, 0.01, entry, stop, 0.001, lot, 100, leverage=leverage,
                      available_margin=1000)


@pytest.mark.parametrize("configured, contract_max, expected", [
    (3, 125, 3), (20, 10, 10), (5, None, 5), (5, 0, 5), (5, 7.5, 5), (10, 7.5, 7),
])
def test_effective_leverage(configured, contract_max, expected):
    assert effective_leverage(configured, contract_max) == expected


def test_effective_leverage_rejects_zero():
    with pytest.raises(InvalidArgument):
        effective_leverage(0, 10)


def test_limits_from_settings_share_the_defaults():
    assert RiskLimits.from_settings(Settings()) == RiskLimits()
    custom = Settings(leverage=7, max_open_positions=2, trailing_atr_multiple=1.5)
    assert RiskLimits.from_settings(custom) == RiskLimits(leverage=7, max_open_positions=2,
                                                          trailing_atr_multiple=1.5)


# -- kill switch ------------------------------------------------------------------------------
LIMITS = RiskLimits(daily_loss_limit=0.05, flatten_on_daily_loss=True)


def test_kill_switch_trips_at_the_limit_and_resets_next_utc_day():
    day = utc_day(_ms("2024-03-01T10:00:00"))
    state = update_risk_state(None, equity=1000.0, now_ms=_ms("2024-03-01T10:00:00"), limits=LIMITS)
    assert state == RiskState(day=day, start_equity=1000.0)
    state = update_risk_state(state, equity=960.0, now_ms=_ms("2024-03-01T12:00:00"), limits=LIMITS)
    assert state == RiskState(day=day, start_equity=1000.0)  # 4 % down: below the 5 % limit
    tripped_ms = _ms("2024-03-01T13:00:00")
    state = update_risk_state(state, equity=950.0, now_ms=tripped_ms, limits=LIMITS)
    assert state == RiskState(day=day, start_equity=1000.0, tripped=True, tripped_at_ms=tripped_ms)
    # a recovery the same day does not re-arm entries
    last_ms = _ms("2024-03-01T23:59:59.999000")
    state = update_risk_state(state, equity=1010.0, now_ms=last_ms, limits=LIMITS)
    assert state == RiskState(day=day, start_equity=1000.0, tripped=True, tripped_at_ms=tripped_ms)
    assert state.must_flatten(LIMITS) and not state.must_flatten(RiskLimits())
    # the next UTC day starts from the equity seen at its first update
    state = update_risk_state(state, equity=955.0, now_ms=_ms("2024-03-02T00:00:00"), limits=LIMITS)
    assert state == RiskState(day=day + 1, start_equity=955.0)


def test_kill_switch_uses_the_restored_day_start():
    """After a restart mid-day, the journal's first equity of the day is the reference."""
    now_ms = _ms("2024-03-01T15:00:00")
    state = update_risk_state(None, equity=900.0, now_ms=now_ms, limits=LIMITS,
                              day_start_equity=1000.0)
    assert state == RiskState(day=utc_day(now_ms), start_equity=1000.0, tripped=True,
                              tripped_at_ms=now_ms)


# -- entry guards -----------------------------------------------------------------------------
OK_STATE = RiskState(day=0, start_equity=1000.0)
TRIPPED = RiskState(day=0, start_equity=1000.0, tripped=True, tripped_at_ms=1)
GUARD_LIMITS = RiskLimits(max_open_positions=2, max_data_age_s=10.0)


@pytest.mark.parametrize("symbol, open_symbols, state, age_s, reconnecting, expected", [
    ("BTC", set(), OK_STATE, 1.0, False, (True, "ok")),
    ("BTC", set(), None, 10.0, False, (True, "ok")),  # exactly at the limit is still fresh
    ("BTC", set(), TRIPPED, 1.0, False, (False, "daily loss limit reached")),
    ("BTC", {"BTC"}, OK_STATE, 1.0, False, (False, "already in a position on this symbol")),
    ("ETH", {"BTC", "SOL"}, OK_STATE, 1.0, False, (False, "max open positions (2) reached")),
    ("BTC", set(), OK_STATE, 1.0, True, (False, "websocket reconnecting")),
    ("BTC", set(), OK_STATE, 10.5, False, (False, "stale data: 10.5s old > 10s")),
    ("BTC", set(), OK_STATE, None, False, (False, "no market data")),
])
def test_entry_allowed(symbol, open_symbols, state, age_s, reconnecting, expected):
    assert entry_allowed(symbol, open_symbols=open_symbols, state=state, limits=GUARD_LIMITS,
                         data_age_s=age_s, ws_reconnecting=reconnecting) == expected


# -- protective exits -------------------------------------------------------------------------
EXIT_LIMITS = RiskLimits(stop_atr_multiple=2.0, take_profit_atr_multiple=3.0,
                         trailing_atr_multiple=1.5)


def test_long_exits_with_trailing_stop():
    state = ProtectiveExit.from_entry("long", 100.0, 2.0, limits=EXIT_LIMITS)
    assert state == ProtectiveExit("long", stop_price=96.0, take_profit_price=106.0,
                                   trailing_distance=3.0, watermark=100.0)
    assert check_exit(state, 96.5) is None
    state = update_trailing(state, 101.0)  # 101 - 3 = 98 > 96: the stop moves up
    assert state == ProtectiveExit("long", 98.0, 106.0, 3.0, watermark=101.0, trailing_active=True)
    assert update_trailing(state, 99.0) == state  # a lower price never lowers the stop
    state = update_trailing(state, 104.0)
    assert (state.stop_price, state.watermark) == (101.0, 104.0)
    assert [check_exit(state, p) for p in (101.5, 101.0, 106.0)] == [None, "trailing_stop",
                                                                     "take_profit"]


def test_short_exits_with_trailing_stop():
    state = ProtectiveExit.from_entry("short", 100.0, 2.0, limits=EXIT_LIMITS)
    assert state == ProtectiveExit("short", 104.0, 94.0, 3.0, watermark=100.0)
    # the watermark stays at the entry, but 100 + 3 = 103 is already tighter than 104
    assert update_trailing(state, 100.5) == ProtectiveExit("short", 103.0, 94.0, 3.0,
                                                           watermark=100.0, trailing_active=True)
    state = update_trailing(state, 99.0)  # 99 + 3 = 102 < 103
    assert state == ProtectiveExit("short", 102.0, 94.0, 3.0, watermark=99.0, trailing_active=True)
    assert [check_exit(state, p) for p in (101.9, 102.0, 94.0)] == [None, "trailing_stop",
                                                                    "take_profit"]


def test_fixed_stop_without_trailing():
    state = ProtectiveExit.from_entry("long", 100.0, 2.0, limits=RiskLimits())
    assert state.trailing_distance is None
    assert update_trailing(state, 120.0) is state
    assert [check_exit(state, p) for p in (96.0, 95.0, 100.0, 106.0)] == [
        "stop", "stop", None, "take_profit"]


def test_protective_exit_validation():
    with pytest.raises(InvalidArgument):
        ProtectiveExit.from_entry("long", 100.0, 0.0, limits=RiskLimits())
    with pytest.raises(InvalidArgument):
        ProtectiveExit("up", 1.0)  # type: ignore[arg-type]


# -- a candle's path (the backtest), liquidation, entry plans ------------------------------------
LONG_EXITS = ProtectiveExit("long", stop_price=98.0, take_profit_price=103.0)
SHORT_EXITS = ProtectiveExit("short", stop_price=102.0, take_profit_price=97.0)


@pytest.mark.parametrize("exits, candle, liquidation, expected", [
    (LONG_EXITS, (100, 101, 99, 100), None, None),
    (LONG_EXITS, (100, 104, 97, 100), None, ("stop", 98.0)),  # both touched: the stop first
    (LONG_EXITS, (100, 104, 99, 100), None, ("take_profit", 103.0)),
    (LONG_EXITS, (97, 97.5, 96, 97), None, ("stop", 97)),  # gap through the stop: the open
    (LONG_EXITS, (104, 105, 103.5, 104), None, ("take_profit", 104)),
    (LONG_EXITS, (100, 100.5, 97, 99), 98.5, ("liquidation", 98.5)),  # nearer than the stop
    (LONG_EXITS, (100, 100.5, 97, 99), 97.5, ("stop", 98.0)),  # the stop comes first
    (LONG_EXITS, (97, 98, 96, 97), 97.5, ("liquidation", 97.5)),  # opened past it
    (SHORT_EXITS, (100, 103, 96, 100), None, ("stop", 102.0)),
    (SHORT_EXITS, (100, 101, 96, 100), None, ("take_profit", 97.0)),
    (SHORT_EXITS, (103, 104, 102.5, 103), None, ("stop", 103)),
])
def test_candle_exit_takes_the_worst_path(exits, candle, liquidation, expected):
    o, h, low, _ = candle
    assert candle_exit(exits, open_price=o, high=h, low=low, liquidation_price=liquidation) == expected


def test_candle_exit_names_a_trailing_stop():
    moved = update_trailing(ProtectiveExit("long", 98.0, None, trailing_distance=1.0, watermark=100.0), 101.5)
    assert candle_exit(moved, open_price=101.0, high=101.2, low=100.0) == ("trailing_stop", 100.5)


@pytest.mark.parametrize("side, margin, expected", [
    # the simulator's hand-computed cases (tests/sim/test_positions.py): 10 lots of 0.001 at 90000,
    # margin 180 (5x), maintenance 0.004: bankrupt 90000 -/+ 180 / 0.01, liquidation +/- 0.004 x 90000
    ("long", 180.0, (72_360.0, 72_000.0)),
    ("short", 180.0, (107_640.0, 108_000.0)),
])
def test_liquidation_price_is_the_exchanges(side, margin, expected):
    got = liquidation_price(side, 90_000.0, contracts=10, multiplier=0.001, margin=margin,
                            maintenance_margin_rate=0.004)
    assert got == (pytest.approx(expected[0]), pytest.approx(expected[1]))


def test_plan_entry_sizes_like_the_trader_did():
    """The stop keeps the signal's distance at the quoted price; leverage is capped by the
    contract; the margin keeps MARGIN_HEADROOM; exits are planned at the quoted price."""
    action = Action(ActionKind.ENTER_SHORT, "down", price=50_000.0, atr=500.0, stop_price=51_000.0,
                    take_profit_price=48_500.0)
    market = {"contractSize": 0.001, "precision": {"amount": 1.0}, "taker": 0.0006, "maker": 0.0002,
              "limits": {"amount": {"max": 1_000_000.0}, "leverage": {"max": 2.0}}, "info": {"maintainMargin": 0.004}}
    terms = ContractTerms.from_market(market)
    limits = RiskLimits(leverage=5, risk_per_trade=0.01)
    plan = plan_entry(action, price=49_990.0, equity=10_000.0, free_margin=200.0, terms=terms, limits=limits)
    assert terms == ContractTerms(0.001, 1, 1_000_000, 2.0, 0.0006, 0.0002, 0.004)
    assert plan == EntryPlan("short", position_size(10_000.0, 0.01, 49_990.0, 50_990.0, 0.001, 1, 1_000_000,
                                                    leverage=2, available_margin=200.0 * MARGIN_HEADROOM,
                                                    taker_fee_rate=0.0006),
                             2, 49_990.0, ProtectiveExit.from_entry("short", 49_990.0, 500.0, limits=limits))
    assert plan.contracts == 7  # the margin caps it: 190 / (49.99 / 2 + 0.03)
    assert plan_entry(action, price=49_990.0, equity=10_000.0, free_margin=10.0, terms=terms, limits=limits) is None
    with pytest.raises(InvalidArgument):
        plan_entry(Action(ActionKind.HOLD, "no"), price=1.0, equity=1.0, free_margin=1.0, terms=terms, limits=limits)
