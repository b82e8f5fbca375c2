"""The simulator's REST layer over real HTTP: envelope, signing, rate limits and faults."""
from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from kucoin_sim import Simulator
from tests.helpers import TIMEOUT_S
from tests.sim.wsclient import http, sign_headers

ORDER = {"clientOid": "rest-1", "side": "buy", "symbol": "XBTUSDTM", "type": "market", "leverage": 5, "size": 1}


def test_envelope_and_rate_limit_headers(sim: Simulator) -> None:
    status, headers, body = http(sim, "GET", "/api/v1/timestamp")
    assert status == 200 and body["code"] == "200000"
    assert abs(body["data"] - time.time() * 1000) < 5000
    assert headers["gw-ratelimit-limit"] == "2000"
    assert headers["gw-ratelimit-remaining"] == str(2000 - 2)
    assert 0 < int(headers["gw-ratelimit-reset"]) <= 30_000
    status, _, body = http(sim, "GET", "/api/v1/status")
    assert body["data"] == {"status": "open", "msg": ""}


def test_unknown_path_is_404000(sim: Simulator) -> None:
    status, _, body = http(sim, "GET", "/api/v1/nothing-here")
    assert (status, body["code"]) == (404, "404000")


def test_private_endpoint_needs_headers(sim: Simulator) -> None:
    status, _, body = http(sim, "GET", "/api/v1/account-overview?currency=USDT")
    assert (status, body["code"]) == (401, "400001")


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ({"KC-API-KEY": "not-our-key"}, "400003"),
        ({"KC-API-PASSPHRASE": "wrong"}, "400004"),
        ({"KC-API-SIGN": "AAAA"}, "400005"),
    ],
)
def test_signing_errors_over_http(sim: Simulator, override: dict[str, str], code: str) -> None:
    headers = sign_headers(sim, "GET", "/api/v1/positions", "")
    headers.update(override)
    status, _, body = http(sim, "GET", "/api/v1/positions", headers=headers)
    assert (status, body["code"]) == (401, code)


def test_stale_timestamp_is_400002(sim: Simulator) -> None:
    stale = time.time_ns() // 1_000_000 - 6_000
    headers = sign_headers(sim, "GET", "/api/v1/positions", "", now_ms=stale)
    status, _, body = http(sim, "GET", "/api/v1/positions", headers=headers)
    assert (status, body["code"]) == (401, "400002")


def test_pool_exhaustion_answers_429000_with_headers() -> None:
    with Simulator(seed=2, rate_limit_quotas={"public": 10}) as sim:
        statuses = [http(sim, "GET", "/api/v1/ticker?symbol=XBTUSDTM")[0] for _ in range(5)]
        assert statuses == [200] * 5  # 5 x weight 2 = 10
        status, headers, body = http(sim, "GET", "/api/v1/ticker?symbol=XBTUSDTM")
        assert (status, body["code"]) == (429, "429000")
        assert headers["gw-ratelimit-remaining"] == "0"
        assert int(headers["gw-ratelimit-reset"]) > 0
        assert sim.call(lambda: sim.limiter.rejections) == 1


@pytest.mark.parametrize("with_headers", [True, False])
def test_fail_next_429_with_and_without_headers(sim: Simulator, with_headers: bool) -> None:
    sim.fail_next("GET", "/api/v1/ticker", rate_headers=with_headers)
    status, headers, body = http(sim, "GET", "/api/v1/ticker?symbol=XBTUSDTM")
    assert (status, body["code"]) == (429, "429000")
    assert ("gw-ratelimit-reset" in headers) is with_headers
    assert http(sim, "GET", "/api/v1/ticker?symbol=XBTUSDTM")[0] == 200
    assert sim.faults.failed == 1


def test_fail_next_5xx_does_not_place_the_order(sim: Simulator) -> None:
    sim.fail_next("POST", "/api/v1/orders", status=503, code="500000", msg="Service Unavailable")
    status, _, body = http(sim, "POST", "/api/v1/orders", ORDER, signed=True)
    assert (status, body["code"]) == (503, "500000")
    assert sim.orders() == []


def test_delayed_responses(sim: Simulator) -> None:
    with sim.delay_rest(0.3, "GET", "/api/v1/timestamp"):
        t0 = time.monotonic()
        http(sim, "GET", "/api/v1/timestamp")
        assert time.monotonic() - t0 >= 0.3
    t0 = time.monotonic()
    http(sim, "GET", "/api/v1/timestamp")
    assert time.monotonic() - t0 < 0.3
    assert sim.faults.delayed == 1


def test_lost_response_timeout_places_the_order(sim: Simulator) -> None:
    sim.lose_response("POST", "/api/v1/orders")
    body = '{"clientOid":"lost-1","side":"buy","symbol":"XBTUSDTM","type":"market","leverage":5,"size":1}'
    headers = {"Content-Type": "application/json", **sign_headers(sim, "POST", "/api/v1/orders", body)}
    req = urllib.request.Request(sim.url + "/api/v1/orders", data=body.encode(), method="POST", headers=headers)
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        urllib.request.urlopen(req, timeout=0.5)
    orders = sim.orders()
    assert [o["clientOid"] for o in orders] == ["lost-1"]
    status, _, found = http(sim, "GET", "/api/v1/orders/byClientOid?clientOid=lost-1", signed=True)
    assert status == 200 and found["data"]["clientOid"] == "lost-1"


def test_lost_response_reset_places_the_order(sim: Simulator) -> None:
    sim.lose_response("POST", "/api/v1/orders", mode="reset")
    with pytest.raises((ConnectionError, urllib.error.URLError, http_client_errors())):
        http(sim, "POST", "/api/v1/orders", {**ORDER, "clientOid": "reset-1"}, signed=True)
    assert [o["clientOid"] for o in sim.orders()] == ["reset-1"]


def http_client_errors() -> type[Exception]:
    import http.client

    return http.client.HTTPException


def test_concurrent_clients(sim: Simulator) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            status = http(sim, "GET", "/api/v1/ticker?symbol=ETHUSDTM")[0]
            with lock:
                results.append(status)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT_S * 4)
    assert results == [200] * 80


def test_no_rate_limits_sends_no_rate_limit_headers() -> None:
    with Simulator(seed=2, rate_limits=False, rate_limit_quotas={"public": 4}) as sim:
        for _ in range(5):
            status, headers, _ = http(sim, "GET", "/api/v1/ticker?symbol=XBTUSDTM")
            assert status == 200 and "gw-ratelimit-remaining" not in headers
