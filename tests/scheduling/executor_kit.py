"""Test kit for PriorityExecutor: priorities, a start log, an executor factory that checks no thread
is left, a blocking call."""

import threading

from api_priority import Priority
from tests.helpers import TIMEOUT_S

C, H, N, L = Priority.CRITICAL, Priority.HIGH, Priority.NORMAL, Priority.LOW


class StartLog:
    """An on_start callback that records (priority, label) and signals each start."""

    def __init__(self):
        self.starts = []
        self._cond = threading.Condition()

    def __call__(self, priority, label):
        with self._cond:
            self.starts.append((priority, label))
            self._cond.notify_all()

    def wait_for_count(self, count):
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.starts) >= count, TIMEOUT_S), self.starts
            return list(self.starts)


def our_threads(executor_name):
    return [t for t in threading.enumerate() if t.name.startswith(executor_name + "-")]


def blocker():
    """Return (event that the call started, event that releases it, the callable)."""
    started, release = threading.Event(), threading.Event()

    def call(value=None):
        started.set()
        assert release.wait(TIMEOUT_S)
        return value

    return started, release, call


def value(x):
    return x

