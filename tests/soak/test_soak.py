"""The soak (issue 12): each invariant on hand-made recordings, the plan, the report, and one
short end-to-end soak of the real bot against the simulator."""
from __future__ import annotations

import dataclasses

import pytest

from soak.invariants import (
    check_all, check_client_oids, check_exits_reduce, check_keeps_trading, check_max_open,
    check_no_crash, check_no_stale_rows, check_outputs, check_protected, check_resources, check_sigterm, check_single_entry,
    check_stops, uncovered_s,
)
from soak.model import (
    FaultEvent, FaultKind, Fill, Order, Protection, Recording, RestartKind, Run, RunEnd, Sample, Secret,
    Status,
)
from soak.observe import sim_symbol
from soak.plan import LONG_RUN_SOAK_S, PLANNED_FAULTS, make_plan
from soak.report import counts, exit_code, render
from soak.strategy import churn
from tradebot.strategy import ActionKind, Position, StrategyParams

X = "XBTUSDTM"
E = "ETHUSDTM"
S = "SOLUSDTM"


def order(t: float, oid: str, side: str, size: int, *, symbol: str = X, reduce: bool = False,
          client_oid: str | None = None) -> Order:
    return Order(t, oid, symbol, side, size, reduce, client_oid or f"bot-{oid}", size)


def fill(t: float, oid: str | None, side: str, size: int, *, symbol: str = X) -> Fill:
    return Fill(t, symbol, side, size, oid)


def sample(t: float, *, up: bool = True, ready: bool = True, run: int = 0, qty: int = 0,
           row: Protection | None = None, table: bool = True, last: float = 100.0,
           mark: float = 100.0) -> Sample:
    positions = {X: qty} if qty else {}
    protections = None if not table else ({X: row} if row is not None else {})
    return Sample(t, up, ready, run, positions, {X: last}, {X: mark} if qty else {}, protections)


def run(index: int = 0, *, start: float = 0.0, end_t: float = 60.0, end: RunEnd = RunEnd.SIGKILL,
        scans: tuple[float, ...] = (), signalled: float | None = None, code: int | None = -9,
        stop_s: float | None = None) -> Run:
    return Run(index, start, end_t, end, signalled if signalled is not None else end_t, code, stop_s, scans)


# -- one entry per intent ---------------------------------------------------------------------------
def test_single_entry_passes_entry_exit_entry():
    orders = [order(1, "1", "buy", 5), order(2, "2", "sell", 5, reduce=True), order(3, "3", "sell", 4)]
    fills = [fill(1, "1", "buy", 3), fill(1, "1", "buy", 2), fill(2, "2", "sell", 5), fill(3, "3", "sell", 4)]
    assert check_single_entry(orders, fills).status is Status.OK


def test_single_entry_catches_a_second_entry_before_flat():
    orders = [order(1, "1", "buy", 5), order(4, "2", "buy", 5)]
    fills = [fill(1, "1", "buy", 5), fill(4, "2", "buy", 5)]
    result = check_single_entry(orders, fills)
    assert result.status is Status.VIOLATED
    assert [v.t for v in result.violations] == [4, 4]  # two entries, and |position| 10 above 5
    assert "2 entries without a flat moment" in result.violations[0].detail
    assert "|position| 10 above its entry's size 5" in result.violations[1].detail


def test_single_entry_catches_an_entry_against_an_open_position():
    orders = [order(1, "1", "buy", 5), order(2, "2", "sell", 5)]
    fills = [fill(1, "1", "buy", 5), fill(2, "2", "sell", 5)]
    result = check_single_entry(orders, fills)
    assert result.status is Status.VIOLATED
    assert "traded against an open position of 5" in result.violations[0].detail


def test_single_entry_counts_symbols_apart_and_ignores_liquidations():
    orders = [order(1, "1", "buy", 5), order(2, "2", "sell", 3, symbol=E), order(5, "3", "buy", 5)]
    fills = [fill(1, "1", "buy", 5), fill(2, "2", "sell", 3, symbol=E), fill(3, None, "sell", 5),
             fill(5, "3", "buy", 5)]
    assert check_single_entry(orders, fills).status is Status.OK


def test_exits_reduce_passes_one_exit_per_position():
    orders = [order(1, "1", "buy", 5), order(2, "2", "sell", 5, reduce=True)]
    fills = [fill(1, "1", "buy", 5), fill(2, "2", "sell", 5)]
    assert check_exits_reduce(orders, fills).status is Status.OK


