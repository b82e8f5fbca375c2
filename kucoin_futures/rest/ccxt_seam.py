"""The seam to ccxt: what we keep of each HTTP response, log redaction, a KC-API-TIMESTAMP that
never repeats, and ccxt's exceptions mapped onto our tree in one place.

``translate_ccxt_error`` is a pure function; ``map_ccxt_errors`` is the context manager that
applies it (httpx's ``map_httpcore_exceptions``). First match wins; "order" means an operation
that places or cancels an order (``places_order=True``)::

    ccxt                                         ours
    RateLimitExceeded, DDoSProtection            RateLimited (retry_after_s: gw-ratelimit-reset, or None)
    AuthenticationError (+ subclasses),
      InvalidNonce (400002, clock skew)          AuthError (ccxt files InvalidNonce under NetworkError)
    OrderNotFound                                OrderNotFound (a definitive refusal)
    NetworkError, BadResponse, any non-Exchange
      error, HTTP >= 500 without an envelope     order: OrderOutcomeUnknown; read: TransportError
                                                 (BadResponse: ProtocolError)
    other ExchangeError with a KuCoin envelope   error_for_code(code, msg) (a 5xx code: as above)
    other ExchangeError, no response             InvalidArgument (ccxt refused before sending)
    other ExchangeError, 4xx without envelope    InsufficientFunds / InvalidOrder / ExchangeRejected

Messages are built from the operation, KuCoin's code and msg and the HTTP status only, never from
``str(exc)`` of a network error; the ccxt exception stays reachable as ``__cause__``. Request
headers (KC-API-KEY, -SIGN, -PASSPHRASE) never reach a message: ccxt does not put them in its
exceptions, and its DEBUG log lines, which do print them, pass through ``RedactingLogger``.

``OrderNotFound`` (an ``ExchangeRejected``: KuCoin 100001, or a cancel of an unknown id) and
``OrderNotPlaced`` (a ``TransportError``) live in kucoin_errors.py with the rest of the tree; they
are re-exported here for existing ``from kucoin_ccxt import OrderNotFound`` imports.
"""
from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import ccxt
import orjson

from kucoin_futures.errors import OrderNotFound, OrderNotPlaced
from kucoin_futures.errors import (
    AuthError,
    ExchangeRejected,
    InsufficientFunds,
    InvalidArgument,
    InvalidOrder,
    KuCoinError,
    OrderOutcomeUnknown,
    ProtocolError,
    RateLimited,
    TransportError,
    error_for_code,
)
from kucoin_futures.protocol.wire import SUCCESS_CODE, redact_url

__all__ = [
    "HttpResponse", "OrderNotFound", "OrderNotPlaced", "RateLimitHeaders", "RedactingLogger",
    "ResponseTap", "UniqueNonce", "map_ccxt_errors", "parse_http_response", "parse_rate_limit_headers",
    "redact", "translate_ccxt_error",
]

log = logging.getLogger(__name__)

_SUCCESS_PREFIX = f'{{"code":"{SUCCESS_CODE}"'  # KuCoin's own serialisation; others are parsed in full
MAX_MESSAGE_CHARS = 200
# Request headers that carry or derive from a credential (protocol notes section 4).
SENSITIVE_HEADERS = frozenset({"kc-api-key", "kc-api-sign", "kc-api-passphrase", "kc-api-partner-sign"})
_TOKEN_RE = re.compile(r'("token"\s*:\s*")[^"]*(")')  # a bullet response's WebSocket token
HEADER_LIMIT = "gw-ratelimit-limit"  # pool quota (protocol notes section 5.2)
HEADER_REMAINING = "gw-ratelimit-remaining"
HEADER_RESET = "gw-ratelimit-reset"  # milliseconds until the pool's window resets


# -- What we keep of a response ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    """The gw-ratelimit-* values of one response."""

    limit: int
    remaining: int
    reset_ms: int


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One HTTP response: status, KuCoin's error code and message if any, rate-limit headers."""

    http_status: int
    code: str | None  # the envelope's code unless it is a success; None for non-envelope bodies
    message: str
    rate_limit: RateLimitHeaders | None


def parse_rate_limit_headers(headers: Mapping[str, str]) -> RateLimitHeaders | None:
    """Return the gw-ratelimit-* values, or None if any is missing or malformed."""
    lowered = {str(name).lower(): value for name, value in headers.items()}
    try:
        values = [int(lowered[name]) for name in (HEADER_LIMIT, HEADER_REMAINING, HEADER_RESET)]
    except (KeyError, TypeError, ValueError):
        return None
    limit, remaining, reset_ms = values
    if limit < 1 or remaining < 0 or reset_ms < 0:
        return None
    return RateLimitHeaders(limit=limit, remaining=min(remaining, limit), reset_ms=reset_ms)


