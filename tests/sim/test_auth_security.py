"""The simulator refuses forged signatures, stale timestamps and replayed requests, and ccxt's
and our own clients' normal traffic never trips the replay check.

Pure tests of ``verify``/``ReplayGuard`` first, then loopback tests against one simulator.
"""
from __future__ import annotations

import threading
import urllib.error
import urllib.request
from operator import methodcaller
from typing import Any

import ccxt
import orjson
import pytest

from api_priority import Priority
from kucoin_futures.rest.ccxt_seam import UniqueNonce
from kucoin_futures.rest.gateway import RestGateway, build_exchange
from kucoin_sim import Simulator
from kucoin_sim.auth import TIMESTAMP_WINDOW_MS, Credentials, ReplayGuard, sign, verify
from kucoin_sim.errors import SimError
from tests.helpers import TIMEOUT_S, ccxt_config

CREDS = Credentials("k", "s", "p")
NOW = 1795519624168
PASSPHRASE_V2 = sign("s", "p")
ORDERS = "/api/v1/orders"
ORDER_BODY = ('{"clientOid":"sec-1","side":"buy","symbol":"XBTUSDTM","type":"limit","leverage":1,"size":1,'
              '"price":"1000"}')


def _signed(method: str, path: str, body: str = "", *, ts: int = NOW, secret: str = "s",
            query: str = "") -> dict[str, str]:
    endpoint = f"{path}?{query}" if query else path
    return {"KC-API-KEY": "k", "KC-API-TIMESTAMP": str(ts), "KC-API-KEY-VERSION": "2",
            "KC-API-PASSPHRASE": PASSPHRASE_V2, "KC-API-SIGN": sign(secret, f"{ts}{method}{endpoint}{body}")}


def _verify(headers: dict[str, str], guard: ReplayGuard | None, *, method: str = "POST", path: str = ORDERS,
            raw_query: str = "", body: str = ORDER_BODY, now: int = NOW) -> str | None:
    """Return the SimError code verify raises, or None when it accepts the request."""
    try:
        verify(CREDS, headers, method=method, path=path, raw_query=raw_query, body=body, now_ms=now,
               replays=guard)
    except SimError as exc:
        assert exc.http_status == 401
        return exc.code
    return None


# -- pure ------------------------------------------------------------------------------------------
def test_replay_guard_refuses_the_second_copy_of_a_signed_request() -> None:
    guard = ReplayGuard()
    headers = _signed("POST", ORDERS, ORDER_BODY)
    assert [_verify(headers, guard), _verify(headers, guard), _verify(dict(headers), guard, now=NOW + 4000)] \
        == [None, "400002", "400002"]
    assert (guard.replays, len(guard)) == (2, 1)


def test_replay_guard_admits_different_requests_in_the_same_millisecond() -> None:
    """Same timestamp, another body or path: another signature, so no replay."""
    guard = ReplayGuard()
    other_body = ORDER_BODY.replace("sec-1", "sec-2")
    results = [_verify(_signed("POST", ORDERS, ORDER_BODY), guard),
               _verify(_signed("POST", ORDERS, other_body), guard, body=other_body),
               _verify(_signed("GET", "/api/v1/positions"), guard, method="GET", path="/api/v1/positions", body=""),
               _verify(_signed("GET", "/api/v1/position", query="symbol=XBTUSDTM"), guard, method="GET",
                       path="/api/v1/position", raw_query="symbol=XBTUSDTM", body="")]
    assert results == [None] * 4
    assert (guard.replays, len(guard)) == (0, 4)


def test_replay_guard_catches_a_copy_with_its_query_re_encoded() -> None:
    """Both the decoded and the as-sent query verify, so the copy must be caught by its signature."""
    guard = ReplayGuard()
    headers = _signed("GET", "/api/v1/position", query="symbol=XBTUSDTM")
    first = _verify(headers, guard, method="GET", path="/api/v1/position", raw_query="symbol=XBTUSDTM", body="")
    copy = _verify(headers, guard, method="GET", path="/api/v1/position", raw_query="symbol=%58BTUSDTM", body="")
    assert (first, copy) == (None, "400002")


def test_replay_guard_remembers_only_verified_requests() -> None:
    """A forged request with a genuine one's timestamp must not block the genuine one."""
    guard = ReplayGuard()
    genuine = _signed("POST", ORDERS, ORDER_BODY)
    forged = {**genuine, "KC-API-SIGN": sign("wrong-secret", f"{NOW}POST{ORDERS}{ORDER_BODY}")}
    stale = _signed("POST", ORDERS, ORDER_BODY, ts=NOW - TIMESTAMP_WINDOW_MS - 1)
    assert [_verify(forged, guard), _verify(stale, guard), len(guard), _verify(genuine, guard)] \
        == ["400005", "400002", 0, None]