def test_exits_reduce_catches_an_exit_sent_twice():
    """The read-back of an exit fails, the bot sends it again: the second finds nothing to reduce."""
    orders = [order(1, "1", "buy", 5), order(2, "2", "sell", 5, reduce=True),
              order(3, "3", "sell", 5, reduce=True)]
    fills = [fill(1, "1", "buy", 5), fill(2, "2", "sell", 5)]
    result = check_exits_reduce(orders, fills)
    assert [(v.t, v.invariant) for v in result.violations] == [(3, "exits_reduce")]
    assert "no position to reduce" in result.violations[0].detail


def test_exits_reduce_allows_an_empty_exit_racing_a_resting_stop_but_not_a_late_one():
    """The bot's second line sends a reduce-only exit just as the exchange's stop fires: the exit
    finds nothing (filled 0), which is harmless. The same exit seconds later is a lost track."""
    stop = Order(2.0, "s", X, "sell", 5, True, "bot-s", 5, stop=True)
    raced = Order(2.3, "e", X, "sell", 5, True, "bot-e", 0)
    late = Order(9.0, "f", X, "sell", 5, True, "bot-f", 0)
    filled = Order(2.4, "g", X, "sell", 5, True, "bot-g", 5)
    opened = [order(1, "1", "buy", 5), stop]
    fills = [fill(1, "1", "buy", 5), fill(2, "s", "sell", 5)]
    assert check_exits_reduce(opened + [raced], fills).status is Status.OK
    assert [v.t for v in check_exits_reduce(opened + [raced, late], fills).violations] == [9.0]
    assert [v.t for v in check_exits_reduce(opened + [filled], fills).violations] == [2.4]


def test_max_open_passes_at_the_limit_and_catches_one_more():
    two = [fill(1, "1", "buy", 1), fill(2, "2", "sell", 1, symbol=E), fill(3, "3", "sell", 1), fill(4, "4", "buy", 1, symbol=S)]
    assert check_max_open(two, 2).status is Status.OK
    three = [fill(1, "1", "buy", 1), fill(2, "2", "sell", 1, symbol=E), fill(4, "4", "buy", 1, symbol=S)]
    result = check_max_open(three, 2)
    assert [v.t for v in result.violations] == [4]
    assert "3 positions open (ETHUSDTM, SOLUSDTM, XBTUSDTM)" in result.violations[0].detail


# -- clientOids --------------------------------------------------------------------------------------
def test_client_oids_pass_when_journaled_and_catch_strangers():
    orders = [order(1, "1", "buy", 5, client_oid="bot-a"), order(2, "2", "sell", 5, client_oid="other")]
    assert check_client_oids(orders[:1], frozenset({"bot-a"})).status is Status.OK
    result = check_client_oids(orders, frozenset({"bot-a"}))
    assert [v.detail for v in result.violations] == [
        "XBTUSDTM order 2 (sell 5): clientOid other not in the journal"]
    assert check_client_oids(orders, None).status is Status.NOT_CHECKABLE


# -- protection --------------------------------------------------------------------------------------
LONG_STOP_95 = Protection("long", 95.0)


def test_protected_passes_when_the_row_comes_within_grace():
    samples = [sample(t, qty=5, row=LONG_STOP_95 if t >= 8 else None) for t in range(0, 30)]
    assert check_protected(samples, []).status is Status.OK


def test_protected_catches_a_position_without_a_row():
    samples = [sample(t, qty=5) for t in range(0, 30)]
    result = check_protected(samples, [])
    assert [v.t for v in result.violations] == [11]
    assert "no protections row" in result.violations[0].detail


def test_protected_catches_a_row_of_the_wrong_side():
    samples = [sample(t, qty=-5, row=LONG_STOP_95) for t in range(0, 30)]
    assert "a long row for a short position" in check_protected(samples, []).violations[0].detail


def test_protected_does_not_count_fault_windows_or_a_dead_bot():
    samples = [sample(t, qty=5, up=not 5 <= t < 15) for t in range(0, 20)]
    assert check_protected(samples, [(15, 25)]).status is Status.OK


def test_protected_is_not_checkable_without_the_table():
    samples = [sample(t, qty=5, table=False) for t in range(0, 30)]
    assert check_protected(samples, []).status is Status.NOT_CHECKABLE
    assert check_stops(samples, []).status is Status.NOT_CHECKABLE


def test_stale_rows_pass_when_the_row_goes_and_are_caught_when_it_stays():
    row = Protection("long", 90.0)
    gone = [sample(0, qty=1, row=row), sample(1, row=row), sample(10, row=row), sample(11)]
    assert check_no_stale_rows(gone, []).status is Status.OK
    stays = [sample(t, qty=1 if t == 0 else 0, row=row) for t in range(0, 40)]
    assert [v.detail for v in check_no_stale_rows(stays, []).violations] == [
        "XBTUSDTM: flat, but its protections row stayed 26.0s of bot time"]
    assert check_no_stale_rows(stays, [(0, 40)]).status is Status.OK  # a fault explains it
    assert check_no_stale_rows([sample(t, row=row, ready=False) for t in range(40)], []).status is Status.OK


