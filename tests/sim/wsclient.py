"""A minimal synchronous KuCoin WebSocket test client (websocket-client) for simulator tests."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson
import websocket

from tests.helpers import TIMEOUT_S


def http(sim: Any, method: str, path: str, body: dict | None = None, *, signed: bool = False,
         headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    """One REST call; returns (status, headers, parsed body). Signs like KuCoin when asked."""
    data = json.dumps(body, separators=(",", ":")) if body is not None else ""
    hdrs = {"Content-Type": "application/json"}
    if signed:
        hdrs.update(sign_headers(sim, method, path, data))
    hdrs.update(headers or {})
    req = urllib.request.Request(sim.url + path, data=data.encode() or None, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            return resp.status, dict(resp.headers), orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), orjson.loads(err.read())


def sign_headers(sim: Any, method: str, path: str, body: str, *, now_ms: int | None = None) -> dict[str, str]:
    creds = sim.credentials
    ts = str(now_ms if now_ms is not None else time.time_ns() // 1_000_000)

    def b64(msg: str) -> str:
        return base64.b64encode(hmac.new(creds.api_secret.encode(), msg.encode(), hashlib.sha256).digest()).decode()

    return {"KC-API-KEY": creds.api_key, "KC-API-TIMESTAMP": ts, "KC-API-KEY-VERSION": "2",
            "KC-API-PASSPHRASE": b64(creds.api_passphrase), "KC-API-SIGN": b64(ts + method + path + body)}


class WsClient:
    """Connects through bullet-public (or -private), reads JSON frames with a timeout."""

    def __init__(self, sim: Any, *, private: bool = False, connect_id: str = "test-1") -> None:
        path = "/api/v1/bullet-private" if private else "/api/v1/bullet-public"
        status, _, body = http(sim, "POST", path, signed=private)
        assert status == 200, body
        server = body["data"]["instanceServers"][0]
        self.token = body["data"]["token"]
        self.server = server
        self.url = f"{server['endpoint']}?token={self.token}&connectId={connect_id}"
        self.ws = websocket.create_connection(self.url, timeout=TIMEOUT_S)
        self.next_id = 0

    def send(self, obj: dict) -> None:
        self.ws.send(orjson.dumps(obj).decode())

    def request(self, kind: str, topic: str | None = None, **extra: Any) -> str:
        self.next_id += 1
        msg: dict[str, Any] = {"id": str(self.next_id), "type": kind, **extra}
        if topic is not None:
            msg["topic"] = topic
            msg.setdefault("response", True)
        self.send(msg)
        return str(self.next_id)

    def recv(self) -> dict:
        return orjson.loads(self.ws.recv())

    def recv_until(self, predicate: Callable[[dict], bool], timeout_s: float = TIMEOUT_S,
                   what: str = "frame") -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                frame = self.recv()
            except websocket.WebSocketTimeoutException:
                break
            if predicate(frame):
                return frame
        raise AssertionError(f"no {what} within {timeout_s:.1f}s")

    def subscribe(self, topic: str, **extra: Any) -> dict:
        req_id = self.request("subscribe", topic, **extra)
        return self.recv_until(lambda f: f.get("id") == req_id and f["type"] in ("ack", "error"),
                               what=f"ack of {topic}")

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> "WsClient":
        welcome = self.recv()
        assert welcome["type"] == "welcome", welcome
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