def test_replay_guard_forgets_entries_once_out_of_the_window() -> None:
    guard = ReplayGuard(window_ms=5_000)
    guard.admit("k", NOW, "sig-a", now_ms=NOW)
    guard.admit("k", NOW + 3_000, "sig-b", now_ms=NOW + 3_000)
    guard.admit("k", NOW + 3_001, "sig-c", now_ms=NOW + 5_001)  # sig-a's timestamp is now out of the window
    guard.admit("k", NOW, "sig-a", now_ms=NOW + 5_001)  # (verify's window check refuses such a copy first)
    with pytest.raises(SimError) as again:
        guard.admit("k", NOW + 3_000, "sig-b", now_ms=NOW + 8_000)
    assert (again.value.code, len(guard), guard.replays) == ("400002", 2, 1)


def test_replay_guard_is_bounded() -> None:
    guard = ReplayGuard(max_entries=3)
    for i in range(5):
        guard.admit("k", NOW + i, f"sig-{i}", now_ms=NOW)
    guard.admit("k", NOW, "sig-0", now_ms=NOW)  # the oldest went first: admitted (and dropped) again
    assert len(guard) == 3
    with pytest.raises(SimError):
        guard.admit("k", NOW + 4, "sig-4", now_ms=NOW)


@pytest.mark.parametrize(("header", "value", "code"), [
    ("KC-API-TIMESTAMP", "¹⁷⁹⁵⁵¹⁹⁶²⁴¹⁶⁸", "400002"),  # str.isdigit() says yes, int() says no
    ("KC-API-TIMESTAMP", "١٧٩٥٥١٩٦٢٤١٦٨", "400002"),  # Arabic-Indic digits: int() would read them
    ("KC-API-TIMESTAMP", str(NOW + TIMESTAMP_WINDOW_MS + 1), "400002"),  # from the future
    ("KC-API-KEY", "kä", "400003"),  # compare_digest raises TypeError on non-ASCII str
    ("KC-API-PASSPHRASE", "pä", "400004"),
    ("KC-API-SIGN", "sigä", "400005"),
])
def test_verify_refuses_odd_header_values_with_kucoin_codes(header: str, value: str, code: str) -> None:
    headers = {**_signed("POST", ORDERS, ORDER_BODY), header: value}
    assert _verify(headers, ReplayGuard()) == code


# -- loopback --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim():
    with Simulator(seed=11) as simulator:
        yield simulator


def _sim_headers(sim: Simulator, method: str, endpoint: str, body: str = "", *, ts: int | None = None,
                 secret: str | None = None) -> dict[str, str]:
    creds = sim.credentials
    ts = ts if ts is not None else sim.now_ms()
    key = secret if secret is not None else creds.api_secret
    return {"KC-API-KEY": creds.api_key, "KC-API-TIMESTAMP": str(ts), "KC-API-KEY-VERSION": "2",
            "KC-API-PASSPHRASE": sign(creds.api_secret, creds.api_passphrase),
            "KC-API-SIGN": sign(key, f"{ts}{method}{endpoint}{body}"), "Content-Type": "application/json"}


def _send(sim: Simulator, method: str, endpoint: str, headers: dict[str, str],
          body: bytes = b"") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(sim.url + endpoint, data=body or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read())


def _order_count(sim: Simulator) -> int:
    return len(sim.orders())


def test_sim_refuses_a_forged_signature_and_places_nothing(sim: Simulator) -> None:
    before = _order_count(sim)
    body = ORDER_BODY.replace("sec-1", "forged-1")
    status, answer = _send(sim, "POST", ORDERS, _sim_headers(sim, "POST", ORDERS, body, secret="wrong-secret"),
                           body.encode())
    assert (status, answer["code"], _order_count(sim)) == (401, "400005", before)


@pytest.mark.parametrize("skew_ms", [-TIMESTAMP_WINDOW_MS - 1000, TIMESTAMP_WINDOW_MS + 1000])
def test_sim_refuses_a_timestamp_outside_the_window(sim: Simulator, skew_ms: int) -> None:
    before = _order_count(sim)
    body = ORDER_BODY.replace("sec-1", f"stale{skew_ms}")
    headers = _sim_headers(sim, "POST", ORDERS, body, ts=sim.now_ms() + skew_ms)
    status, answer = _send(sim, "POST", ORDERS, headers, body.encode())
    assert (status, answer["code"], _order_count(sim)) == (401, "400002", before)