def test_stops_pass_when_the_position_closes_in_time():
    samples = [sample(t, qty=5 if t < 4 else 0, row=LONG_STOP_95, last=94.0, mark=94.5) for t in range(10)]
    assert check_stops(samples, []).status is Status.OK


def test_stops_catch_a_position_left_beyond_its_stop():
    samples = [sample(t, qty=5, row=LONG_STOP_95, last=94.0, mark=94.5) for t in range(10)]
    result = check_stops(samples, [])
    assert [v.t for v in result.violations] == [6]
    assert "still open 6.0s after last 94.0 / mark 94.5 passed its stop 95.0" in result.violations[0].detail


def test_stops_judge_only_a_trading_bot_outside_fault_windows():
    beyond = dict(qty=5, row=LONG_STOP_95, last=94.0, mark=94.5)
    not_ready = [sample(t, ready=t > 20, **beyond) for t in range(20)]
    assert check_stops(not_ready, []).status is Status.OK
    assert check_stops([sample(t, **beyond) for t in range(10)], [(3, 12)]).status is Status.OK
    only_last = [sample(t, qty=5, row=LONG_STOP_95, last=94.0, mark=96.0) for t in range(10)]
    assert check_stops(only_last, []).status is Status.OK  # the mark has not passed the stop


# -- liveness and exits ------------------------------------------------------------------------------
def test_keeps_trading_passes_regular_scans():
    assert check_keeps_trading([run(scans=tuple(range(2, 60, 2)))], []).status is Status.OK


def test_keeps_trading_catches_a_quiet_bot_unless_a_fault_explains_it():
    quiet = run(scans=(2.0, 4.0, 50.0, 52.0))
    result = check_keeps_trading([quiet], [])
    assert [v.detail for v in result.violations] == [
        "run 0: no scan for 46.0s after its last scan (outside fault windows)"]
    assert check_keeps_trading([quiet], [(10.0, 40.0)]).status is Status.OK
    never = run(end_t=40.0, scans=())
    assert "after it started" in check_keeps_trading([never], []).violations[0].detail


def test_no_crash_catches_a_bot_that_exits_by_itself():
    assert check_no_crash([run(end=RunEnd.SIGKILL)]).status is Status.OK
    result = check_no_crash([run(end=RunEnd.EXITED, code=1)],
                            {0: "a\nerror: fetch_positions: 429\nINFO api_priority: closing\n"})
    assert result.violations[0].detail == "run 0 exited on its own with code 1: error: fetch_positions: 429"


@pytest.mark.parametrize(("stop_s", "code", "ok"), [
    (0.4, 0, True), (6.0, 0, False), (0.4, 1, False), (None, -9, False),
])
def test_sigterm_exits_zero_within_five_seconds(stop_s, code, ok):
    result = check_sigterm([run(end=RunEnd.SIGTERM, stop_s=stop_s, code=code)])
    assert (result.status is Status.OK) is ok


