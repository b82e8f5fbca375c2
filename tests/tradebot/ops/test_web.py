"""The web server against a fake bot view over loopback: status codes and JSON of each endpoint,
401 without the token, the dashboard's token-to-cookie step, a port in use, no token in a log."""
from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import TIMEOUT_S, wait_until
from tradebot.journal import Journal
from tradebot.ops.control import Controls
from tradebot.ops.status import Verdict
from tradebot.ops.web import COOKIE, WebServer

TOKEN = "test-token-0123456789abcdef"
BTC = "BTC/USDT:USDT"


class FakeLoops:
    running = True


class FakeTrader:
    def __init__(self, journal: Journal) -> None:
        self.controls = Controls(journal)
        self.holdings = {BTC: object()}
        self.loops = FakeLoops()


class FakeView:
    mode = "paper"

    def __init__(self, journal: Journal) -> None:
        self.trader = FakeTrader(journal)
        self.verdict = Verdict(True, (), {"running": True})

    def health(self) -> Verdict:
        return self.verdict

    def uptime_s(self) -> float:
        return 12.0

    def status(self) -> dict[str, Any]:
        return {"mode": self.mode, "positions": [{"symbol": BTC}], "entries_stopped": self.trader.controls.entries_stopped}

    def trades(self, limit: int) -> list[dict[str, Any]]:
        return [{"symbol": BTC, "n": i} for i in range(min(limit, 3))]


def _server(view: FakeView, *, port: int = 0, metrics_need_token: bool = False) -> WebServer:
    return WebServer(view, host="127.0.0.1", port=port, token=TOKEN, metrics_need_token=metrics_need_token,
                     render_metrics=lambda: b"# TYPE up gauge\nup 1.0\n", metrics_content_type="text/plain")


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[WebServer, FakeView]]:
    with Journal(str(tmp_path / "j.sqlite3")) as journal:
        view = FakeView(journal)
        server = _server(view)
        assert server.start()
        try:
            yield server, view
        finally:
            server.stop()


def call(server: WebServer, method: str, path: str, *, token: str | None = None, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT_S * 3)
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=sent)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    kind = response.getheader("Content-Type", "")
    return response.status, dict(response.getheaders()), json.loads(raw) if "json" in kind else raw.decode()


def test_health_is_public_and_says_why_it_is_not_ok(served) -> None:
    server, view = served
    assert call(server, "GET", "/health")[::2] == (200, {"status": "ok", "reasons": [], "mode": "paper",
                                                          "uptime_s": 12.0, "checks": {"running": True}})
    view.verdict = Verdict(False, ("stale data: 3 of 3 ticker feeds older than 10s",), {"running": True})
    status, _, body = call(server, "GET", "/health")
    assert (status, body["status"], body["reasons"]) == (503, "unhealthy", ["stale data: 3 of 3 ticker feeds older than 10s"])


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/v1/status"), ("GET", "/api/v1/trades"),
                                              ("POST", "/api/v1/stopentry"), ("POST", "/api/v1/startentry"),
                                              ("POST", "/api/v1/forceexit")])
def test_api_needs_the_bearer_token(served, method: str, path: str) -> None:
    server, view = served
    for token in (None, "wrong-token-0123456789", TOKEN[:-1]):
        status, headers, body = call(server, method, path, token=token, body={"symbol": BTC})
        assert (status, headers.get("WWW-Authenticate")) == (401, "Bearer") and "unauthorized" in body["error"]
    assert view.trader.controls.entries_stopped is False  # nothing happened


def test_status_and_trades_with_the_token(served) -> None:
    server, _ = served
    assert call(server, "GET", "/api/v1/status", token=TOKEN)[::2] == (
        200, {"mode": "paper", "positions": [{"symbol": BTC}], "entries_stopped": False})
    assert call(server, "GET", "/api/v1/trades?limit=2", token=TOKEN)[::2] == (
        200, {"trades": [{"symbol": BTC, "n": 0}, {"symbol": BTC, "n": 1}], "count": 2})
    assert call(server, "GET", "/api/v1/trades?limit=0", token=TOKEN)[0] == 400
    assert call(server, "GET", "/api/v1/trades?limit=x", token=TOKEN)[0] == 400


def test_stopentry_and_startentry_switch_and_are_journaled(served) -> None:
    server, view = served
    assert call(server, "POST", "/api/v1/stopentry", token=TOKEN)[::2] == (200, {"entries_stopped": True, "changed": True})
    assert call(server, "POST", "/api/v1/stopentry", token=TOKEN)[::2] == (200, {"entries_stopped": True, "changed": False})
    assert view.trader.controls.entries_stopped is True
    assert call(server, "POST", "/api/v1/startentry", token=TOKEN)[::2] == (200, {"entries_stopped": False, "changed": True})
    journal = view.trader.controls._journal
    assert [(a, d) for _, a, d in journal.controls()] == [("startentry", "web 127.0.0.1"), ("stopentry", "web 127.0.0.1"),
                                                         ("stopentry", "web 127.0.0.1")]


