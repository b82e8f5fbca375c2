"""PriorityExecutor with real worker threads and a fake clock; no sleeps, only Events."""

import functools
import threading

import pytest

from api_priority import CallAbandoned, Priority, RateLimit, SchedulerClosed
from tests.helpers import TIMEOUT_S, FakeClock, StartLog
from tests.scheduling.executor_kit import C, H, L, N, blocker, our_threads, value

def test_constructor_starts_no_thread(make_executor):
    ex = make_executor(workers=3)
    assert our_threads(ex._name) == []
    ex.start()
    assert len(our_threads(ex._name)) == 3


def test_submit_starts_workers_lazily(make_executor):
    ex = make_executor(workers=2)
    assert ex.submit(N, value, 7).result(TIMEOUT_S) == 7
    assert len(our_threads(ex._name)) == 2


def test_results_args_and_kwargs_come_through_future(make_executor):
    ex = make_executor()
    future = ex.submit(H, lambda a, b, *, c: (a, b, c), 1, 2, c=3)
    assert future.result(TIMEOUT_S) == (1, 2, 3)


def test_exception_propagates_unchanged_and_worker_survives(make_executor):
    ex = make_executor(workers=1)
    error = KeyError("boom")

    def fail():
        raise error

    failed = ex.submit(C, fail)
    assert failed.exception(TIMEOUT_S) is error
    assert ex.submit(C, value, "still alive").result(TIMEOUT_S) == "still alive"
    assert len(our_threads(ex._name)) == 1


def test_on_start_exception_does_not_kill_worker(make_executor):
    def broken_on_start(priority, label):
        raise RuntimeError("bug in callback")

    ex = make_executor(workers=1, on_start=broken_on_start)
    assert ex.submit(N, value, 1).result(TIMEOUT_S) == 1
    assert ex.submit(N, value, 2).result(TIMEOUT_S) == 2


def test_fifo_within_priority(make_executor):
    log = StartLog()
    ex = make_executor(workers=1, on_start=log)
    started, release, block = blocker()
    ex.submit(N, block, label="blocker")
    assert started.wait(TIMEOUT_S)
    futures = [ex.submit(N, value, i, label=f"n{i}") for i in range(20)]
    release.set()
    assert [f.result(TIMEOUT_S) for f in futures] == list(range(20))
    assert [label for _, label in log.starts] == ["blocker"] + [f"n{i}" for i in range(20)]


def test_priority_order_when_worker_frees(make_executor):
    log = StartLog()
    ex = make_executor(workers=1, on_start=log)
    started, release, block = blocker()
    ex.submit(L, block, label="blocker")
    assert started.wait(TIMEOUT_S)
    for priority, label in [(L, "l1"), (N, "n1"), (H, "h1"), (C, "c1"), (N, "n2"), (C, "c2"), (H, "h2")]:
        ex.submit(priority, value, label, label=label)
    release.set()
    starts = log.wait_for_count(8)
    assert [label for _, label in starts] == ["blocker", "c1", "c2", "h1", "h2", "n1", "n2", "l1"]


def test_priority_order_across_pools(make_executor):
    """The most urgent startable call wins whichever pool queue it sits in."""
    log = StartLog()
    limits = [RateLimit("public", 2000), RateLimit("futures", 2000)]
    ex = make_executor(workers=1, on_start=log, limits=limits)
    started, release, block = blocker()
    ex.submit(L, block, label="blocker")
    assert started.wait(TIMEOUT_S)
    ex.submit(L, value, 1, pool="public", label="history")
    ex.submit(N, value, 2, pool="public", label="scan")
    ex.submit(H, value, 3, pool="futures", label="balance")
    ex.submit(N, value, 4, label="no-pool")
    release.set()
    starts = log.wait_for_count(5)
    assert [label for _, label in starts] == ["blocker", "balance", "scan", "no-pool", "history"]


def test_critical_starts_next_despite_200_queued_normal(make_executor):
    """With 200 NORMAL calls queued behind a running one, a new CRITICAL call starts next."""
    log = StartLog()
    ex = make_executor(workers=1, on_start=log)
    started, release, block = blocker()
    ex.submit(N, block, label="running")
    assert started.wait(TIMEOUT_S)
    normals = [ex.submit(N, value, i, label=f"n{i}") for i in range(200)]
    critical = ex.submit(C, value, "order", label="order")
    assert ex.queue_depths() == {C: 1, H: 0, N: 200, L: 0}
    release.set()
    assert critical.result(TIMEOUT_S) == "order"
    assert [f.result(TIMEOUT_S) for f in normals] == list(range(200))
    assert log.starts[:3] == [(N, "running"), (C, "order"), (N, "n0")]
    assert ex.started_counts() == {C: 1, H: 0, N: 201, L: 0}


