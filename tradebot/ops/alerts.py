"""Alerts: every event to a webhook (JSON) and Telegram (a readable line), and a heartbeat.

    alerts = Alerts.from_settings(settings, label="paper")   # None when nothing is configured
    bus.subscribe(alerts.publish)                            # returns at once, on any thread
    alerts.start(); ...; alerts.close()

    heartbeat = Heartbeat(url, interval_s=60, healthy=lambda: view.health().ok)

WEBHOOK_URL gets POST {"event": ..., "message": ..., "ts_ms": ..., **details} per event; Telegram
(TELEGRAM_TOKEN, TELEGRAM_CHAT_ID; the Bot API at TELEGRAM_API_URL) gets the same events as
text. Each kind of event is rate-limited (RATE_LIMITS per RATE_WINDOW_S; the next one that passes
says how many were held back), each receiver has its own Courier (delivery.py), so a receiver
that hangs delays nothing but its own alerts. HEARTBEAT_URL is fetched every HEARTBEAT_INTERVAL_S
while the bot is healthy: an outside monitor (healthchecks.io, Uptime Kuma, cron) notices a bot
that died, hangs or lost its data. The Telegram URL holds the bot token: it is never logged,
and no payload holds a key, secret, passphrase or token.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tradebot.events import Event, EventKind
from tradebot.ops.delivery import CLOSE_SLACK_S, Courier, DeliveryFailed, http_request, redact, shown_url

__all__ = ["Alerts", "Heartbeat", "RateLimit", "telegram_text"]

log = logging.getLogger(__name__)

RATE_WINDOW_S = 60.0
# events of one kind let through per window; the rest are counted and said with the next one
RATE_LIMITS = {EventKind.ERROR: 5, EventKind.ENTRY: 10, EventKind.EXIT: 10, EventKind.STOP_TRIGGERED: 10}
DEFAULT_RATE_LIMIT = 10
FLUSH_S = 2.0  # at shutdown, alerts get this long to go out (the shutdown alert among them)
ICONS = {EventKind.STARTUP: "▶️", EventKind.ENTRY: "🟢", EventKind.EXIT: "⚪", EventKind.STOP_TRIGGERED: "🛑",
         EventKind.LIQUIDATION: "💥", EventKind.KILL_SWITCH: "⛔", EventKind.ERROR: "⚠️", EventKind.SHUTDOWN: "⏹"}


class RateLimit:
    """At most `limits[kind]` events of a kind per `window_s` (a sliding window); pure apart from
    its own state: `now` is passed in."""

    def __init__(self, limits: dict[EventKind, int] | None = None, *, window_s: float = RATE_WINDOW_S,
                 default: int = DEFAULT_RATE_LIMIT) -> None:
        self._limits = RATE_LIMITS if limits is None else limits
        self._default, self._window_s = default, window_s
        self._sent: dict[EventKind, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._held: collections.Counter[EventKind] = collections.Counter()

    def allow(self, kind: EventKind, now: float) -> tuple[bool, int]:
        """(let it through, how many of this kind were held back since the last one let through)."""
        sent = self._sent[kind]
        while sent and now - sent[0] >= self._window_s:
            sent.popleft()
        if len(sent) >= self._limits.get(kind, self._default):
            self._held[kind] += 1
            return False, 0
        sent.append(now)
        return True, self._held.pop(kind, 0)


def telegram_text(event: Event, *, label: str, held_back: int = 0) -> str:
    """The readable line of an event: icon, kind, the bot's label, the message."""
    text = f"{ICONS[event.kind]} {event.kind.value.replace('_', ' ')} [{label}]\n{event.message}"
    if held_back:
        text += f"\n(+{held_back} more {event.kind.value} alerts held back by the rate limit)"
    return text


