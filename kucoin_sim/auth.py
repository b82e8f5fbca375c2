"""KuCoin request signing, checked the way the exchange checks it (protocol notes §4).

KC-API-SIGN = base64(HMAC_SHA256(secret, timestamp + METHOD + path[?query] + body)); for key
versions 2 and 3 KC-API-PASSPHRASE is base64(HMAC_SHA256(secret, passphrase)), for version 1 the
plain passphrase. The query is verified in its percent-decoded form (KuCoin signs the un-encoded
URL) and, for ccxt's benefit, also as received, keeping the parameter order either way.

The checks, in KuCoin's order: headers present (400001), KC-API-TIMESTAMP a ms epoch within 5 s
of the server's clock either way (400002), key (400003), passphrase (400004), signature (400005).
Then, given a ``ReplayGuard``, a replay: a request whose (key, timestamp, signature) was already
accepted is refused. KuCoin documents no replay check (the protocol notes and its docs name only
the 5 s window), so the code is the simulator's choice: 400002, the nonce error (ccxt maps it to
InvalidNonce, "this nonce was used"). The signature is an HMAC over timestamp, method, path, query
and body, so two accepted requests with the same signature are the same signed request, even
when the query was re-encoded (both encodings pass the check above): a client sending two
*different* requests in one millisecond never trips it, two identical ones would.
"""
from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from .errors import SimError

TIMESTAMP_WINDOW_MS = 5_000  # 400002 beyond this skew
REPLAY_MAX_ENTRIES = 100_000  # signed requests remembered at most (the window's, normally far fewer)

# KuCoin's messages for the auth failures (classic futures docs, error codes 4000xx).
MSG_MISSING = "Please check the header of your request for KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP, KC-API-PASSPHRASE"
MSG_TIMESTAMP = "KC-API-TIMESTAMP Invalid -- Time differs from server time by more than 5 seconds"
MSG_KEY = "KC-API-KEY not exists"
MSG_PASSPHRASE = "Invalid KC-API-PASSPHRASE"
MSG_SIGN = "Invalid KC-API-SIGN"
MSG_REPLAY = "KC-API-TIMESTAMP Invalid -- this signed request was already received"  # the simulator's


def sign(secret: str, message: str) -> str:
    # surrogateescape: a header or body that was not valid UTF-8 is signed as the bytes received
    digest = hmac.new(secret.encode(), message.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class Credentials:
    """The one API key the simulator accepts."""

    api_key: str
    api_secret: str = field(repr=False)
    api_passphrase: str = field(repr=False)


def _same(received: str, expected: str) -> bool:
    # As bytes: compare_digest raises TypeError for a str with non-ASCII characters, which a
    # header may hold (aiohttp decodes them; surrogateescape keeps undecodable bytes comparable).
    return hmac.compare_digest(received.encode("utf-8", "surrogateescape"), expected.encode())


class ReplayGuard:
    """The signed requests accepted within the timestamp window, to refuse a second copy of one.

    Bounded two ways: an entry is forgotten once its timestamp is out of the window (a copy would
    fail the 400002 window check anyway), and past ``max_entries`` the oldest are forgotten first
    (those closest to leaving the window). Not thread-safe: the simulator's loop thread owns it.
    """

    def __init__(self, *, window_ms: int = TIMESTAMP_WINDOW_MS, max_entries: int = REPLAY_MAX_ENTRIES) -> None:
        self._window_ms = window_ms
        self._max_entries = max_entries
        self._seen: set[tuple[str, int, str]] = set()
        self._by_age: list[tuple[int, tuple[str, int, str]]] = []  # heap: oldest timestamp first
        self.replays = 0  # copies refused so far

    def __len__(self) -> int:
        return len(self._seen)

    def admit(self, key: str, timestamp_ms: int, signature: str, *, now_ms: int) -> None:
        """Remember a verified request; raise SimError(401, 400002) if it was seen before."""
        while self._by_age and self._by_age[0][0] < now_ms - self._window_ms:
            self._seen.discard(heapq.heappop(self._by_age)[1])
        entry = (key, timestamp_ms, signature)
        if entry in self._seen:
            self.replays += 1
            raise SimError(401, "400002", MSG_REPLAY)
        self._seen.add(entry)
        heapq.heappush(self._by_age, (timestamp_ms, entry))
        while len(self._by_age) > self._max_entries:
            self._seen.discard(heapq.heappop(self._by_age)[1])


def verify(
    creds: Credentials,
    headers: Mapping[str, str],
    *,
    method: str,
    path: str,
    raw_query: str,
    body: str,
    now_ms: int,
    replays: ReplayGuard | None = None,
) -> None:
    """Raise SimError(401, 4000xx) unless the request is signed by `creds` within the time window
    (and, given `replays`, was not accepted before; only a request that passed every other check
    is remembered, so a forged one can never block a genuine one)."""
    key = headers.get("KC-API-KEY")
    signature = headers.get("KC-API-SIGN")
    timestamp = headers.get("KC-API-TIMESTAMP")
    passphrase = headers.get("KC-API-PASSPHRASE")
    if not (key and signature and timestamp and passphrase):
        raise SimError(401, "400001", MSG_MISSING)
    # isascii: str.isdigit() also accepts "²" or "٣", which int() then refuses or reads.
    if not (timestamp.isascii() and timestamp.isdigit()) or abs(int(timestamp) - now_ms) > TIMESTAMP_WINDOW_MS:
        raise SimError(401, "400002", MSG_TIMESTAMP)
    if not _same(key, creds.api_key):
        raise SimError(401, "400003", MSG_KEY)
    version = headers.get("KC-API-KEY-VERSION", "1")
    expected_pass = creds.api_passphrase if version == "1" else sign(creds.api_secret, creds.api_passphrase)
    if not _same(passphrase, expected_pass):
        raise SimError(401, "400004", MSG_PASSPHRASE)
    prefix = timestamp + method.upper() + path
    candidates = [prefix + body]
    if raw_query:
        candidates = [f"{prefix}?{unquote(raw_query)}{body}", f"{prefix}?{raw_query}{body}"]
    if not any(_same(signature, sign(creds.api_secret, c)) for c in candidates):
        raise SimError(401, "400005", MSG_SIGN)
    if replays is not None:
        replays.admit(key, int(timestamp), signature, now_ms=now_ms)
