"""What the bot tells its owner: typed, frozen events published through one small interface.

    bus = EventBus()
    bus.subscribe(alerts.publish)                  # each subscriber must return at once
    bus.emit(EventKind.ENTRY, "opened long BTC/USDT:USDT", symbol="BTC/USDT:USDT", contracts=3)
    bus.emit("liquidation", "BTC/USDT:USDT was liquidated", symbol="BTC/USDT:USDT")  # by name too

Who publishes what:

    startup, shutdown        bot.py, around the trading loop
    entry, exit              tradebot.trader, when the journal records a fill of an entry or an exit
                             (an exit carries pnl_usdt and the reason: stop, take_profit, strategy ...)
    stop_triggered           tradebot.order_desk, when the bot's own stop (or trailing stop) sends its
                             exit; a resting exchange stop that fires publishes it from the private
                             feed the same way: events.emit("stop_triggered", message, symbol=..., ...)
    liquidation              the private feed (a position closed by the exchange's liquidation engine)
    kill_switch              tradebot.trader, when the daily loss limit trips
    error                    tradebot.trader (a failed scan, the exchange unreachable), bot.py (a crash)

`publish` runs on the publisher's thread (often the trading loop's), so it never blocks and never
raises: a subscriber that fails is logged and the others still get the event. Subscribers hand
the event to their own thread (alerts) or do a dictionary update (the dashboard's recent events).
"""
from __future__ import annotations

import collections
import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

__all__ = ["Event", "EventBus", "EventKind", "EventSink", "RecentEvents"]

log = logging.getLogger(__name__)

RESERVED_KEYS = frozenset({"event", "message", "ts_ms"})  # the payload's own keys
_SCALARS = (str, int, float, bool, type(None))


class EventKind(enum.Enum):
    """The events an owner is told about (the `event` key of every alert payload)."""

    STARTUP = "startup"
    ENTRY = "entry"
    EXIT = "exit"
    STOP_TRIGGERED = "stop_triggered"
    LIQUIDATION = "liquidation"
    KILL_SWITCH = "kill_switch"
    ERROR = "error"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True, slots=True)
class Event:
    """One thing the owner should know: its kind, a readable line, and plain details (scalars only,
    so every sink can serialise them; never a key, secret, passphrase or token)."""

    kind: EventKind
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)
    ts_ms: int = 0  # wall-clock epoch milliseconds of the event

    def __post_init__(self) -> None:
        if not isinstance(self.kind, EventKind):
            raise TypeError(f"kind must be an EventKind, not {self.kind!r}")
        bad = sorted(k for k, v in self.details.items() if k in RESERVED_KEYS or not isinstance(v, _SCALARS))
        if bad:
            raise ValueError(f"event details must be scalars outside {sorted(RESERVED_KEYS)}: {bad}")
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    def payload(self) -> dict[str, Any]:
        """The JSON object sent for this event: {"event": ..., "message": ..., "ts_ms": ..., **details}."""
        return {"event": self.kind.value, "message": self.message, "ts_ms": self.ts_ms, **self.details}


class EventSink(Protocol):
    """What the trader needs: somewhere to publish (an EventBus, or a test's list)."""

    def publish(self, event: Event) -> None: ...


class EventBus:
    """A thread-safe fan-out of events to subscribers; publishing never blocks nor raises."""

    def __init__(self, *, wall_clock: Callable[[], float] = time.time) -> None:
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._subscribers: tuple[Callable[[Event], None], ...] = ()

    def subscribe(self, handler: Callable[[Event], None]) -> None:
        """Add `handler`; it runs on the publisher's thread and must return at once."""
        with self._lock:
            self._subscribers = (*self._subscribers, handler)

    def unsubscribe(self, handler: Callable[[Event], None]) -> None:
        with self._lock:
            self._subscribers = tuple(h for h in self._subscribers if h != handler)

    def publish(self, event: Event) -> None:
        """Hand `event` to every subscriber; a subscriber's exception is logged, never raised."""
        for handler in self._subscribers:  # a tuple swapped whole: no lock needed to read it
            try:
                handler(event)
            except Exception:  # a subscriber's bug must not reach the trading loop
                log.exception("event subscriber %r failed on %s", handler, event.kind.value)

    def emit(self, kind: EventKind | str, message: str, **details: Any) -> None:
        """Build an Event stamped with the wall clock and publish it; never raises (a bad kind or
        detail is a bug of the caller, logged with its traceback)."""
        try:
            event = Event(EventKind(kind), message, details, int(self._wall_clock() * 1000))
        except (TypeError, ValueError):
            log.exception("event not published: %s %r", kind, message)
            return
        self.publish(event)


class RecentEvents:
    """The last `maxlen` events, newest last (the dashboard's event list); a bus subscriber."""

    def __init__(self, maxlen: int = 50) -> None:
        self._lock = threading.Lock()
        self._events: collections.deque[Event] = collections.deque(maxlen=maxlen)
        self.counts: collections.Counter[str] = collections.Counter()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)
            self.counts[event.kind.value] += 1

    def snapshot(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def counts_snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)
