"""KuCoinClient's reporting: the health() snapshot and the degraded-service log lines.

Internal to kucoin_client. No I/O: everything is read from counters the client's parts keep.
"""
from __future__ import annotations

import itertools
import logging
from typing import Any

__all__ = ["DegradedLog", "SourceCounts", "health_report"]

log = logging.getLogger(__name__)

Key = tuple[str, ...]


class SourceCounts:
    """Market-data reads served so far, per source ("websocket", "rest"); thread-safe.

    A count is one ``next()`` on an ``itertools.count``: a single C call, atomic under the GIL,
    ~40 ns where a lock costs ~350 ns on the cache-hit path. ``add_websocket`` is that bound call.
    """

    SOURCES = ("websocket", "rest")

    def __init__(self) -> None:
        self._counters = {source: itertools.count() for source in self.SOURCES}
        self.add_websocket = self._counters["websocket"].__next__

    def add(self, source: str) -> None:
        next(self._counters[source])

    def snapshot(self) -> dict[str, int]:
        """Return {source: reads so far} (a copy)."""
        # itertools.count has no accessor; its repr is "count(n)", n the number taken so far.
        return {source: int(repr(counter)[6:-1]) for source, counter in self._counters.items()}


class DegradedLog:
    """Which series are served from REST now, logged once per change.

    Degraded service is a WARNING once per series (a bot polling 30 symbols a second must not
    log 30 lines a second while the WebSocket is down), DEBUG after that; INFO when it recovers.
    ``keys`` (the degraded series) is non-empty while any series is degraded, so the hot path
    can skip ``recovered`` with one test of it.
    """

    def __init__(self) -> None:
        self.keys: set[Key] = set()

    def fell_back(self, key: Key) -> None:
        if key in self.keys:
            log.debug("%s: no fresh WebSocket data; REST", " ".join(key))
            return
        self.keys.add(key)
        log.warning("%s: no fresh WebSocket data; served from REST until it returns", " ".join(key))

    def recovered(self, key: Key) -> None:
        if key in self.keys:
            self.keys.discard(key)
            log.info("%s: served from the WebSocket cache again", " ".join(key))


def health_report(*, started: bool, closed: bool, source_counts: dict[str, int], gateway: Any,
                  ws: Any, account: dict[str, Any] | None = None) -> dict[str, Any]:
    """The plain dict KuCoinClient.health() returns (see its docstring); ``account``: the private
    feed's own report (``AccountFeed.health()``), under "private_websocket"."""
    report: dict[str, Any] = {"started": started, "closed": closed, "source_counts": source_counts}
    report["private_websocket"] = account if account is not None else {"enabled": False}
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
