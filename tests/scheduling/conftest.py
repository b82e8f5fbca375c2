"""The executor factory fixture: unique thread names, every executor closed, no thread left."""

import itertools

import pytest

from api_priority import PriorityExecutor
from tests.helpers import TIMEOUT_S
from tests.scheduling.executor_kit import our_threads

_names = itertools.count()


@pytest.fixture
def make_executor():
    """Build executors with unique thread names; close them all and check no thread is left."""
    made = []

    def make(**kwargs):
        kwargs.setdefault("name", f"test-prio-{next(_names)}")
        executor = PriorityExecutor(**kwargs)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.close(timeout_s=TIMEOUT_S)
    for executor in made:
        assert our_threads(executor._name) == []
