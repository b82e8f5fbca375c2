"""PriorityExecutor's reserved workers: only CRITICAL and HIGH calls may use them."""

import pytest

from tests.test_api_priority import TIMEOUT_S, C, H, L, N, StartLog, blocker, make_executor, value  # noqa: F401


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