def parse_http_response(http_status: int, headers: Mapping[str, str], body: str) -> HttpResponse:
    """Return what we keep of a response; never raises (it runs inside ccxt's fetch)."""
    code: str | None = None
    message = ""
    if not body.startswith(_SUCCESS_PREFIX):
        try:
            envelope = orjson.loads(body)
        except orjson.JSONDecodeError:
            envelope = None
        if isinstance(envelope, dict) and isinstance(envelope.get("code"), str):
            if envelope["code"] != SUCCESS_CODE:
                code = envelope["code"]
                msg = envelope.get("msg")
                message = msg[:MAX_MESSAGE_CHARS] if isinstance(msg, str) else ""
    return HttpResponse(http_status, code, message, parse_rate_limit_headers(headers))


class ResponseTap:
    """Remember the last HTTP response ccxt received on each thread.

    Installed as the exchange's ``on_rest_response`` hook, which ccxt calls on the requesting
    thread for every response, errors included. ccxt's own ``last_response_headers`` is one
    attribute per exchange object, which our worker threads would race on.
    """

    def __init__(self, inner: Callable[..., Any], *, sees_sends: bool = True) -> None:
        self._inner = inner
        self._local = threading.local()
        self._sees_sends = sees_sends  # False: sending() is never called, so every call may have sent

    def sending(self) -> None:
        """Note that this thread's call is about to put a request on the wire."""
        self._local.sent = True

    def sent(self) -> bool:
        """Whether this thread's call may have sent a request since ``reset()``."""
        return getattr(self._local, "sent", False) or not self._sees_sends

    def __call__(self, code: int, reason: str, url: str, method: str, response_headers: Any,
                 response_body: str, request_headers: Any, request_body: Any) -> Any:
        self._local.response = parse_http_response(code, response_headers, response_body)
        return self._inner(code, reason, url, method, response_headers, response_body,
                           request_headers, request_body)

    def reset(self) -> None:
        """Forget this thread's last response and sending (call before each ccxt call)."""
        self._local.response = None
        self._local.sent = False

    def record(self, http_status: int, headers: Mapping[str, str], body: bytes) -> None:
        """Remember a response received outside ccxt on this thread (the lean public GETs)."""
        self._local.response = parse_http_response(http_status, headers, body.decode("utf-8", "replace"))

    def last(self) -> HttpResponse | None:
        """Return this thread's last response since ``reset()``, if any."""
        return getattr(self._local, "response", None)

    @classmethod
    def install(cls, exchange: Any) -> ResponseTap:
        """Hook a tap into ``exchange`` (idempotent) and return it: its responses, and the moment
        a request is about to leave (ccxt's ``fetch``, through which every request goes)."""
        current = exchange.on_rest_response
        if isinstance(current, cls):
            return current
        fetch = getattr(exchange, "fetch", None)  # None: not a ccxt exchange (a test's fake)
        tap = cls(current, sees_sends=fetch is not None)
        exchange.on_rest_response = tap
        if fetch is None:
            return tap

        def tapped_fetch(*args: Any, **kwargs: Any) -> Any:
            tap.sending()
            return fetch(*args, **kwargs)

        exchange.fetch = tapped_fetch
        return tap


class UniqueNonce:
    """Stands in for ccxt's ``nonce()`` (KC-API-TIMESTAMP): ccxt's ms clock, but strictly
    increasing per exchange object, so no two signed requests of one client share a timestamp.

    ccxt's is ``milliseconds()``: two identical requests (the same GET from two worker threads)
    in one millisecond would be byte-identical, with the same signature, and a server that
    refuses a replayed signature (the simulator does) would refuse the second. Running ahead of
    the clock by one ms a request in a burst stays far inside KuCoin's 5 s window.
    """

    def __init__(self, inner: Callable[[], float]) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._last_ms = 0

    def __call__(self) -> int:
        now_ms = int(self._inner())
        with self._lock:
            self._last_ms = max(now_ms, self._last_ms + 1)
            return self._last_ms

    @classmethod
    def install(cls, exchange: Any) -> None:
        """Wrap ``exchange.nonce`` (idempotent; an object without one is left alone)."""
        current = getattr(exchange, "nonce", None)
        if callable(current) and not isinstance(current, cls):
            exchange.nonce = cls(current)


# -- Redaction -------------------------------------------------------------------------------------
def redact(value: Any) -> Any:
    """Return ``value`` with credential headers, WebSocket tokens and token= queries masked."""
    if isinstance(value, Mapping):
        return {k: ("***" if str(k).lower() in SENSITIVE_HEADERS else v) for k, v in value.items()}
    if isinstance(value, str):
        return redact_url(_TOKEN_RE.sub(r"\1***\2", value))
    return value


