"""`KuCoinWebSocket`: one thread keeping ticker, candle and level-2 caches fresh (token, welcome,
ping/pong, subscribe with acks, reconnect with backoff and resubscribe). Defined in
kucoin_futures.ws.client; see docs/websocket.md.
"""
from __future__ import annotations

from kucoin_futures.ws.client import (
    CandleSeries,
    FeedStats,
    KuCoinWebSocket,
    State,
    TopicStats,
)

__all__ = [
    "CandleSeries",
    "FeedStats",
    "KuCoinWebSocket",
    "State",
    "TopicStats",
]