def test_critical_starts_next_with_several_workers(make_executor):
    log = StartLog()
    ex = make_executor(workers=4, on_start=log)
    blockers = [blocker() for _ in range(4)]
    for i, (_, _, block) in enumerate(blockers):
        ex.submit(N, block, label=f"running{i}")
    for started, _, _ in blockers:
        assert started.wait(TIMEOUT_S)
    for i in range(200):
        ex.submit(N, value, i, label=f"n{i}")
    critical = ex.submit(C, value, "order", label="order")
    blockers[2][1].set()
    assert critical.result(TIMEOUT_S) == "order"
    assert log.starts[4] == (C, "order")
    for _, release, _ in blockers:
        release.set()


def test_normal_never_starts_while_critical_in_flight_but_high_does(make_executor):
    log = StartLog()
    ex = make_executor(workers=3, on_start=log)
    started, release, block = blocker()
    critical = ex.submit(C, block, "closed", label="close-position")
    assert started.wait(TIMEOUT_S)
    normal = ex.submit(N, value, "scan", label="scan")
    low = ex.submit(L, value, "history", label="history")
    assert ex.wait_until_settled(TIMEOUT_S)
    assert ex.started_counts() == {C: 1, H: 0, N: 0, L: 0}
    high = ex.submit(H, value, "balance", label="balance")
    assert high.result(TIMEOUT_S) == "balance"
    assert ex.wait_until_settled(TIMEOUT_S)
    assert (ex.started_counts(), normal.done(), low.done()) == ({C: 1, H: 1, N: 0, L: 0}, False, False)
    release.set()
    assert (critical.result(TIMEOUT_S), normal.result(TIMEOUT_S), low.result(TIMEOUT_S)) == (
        "closed",
        "scan",
        "history",
    )
    assert [label for _, label in log.starts] == ["close-position", "balance", "scan", "history"]


def test_queued_rate_limited_critical_blocks_normal_of_another_pool(make_executor):
    """A CRITICAL call still queued (waiting for its pool) keeps NORMAL calls back, not HIGH."""
    clock = FakeClock()
    limits = [RateLimit("futures", 10), RateLimit("public", 100)]
    ex = make_executor(workers=2, clock=clock, limits=limits, reserve_fraction=0.0)
    assert ex.submit(C, value, 1, pool="futures", cost=10).result(TIMEOUT_S) == 1
    critical = ex.submit(C, clock, pool="futures", cost=2, label="cancel")
    normal = ex.submit(N, clock, pool="public", cost=1, label="ticker")
    assert ex.wait_until_settled(TIMEOUT_S)
    assert ex.started_counts() == {C: 1, H: 0, N: 0, L: 0}
    assert ex.submit(H, clock, pool="public", cost=1).result(TIMEOUT_S) == 1000.0
    clock.advance(30.0)
    ex.wake()
    assert (critical.result(TIMEOUT_S), normal.result(TIMEOUT_S)) == (1030.0, 1030.0)


def test_rate_limited_call_waits_for_window_with_fake_clock(make_executor):
    clock = FakeClock()
    ex = make_executor(workers=2, clock=clock, limits=[RateLimit("futures", 10)], reserve_fraction=0.0)
    assert ex.submit(N, clock, pool="futures", cost=8).result(TIMEOUT_S) == 1000.0
    waiting = ex.submit(N, clock, pool="futures", cost=3)
    assert ex.wait_until_settled(TIMEOUT_S)
    assert (waiting.done(), ex.queue_depths()[N]) == (False, 1)
    clock.advance(29.0)
    ex.wake()
    assert ex.wait_until_settled(TIMEOUT_S)
    assert waiting.done() is False
    clock.advance(1.0)
    ex.wake()
    assert waiting.result(TIMEOUT_S) == 1030.0
    assert ex.budget() == {"futures": {"limit": 10, "remaining": 7, "reset_in_s": 30.0}}


def test_reserve_kept_for_critical(make_executor):
    clock = FakeClock()
    ex = make_executor(workers=1, clock=clock, limits=[RateLimit("futures", 100)], reserve_fraction=0.1)
    assert ex.submit(H, clock, pool="futures", cost=90).result(TIMEOUT_S) == 1000.0
    high = ex.submit(H, clock, pool="futures", cost=1)
    assert ex.wait_until_settled(TIMEOUT_S)
    assert high.done() is False
    assert ex.submit(C, value, "order", pool="futures", cost=10).result(TIMEOUT_S) == "order"
    assert ex.budget()["futures"]["remaining"] == 0
    clock.advance(30.0)
    ex.wake()
    assert high.result(TIMEOUT_S) == 1030.0


