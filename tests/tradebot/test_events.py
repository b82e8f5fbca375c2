"""Events: frozen typed values, a fan-out that never raises into trading, and what the trader
publishes on the simulator (entry, stop_triggered, exit with PnL, kill_switch, error)."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from tests.helpers import FakeClock, wait_until
from tests.tradebot.ops.simbot import BTC, start_sim_trader
from tradebot.events import Event, EventBus, EventKind, RecentEvents
from tradebot.risk import RiskState, utc_day


@pytest.fixture
def sim_trader(tmp_path: Path):
    yield from start_sim_trader(tmp_path)


def test_event_payload_is_event_message_and_details() -> None:
    event = Event(EventKind.EXIT, "closed long", {"symbol": BTC, "pnl_usdt": 1.5}, ts_ms=1_700_000_000_000)
    assert event.payload() == {"event": "exit", "message": "closed long", "ts_ms": 1_700_000_000_000,
                               "symbol": BTC, "pnl_usdt": 1.5}
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.message = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.details["symbol"] = "ETH"  # type: ignore[index]


@pytest.mark.parametrize("details", [{"event": "x"}, {"message": "x"}, {"nested": {"a": 1}}, {"items": [1]}])
def test_event_refuses_reserved_keys_and_non_scalar_details(details: dict) -> None:
    with pytest.raises(ValueError):
        Event(EventKind.ERROR, "m", details)


def test_event_kinds_are_the_documented_names() -> None:
    assert [k.value for k in EventKind] == ["startup", "entry", "exit", "stop_triggered", "liquidation",
                                            "kill_switch", "error", "shutdown"]
    with pytest.raises(TypeError):
        Event("entry", "m")  # type: ignore[arg-type]


def test_bus_fans_out_and_a_failing_subscriber_never_reaches_the_publisher(caplog) -> None:
    bus, seen, recent = EventBus(wall_clock=lambda: 12.5), [], RecentEvents(maxlen=2)

    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    for handler in (seen.append, broken, recent):
        bus.subscribe(handler)
    with caplog.at_level(logging.ERROR, logger="tradebot.events"):
        for kind in ("startup", EventKind.ENTRY, "exit"):
            bus.emit(kind, f"{kind}", symbol=BTC)
        bus.emit("no_such_kind", "dropped")  # a caller's bug: logged, never raised
        bus.emit("error", "bad detail", detail={"a": 1})
    assert [(e.kind, e.ts_ms) for e in seen] == [(EventKind.STARTUP, 12_500), (EventKind.ENTRY, 12_500),
                                                 (EventKind.EXIT, 12_500)]
    assert [e.kind for e in recent.snapshot()] == [EventKind.ENTRY, EventKind.EXIT]
    assert recent.counts_snapshot() == {"startup": 1, "entry": 1, "exit": 1}
    assert len(caplog.records) == 5  # three subscriber failures, two refused events
    bus.unsubscribe(broken)
    bus.emit("shutdown", "bye")
    assert seen[-1].kind is EventKind.SHUTDOWN and len(caplog.records) == 5


def test_trader_publishes_entry_then_stop_triggered_and_exit_with_pnl(sim_trader) -> None:
    st = sim_trader
    st.trader.scan()
    entry = st.events[-1]
    holding = st.trader.holdings[BTC]
    assert entry.kind is EventKind.ENTRY
    assert {k: entry.details[k] for k in ("symbol", "side", "contracts", "reason")} == {
        "symbol": BTC, "side": "long", "contracts": holding.contracts, "reason": "test"}
    assert entry.details["price"] == pytest.approx(holding.entry_price) and entry.details["fee_usdt"] > 0
    holding.exits = dataclasses.replace(holding.exits, stop_price=holding.entry_price * 10)  # now hit
    st.trader.monitor()
    assert BTC not in st.trader.holdings
    assert st.kinds() == ["entry", "stop_triggered", "exit"]
    stop, exit_ = st.events[1], st.events[2]
    assert (stop.details["symbol"], stop.details["reason"], stop.details["resting"]) == (BTC, "stop", False)
    fill = st.journal.fills()[-1]
    size = fill.amount * fill.contract_size
    assert exit_.details["reason"] == "stop" and exit_.details["side"] == "long"
    assert exit_.details["pnl_usdt"] == pytest.approx(size * (fill.price - holding.entry_price), abs=1e-6)
    assert exit_.details["client_oid"] == fill.client_oid


def test_a_resting_take_profit_fill_is_announced_once_and_a_resting_stop_as_triggered(sim_trader) -> None:
    st = sim_trader
    st.trader.scan()
    st.trader.monitor()  # the entry's stop and take-profit rest on the exchange
    assert sorted(s["stop"] for s in st.sim.stop_orders()) == ["down", "up"]
    take_profit = st.trader.holdings[BTC].exits.take_profit_price
    st.sim.move_price("XBTUSDTM", take_profit * 1.01)  # through the take-profit, on the exchange

    def synced() -> bool:  # a sync may read the pushes' caches a moment before they arrive
        st.trader.sync_positions()
        return BTC not in st.trader.holdings
    wait_until(synced, what="the position closed by the take-profit")
    assert st.sim.stop_orders() == []
    assert st.kinds() == ["entry", "exit"]  # one exit: the fill's (with PnL), nothing twice
    assert st.events[-1].details["reason"].startswith("take_profit") and st.events[-1].details["pnl_usdt"] > 0
    fill = st.journal.fills()[-1]
    fired = next(o for o in st.sim.orders() if o["clientOid"] == fill.client_oid)
    assert fill.ts_ms == fired["updatedAt"]  # when it fired and filled, not when it was placed


def test_an_entry_whose_stop_the_mark_already_passed_is_closed_at_the_next_check(sim_trader) -> None:
    """The resting stop watches the mark; when the mark is past the stop at entry, the stop cannot
    rest (it would trigger the wrong way) and the bot closes the position itself at once, even
    while the last price has not reached the stop."""
    st = sim_trader
    st.sim.pause_market()
    last = st.client.get_ticker(BTC)["last"]
    st.sim.move_price("XBTUSDTM", round(last * 0.9, 1), only="mark")  # the mark far below any long's stop
    st.trader.scan()
    holding = st.trader.holdings[BTC]
    assert st.client.get_ticker(BTC)["last"] > holding.exits.stop_price  # the last price is not past it
    assert [s["stop"] for s in st.sim.stop_orders()] == ["up"]  # the take-profit only
    st.trader.monitor()
    assert BTC not in st.trader.holdings and st.kinds()[-2:] == ["stop_triggered", "exit"]


def test_the_second_line_reads_the_exchange_not_a_cache_a_lost_push_left_behind(tmp_path) -> None:
    """The resting stop fires while the private connection is half-open: its pushes are lost and
    the connection is not yet found quiet. When the bot's second line is due (2 s after the price
    passed the stop), it re-reads positions and stops over REST: it books the exchange's exit and
    sends no exit of its own (an empty reduce-only exit, at best)."""
    clock = FakeClock()
    for st in start_sim_trader(tmp_path, monotonic=clock):
        st.sim.pause_market()
        st.trader.scan()
        st.trader.monitor()  # the entry's stop-loss and take-profit rest on the exchange
        wait_until(lambda: st.client.health()["private_websocket"]["fresh"]["positions"], what="positions cached")
        holding = st.trader.holdings[BTC]
        st.sim.half_open(private_only=True)
        st.sim.move_price("XBTUSDTM", round(holding.exits.stop_price * 0.99, 1))  # the stop fires on the exchange
        st.trader.monitor()  # the price is past the stop: the resting stop is given its time
        clock.advance(2.5)
        st.trader.monitor()  # the second line is due
        quiet_s = st.client.health()["private_websocket"]["quiet_s"]
        exits_sent = [i for i in st.journal.intents() if i.kind == "exit"]
        fired = [f for f in st.journal.fills() if f.client_oid != holding.entry_oid]
        assert (BTC in st.trader.holdings, exits_sent) == (False, [])
        assert len(fired) == 1 and st.sim.positions() == []
        assert sorted(st.kinds()[-2:]) == ["exit", "stop_triggered"]  # the fill booked, then its stop named
        assert quiet_s is not None and quiet_s < 4.0  # the cache still passed for fresh: the REST read decided


def test_trader_publishes_the_kill_switch_once(sim_trader) -> None:
    st = sim_trader
    now_ms = int(st.trader.wall_clock() * 1000)
    st.trader.risk_state = RiskState(day=utc_day(now_ms), start_equity=1e12)  # today's loss is huge
    st.trader.scan()
    st.trader.scan()
    assert st.kinds() == ["kill_switch"] and st.sim.orders() == []
    assert st.events[0].details["loss_fraction"] > 0.99 and st.events[0].details["flatten"] is False


def test_trader_publishes_an_error_when_a_scan_fails(sim_trader) -> None:
    st = sim_trader
    st.sim.fail_next("GET", "/api/v1/account-overview", status=503, code="500000", msg="Service Unavailable",
                     rate_headers=False, count=10)
    st.trader._guarded("scan", st.trader.scan)
    assert st.kinds() == ["error"]
    assert st.events[0].details["loop"] == "scan" and st.trader.exchange_down
    assert st.trader.loops.rounds()["scan"].ok is False


def test_the_open_pnl_of_the_summary_makes_no_exchange_call(sim_trader, monkeypatch) -> None:
    """The summary runs during a stop, when a REST read may wait out a rate-limit reset (the soak
    saw a SIGTERM take over 5 s that way): it marks positions at the last price already read."""
    st = sim_trader
    st.trader.scan()
    st.trader.monitor()  # the protection reads the price

    def no_call(*args, **kwargs):
        raise AssertionError("an exchange call during the summary")
    monkeypatch.setattr(st.client, "get_ticker", no_call)
    (symbol, side, contracts, upnl), = st.trader.open_pnl()
    assert (symbol, side, contracts > 0, upnl is not None) == (BTC, "long", True, True)
