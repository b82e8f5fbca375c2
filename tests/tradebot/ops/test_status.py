"""The health verdict (each 503 reason), closed trades from fills, and the status of a trader on
the simulator."""
from __future__ import annotations

import dataclasses

import pytest

from tests.tradebot.ops.simbot import BTC
from tradebot.events import RecentEvents
from tradebot.ops.status import BotView, HealthInputs, closed_trades, health_verdict, thin
from tradebot.records import Fill

WS_OK = {"enabled": True, "state": "RUNNING", "reconnects": 0,
         "data_ages_s": {"/contractMarket/tickerV2:XBTUSDTM": 0.2, "/contractMarket/tickerV2:ETHUSDTM": 1.0,
                         "/contractMarket/ticker:XBTUSDTM": None}}
HEALTHY = HealthInputs(running=True, ever_started=True, monitor_age_s=0.5, scan_age_s=3.0, run_age_s=100.0,
                       scan_interval_s=30.0, max_data_age_s=10.0, websocket=WS_OK, exchange_down=False,
                       kill_switch=False)


def _stale(*ages: float | None) -> dict:
    return {**WS_OK, "data_ages_s": {f"/contractMarket/tickerV2:S{i}": a for i, a in enumerate(ages)}}


def test_healthy_when_the_loop_runs_and_data_is_fresh() -> None:
    verdict = health_verdict(HEALTHY)
    assert (verdict.ok, verdict.reasons) == (True, ())
    assert verdict.checks == {"running": True, "exchange_down": False, "kill_switch": False, "stale_feeds": 0,
                              "ticker_feeds": 2, "websocket": "RUNNING"}


@pytest.mark.parametrize(("change", "reason"), [
    ({"running": False, "ever_started": False}, "starting: the trading loop has not started yet"),
    ({"running": False}, "stopped: the trading loop has ended"),
    ({"client_closed": True}, "stopped: the trading loop has ended"),
    ({"monitor_age_s": 16.0}, "protection loop stalled: no round for 16s"),
    ({"scan_age_s": 121.0}, "scan loop stalled: no scan for 121s"),  # 2 intervals + 60 s
    ({"scan_age_s": None, "run_age_s": 125.0}, "scan loop stalled: no scan for 125s"),
    ({"exchange_down": True}, "exchange unreachable: the loop's calls fail"),
    ({"websocket": {**WS_OK, "state": "RECONNECTING", "reconnects": 2}}, "WebSocket down (RECONNECTING, 2 reconnects)"),
    ({"websocket": _stale(11.0, None, 0.1)}, "stale data: 2 of 3 ticker feeds older than 10s"),
    ({"kill_switch": True}, "kill switch: the daily loss limit is reached, no new entries today"),
])
def test_each_reason_for_503(change: dict, reason: str) -> None:
    verdict = health_verdict(dataclasses.replace(HEALTHY, **change))
    assert (verdict.ok, verdict.reasons) == (False, (reason,))


def test_one_stale_feed_in_three_is_no_outage_and_rest_only_mode_has_no_feeds() -> None:
    assert health_verdict(dataclasses.replace(HEALTHY, websocket=_stale(30.0, 0.1, 0.2))).ok
    assert health_verdict(dataclasses.replace(HEALTHY, websocket={"enabled": False})).checks["websocket"] == "disabled"


def _fill(symbol: str, side: str, amount: int, price: float, ts_ms: int, fee: float = 0.1) -> Fill:
    return Fill(f"order:{ts_ms}", f"oid-{ts_ms}", None, symbol, side, amount, price, fee, "USDT", 0.01, ts_ms)


