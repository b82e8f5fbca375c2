"""The one exception tree of the KuCoin client, and KuCoin's REST error codes mapped onto it.

Everything the library raises on purpose derives from ``KuCoinError``::

    KuCoinError                       base; everything we raise on purpose
    ├── ConfigError                   bad/missing setting (names the variable)
    │   └── AccountModeError          an account this client cannot trade: UNIFIED, hedge mode,
    │                                 a margin mode KuCoin will not switch (names the symbol)
    ├── ClientClosed                  used after close()
    ├── InvalidArgument               we were called wrong (also a ValueError)
    ├── ProtocolError                 malformed or unexpected exchange message (remote's fault)
    ├── TransportError                network failure / timeout (outcome of a *read* = retryable)
    │   ├── RateLimited               429 / KuCoin 429000; carries retry_after_s
    │   └── OrderNotPlaced            an ambiguous order send that the clientOid lookup proved
    │                                 was not placed; carries client_oid
    ├── AuthError                     bad key/passphrase/signature, clock skew (400002)
    ├── ExchangeRejected              definitive refusal; carries code, message
    │   ├── InsufficientFunds
    │   ├── InvalidOrder
    │   │   └── NoPosition            no position to close (300009)
    │   └── OrderNotFound             no such order (100001 error.getOrder.orderNotExist)
    └── OrderOutcomeUnknown           order/cancel sent, no definitive answer; carries client_oid

Data travels as attributes (``code``, ``http_status``, ``retry_after_s``, ``client_oid``,
``variable``), never only inside the message. ``error_for_code`` turns a KuCoin error envelope
(``{"code": "300003", "msg": "..."}``) into the matching exception; nothing is classified by
substring. This module is stdlib-only so that any layer (``config.py`` included) may import it.
"""
from __future__ import annotations

__all__ = [
    "AccountModeError",
    "AuthError",
    "ClientClosed",
    "ConfigError",
    "ExchangeRejected",
    "InsufficientFunds",
    "InvalidArgument",
    "InvalidOrder",
    "KuCoinError",
    "NoPosition",
    "OrderNotFound",
    "OrderNotPlaced",
    "OrderOutcomeUnknown",
    "ProtocolError",
    "RateLimited",
    "TransportError",
    "error_for_code",
    "exchange_busy",
]

# -- KuCoin error codes (protocol notes section 3.4; classic futures docs "System Error Code") ----
CODE_TOO_MANY_REQUESTS = "429000"  # pool quota exhausted or server overload (HTTP 429)
CODE_ENDPOINT_LIMIT = "200002"  # per-UID endpoint limit; docs: blocked for 10 s
CODE_CLOUDFLARE_LIMIT = "1015"  # Cloudflare per-IP limit; docs: blocked for 30 s
CODE_INTERNAL_ERROR = "500000"  # KuCoin internal error: the outcome of the call is unknown

# Codes that mean "slow down", with the documented block time when KuCoin states one.
RATE_LIMIT_RETRY_AFTER_S: dict[str, float | None] = {
    CODE_TOO_MANY_REQUESTS: None,
    CODE_ENDPOINT_LIMIT: 10.0,
    CODE_CLOUDFLARE_LIMIT: 30.0,
}
AUTH_CODES = frozenset({
    "400001",  # a KC-API-* header is missing
    "400002",  # KC-API-TIMESTAMP more than 5 s away from server time (clock skew)
    "400003",  # KC-API-KEY does not exist
    "400004",  # wrong passphrase
    "400005",  # bad signature
    "400006",  # IP not in the key's whitelist
    "400007",  # key lacks the permission
    "411100",  # user frozen
})
INSUFFICIENT_FUNDS_CODES = frozenset({
    "300003",  # balance insufficient
    "330008",  # margin/leverage at the maximum open limit
})
CODE_NO_POSITION = "300009"  # position size 0, nothing to close: NoPosition
CODE_ORDER_NOT_FOUND = "100001"  # error.getOrder.orderNotExist (HTTP 404): OrderNotFound
INVALID_ORDER_CODES = frozenset({
    "300000",  # request parameter illegal (e.g. "Order funds invalid.")
    "300001",  # active order count limit exceeded
    "300004",  # stop-order count limit exceeded
    "300005",  # risk limit exceeded
    "300006",  # close price worse than bankruptcy price
    "300007",  # price worse than liquidation price
    "300008",  # no contra order in the book (market order)
    "300011",  # price above the maximum allowed
    "300012",  # price below the minimum allowed
    "300013",  # no contra order in the book
    "300016",  # leverage too high
    "300018",  # clientOid repeated
    "330005",  # order margin mode differs from the position's
    "330011",  # position mode (one-way/hedge) mismatch
    "330012",  # position mode (one-way/hedge) mismatch
})


