"""Alerts: a webhook and a fake Telegram Bot API receive every event in the right shape, the rate
limit per kind, the heartbeat, no secret anywhere, and a receiver that hangs slows no order."""
from __future__ import annotations

import logging
import time

import pytest

from tests.helpers import TIMEOUT_S, FakeClock
from tests.tradebot.ops.receivers import TELEGRAM_TOKEN, Hanging, Receiver
from tests.tradebot.ops.simbot import BTC
from tradebot.events import Event, EventBus, EventKind
from tradebot.ops.alerts import Alerts, Heartbeat, RateLimit, telegram_text

SECRET_PATH = "hook-secret-path-9f8e7d"


def _alerts(webhook: Receiver, telegram: Receiver, **kwargs) -> Alerts:
    return Alerts(label="paper", webhook_url=f"{webhook.url}/{SECRET_PATH}", telegram_token=TELEGRAM_TOKEN,
                  telegram_chat_id="-100123", telegram_api_url=telegram.url, timeout_s=TIMEOUT_S, **kwargs)


def test_rate_limit_per_kind_holds_back_and_counts() -> None:
    clock = FakeClock()
    limit = RateLimit({EventKind.ERROR: 2}, window_s=60.0, default=3)
    errors = [limit.allow(EventKind.ERROR, clock()) for _ in range(4)]
    entries = [limit.allow(EventKind.ENTRY, clock()) for _ in range(3)]  # another kind: its own budget
    clock.advance(59.0)
    still = limit.allow(EventKind.ERROR, clock())
    clock.advance(1.0)
    again = limit.allow(EventKind.ERROR, clock())
    assert errors == [(True, 0), (True, 0), (False, 0), (False, 0)]
    assert entries == [(True, 0)] * 3
    assert still == (False, 0) and again == (True, 3)  # the next one that passes says 3 were held back


def test_every_event_reaches_the_webhook_and_telegram_in_shape() -> None:
    bus = EventBus(wall_clock=lambda: 1_700_000_000.0)
    with Receiver() as webhook, Receiver(default={"ok": True, "result": {"message_id": 1}}) as telegram:
        alerts = _alerts(webhook, telegram)
        bus.subscribe(alerts.publish)
        alerts.start()
        for kind in EventKind:
            bus.emit(kind, f"{kind.value} happened", symbol=BTC, contracts=3)
        hooks = webhook.wait_for(len(EventKind), TIMEOUT_S)
        texts = telegram.wait_for(len(EventKind), TIMEOUT_S)
        alerts.close()
    assert {(method, path) for method, path, _ in hooks} == {("POST", f"/{SECRET_PATH}")}
    assert [body for _, _, body in hooks] == [
        {"event": k.value, "message": f"{k.value} happened", "ts_ms": 1_700_000_000_000, "symbol": BTC,
         "contracts": 3, "bot": "paper"} for k in EventKind]
    assert {(method, path) for method, path, _ in texts} == {("POST", f"/bot{TELEGRAM_TOKEN}/sendMessage")}
    assert [(body["chat_id"], body["text"]) for _, _, body in texts] == [
        ("-100123", telegram_text(Event(k, f"{k.value} happened"), label="paper")) for k in EventKind]
    assert texts[0][2]["text"] == "▶️ startup [paper]\nstartup happened"


