"""KuCoin request signing, checked the way the exchange checks it (protocol notes §4).

KC-API-SIGN = base64(HMAC_SHA256(secret, timestamp + METHOD + path[?query] + body)); for key
versions 2 and 3 KC-API-PASSPHRASE is base64(HMAC_SHA256(secret, passphrase)), for version 1 the
plain passphrase. The query is verified in its percent-decoded form (KuCoin signs the un-encoded
URL) and, for ccxt's benefit, also as received, keeping the parameter order either way.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from .errors import SimError

TIMESTAMP_WINDOW_MS = 5_000  # 400002 beyond this skew

# KuCoin's messages for the auth failures (classic futures docs, error codes 4000xx).
MSG_MISSING = "Please check the header of your request for KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP, KC-API-PASSPHRASE"
MSG_TIMESTAMP = "KC-API-TIMESTAMP Invalid -- Time differs from server time by more than 5 seconds"
MSG_KEY = "KC-API-KEY not exists"
MSG_PASSPHRASE = "Invalid KC-API-PASSPHRASE"
MSG_SIGN = "Invalid KC-API-SIGN"


def sign(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class Credentials:
    """The one API key the simulator accepts."""

    api_key: str
    api_secret: str = field(repr=False)
    api_passphrase: str = field(repr=False)


def verify(
    creds: Credentials,
    headers: Mapping[str, str],
    *,
    method: str,
    path: str,
    raw_query: str,
    body: str,
    now_ms: int,
) -> None:
    """Raise SimError(401, 4000xx) unless the request is signed by `creds` within the time window."""
    key = headers.get("KC-API-KEY")
    signature = headers.get("KC-API-SIGN")
    timestamp = headers.get("KC-API-TIMESTAMP")
    passphrase = headers.get("KC-API-PASSPHRASE")
    if not (key and signature and timestamp and passphrase):
        raise SimError(401, "400001", MSG_MISSING)
    if not timestamp.isdigit() or abs(int(timestamp) - now_ms) > TIMESTAMP_WINDOW_MS:
        raise SimError(401, "400002", MSG_TIMESTAMP)
    if not hmac.compare_digest(key, creds.api_key):
        raise SimError(401, "400003", MSG_KEY)
    version = headers.get("KC-API-KEY-VERSION", "1")
    expected_pass = creds.api_passphrase if version == "1" else sign(creds.api_secret, creds.api_passphrase)
    if not hmac.compare_digest(passphrase, expected_pass):
        raise SimError(401, "400004", MSG_PASSPHRASE)
    prefix = timestamp + method.upper() + path
    candidates = [prefix + body]
    if raw_query:
        candidates = [f"{prefix}?{unquote(raw_query)}{body}", f"{prefix}?{raw_query}{body}"]
    if not any(hmac.compare_digest(signature, sign(creds.api_secret, c)) for c in candidates):
        raise SimError(401, "400005", MSG_SIGN)
