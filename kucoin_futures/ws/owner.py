"""The one interface the WebSocket layer's parts report upward through.

Internal to ``kucoin_websocket``. The market feed, each connection and the links keeper are
handed the ``Engine`` (ws/subscriptions.py) as their ``Owner`` when they are built, and call
only these methods on it, on the WebSocket thread's loop. ``conn`` is a ``ws.socket.Connection``.
"""
from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Owner"]


class Owner(Protocol):
    """What the engine hears from below."""

    # from a connection
    def on_control(self, conn: Any, raw: bytes, now: float) -> None: ...  # welcome, ack, pong, error frame

    def on_disconnected(self, conn: Any) -> None: ...  # its socket closed

    # from the links keeper
    def on_lost(self, conn: Any) -> None: ...  # a link's current connection was lost

    def on_links_changed(self) -> None: ...  # a link's connection came up or went down

    # from the market feed
    def on_snapshot_needed(self, kucoin_id: str) -> None: ...  # a book must be synced from REST

    def on_period_closed(self, topic: str, start_ms: int) -> None: ...  # a later candle period began
