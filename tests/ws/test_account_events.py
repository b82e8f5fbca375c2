"""Pure tests: the private feed's event hand-over — a bounded queue dropping (and counting) the
oldest, a wait for the first event, and a callback whose exceptions are logged and ignored."""
from __future__ import annotations

import threading
import time

import pytest

from kucoin_futures.errors import InvalidArgument
from kucoin_futures.ws.account_events import EventQueue, EventSink
from tests.helpers import TIMEOUT_S


def test_a_full_queue_drops_the_oldest_and_counts_them() -> None:
    queue = EventQueue(3)
    for n in range(5):
        queue.put(n)
    assert (queue.drain(), queue.queued, queue.dropped, len(queue)) == ([2, 3, 4], 5, 2, 0)
    assert queue.drain() == []


def test_drain_waits_for_the_first_event_only_as_long_as_asked() -> None:
    queue = EventQueue(10)
    started = time.monotonic()
    assert queue.drain(0.05) == [] and time.monotonic() - started >= 0.05
    putter = threading.Timer(0.05, queue.put, args=("fill",))
    putter.start()
    started = time.monotonic()
    assert queue.drain(TIMEOUT_S) == ["fill"]
    assert time.monotonic() - started < TIMEOUT_S  # woken by the event, not by the timeout
    putter.join()


def test_the_callback_runs_first_and_its_exceptions_are_contained(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[object] = []

    def callback(event: object) -> None:
        seen.append(event)
        raise RuntimeError("user bug")

    sink = EventSink(on_event=callback, max_queued=2)
    sink.emit("a")
    sink.emit("b")
    assert (seen, sink.queue.drain(), sink.callback_errors) == (["a", "b"], ["a", "b"], 2)
    assert [r.levelname for r in caplog.records] == ["ERROR", "ERROR"]


@pytest.mark.parametrize("size", [0, -1, True, 1.5, "10"])
def test_bad_sizes_and_callbacks_are_refused(size: object) -> None:
    with pytest.raises(InvalidArgument):
        EventQueue(size)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        EventSink(on_event="print", max_queued=1)  # type: ignore[arg-type]
