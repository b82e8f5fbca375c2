"""The owner's controls on a trader on the simulator: stop-entry really stops entries (and lasts
across a restart), force-exit closes through the journaled exit path on the trader's thread."""
from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from tests.helpers import TIMEOUT_S
from tests.tradebot.ops.simbot import BTC
from tradebot.journal import Journal
from tradebot.ops.control import MAX_PENDING_EXITS, Controls, ExitRequest


def test_stopentry_blocks_every_entry_until_startentry(sim_trader) -> None:
    st = sim_trader
    st.trader.controls.stop_entries("test")
    st.trader.scan()
    st.trader.scan()
    assert st.sim.orders() == [] and st.journal.intents() == [] and st.events == []
    st.trader.controls.start_entries("test")
    st.trader.scan()
    entries = [i for i in st.journal.intents() if i.kind == "entry"]
    assert len(entries) == 1 and [o["clientOid"] for o in st.sim.orders()][:1] == [entries[0].client_oid]
    assert [(a, d) for _, a, d in st.journal.controls()] == [("startentry", "test"), ("stopentry", "test")]


def test_a_stop_that_comes_while_an_entry_is_sized_still_stops_it(sim_trader) -> None:
    st = sim_trader
    claim = st.trader._desk.claim

    def claim_after_a_stop(symbol, **kwargs):
        st.trader.controls.stop_entries("test")  # the owner's click lands between the checks and the send
        return claim(symbol, **kwargs)

    st.trader._desk.claim = claim_after_a_stop
    st.trader.scan()
    assert st.sim.orders() == [] and st.journal.intents() == []


def test_stopped_entries_stay_stopped_across_a_restart(tmp_path) -> None:
    path = str(tmp_path / "j.sqlite3")
    with Journal(path) as journal:
        Controls(journal).stop_entries("web 127.0.0.1")
    with Journal(path) as journal:
        restarted = Controls(journal)
        restarted.restore()
        assert restarted.entries_stopped is True
        restarted.start_entries("web 127.0.0.1")
    with Journal(path) as journal:
        again = Controls(journal)
        again.restore()
        assert again.entries_stopped is False


def test_forceexit_closes_on_the_traders_thread_through_the_journal(sim_trader) -> None:
    st = sim_trader
    st.trader.scan()
    assert BTC in st.trader.holdings
    stop = threading.Event()
    loop = threading.Thread(target=st.trader.run, args=(stop,), kwargs={"duration_s": TIMEOUT_S * 4})
    loop.start()
    try:
        outcome = st.trader.controls.request_exit(BTC, "test").result(TIMEOUT_S)
    finally:
        stop.set()
        loop.join(TIMEOUT_S)
    exit_intent = st.journal.intents()[-1]
    assert outcome == "closed" and BTC not in st.trader.holdings
    assert (exit_intent.kind, exit_intent.reason, exit_intent.status) == ("exit", "force exit (owner)", "filled")
    assert [o["clientOid"] for o in st.sim.orders()][-1] == exit_intent.client_oid
    assert st.kinds()[-1] == "exit" and st.events[-1].details["reason"] == "force exit (owner)"
    assert st.journal.controls()[0][1:] == ("forceexit", f"test: {BTC}")


def test_every_request_gets_an_answer_even_when_the_run_ends(sim_trader) -> None:
    st = sim_trader
    stop = threading.Event()
    stop.set()
    future = st.trader.controls.request_exit(BTC, "test")  # flat: nothing to close
    st.trader.run(stop)  # ends at once: the protection thread or the run's end answers it
    assert future.result(0) in ("not held", "not running") and st.sim.orders() == []


def test_a_request_nobody_waits_for_any_more_is_resolved_quietly() -> None:
    request = ExitRequest(BTC, Future())
    request.future.cancel()
    request.resolve("closed")  # no InvalidStateError into the trader's thread
    assert request.future.cancelled()


def test_too_many_waiting_requests_are_refused() -> None:
    controls = Controls()
    for _ in range(MAX_PENDING_EXITS):
        controls.request_exit(BTC, "test")
    with pytest.raises(OverflowError):
        controls.request_exit(BTC, "test")
    assert len(controls.take_exit_requests()) == MAX_PENDING_EXITS and controls.take_exit_requests() == []