def test_other_pool_overtakes_call_waiting_for_quota(make_executor):
    clock = FakeClock()
    limits = [RateLimit("futures", 10), RateLimit("public", 10)]
    ex = make_executor(workers=1, clock=clock, limits=limits, reserve_fraction=0.0)
    ex.submit(H, value, None, pool="futures", cost=10).result(TIMEOUT_S)
    blocked = ex.submit(H, clock, pool="futures", cost=1)
    later_same_pool = ex.submit(L, clock, pool="futures", cost=1)
    unlimited = ex.submit(L, value, "no pool")
    other_pool = ex.submit(N, value, "public", pool="public", cost=1)
    assert (unlimited.result(TIMEOUT_S), other_pool.result(TIMEOUT_S)) == ("no pool", "public")
    assert ex.wait_until_settled(TIMEOUT_S)
    assert (blocked.done(), later_same_pool.done()) == (False, False)
    clock.advance(30.0)
    ex.wake()
    assert (blocked.result(TIMEOUT_S), later_same_pool.result(TIMEOUT_S)) == (1030.0, 1030.0)


def test_observe_headers_corrects_local_count(make_executor):
    clock = FakeClock()
    ex = make_executor(workers=1, clock=clock, limits=[RateLimit("futures", 2000)])
    ex.observe_headers("futures", limit=2000, remaining=250, reset_ms=12000)
    assert ex.budget() == {"futures": {"limit": 2000, "remaining": 250, "reset_in_s": 12.0}}
    assert ex.submit(N, value, "fits", pool="futures", cost=50).result(TIMEOUT_S) == "fits"
    waiting = ex.submit(N, clock, pool="futures", cost=1)
    assert ex.wait_until_settled(TIMEOUT_S)
    assert waiting.done() is False
    ex.observe_headers("futures", limit=2000, remaining=1990, reset_ms=29000)
    assert waiting.result(TIMEOUT_S) == 1000.0


def test_rate_limited_with_reset_blocks_critical_until_reset(make_executor):
    clock = FakeClock()
    ex = make_executor(workers=1, clock=clock, limits=[RateLimit("futures", 2000)])
    ex.observe_rate_limited("futures", reset_ms=4000)
    order = ex.submit(C, clock, pool="futures", cost=2)
    assert ex.wait_until_settled(TIMEOUT_S)
    assert order.done() is False
    clock.advance(4.0)
    ex.wake()
    assert order.result(TIMEOUT_S) == 1004.0


def test_rate_limited_overload_backs_off_non_critical_only(make_executor):
    clock = FakeClock()
    ex = make_executor(workers=1, clock=clock, limits=[RateLimit("public", 2000)])
    ex.observe_rate_limited("public", reset_ms=None)
    scan = ex.submit(N, clock, pool="public", cost=2)
    assert ex.submit(C, clock, pool="public", cost=2).result(TIMEOUT_S) == 1000.0
    assert ex.wait_until_settled(TIMEOUT_S)
    assert scan.done() is False
    clock.advance(0.5)
    ex.wake()
    assert scan.result(TIMEOUT_S) == 1000.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pool": "spot"}, "unknown rate-limit pool 'spot'"),
        ({"pool": "futures", "cost": 2001}, "exceeds the whole quota"),
        ({"pool": "futures", "cost": 0}, "cost must be an int >= 1"),
    ],
)
def test_submit_rejects_bad_pool_or_cost(make_executor, kwargs, message):
    ex = make_executor(limits=[RateLimit("futures", 2000)])
    with pytest.raises(ValueError, match=message):
        ex.submit(N, value, 1, **kwargs)
    assert ex.queue_depths() == {C: 0, H: 0, N: 0, L: 0}


def test_submit_rejects_unknown_priority(make_executor):
    with pytest.raises(ValueError):
        make_executor().submit(7, value, 1)


def test_close_fails_pending_lets_running_finish_and_joins(make_executor):
    ex = make_executor(workers=1)
    started, release, block = blocker()
    running = ex.submit(N, block, "done")
    assert started.wait(TIMEOUT_S)
    pending = [ex.submit(p, value, p) for p in (C, H, N, L)]
    closer = threading.Thread(target=ex.close, kwargs={"timeout_s": TIMEOUT_S})
    closer.start()
    errors = [f.exception(TIMEOUT_S) for f in pending]
    release.set()
    closer.join(TIMEOUT_S)
    assert [type(e) for e in errors] == [SchedulerClosed] * 4
    assert running.result(TIMEOUT_S) == "done"
    assert (closer.is_alive(), our_threads(ex._name)) == (False, [])
    assert ex.queue_depths() == {C: 0, H: 0, N: 0, L: 0}


