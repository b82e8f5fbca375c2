"""Test kit for PriorityExecutor: the priorities, our threads by name, a blocking call, a value."""

import threading

from api_priority import Priority
from tests.helpers import TIMEOUT_S

C, H, N, L = Priority.CRITICAL, Priority.HIGH, Priority.NORMAL, Priority.LOW


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