class RedactingLogger:
    """Stands in for ccxt's logger: the same records, with every argument passed through ``redact``.

    ccxt logs each request at DEBUG with its headers, i.e. the API key, the signature and the
    passphrase HMAC (``self.logger.debug("%s %s, Request: %s %s", ...)`` in ccxt's ``fetch``).
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.inner = logger

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - the logging.Logger name
        return self.inner.isEnabledFor(level)

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        if self.inner.isEnabledFor(level):
            self.inner.log(level, redact(msg), *(redact(arg) for arg in args), **kwargs)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.DEBUG, msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.INFO, msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.WARNING, msg, *args, **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args, **kwargs)


# -- Exception mapping -----------------------------------------------------------------------------
def _describe(operation: str, exc: BaseException, response: HttpResponse | None) -> str:
    if response is None:
        return f"{operation}: {type(exc).__name__}, no response"
    if response.code is None:
        return f"{operation}: HTTP {response.http_status} ({type(exc).__name__})"
    return f"{operation}: KuCoin {response.code} {response.message!r} (HTTP {response.http_status})"


def _is_no_answer(exc: BaseException, response: HttpResponse | None) -> bool:
    # True when the exchange gave no definitive answer: the request may or may not have acted.
    if isinstance(exc, (ccxt.NetworkError, ccxt.BadResponse)) or not isinstance(exc, ccxt.ExchangeError):
        return True
    return response is not None and response.code is None and response.http_status >= 500


def translate_ccxt_error(
    exc: BaseException,
    *,
    operation: str,
    places_order: bool = False,
    client_oid: str | None = None,
    response: HttpResponse | None = None,
) -> KuCoinError:
    """Return our exception for a ccxt exception (see the module docstring for the table).

    Args:
        operation: what was being done, e.g. "create_order" (it starts the message).
        places_order: the call places or cancels an order, so "no answer" means unknown outcome.
        client_oid: carried by ``OrderOutcomeUnknown``.
        response: the HTTP response of the failed call, if one arrived.
    """
    where = _describe(operation, exc, response)
    code = response.code if response is not None else None
    status = response.http_status if response is not None else None
    if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        headers = response.rate_limit if response is not None else None
        retry_after_s = headers.reset_ms / 1000.0 if headers is not None else None
        return RateLimited(where, retry_after_s=retry_after_s, code=code, http_status=status)
    if isinstance(exc, (ccxt.AuthenticationError, ccxt.InvalidNonce)):
        return AuthError(where, code=code, http_status=status)
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFound(code or "", response.message if response is not None else "", http_status=status)
    if _is_no_answer(exc, response):
        if places_order:
            return OrderOutcomeUnknown(f"{where}; look the order up by clientOid {client_oid}",
                                       client_oid=client_oid)
        if isinstance(exc, ccxt.BadResponse):
            return ProtocolError(where)
        return TransportError(where, code=code, http_status=status)
    if code is not None:
        error = error_for_code(code, response.message, http_status=status)
        if places_order and isinstance(error, TransportError) and not isinstance(error, RateLimited):
            return OrderOutcomeUnknown(f"{where}; look the order up by clientOid {client_oid}",
                                       client_oid=client_oid)
        return error
    if response is None:
        # ccxt refused before sending (ArgumentsRequired, BadSymbol, its own size check): we
        # called it wrong, and nothing reached the exchange.
        return InvalidArgument(f"{operation}: {exc}"[:MAX_MESSAGE_CHARS])
    # A 4xx without a KuCoin envelope (a proxy's page): refused, with no code to report.
    if isinstance(exc, ccxt.InsufficientFunds):
        return InsufficientFunds("", where, http_status=status)
    if isinstance(exc, ccxt.InvalidOrder):
        return InvalidOrder("", where, http_status=status)
    return ExchangeRejected("", where, http_status=status)


@contextlib.contextmanager
def map_ccxt_errors(
    operation: str,
    *,
    places_order: bool = False,
    client_oid: str | None = None,
    response: Callable[[], HttpResponse | None] = lambda: None,
    sent: Callable[[], bool] = lambda: True,
) -> Iterator[None]:
    """Turn ccxt exceptions raised in the block into ours, ``raise ... from exc``.

    For an order operation an unexpected exception once the request may have left becomes
    ``OrderOutcomeUnknown``: a parse failure after KuCoin accepted the order must not look like
    "not placed". Before anything left it is ``InvalidArgument``: nothing was sent.

    Args:
        response: returns the HTTP response of the failed call, if any (``ResponseTap.last``).
        sent: whether a request may have left (``ResponseTap.sent``); unknown counts as sent.
    """
    try:
        yield
    except KuCoinError:
        raise
    except ccxt.BaseError as exc:
        raise translate_ccxt_error(exc, operation=operation, places_order=places_order,
                                   client_oid=client_oid, response=response()) from exc
    except Exception as exc:
        if not places_order:
            raise
        if not sent():
            raise InvalidArgument(f"{operation}: {type(exc).__name__} before sending (nothing was sent): "
                                  f"{exc}"[:MAX_MESSAGE_CHARS]) from exc
        raise OrderOutcomeUnknown(f"{operation}: {type(exc).__name__} after sending; look the order up "
                                  f"by clientOid {client_oid}", client_oid=client_oid) from exc