def test_close_gives_up_on_a_call_still_running_after_its_timeout(make_executor):
    # A stop must not wait out a request timeout: the caller is told, the worker is left.
    ex = make_executor(workers=1)
    started, release, block = blocker()
    running = ex.submit(N, block, "late")
    assert started.wait(TIMEOUT_S)
    ex.close(timeout_s=0.05)
    assert isinstance(running.exception(TIMEOUT_S), CallAbandoned)
    release.set()  # the late result is dropped quietly
    for thread in threading.enumerate():
        if thread.name.startswith(ex._name + "-"):
            thread.join(TIMEOUT_S)
    assert our_threads(ex._name) == [] and isinstance(running.exception(0), CallAbandoned)


def test_close_is_idempotent_and_rejects_reuse(make_executor):
    ex = make_executor(workers=2)
    ex.submit(N, value, 1).result(TIMEOUT_S)
    ex.close()
    ex.close()
    assert our_threads(ex._name) == []
    with pytest.raises(SchedulerClosed):
        ex.submit(N, value, 1)
    with pytest.raises(SchedulerClosed):
        ex.start()


def test_close_before_start_leaves_no_thread(make_executor):
    ex = make_executor()
    ex.close()
    assert our_threads(ex._name) == []
    with pytest.raises(SchedulerClosed):
        ex.submit(C, value, 1)


def test_close_without_cancel_runs_pending_first(make_executor):
    ex = make_executor(workers=1)
    started, release, block = blocker()
    ex.submit(N, block)
    assert started.wait(TIMEOUT_S)
    pending = [ex.submit(L, value, i) for i in range(5)]
    release.set()
    ex.close(cancel_pending=False, timeout_s=TIMEOUT_S)
    assert [f.result(0) for f in pending] == [0, 1, 2, 3, 4]
    assert our_threads(ex._name) == []


def test_close_from_inside_a_call_does_not_deadlock(make_executor):
    ex = make_executor(workers=1)
    future = ex.submit(C, functools.partial(ex.close, timeout_s=TIMEOUT_S))
    assert future.result(TIMEOUT_S) is None
    ex.close(timeout_s=TIMEOUT_S)
    assert our_threads(ex._name) == []


def test_context_manager_closes(make_executor):
    with make_executor(workers=2) as ex:
        assert ex.submit(H, value, "x").result(TIMEOUT_S) == "x"
    assert our_threads(ex._name) == []
    with pytest.raises(SchedulerClosed):
        ex.submit(H, value, "x")


def test_many_submitting_threads(make_executor):
    clock = FakeClock()
    ex = make_executor(workers=4, clock=clock, limits=[RateLimit("futures", 100_000)])
    go = threading.Event()
    results = {}

    def submitter(thread_no):
        assert go.wait(TIMEOUT_S)
        futures = [
            ex.submit(Priority(i % 4), value, (thread_no, i), pool="futures", cost=2) for i in range(50)
        ]
        results[thread_no] = [f.result(TIMEOUT_S) for f in futures]

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join(TIMEOUT_S)
    assert results == {n: [(n, i) for i in range(50)] for n in range(8)}
    assert ex.started_counts() == {C: 104, H: 104, N: 96, L: 96}
    assert (ex.in_flight(), ex.queue_depths()) == (0, {C: 0, H: 0, N: 0, L: 0})
    assert ex.budget() == {"futures": {"limit": 100_000, "remaining": 100_000 - 800, "reset_in_s": 30.0}}

def test_reserved_worker_runs_only_critical_and_high_calls(make_executor):
    log = StartLog()
    ex = make_executor(workers=2, reserved_workers=1, on_start=log)
    started, release, block = blocker()
    running = ex.submit(N, block, "scan-1", label="scan-1")
    assert started.wait(TIMEOUT_S)
    queued = [ex.submit(prio, value, label, label=label) for prio, label in ((L, "history"), (N, "scan-2"))]
    assert ex.wait_until_settled(TIMEOUT_S)
    idle = ex.started_counts()
    high = ex.submit(H, value, "balance", label="balance").result(TIMEOUT_S)
    critical = ex.submit(C, value, "order", label="order").result(TIMEOUT_S)
    assert (idle, high, critical, running.done()) == ({C: 0, H: 0, N: 1, L: 0}, "balance", "order", False)
    release.set()
    assert [f.result(TIMEOUT_S) for f in queued] == ["history", "scan-2"]
    assert [label for _, label in log.starts] == ["scan-1", "balance", "order", "scan-2", "history"]


@pytest.mark.parametrize("reserved", [-1, 2, 1.0])
def test_reserved_workers_must_leave_one_for_routine_calls(make_executor, reserved):
    with pytest.raises(ValueError):
        make_executor(workers=2, reserved_workers=reserved)
