"""Fixtures of the simulator tests."""
from __future__ import annotations

import pytest


@pytest.fixture
def paused_sim():
    """A simulator whose market does not move: prices change only through sim.move_price."""
    from kucoin_sim import Simulator

    with Simulator(seed=9) as simulator:
        simulator.pause_market()
        yield simulator