def test_closed_trades_pair_entries_and_exits_with_the_exit_reason() -> None:
    rows = [(_fill(BTC, "buy", 2, 100.0, 1), "entry", "signal"), (_fill(BTC, "buy", 2, 110.0, 2), "entry", "add"),
            (_fill("ETH", "sell", 5, 50.0, 3), "entry", "short"),
            (_fill(BTC, "sell", 1, 120.0, 4), "exit", "take_profit"),
            (_fill(BTC, "sell", 3, 90.0, 5), "exit", "stop"),
            (_fill("ETH", "buy", 5, 40.0, 6), "exit", "strategy: cross")]
    trades = closed_trades(rows)
    assert [(t["symbol"], t["side"], t["contracts"], t["exit_reason"], t["entry_reason"]) for t in trades] == [
        (BTC, "long", 4, "stop", "signal"), ("ETH", "short", 5, "strategy: cross", "short")]
    btc, eth = trades
    assert btc["entry_price"] == pytest.approx(105.0) and btc["exit_price"] == pytest.approx((120 + 270) / 4)
    assert btc["pnl_usdt"] == pytest.approx(0.01 * (1 * 15 + 3 * -15))
    assert btc["fees_usdt"] == pytest.approx(0.4) and btc["net_pnl_usdt"] == pytest.approx(btc["pnl_usdt"] - 0.4)
    assert eth["pnl_usdt"] == pytest.approx(0.01 * 5 * 10) and (eth["opened_ms"], eth["closed_ms"]) == (3, 6)


def test_a_fill_that_flips_the_position_closes_one_trade_and_opens_the_next() -> None:
    rows = [(_fill(BTC, "buy", 2, 100.0, 1), "entry", "a"), (_fill(BTC, "sell", 5, 90.0, 2, fee=0.5), "exit", "flip"),
            (_fill(BTC, "buy", 3, 80.0, 3), "exit", "cover")]
    trades = closed_trades(rows)
    assert [(t["side"], t["contracts"], t["pnl_usdt"]) for t in trades] == [
        ("long", 2, pytest.approx(-0.2)), ("short", 3, pytest.approx(0.3))]
    assert trades[0]["fees_usdt"] == pytest.approx(0.1 + 0.2) and trades[1]["fees_usdt"] == pytest.approx(0.3 + 0.1)


def test_thin_keeps_the_last_point() -> None:
    points = [(i, float(i)) for i in range(1000)]
    thinned = thin(points, 300)
    assert len(thinned) <= 301 and thinned[0] == (0, 0.0) and thinned[-1] == (999, 999.0)
    assert thin(points[:5], 300) == points[:5]


def test_status_of_a_trader_on_the_simulator(sim_trader) -> None:
    st = sim_trader
    view = BotView(trader=st.trader, client=st.client, journal=st.journal, settings=st.settings, mode="simulate",
                   recent=RecentEvents())
    assert view.health().reasons == ("starting: the trading loop has not started yet",)
    st.trader.scan()
    st.trader.monitor()  # the protection reads the price the view marks at
    holding = st.trader.holdings[BTC]
    status = view.status()
    assert [p["symbol"] for p in status["positions"]] == [BTC]
    position = status["positions"][0]
    stops = st.trader._guard.stops  # the exchange's resting stops (None where the bot only watches)
    assert {k: position[k] for k in ("side", "contracts", "entry_price", "stop_price", "stop_resting")} == {
        "side": "long", "contracts": holding.contracts, "entry_price": holding.entry_price,
        "stop_price": holding.exits.stop_price, "stop_resting": stops is not None and stops.has_stop(BTC)}
    assert position["mark_price"] > 0 and position["unrealised_pnl_usdt"] == pytest.approx(
        holding.contracts * 0.001 * (position["mark_price"] - holding.entry_price))
    assert status["equity_usdt"] == st.journal.equity_curve()[-1][1] and status["fees_usdt"] > 0
    assert status["feeds"]["websocket"]["state"] == "RUNNING" and status["mode"] == "simulate"
    st.trader.exit(BTC, "test exit")
    trades = view.trades()
    assert [(t["symbol"], t["exit_reason"], t["entry_reason"]) for t in trades] == [(BTC, "test exit", "test")]
