"""A local KuCoin Futures exchange for tests, benchmarks and the offline demo.

    from kucoin_sim import Simulator
    with Simulator(seed=1) as sim:
        print(sim.url)   # point ccxt's futuresPublic/futuresPrivate URLs here
"""
from __future__ import annotations

from typing import Any

__all__ = ["Simulator", "DEFAULT_API_KEY", "DEFAULT_API_SECRET", "DEFAULT_API_PASSPHRASE"]


def __getattr__(name: str) -> Any:
    # Lazy, so the pure core modules (book, auth, ...) import without the server and aiohttp.
    if name in __all__:
        from . import server

        return getattr(server, name)
    raise AttributeError(name)