def _sampled(rss_mb: list[float], threads: list[int], seconds: float) -> Run:
    """A run of `seconds` sampled every 0.5 s, its RSS and threads ramping through the given points."""
    n = int(seconds / 0.5)
    pick = lambda points, i: points[min(len(points) - 1, i * len(points) // n)]  # noqa: E731
    return dataclasses.replace(run(), rss_kb=tuple(int(pick(rss_mb, i) * 1024) for i in range(n)),
                               threads=tuple(pick(threads, i) for i in range(n)))


def test_resources_flat_passes_and_growth_is_caught():
    flat = check_resources([_sampled([100, 101, 100, 102], [13, 13, 13, 13], 300)])
    assert flat.status is Status.OK and "run 0: 300s" in flat.note
    leak = check_resources([_sampled([100, 110, 130, 160], [13, 13, 13, 13], 300)])
    assert [v.detail for v in leak.violations] == ["run 0: RSS grew from 130 to 160 MB"]
    threads = check_resources([_sampled([100], [13, 13, 16, 19], 300)])
    assert [v.detail for v in threads.violations] == ["run 0: threads grew from 16 to 19"]
    assert check_resources([_sampled([100, 200], [13, 30], 60)]).status is Status.NOT_CHECKABLE  # too short


def test_a_long_soak_ends_with_one_long_run():
    plan = make_plan(1, 1800)
    assert max(r.at_s for r in plan.restarts) < 1800 * 2 / 3 and max(f.at_s for f in plan.faults) > 1700
    assert max(r.at_s for r in make_plan(1, LONG_RUN_SOAK_S - 1).restarts) > LONG_RUN_SOAK_S * 2 / 3


def test_outputs_catch_tracebacks_and_secrets_without_repeating_them():
    secret = Secret("api secret", "s3cr3t-value")
    clean = {0: "INFO bot: started\n"}
    assert check_outputs(clean, [secret]).status is Status.OK
    dirty = {1: "Traceback (most recent call last):\n  File \"x\", line 1\nValueError: boom\n",
             2: "sig s3cr3t-value\n"}
    details = [v.detail for v in check_outputs(dirty, [secret]).violations]
    assert details == ["run 1: Traceback: ValueError: boom", "run 2: the api secret appears in the output"]
    assert "s3cr3t-value" not in render(Recording(1, 10.0, 2, outputs=dirty, secrets=(secret,)),
                                        check_all(Recording(1, 10.0, 2, outputs=dirty, secrets=(secret,))))


def test_uncovered_seconds_merge_overlapping_windows():
    assert uncovered_s(0, 100, [(10, 30), (20, 40), (90, 120)]) == 60
    assert uncovered_s(0, 10, []) == 10


# -- plan, report, strategy --------------------------------------------------------------------------
def test_plan_is_seeded_and_covers_every_fault_and_restart_kind():
    plan = make_plan(1, 180)
    assert plan == make_plan(1, 180) != make_plan(2, 180)
    assert {f.kind for f in plan.faults} == set(PLANNED_FAULTS)
    assert {r.kind for r in plan.restarts} == set(RestartKind)
    assert any(r.startup_fault for r in plan.restarts)
    assert all(f.at_s < 180 for f in plan.faults) and all(r.at_s < 175 for r in plan.restarts)


def test_report_counts_and_exit_code():
    rec = Recording(
        seed=3, duration_s=60.0, max_open_positions=2,
        faults=(FaultEvent(5.0, FaultKind.WS_DROP, "1 connections aborted", 5.0, 19.0),),
        runs=(run(0, end_t=20.0, scans=(1.0, 3.0)), run(1, start=20.0, end_t=60.0, end=RunEnd.FINAL,
                                                       scans=(22.0,), code=0, stop_s=0.3)),
        orders=(order(1, "1", "buy", 5), order(2, "2", "buy", 5)),
        fills=(fill(1, "1", "buy", 5), fill(2, "2", "buy", 5)), journal_oids=frozenset({"bot-1", "bot-2"}))
    results = check_all(rec)
    text = render(rec, results)
    assert counts(rec) == {"faults": 1, "fault_kinds": 1, "restarts": 1, "recoveries": 1, "orders": 2,
                           "fills": 2}
    assert exit_code(results) == 1
    assert "[single_entry] XBTUSDTM: 2 entries" in text and "result: FAIL (exit code 1)" in text


def test_sim_symbol_names_bitcoin_xbt():
    assert [sim_symbol(s) for s in ("BTC/USDT:USDT", "SOL/USDT:USDT")] == ["XBTUSDTM", "SOLUSDTM"]


def test_churn_follows_the_last_candle_and_exits_against_it():
    rows = [[i * 60_000, 100 + i % 3, 101 + i % 3, 99 + i % 3, 100 + i % 3, 1.0] for i in range(30)]
    rows[-1][4] = rows[-2][4] + 1  # the last candle closed up
    params = StrategyParams()
    entry = churn(rows, Position(), params)
    assert entry.kind is ActionKind.ENTER_LONG and entry.stop_price < entry.price < entry.take_profit_price
    assert churn(rows, Position("short", 3, 100.0), params).kind is ActionKind.EXIT
    assert churn(rows, Position("long", 3, 100.0), params).kind is ActionKind.HOLD


# -- end to end --------------------------------------------------------------------------------------
@pytest.mark.timeout(300)
def test_soak_end_to_end_short(tmp_path):
    """Fifty seconds of the real bot (a subprocess, live mode) against the simulator: a dozen
    fault kinds, every restart kind, and a SIGTERM while a restarted bot waits out a 429 on its
    first call (seed 29's plan). Things happened, and no invariant broke."""
    from soak.driver import SoakConfig, run_soak

    rec = run_soak(SoakConfig(duration_s=50.0, seed=29, workdir=str(tmp_path), fault_gap_s=4.0,
                              restart_gap_s=10.0))
    results = check_all(rec)
    seen = counts(rec)
    assert seen["faults"] > 0 and seen["restarts"] > 0 and seen["orders"] > 0, render(rec, results)
    assert seen["recoveries"] > 0, render(rec, results)
    violations = [f"{v.t or 0:.1f}s [{v.invariant}] {v.detail}" for r in results for v in r.violations]
    assert violations == [], render(rec, results)
