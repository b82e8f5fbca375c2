"""GET /metrics's text parses as Prometheus text and holds the issue's metrics, from a registry of
the bot's own (never prometheus_client's global one)."""
from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tradebot.events import RecentEvents
from tradebot.ops.metrics import bot_registry, render
from tradebot.ops.status import BotView

EXPECTED = {
    "kucoin_bot_healthy", "kucoin_bot_uptime_seconds", "kucoin_bot_data_age_seconds", "kucoin_bot_websocket_up",
    "kucoin_bot_websocket_state", "kucoin_bot_websocket_reconnects", "kucoin_bot_websocket_messages",
    "kucoin_bot_rest_calls", "kucoin_bot_rate_limit_remaining", "kucoin_bot_rate_limit_limit",
    "kucoin_bot_rate_limit_reset_seconds", "kucoin_bot_queue_depth", "kucoin_bot_rest_in_flight",
    "kucoin_bot_market_data_reads", "kucoin_bot_orders", "kucoin_bot_open_positions", "kucoin_bot_equity_usdt",
    "kucoin_bot_unrealised_pnl_usdt", "kucoin_bot_realised_pnl_usdt", "kucoin_bot_fees_usdt",
    "kucoin_bot_funding_usdt", "kucoin_bot_loop_duration_seconds", "kucoin_bot_loop_age_seconds",
    "kucoin_bot_entries_stopped", "kucoin_bot_kill_switch", "kucoin_bot_events",
}


def _samples(text: str) -> dict[str, list]:
    found: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        found[family.name] = [(s.name, s.labels, s.value) for s in family.samples]
    return found


def test_metrics_of_a_trader_on_the_simulator(sim_trader) -> None:
    st = sim_trader
    recent = RecentEvents()
    st.bus.subscribe(recent)
    view = BotView(trader=st.trader, client=st.client, journal=st.journal, settings=st.settings, mode="simulate",
                   recent=recent)
    st.trader.loops.start_run()
    st.trader._guarded("scan", st.trader.scan)  # an entry, timed as the loop times it
    st.trader._guarded("monitor", st.trader.protect)
    text = render(bot_registry(view)).decode()
    metrics = _samples(text)
    assert EXPECTED <= set(metrics), sorted(EXPECTED - set(metrics))
    orders = {(s[1]["kind"], s[1]["outcome"]): s[2] for s in metrics["kucoin_bot_orders"]}
    assert orders[("entry", "filled")] == 1.0 and sum(orders.values()) == len(st.journal.intents())
    assert metrics["kucoin_bot_open_positions"][0][2] == 1.0 and metrics["kucoin_bot_fees_usdt"][0][2] > 0
    assert metrics["kucoin_bot_events"] == [("kucoin_bot_events_total", {"event": "entry"}, 1.0)]
    feeds = {s[1]["feed"]: s[2] for s in metrics["kucoin_bot_data_age_seconds"]}
    assert 0 <= feeds["/contractMarket/tickerV2:XBTUSDTM"] < 10
    calls = {s[1]["priority"]: s[2] for s in metrics["kucoin_bot_rest_calls"]}
    assert set(calls) == {"CRITICAL", "HIGH", "NORMAL", "LOW"} and calls["CRITICAL"] + calls["HIGH"] >= 1  # the order
    assert {s[1]["loop"] for s in metrics["kucoin_bot_loop_duration_seconds"]} == {"scan", "monitor"}
    assert {s[1]["pool"] for s in metrics["kucoin_bot_rate_limit_remaining"]} == {"public", "futures"}
    assert metrics["kucoin_bot_websocket_up"][0][2] == 1.0 and metrics["kucoin_bot_healthy"][0][2] == 1.0
    assert b"kucoin_bot_" not in generate_latest(REGISTRY)  # the process-global registry stays clean