def test_sim_accepts_a_timestamp_inside_the_window(sim: Simulator) -> None:
    headers = _sim_headers(sim, "GET", "/api/v1/positions", ts=sim.now_ms() - TIMESTAMP_WINDOW_MS + 1000)
    assert _send(sim, "GET", "/api/v1/positions", headers)[0] == 200


def test_sim_refuses_a_replayed_order_and_places_it_once(sim: Simulator) -> None:
    before, replays_before = _order_count(sim), sim.replays.replays
    body = ORDER_BODY.replace("sec-1", "replayed-1")
    headers = _sim_headers(sim, "POST", ORDERS, body)
    first = _send(sim, "POST", ORDERS, headers, body.encode())
    second = _send(sim, "POST", ORDERS, headers, body.encode())
    assert (first[0], first[1]["code"]) == (200, "200000")
    assert (second[0], second[1]["code"]) == (401, "400002")
    assert (_order_count(sim) - before, sim.replays.replays - replays_before) == (1, 1)


def test_sim_refuses_a_replayed_get_with_its_query_re_encoded(sim: Simulator) -> None:
    headers = _sim_headers(sim, "GET", "/api/v1/position?symbol=XBTUSDTM")
    first = _send(sim, "GET", "/api/v1/position?symbol=XBTUSDTM", headers)
    copy = _send(sim, "GET", "/api/v1/position?symbol=%58BTUSDTM", headers)
    assert (first[0], copy[0], copy[1]["code"]) == (200, 401, "400002")


def test_sim_answers_a_body_that_is_not_utf8_with_a_kucoin_error(sim: Simulator) -> None:
    """Signed over the bytes sent; the sim used to fail with HTTP 500 decoding it."""
    ts = sim.now_ms()
    headers = _sim_headers(sim, "POST", ORDERS, "\udcff", ts=ts)
    assert _send(sim, "POST", ORDERS, headers, b"\xff") == (400, {"code": "400100", "msg": "Invalid request body"})


def test_ccxt_with_a_repeated_timestamp_trips_the_replay_check(sim: Simulator) -> None:
    """The check is live for ccxt too: a frozen clock makes two identical GETs one signed request."""
    exchange = ccxt.kucoinfutures(ccxt_config(sim, enableRateLimit=False))
    frozen_ms = sim.now_ms()
    exchange.nonce = lambda: frozen_ms
    exchange.load_markets()
    exchange.fetch_positions()
    with pytest.raises(ccxt.InvalidNonce):
        exchange.fetch_positions()


def test_unique_nonce_keeps_identical_requests_apart_on_a_frozen_clock(sim: Simulator) -> None:
    exchange = ccxt.kucoinfutures(ccxt_config(sim, enableRateLimit=False))
    frozen_ms = sim.now_ms()
    exchange.nonce = lambda: frozen_ms
    UniqueNonce.install(exchange)
    exchange.load_markets()
    positions = [exchange.fetch_positions() for _ in range(3)]
    assert positions == [[], [], []]


def test_gateway_burst_of_identical_reads_never_trips_the_replay_check(sim: Simulator) -> None:
    """Our exchange on a frozen clock, four worker threads sending the same signed GET: all answered
    (prepare_exchange gives every request its own KC-API-TIMESTAMP)."""
    replays_before = sim.replays.replays
    creds = sim.credentials
    exchange = build_exchange(sim.url, api_key=creds.api_key, api_secret=creds.api_secret,
                              api_passphrase=creds.api_passphrase)
    frozen_ms = sim.now_ms()
    exchange.nonce = lambda: frozen_ms  # what prepare_exchange (at start) finds and wraps
    gateway = RestGateway(exchange)
    gateway.start()
    try:
        futures = [gateway.submit(Priority.HIGH, "fetch_positions", methodcaller("fetch_positions"))
                   for _ in range(40)]
        results = [f.result(TIMEOUT_S) for f in futures]
    finally:
        gateway.close()
    assert (results, sim.replays.replays - replays_before) == ([[]] * 40, 0)


def test_unique_nonce_is_strictly_increasing_across_threads() -> None:
    nonce = UniqueNonce(lambda: 1_000.0)  # a clock that stands still, then goes back
    seen: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        values = [nonce() for _ in range(200)]
        with lock:
            seen.extend(values)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    later = UniqueNonce(iter([5_000.0, 4_000.0, 6_000.0]).__next__)
    assert sorted(seen) == list(range(1_000, 1_800))
    assert [later(), later(), later()] == [5_000, 5_001, 6_000]