class Alerts:
    """The alert receivers of one bot; `publish` is an EventBus subscriber."""

    def __init__(self, *, label: str, webhook_url: str | None = None, telegram_token: str | None = None,
                 telegram_chat_id: str | None = None, telegram_api_url: str = "https://api.telegram.org",
                 timeout_s: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 rate_limit: RateLimit | None = None) -> None:
        self.label = label
        self._clock = clock
        self._lock = threading.Lock()
        self._rate = rate_limit if rate_limit is not None else RateLimit()
        self._secrets = (telegram_token, webhook_url)
        self.couriers: dict[str, Courier] = {}
        if webhook_url:
            self.couriers["webhook"] = Courier(
                "webhook", lambda body: http_request(webhook_url, body=body, timeout_s=timeout_s),
                shown=shown_url(webhook_url), clock=clock)
        if telegram_token and telegram_chat_id:
            url = f"{telegram_api_url.rstrip('/')}/bot{telegram_token}/sendMessage"
            self.couriers["telegram"] = Courier(
                "telegram", lambda body: _telegram_send(url, body, timeout_s, self._secrets),
                shown=shown_url(telegram_api_url), clock=clock)
        self._chat_id = telegram_chat_id

    @classmethod
    def from_settings(cls, settings: Any, *, label: str) -> Alerts | None:
        """The receivers the settings name, or None when there is none."""
        if not settings.webhook_url and not settings.telegram_token:
            return None
        return cls(label=label, webhook_url=settings.webhook_url, telegram_token=settings.telegram_token,
                   telegram_chat_id=settings.telegram_chat_id, telegram_api_url=settings.telegram_api_url)

    def publish(self, event: Event) -> None:
        """Queue `event` for every receiver (rate limit permitting); never blocks, never raises."""
        with self._lock:
            allowed, held_back = self._rate.allow(event.kind, self._clock())
        if not allowed:
            return
        if "webhook" in self.couriers:
            payload = event.payload()
            payload.setdefault("bot", self.label)
            if held_back:
                payload["held_back"] = held_back
            self.couriers["webhook"].offer(payload)
        if "telegram" in self.couriers:
            self.couriers["telegram"].offer({"chat_id": self._chat_id, "disable_web_page_preview": True,
                                             "text": telegram_text(event, label=self.label, held_back=held_back)})

    def start(self) -> None:
        for courier in self.couriers.values():
            courier.start()
        log.info("alerts to %s", ", ".join(f"{name} ({c.shown})" for name, c in self.couriers.items()))

    def close(self, flush_s: float = FLUSH_S) -> None:
        """Give queued alerts up to `flush_s` in all (the receivers in parallel), then stop."""
        deadline = time.monotonic() + flush_s
        for courier in self.couriers.values():
            courier.close(flush_s, wait=False)
        for courier in self.couriers.values():
            courier.join(max(0.0, deadline - time.monotonic()) + CLOSE_SLACK_S)


def _telegram_send(url: str, body: dict[str, Any], timeout_s: float, secrets: tuple[str | None, ...]) -> None:
    # The Bot API answers {"ok": true, ...} or {"ok": false, "description": ...} (HTTP 200 or 4xx).
    answer = http_request(url, body=body, timeout_s=timeout_s)
    if not (isinstance(answer, dict) and answer.get("ok") is True):
        what = answer.get("description") if isinstance(answer, dict) else "not the Bot API's answer"
        raise DeliveryFailed(redact(f"refused: {what}", secrets), permanent=True)


class Heartbeat:
    """Fetches `url` every `interval_s` while `healthy()`; failures logged once per outage."""

    def __init__(self, url: str, *, interval_s: float, healthy: Callable[[], bool], timeout_s: float = 10.0,
                 send: Callable[[str], Any] | None = None) -> None:
        self._url = url
        self._interval_s = interval_s
        self._healthy = healthy
        self._send = send if send is not None else (lambda u: http_request(u, timeout_s=timeout_s))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.beats = self.skipped = self.failures = 0

    def beat(self) -> bool:
        """One round: ping when healthy; return whether a ping went through."""
        try:
            healthy = self._healthy()
        except Exception:  # the check is the bot's own code: a bug there is logged, the beat skipped
            log.exception("heartbeat: the health check failed")
            healthy = False
        if not healthy:
            self.skipped += 1
            return False
        try:
            self._send(self._url)
        except DeliveryFailed as exc:
            self.failures += 1
            if not self._failing:
                self._failing = True
                log.warning("heartbeat to %s failed: %s (not logged again until it works)", shown_url(self._url),
                            exc.reason)
            return False
        if self._failing:
            self._failing = False
            log.warning("heartbeat to %s works again", shown_url(self._url))
        self.beats += 1
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bot-heartbeat", daemon=True)
        self._thread.start()
        log.info("heartbeat to %s every %gs while healthy", shown_url(self._url), self._interval_s)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.beat()
