"""Fixtures: a trader on the simulator (tests/tradebot/ops/simbot.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.tradebot.ops.simbot import start_sim_trader


@pytest.fixture
def sim_trader(tmp_path: Path):
    yield from start_sim_trader(tmp_path)
