"""GET /metrics: the bot's numbers in Prometheus text format, in a registry of its own.

Each bot gets its own CollectorRegistry (never prometheus_client's global one), so two bots in one
process, or a test beside a bot, never mix their series. Values are read at scrape time from what
the bot keeps (BotView): a scrape calls no exchange.

    kucoin_bot_healthy                                 1 while GET /health says 200
    kucoin_bot_uptime_seconds
    kucoin_bot_data_age_seconds{feed}                  per WebSocket topic, since its newest message
    kucoin_bot_websocket_up / _state{state}            1 while every connection is up / the state
    kucoin_bot_websocket_reconnects_total, kucoin_bot_websocket_messages_total
    kucoin_bot_rest_calls_total{priority}              REST calls started, per executor priority
    kucoin_bot_rate_limit_remaining{pool}, _limit{pool}, _reset_seconds{pool}
    kucoin_bot_queue_depth{priority}, kucoin_bot_rest_in_flight
    kucoin_bot_market_data_reads_total{source}         reads served from websocket / rest
    kucoin_bot_orders{kind,outcome}                    orders of this run by their journaled outcome
    kucoin_bot_open_positions, kucoin_bot_equity_usdt, kucoin_bot_unrealised_pnl_usdt
    kucoin_bot_realised_pnl_usdt, kucoin_bot_fees_usdt (this run), kucoin_bot_funding_usdt (when
                                                       the exchange reports it on the positions)
    kucoin_bot_loop_duration_seconds{loop}, kucoin_bot_loop_age_seconds{loop}   scan / monitor
    kucoin_bot_entries_stopped, kucoin_bot_kill_switch
    kucoin_bot_events_total{event}                     events published (alerts are rate-limited)
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "BotCollector", "bot_registry", "render"]

PREFIX = "kucoin_bot_"
# Our names are classic ([a-z_]), so the output is the text format 0.0.4 every Prometheus reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def _gauge(name: str, doc: str, value: float | None) -> Iterator[Metric]:
    if value is not None:
        yield GaugeMetricFamily(PREFIX + name, doc, value=float(value))


def _labelled(kind: type, name: str, doc: str, label: str, values: dict[str, Any] | None) -> Iterator[Metric]:
    family = kind(PREFIX + name, doc, labels=[label])
    for key, value in sorted((values or {}).items()):
        if value is not None:
            family.add_metric([str(key)], float(value))
    yield family


class BotCollector(Collector):
    """Reads a BotView at each scrape (status cached for a second, the client's counters)."""

    def __init__(self, view: Any) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        view = self._view
        status = view.status()
        health = view.client.health()
        yield from _gauge("healthy", "1 while GET /health answers 200", 1.0 if status["health"]["ok"] else 0.0)
        yield from _gauge("uptime_seconds", "seconds since the bot started", status["uptime_s"])
        yield from self._websocket(health.get("websocket", {}))
        yield from _labelled(CounterMetricFamily, "rest_calls", "REST calls started, per priority", "priority",
                             health.get("calls_started"))
        for field, doc in (("remaining", "requests left in the pool's window"),
                           ("limit", "the pool's quota per window"),
                           ("reset_in_s", "seconds until the pool's window resets")):
            name = "rate_limit_reset_seconds" if field == "reset_in_s" else f"rate_limit_{field}"
            pools = {pool: budget.get(field) for pool, budget in (health.get("rate_limit") or {}).items()}
            yield from _labelled(GaugeMetricFamily, name, doc, "pool", pools)
        yield from _labelled(GaugeMetricFamily, "queue_depth", "REST calls queued, per priority", "priority",
                             health.get("queue_depths"))
        yield from _gauge("rest_in_flight", "REST calls running", health.get("in_flight"))
        yield from _labelled(CounterMetricFamily, "market_data_reads", "market-data reads per source", "source",
                             health.get("source_counts"))
        orders = GaugeMetricFamily(PREFIX + "orders", "orders of this run by kind and journaled outcome",
                                   labels=["kind", "outcome"])
        for (kind, outcome), count in sorted(view.journal.intent_counts(view.started_ms).items()):
            orders.add_metric([kind, outcome], float(count))
        yield orders
        yield from _gauge("open_positions", "open positions the bot holds", len(status["positions"]))
        yield from _gauge("equity_usdt", "account equity at the latest scan", status["equity_usdt"])
        yield from _gauge("unrealised_pnl_usdt", "unrealised PnL of the open positions",
                          status["unrealised_pnl_usdt"])
        yield from _gauge("realised_pnl_usdt", "gross realised PnL of this run", status["realised_pnl_usdt"])
        yield from _gauge("fees_usdt", "fees paid this run", status["fees_usdt"])
        yield from _gauge("funding_usdt", "funding on the open positions, as the exchange reports it",
                          status["funding_usdt"])
        loops = status["loops"]
        yield from _labelled(GaugeMetricFamily, "loop_duration_seconds", "duration of the loop's last round",
                             "loop", {name: loop["duration_s"] for name, loop in loops.items()})
        yield from _labelled(GaugeMetricFamily, "loop_age_seconds", "seconds since the loop's last round ended",
                             "loop", {name: loop["age_s"] for name, loop in loops.items()})
        yield from _gauge("entries_stopped", "1 while new entries are stopped (POST /api/v1/stopentry)",
                          1.0 if status["entries_stopped"] else 0.0)
        yield from _gauge("kill_switch", "1 while the daily loss limit blocks entries",
                          1.0 if status["kill_switch"] else 0.0)
        yield from _labelled(CounterMetricFamily, "events", "events published, per kind", "event",
                             view.recent.counts_snapshot())

    def _websocket(self, ws: dict[str, Any]) -> Iterator[Metric]:
        if not ws.get("enabled"):
            yield from _gauge("websocket_up", "1 while every WebSocket connection is up", 0.0)
            return
        yield from _gauge("websocket_up", "1 while every WebSocket connection is up",
                          1.0 if ws.get("state") == "RUNNING" else 0.0)
        yield from _labelled(GaugeMetricFamily, "websocket_state", "1 for the WebSocket's current state", "state",
                             {ws.get("state"): 1.0})
        yield from _labelled(GaugeMetricFamily, "data_age_seconds", "seconds since the feed's newest message",
                             "feed", ws.get("data_ages_s"))
        reconnects = CounterMetricFamily(PREFIX + "websocket_reconnects", "WebSocket reconnects",
                                         value=float(ws.get("reconnects") or 0))
        messages = CounterMetricFamily(PREFIX + "websocket_messages", "WebSocket messages received",
                                       value=float(ws.get("messages") or 0))
        yield reconnects
        yield messages


def bot_registry(view: Any) -> CollectorRegistry:
    """A registry of its own holding the bot's collector (never the process-global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BotCollector(view))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus text format."""
    return generate_latest(registry)
