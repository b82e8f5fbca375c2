"""The owner's side of one bot run, started and stopped by bot.py: the web server (WEB_*), the
alerts (WEBHOOK_URL, TELEGRAM_*) and the heartbeat (HEARTBEAT_URL).

    with Ops(settings, events=bus, mode="paper") as ops:   # alerts subscribe to the bus now
        ops.start(trader=trader, client=client, journal=journal)   # web server and heartbeat
        ...

Nothing here can stop the bot from trading: a port in use is one WARNING line and the bot runs
without its web server; a receiver that fails is retried in the background.
"""
from __future__ import annotations

import logging
import secrets
from typing import Any

from tradebot.events import EventBus, RecentEvents
from tradebot.ops.alerts import Alerts, Heartbeat
from tradebot.ops.metrics import CONTENT_TYPE, bot_registry, render
from tradebot.ops.status import BotView
from tradebot.ops.web import WebServer

__all__ = ["Ops"]

log = logging.getLogger(__name__)

GENERATED_TOKEN_BYTES = 24


class Ops:
    """Web server, alerts and heartbeat of one run (each only when its settings ask for it)."""

    def __init__(self, settings: Any, *, events: EventBus, mode: str) -> None:
        self.settings = settings
        self.events = events
        self.mode = mode
        self.recent = RecentEvents()
        self.view: BotView | None = None
        self.web: WebServer | None = None
        self.alerts = Alerts.from_settings(settings, label=mode)
        self.heartbeat: Heartbeat | None = None
        self._token = settings.web_token or secrets.token_urlsafe(GENERATED_TOKEN_BYTES)

    def __enter__(self) -> Ops:
        self.events.subscribe(self.recent)
        if self.alerts is not None:
            self.alerts.start()
            self.events.subscribe(self.alerts.publish)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, *, trader: Any, client: Any, journal: Any) -> None:
        """Serve the bot's view (when WEB_ENABLED) and start the heartbeat (when HEARTBEAT_URL)."""
        self.view = BotView(trader=trader, client=client, journal=journal, settings=self.settings, mode=self.mode,
                            recent=self.recent)
        if self.settings.web_enabled:
            registry = bot_registry(self.view)
            web = WebServer(self.view, host=self.settings.web_host, port=self.settings.web_port, token=self._token,
                            metrics_need_token=not self.settings.web_is_loopback,
                            render_metrics=lambda: render(registry), metrics_content_type=CONTENT_TYPE)
            if web.start():
                self.web = web
                # The one line that shows the token (a generated one changes at every start), shown
                # even when LOG_LEVEL hides INFO: without it the dashboard cannot be opened.
                level = logging.INFO if log.isEnabledFor(logging.INFO) else logging.WARNING
                log.log(level, "dashboard: %s/?token=%s (health %s/health, metrics %s/metrics)", web.base_url,
                        self._token, web.base_url, web.base_url)
        if self.settings.heartbeat_url:
            view = self.view
            self.heartbeat = Heartbeat(self.settings.heartbeat_url, interval_s=self.settings.heartbeat_interval_s,
                                       healthy=lambda: view.health().ok)
            self.heartbeat.start()

    @property
    def dashboard(self) -> str | None:
        """The dashboard's address without its token (for alerts and the startup line)."""
        return None if self.web is None else f"{self.web.base_url}/"

    def close(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.close()
        if self.alerts is not None:
            self.events.unsubscribe(self.alerts.publish)
            self.alerts.close()
        if self.web is not None:
            self.web.stop()
            self.web = None