def test_no_secret_in_any_payload_or_log_line_even_when_delivery_fails(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    with Receiver() as webhook, Receiver() as telegram, caplog.at_level(logging.DEBUG):
        webhook.answers = [(500, {"error": "down"})]
        telegram.answers = [(401, {"ok": False, "description": f"Unauthorized bot{TELEGRAM_TOKEN}"})]
        alerts = _alerts(webhook, telegram)
        bus.subscribe(alerts.publish)
        alerts.start()
        bus.emit("error", "scan failed: TransportError", loop="scan")
        bus.emit("entry", "opened long", symbol=BTC)
        hooks = webhook.wait_for(3, TIMEOUT_S)  # the first refused, retried after 1 s, then the second
        texts = telegram.wait_for(2, TIMEOUT_S)  # the first refused for good (401), the second sent
        alerts.close()
    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    sent = repr([body for _, _, body in hooks + texts])
    for secret in (TELEGRAM_TOKEN, SECRET_PATH):
        assert secret not in logged and secret not in sent
    assert [body["event"] for _, _, body in hooks] == ["error", "error", "entry"]
    warnings = [r for r in caplog.records if r.name == "tradebot.ops.delivery" and r.levelno == logging.WARNING]
    assert len(warnings) == 4  # each receiver: its failure once, and its recovery once


def test_a_burst_is_rate_limited_and_the_next_alert_says_how_many_were_held(monkeypatch) -> None:
    clock = FakeClock()
    with Receiver() as webhook, Receiver() as telegram:
        alerts = _alerts(webhook, telegram, clock=clock, rate_limit=RateLimit({EventKind.ERROR: 2}, window_s=60))
        for i in range(5):
            alerts.publish(Event(EventKind.ERROR, f"error {i}"))
        clock.advance(60.0)
        alerts.publish(Event(EventKind.ERROR, "error 5"))
        assert alerts.couriers["webhook"].pending() == 3 and alerts.couriers["telegram"].pending() == 3
        alerts.start()
        hooks = webhook.wait_for(3, TIMEOUT_S)
        texts = telegram.wait_for(3, TIMEOUT_S)
        alerts.close()
    assert [(body["message"], body.get("held_back")) for _, _, body in hooks] == [
        ("error 0", None), ("error 1", None), ("error 5", 3)]
    assert texts[-1][2]["text"].endswith("(+3 more error alerts held back by the rate limit)")


def test_heartbeat_pings_only_while_healthy_and_logs_a_failure_once(caplog: pytest.LogCaptureFixture) -> None:
    healthy = [True, False, True, True, True]
    with Receiver() as monitor, caplog.at_level(logging.WARNING, logger="tradebot.ops.alerts"):
        monitor.answers = [(200, {}), (503, {}), (503, {})]
        heartbeat = Heartbeat(f"{monitor.url}/ping/uuid-1", interval_s=60, healthy=lambda: healthy.pop(0),
                              timeout_s=TIMEOUT_S)
        results = [heartbeat.beat() for _ in range(5)]
    assert results == [True, False, False, False, True]
    assert [(m, p) for m, p, _ in monitor.requests] == [("GET", "/ping/uuid-1")] * 4  # none while unhealthy
    assert (heartbeat.beats, heartbeat.skipped, heartbeat.failures) == (2, 1, 2)
    assert len(caplog.records) == 2 and "uuid-1" not in caplog.text  # failing once, working again once


def test_heartbeat_thread_beats_every_interval() -> None:
    with Receiver() as monitor:
        heartbeat = Heartbeat(monitor.url, interval_s=0.05, healthy=lambda: True, timeout_s=TIMEOUT_S)
        heartbeat.start()
        monitor.wait_for(3, TIMEOUT_S)
        heartbeat.close()
    assert heartbeat.beats >= 3


def test_a_hanging_receiver_changes_no_order_timing(sim_trader) -> None:
    """The webhook accepts and never answers (60 s timeout): the trader's entry and exit orders on
    the simulator complete as fast as with no alerts at all, and publishing never waits."""
    st = sim_trader
    st.trader.scan()  # a first round trip without alerts: the reference timing
    t0 = time.monotonic()
    st.trader.exit(BTC, "reference exit")
    reference_s = time.monotonic() - t0
    with Hanging() as hanging, Receiver() as telegram:
        alerts = Alerts(label="simulate", webhook_url=hanging.url, telegram_token=TELEGRAM_TOKEN,
                        telegram_chat_id="1", telegram_api_url=telegram.url, timeout_s=60.0)
        alerts.start()
        publish_s: list[float] = []

        def timed(event: Event) -> None:
            t = time.monotonic()
            alerts.publish(event)
            publish_s.append(time.monotonic() - t)

        st.bus.subscribe(timed)
        st.trader.scan()  # entry: its alert goes to a receiver that hangs
        assert hanging.arrived.wait(TIMEOUT_S)
        t0 = time.monotonic()
        st.trader.exit(BTC, "exit while the webhook hangs")
        hanging_s = time.monotonic() - t0
        telegram.wait_for(2, TIMEOUT_S)  # the other receiver is not held up either
        alerts.close(flush_s=0.1)
    # (resting stop orders, where the exchange keeps them, are journaled too: the orders here are these)
    assert [i.status for i in st.journal.intents() if i.kind in ("entry", "exit")] == ["filled"] * 4
    assert BTC not in st.trader.holdings
    assert max(publish_s) < 0.05
    assert hanging_s < max(0.5, 5 * reference_s), (hanging_s, reference_s)
    assert alerts.couriers["webhook"].delivered == 0 and alerts.couriers["telegram"].delivered >= 2


def test_telegram_text_is_readable() -> None:
    event = Event(EventKind.STOP_TRIGGERED, "stop hit on BTC/USDT:USDT: closing 3 lots")
    assert telegram_text(event, label="live") == "🛑 stop triggered [live]\nstop hit on BTC/USDT:USDT: closing 3 lots"
