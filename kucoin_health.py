"""KuCoinClient's reporting: the health() snapshot and the degraded-service log lines.

Internal to kucoin_client. No I/O: everything is read from counters the client's parts keep.
"""
from __future__ import annotations

import logging
from typing import Any

__all__ = ["DegradedLog", "health_report"]

log = logging.getLogger(__name__)

Key = tuple[str, ...]


class DegradedLog:
    """Which series are served from REST now, logged once per change.

    Degraded service is a WARNING once per series (a bot polling 30 symbols a second must not
    log 30 lines a second while the WebSocket is down), DEBUG after that; INFO when it recovers.
    Truthy while any series is degraded, so the hot path can skip ``recovered`` with one test.
    """

    def __init__(self) -> None:
        self._keys: set[Key] = set()

    def __bool__(self) -> bool:
        return bool(self._keys)

    def fell_back(self, key: Key) -> None:
        if key in self._keys:
            log.debug("%s: no fresh WebSocket data; REST", " ".join(key))
            return
        self._keys.add(key)
        log.warning("%s: no fresh WebSocket data; served from REST until it returns", " ".join(key))

    def recovered(self, key: Key) -> None:
        if key in self._keys:
            self._keys.discard(key)
            log.info("%s: served from the WebSocket cache again", " ".join(key))


def health_report(*, started: bool, closed: bool, source_counts: dict[str, int], gateway: Any,
                  ws: Any) -> dict[str, Any]:
    """The plain dict KuCoinClient.health() returns (see its docstring)."""
    report: dict[str, Any] = {"started": started, "closed": closed, "source_counts": source_counts}
    report.update(gateway.health())  # no I/O: the executor's own counters
    if ws is None:
        report["websocket"] = {"enabled": False}
        return report
    stats = ws.stats()
    report["websocket"] = {
        "enabled": True, "state": stats.state.name, "healthy": ws.is_healthy(),
        "connections": stats.connections, "reconnects": stats.reconnects,
        "connect_failures": stats.connect_failures,
        "messages": stats.messages, "malformed": stats.malformed, "resyncs": dict(stats.resyncs),
        "data_ages_s": {topic: topic_stats.age_s for topic, topic_stats in stats.topics.items()},
    }
    return report
