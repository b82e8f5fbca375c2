"""Pure tests of the simulator's signing check and resource-pool limiter."""
from __future__ import annotations

import pytest

from kucoin_sim.auth import Credentials, sign, verify
from kucoin_sim.errors import SimError
from kucoin_sim.ratelimit import Charge, RateLimiter

CREDS = Credentials("k", "s", "p")
NOW = 1795519624168
BODY = '{"clientOid":"my-1","side":"buy","symbol":"XBTUSDTM","type":"limit","leverage":1,"size":2,"price":"60000"}'


def _headers(**over: str) -> dict[str, str]:
    h = {"KC-API-KEY": "k", "KC-API-TIMESTAMP": str(NOW), "KC-API-KEY-VERSION": "2",
         "KC-API-PASSPHRASE": "nZc3O87VGIPvYNSPmW35SX4vkKnmgNJz6Qzo/1qI2vI=",
         "KC-API-SIGN": "QI5lawTHm5wioOevISI2emW4bwYxHw8a1Oz2mypK5AI="}
    h.update(over)
    return h


def test_sign_matches_protocol_notes_vectors() -> None:
    assert sign("s", "p") == "nZc3O87VGIPvYNSPmW35SX4vkKnmgNJz6Qzo/1qI2vI="
    assert sign("s", f"{NOW}POST/api/v1/orders{BODY}") == "QI5lawTHm5wioOevISI2emW4bwYxHw8a1Oz2mypK5AI="


def test_verify_accepts_the_vector_request() -> None:
    verify(CREDS, _headers(), method="POST", path="/api/v1/orders", raw_query="", body=BODY, now_ms=NOW + 4000)


@pytest.mark.parametrize(
    ("headers", "now", "code"),
    [
        (_headers(**{"KC-API-SIGN": ""}), NOW, "400001"),
        (_headers(), NOW + 5001, "400002"),
        (_headers(**{"KC-API-TIMESTAMP": "abc"}), NOW, "400002"),
        (_headers(**{"KC-API-KEY": "other"}), NOW, "400003"),
        (_headers(**{"KC-API-PASSPHRASE": sign("s", "wrong")}), NOW, "400004"),
        (_headers(**{"KC-API-SIGN": sign("s", "tampered")}), NOW, "400005"),
    ],
)
def test_verify_rejects_with_kucoin_codes(headers: dict[str, str], now: int, code: str) -> None:
    with pytest.raises(SimError) as err:
        verify(CREDS, headers, method="POST", path="/api/v1/orders", raw_query="", body=BODY, now_ms=now)
    assert (err.value.http_status, err.value.code) == (401, code)


def test_verify_wrong_secret_is_a_bad_signature() -> None:
    other = Credentials("k", "other-secret", "p")
    headers = _headers(**{"KC-API-PASSPHRASE": sign("other-secret", "p")})
    with pytest.raises(SimError) as err:
        verify(other, headers, method="POST", path="/api/v1/orders", raw_query="", body=BODY, now_ms=NOW)
    assert err.value.code == "400005"


def test_verify_query_signed_decoded_or_as_sent() -> None:
    raw = "symbol=XBTUSDTM&startAt=1700000000000&note=a%20b"
    for signed_query in ("symbol=XBTUSDTM&startAt=1700000000000&note=a b", raw):
        sig = sign("s", f"{NOW}GET/api/v1/fills?{signed_query}")
        verify(CREDS, _headers(**{"KC-API-SIGN": sig}), method="GET", path="/api/v1/fills",
               raw_query=raw, body="", now_ms=NOW)


def test_verify_v1_key_takes_plain_passphrase() -> None:
    sig = sign("s", f"{NOW}GET/api/v1/positions")
    verify(CREDS, _headers(**{"KC-API-KEY-VERSION": "1", "KC-API-PASSPHRASE": "p", "KC-API-SIGN": sig}),
           method="GET", path="/api/v1/positions", raw_query="", body="", now_ms=NOW)


def test_ratelimit_window_exhaustion_and_reset() -> None:
    limiter = RateLimiter({"public": 10})
    assert limiter.charge("public", "ip", 4, 1000) == Charge(True, 10, 6, 30_000)
    assert limiter.charge("public", "ip", 6, 11_000) == Charge(True, 10, 0, 20_000)
    assert limiter.charge("public", "ip", 1, 12_000) == Charge(False, 10, 0, 19_000)
    assert limiter.rejections == 1
    assert limiter.charge("public", "other-ip", 3, 12_000) == Charge(True, 10, 7, 30_000)
    assert limiter.charge("public", "ip", 1, 31_000) == Charge(True, 10, 9, 30_000)


def test_ratelimit_headers() -> None:
    assert Charge(True, 2000, 1997, 29990).headers() == {
        "gw-ratelimit-limit": "2000", "gw-ratelimit-remaining": "1997", "gw-ratelimit-reset": "29990"}