def test_forceexit_waits_for_the_traders_outcome(served) -> None:
    server, view = served
    answer: list[Any] = []
    asking = threading.Thread(target=lambda: answer.append(call(server, "POST", "/api/v1/forceexit", token=TOKEN,
                                                                body={"symbol": BTC})))
    asking.start()
    taken: list[Any] = []
    wait_until(lambda: taken.extend(view.trader.controls.take_exit_requests()) or taken, what="the request")
    taken[0].resolve("closed")  # what the trader's protection thread does
    asking.join(TIMEOUT_S)
    assert [r.symbol for r in taken] == [BTC] and answer[0][::2] == (200, {"symbol": BTC, "result": "closed"})
    assert view.trader.controls._journal.controls()[0][1:] == ("forceexit", f"web 127.0.0.1: {BTC}")


@pytest.mark.parametrize(("body", "status"), [({"symbol": "ETH/USDT:USDT"}, 404), ({}, 400), ({"symbol": 3}, 400),
                                              ("not an object", 400)])
def test_forceexit_refuses_a_bad_request(served, body: Any, status: int) -> None:
    server, view = served
    assert call(server, "POST", "/api/v1/forceexit", token=TOKEN, body=body)[0] == status
    assert view.trader.controls.take_exit_requests() == []


def test_forceexit_while_the_loop_is_not_running_is_503(served) -> None:
    server, view = served
    view.trader.loops.running = False
    assert call(server, "POST", "/api/v1/forceexit", token=TOKEN, body={"symbol": BTC})[0] == 503


def test_metrics_need_no_token_on_loopback_but_do_elsewhere(tmp_path) -> None:
    with Journal(str(tmp_path / "j.sqlite3")) as journal:
        open_server, guarded = _server(FakeView(journal)), _server(FakeView(journal), metrics_need_token=True)
        assert open_server.start() and guarded.start()
        try:
            assert call(open_server, "GET", "/metrics")[::2] == (200, "# TYPE up gauge\nup 1.0\n")
            assert call(guarded, "GET", "/metrics")[0] == 401
            assert call(guarded, "GET", "/metrics", token=TOKEN)[0] == 200
        finally:
            open_server.stop()
            guarded.stop()


def test_dashboard_token_becomes_a_cookie_and_leaves_url_and_logs(served, caplog: pytest.LogCaptureFixture) -> None:
    server, _ = served
    with caplog.at_level(logging.DEBUG, logger="tradebot.ops.web"):
        status, headers, _ = call(server, "GET", f"/?token={TOKEN}")
        cookie = headers["Set-Cookie"]
        page = call(server, "GET", "/", headers={"Cookie": cookie.split(";")[0]})
        refused = [call(server, "GET", path)[0] for path in ("/", "/?token=wrong-token-0123456789")]
    assert (status, headers["Location"]) == (303, "/")
    assert cookie.startswith(f"{COOKIE}={TOKEN};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert page[0] == 200 and f'<meta name="api-token" content="{TOKEN}">' in page[2]
    assert re.findall(r'(?:src|href)="([^"]*)"', page[2]) == ["data:,"]  # the icon; nothing from elsewhere
    assert page[1]["Content-Security-Policy"].startswith("default-src 'none'")
    assert refused == [401, 401]
    lines = [r.getMessage() for r in caplog.records]
    assert "GET / 303" in " ".join(lines) and all(TOKEN not in line and "token=" not in line for line in lines)


def test_a_port_in_use_is_one_line_and_no_server(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken, Journal(str(tmp_path / "j.sqlite3")) as journal:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = _server(FakeView(journal), port=port)
        with caplog.at_level(logging.INFO, logger="tradebot.ops.web"):
            started = server.start()
        server.stop()
    assert started is False and server.port is None
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert caplog.records[0].getMessage() == (f"web server not started: 127.0.0.1:{port} is in use (another bot?): "
                                              "trading on without it")


def test_stop_returns_within_a_second_while_a_forceexit_still_waits(served) -> None:
    server, view = served
    answers: list[Any] = []

    def ask() -> None:
        try:
            answers.append(call(server, "POST", "/api/v1/forceexit", token=TOKEN, body={"symbol": BTC}))
        except (ConnectionError, http.client.HTTPException) as exc:
            answers.append(type(exc).__name__)

    asking = threading.Thread(target=ask)
    asking.start()
    taken: list[Any] = []
    wait_until(lambda: taken.extend(view.trader.controls.take_exit_requests()) or taken, what="the request")
    t0 = time.monotonic()
    server.stop()  # the trader never answers: the request is dropped, not waited for (10 s)
    stopped_s = time.monotonic() - t0
    asking.join(TIMEOUT_S)
    assert stopped_s < 2.0 and answers == ["RemoteDisconnected"]