class KuCoinError(Exception):
    """Base class of every exception this library raises on purpose."""


class ConfigError(KuCoinError):
    """A setting is missing or invalid; ``variable`` names it."""

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class AccountModeError(ConfigError):
    """The KuCoin account is set up in a way this client does not trade: a UNIFIED account, hedge
    position mode, or a contract whose margin mode cannot be set (``symbol`` names it)."""

    def __init__(self, message: str, *, symbol: str | None = None, variable: str | None = None) -> None:
        super().__init__(message, variable=variable)
        self.symbol = symbol


class ClientClosed(KuCoinError):
    """The client (or one of its parts) was used after ``close()``."""


class InvalidArgument(KuCoinError, ValueError):
    """We were called with a bad argument (a local error: the exchange was not contacted)."""


class ProtocolError(KuCoinError):
    """The exchange sent something malformed or unexpected (the remote's fault)."""


class TransportError(KuCoinError):
    """The network failed or timed out; a *read* may be retried, an order outcome is unknown."""

    def __init__(self, message: str = "", *, code: str | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class RateLimited(TransportError):
    """KuCoin asked us to slow down (HTTP 429 / 429000 / 200002 / 1015)."""

    def __init__(
        self,
        message: str = "",
        *,
        retry_after_s: float | None = None,
        code: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status)
        self.retry_after_s = retry_after_s


class OrderNotPlaced(TransportError):
    """An order send failed ambiguously, and the lookup by ``client_oid`` proved it was not placed.

    Definitive: sending a new order (with a new clientOid) cannot duplicate this one.
    """

    def __init__(self, message: str = "", *, client_oid: str | None = None) -> None:
        super().__init__(message)
        self.client_oid = client_oid


class AuthError(KuCoinError):
    """Bad key, passphrase, signature or permission, or clock skew (400002)."""

    def __init__(self, message: str = "", *, code: str | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class ExchangeRejected(KuCoinError):
    """KuCoin definitively refused the request; ``code`` and ``message`` are KuCoin's."""

    def __init__(self, code: str, message: str, *, http_status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


class InsufficientFunds(ExchangeRejected):
    """Refused for lack of balance or margin (300003, 330008)."""


class InvalidOrder(ExchangeRejected):
    """Refused because the order itself is not acceptable (price, size, mode, limits)."""


class NoPosition(InvalidOrder):
    """There is no position to close (KuCoin 300009, or seen flat before anything was sent)."""


class OrderNotFound(ExchangeRejected):
    """KuCoin does not know the order (100001 ``error.getOrder.orderNotExist``)."""


class OrderOutcomeUnknown(KuCoinError):
    """An order or cancel was sent but no definitive answer came back; look it up by ``client_oid``."""

    def __init__(self, message: str = "", *, client_oid: str | None = None) -> None:
        super().__init__(message)
        self.client_oid = client_oid


def exchange_busy(exc: BaseException) -> bool:
    """True when the exchange answered but said "not now": a rate limit, a 5xx or maintenance.

    Such a refusal passes; a caller that may wait (start-up) retries it with a backoff, unlike
    an unreachable host (no answer at all) or an auth or configuration error.
    """
    if isinstance(exc, RateLimited):
        return True
    return isinstance(exc, TransportError) and exc.http_status is not None and exc.http_status >= 500


def error_for_code(code: str, message: str, *, http_status: int | None = None) -> KuCoinError:
    """Return the exception for a KuCoin error envelope ``{"code": code, "msg": message}``.

    The caller raises it (``raise error_for_code(...)``). Codes not listed above become a plain
    ``ExchangeRejected`` carrying the code.
    """
    if code in RATE_LIMIT_RETRY_AFTER_S or http_status == 429:
        return RateLimited(
            f"{code}: {message}",
            retry_after_s=RATE_LIMIT_RETRY_AFTER_S.get(code),
            code=code,
            http_status=http_status,
        )
    if code in AUTH_CODES:
        return AuthError(f"{code}: {message}", code=code, http_status=http_status)
    if code == CODE_INTERNAL_ERROR or (http_status is not None and http_status >= 500):
        # The server failed mid-request: not a refusal. Reads may retry; an order's outcome is
        # unknown, which the caller (who knows whether it placed an order) decides.
        return TransportError(f"{code}: {message}", code=code, http_status=http_status)
    if code in INSUFFICIENT_FUNDS_CODES:
        return InsufficientFunds(code, message, http_status=http_status)
    if code == CODE_NO_POSITION:
        return NoPosition(code, message, http_status=http_status)
    if code in INVALID_ORDER_CODES:
        return InvalidOrder(code, message, http_status=http_status)
    return ExchangeRejected(code, message, http_status=http_status)
