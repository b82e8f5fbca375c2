"""Shared fixtures: a clean environment and a simulator on 127.0.0.1, port 0."""
from __future__ import annotations

import os

import pytest

from tests.helpers import TIMEOUT_S  # noqa: F401  (re-exported for tests)

_STRIP_PREFIXES = ("KUCOIN_",)
_STRIP_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real keys or a proxy in the developer's environment must never reach a test."""
    for name in list(os.environ):
        if name.startswith(_STRIP_PREFIXES) or name in _STRIP_NAMES:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sim():
    from kucoin_sim import Simulator

    with Simulator(seed=7) as simulator:
        yield simulator
