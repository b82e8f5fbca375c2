"""Alert delivery: retries with backoff on a fake clock, failures logged once per outage, HTTP
errors that name no URL, and a receiver that never answers."""
from __future__ import annotations

import logging
import time

import pytest

from tests.helpers import TIMEOUT_S, FakeClock
from tests.tradebot.ops.receivers import Hanging, Receiver
from tradebot.ops.delivery import Courier, DeliveryFailed, http_request, redact, retry_delay_s, shown_url


class FlakySender:
    """Fails with the scripted errors first, then delivers; records every attempt."""

    def __init__(self, *failures: DeliveryFailed) -> None:
        self.failures = list(failures)
        self.attempts: list[object] = []
        self.delivered: list[object] = []

    def __call__(self, payload: object) -> None:
        self.attempts.append(payload)
        if self.failures:
            raise self.failures.pop(0)
        self.delivered.append(payload)


def test_retry_delay_doubles_from_one_second_up_to_the_cap() -> None:
    assert [retry_delay_s(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 32, 64]
    assert retry_delay_s(30) == 300.0 and retry_delay_s(3, first_s=0.5, max_s=1.5) == 1.5


def test_courier_retries_with_backoff_and_keeps_order() -> None:
    clock = FakeClock()
    sender = FlakySender(DeliveryFailed("HTTP 503"), DeliveryFailed("HTTP 503"))
    courier = Courier("webhook", sender, shown="http://x", clock=clock)
    courier.offer("a")
    courier.offer("b")
    waits = []
    for _ in range(3):
        waits.append(courier.step(clock()))
        clock.advance(waits[-1] or 0)
    assert waits == [1.0, 2.0, 0.0]  # failed, failed again (twice as long), then delivered "a"
    assert courier.step(clock()) is None  # "b" goes at once, and nothing is left
    assert sender.delivered == ["a", "b"] and sender.attempts == ["a", "a", "a", "b"]
    assert (courier.delivered, courier.failed_attempts, courier.dropped) == (2, 2, 0)


def test_courier_waits_when_retried_early() -> None:
    clock = FakeClock()
    courier = Courier("webhook", FlakySender(DeliveryFailed("HTTP 500")), shown="http://x", clock=clock)
    courier.offer("a")
    assert courier.step(clock()) == 1.0
    clock.advance(0.25)
    assert courier.step(clock()) == pytest.approx(0.75)  # not due yet: nothing was sent


def test_courier_honours_retry_after_and_drops_a_permanent_refusal() -> None:
    clock = FakeClock()
    sender = FlakySender(DeliveryFailed("HTTP 429", retry_after_s=7.0), DeliveryFailed("HTTP 400", permanent=True))
    courier = Courier("telegram", sender, shown="http://x", clock=clock)
    courier.offer("a")
    courier.offer("b")
    assert courier.step(clock()) == 7.0
    clock.advance(7.0)
    assert courier.step(clock()) == 2.0  # "a" refused for good: dropped, "b" waits out the backoff
    clock.advance(2.0)
    courier.step(clock())
    assert sender.delivered == ["b"] and courier.dropped == 1


def test_courier_gives_up_an_item_after_max_attempts() -> None:
    clock = FakeClock()
    sender = FlakySender(*[DeliveryFailed("HTTP 502")] * 3)
    courier = Courier("webhook", sender, shown="http://x", max_attempts=3, clock=clock)
    courier.offer("a")
    for _ in range(3):
        clock.advance(courier.step(clock()) or 0)
    assert (courier.pending(), courier.dropped, sender.delivered) == (0, 1, [])


def test_courier_logs_an_outage_once_not_per_retry(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    sender = FlakySender(*[DeliveryFailed("HTTP 503")] * 5)
    courier = Courier("webhook", sender, shown="http://hooks.example", clock=clock)
    courier.offer("a")
    with caplog.at_level(logging.DEBUG, logger="tradebot.ops.delivery"):
        for _ in range(6):
            clock.advance(courier.step(clock()) or 0)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(sender.attempts) == 6 and sender.delivered == ["a"]
    assert len(warnings) == 2  # the outage's start, and its end


def test_courier_queue_is_bounded_and_offer_never_blocks() -> None:
    courier = Courier("webhook", FlakySender(), shown="http://x", max_queue=3)
    accepted = [courier.offer(i) for i in range(5)]
    assert accepted == [True, True, True, False, False] and courier.dropped == 2 and courier.pending() == 3


def test_courier_thread_delivers_and_close_returns_while_the_receiver_hangs() -> None:
    with Receiver() as ok, Hanging() as hanging:
        good = Courier("webhook", lambda body: http_request(ok.url, body=body, timeout_s=TIMEOUT_S), shown="x")
        stuck = Courier("telegram", lambda body: http_request(hanging.url, body=body, timeout_s=60), shown="y")
        good.start()
        stuck.start()
        good.offer({"event": "entry"})
        stuck.offer({"event": "entry"})
        assert ok.wait_for(1, TIMEOUT_S)[0] == ("POST", "/", {"event": "entry"})
        assert hanging.arrived.wait(TIMEOUT_S)
        t0 = time.monotonic()
        good.close(flush_s=0.2)
        stuck.close(flush_s=0.2)
        assert time.monotonic() - t0 < 1.5  # a receiver that never answers holds up no shutdown


def test_http_request_names_the_failure_never_the_url() -> None:
    secret_url = "http://127.0.0.1:{port}/bot123:SECRET/sendMessage"
    with Receiver() as receiver:
        receiver.answers = [(503, {"x": 1}), (429, {"ok": False, "parameters": {"retry_after": 3}}), (404, {})]
        url = secret_url.format(port=receiver.url.rsplit(":", 1)[1])
        errors = []
        for _ in range(3):
            with pytest.raises(DeliveryFailed) as err:
                http_request(url, body={"a": 1}, timeout_s=TIMEOUT_S)
            errors.append((err.value.reason, err.value.retry_after_s, err.value.permanent))
        assert http_request(url, timeout_s=TIMEOUT_S) == {"ok": True}
    assert errors == [("HTTP 503", None, False), ("HTTP 429", 3.0, False), ("HTTP 404", None, True)]
    with pytest.raises(DeliveryFailed) as err:
        http_request(url, body={}, timeout_s=TIMEOUT_S)  # the receiver is gone now
    assert err.value.reason.startswith("unreachable") and "SECRET" not in str(err.value)


def test_http_request_times_out_on_a_receiver_that_never_answers() -> None:
    with Hanging() as hanging:
        t0 = time.monotonic()
        with pytest.raises(DeliveryFailed) as err:
            http_request(hanging.url, body={"event": "error"}, timeout_s=0.3)
    assert time.monotonic() - t0 < 2.0 and err.value.reason == "no answer within 0.3s"


def test_shown_url_keeps_scheme_host_and_port_only() -> None:
    assert shown_url("https://api.telegram.org/bot123:ABC/sendMessage") == "https://api.telegram.org"
    assert shown_url("http://127.0.0.1:9000/ping/0f1e-uuid?x=1") == "http://127.0.0.1:9000"
    assert redact("refused at /bot123:ABC/ by hooks", ["123:ABC", None, ""]) == "refused at /bot***/ by hooks"
