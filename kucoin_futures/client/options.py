"""The checks of KuCoinClient's constructor options (a facade part): every option is refused
with ``InvalidArgument`` naming it, before anything is built, instead of a TypeError or
OverflowError now or a broken client later. A credential's value never appears in a message.
"""
from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

from kucoin_futures.errors import InvalidArgument
from kucoin_futures.ws.transports import check_transport_name

__all__ = ["check_client_options", "gil_switch_interval_s_of"]

MAX_WAIT_S = 3600.0  # first_read_wait_s at most: a far longer lock wait overflows (threading.TIMEOUT_MAX)
MAX_REQUEST_TIMEOUT_S = 3600.0  # a socket timeout of ~1e10 s overflows; an hour is already absurd
GIL_SWITCH_RANGE_S = (1e-6, 1.0)  # sys.setswitchinterval silently turns 1e-300 or 1e300 into 0.0
CREDENTIALS = ("api_key", "api_secret", "api_passphrase")


def check_client_options(*, api_key: Any, api_secret: Any, api_passphrase: Any, enable_websocket: Any,
                         ws_transport: Any, futures_url: Any, request_timeout_s: Any,
                         gil_switch_interval_s: Any, ticker_max_age_s: Any, book_max_age_s: Any,
                         first_read_wait_s: Any, clock: Any, wall_clock: Any) -> None:
    """Raise ``InvalidArgument`` for the first unusable option of ``KuCoinClient(...)``."""
    _check_credentials(dict(zip(CREDENTIALS, (api_key, api_secret, api_passphrase))))
    if not isinstance(enable_websocket, bool):
        raise InvalidArgument(f"enable_websocket must be True or False, not {enable_websocket!r}")
    check_transport_name(ws_transport, option="ws_transport")  # even with the WebSocket off
    _check_url(futures_url)
    _check_seconds("request_timeout_s", request_timeout_s, high=MAX_REQUEST_TIMEOUT_S, zero_ok=False)
    _check_seconds("ticker_max_age_s", ticker_max_age_s)
    _check_seconds("book_max_age_s", book_max_age_s)
    _check_seconds("first_read_wait_s", first_read_wait_s, high=MAX_WAIT_S)
    low, high = GIL_SWITCH_RANGE_S
    if gil_switch_interval_s is not None and not (_is_real(gil_switch_interval_s)
                                                  and low <= gil_switch_interval_s <= high):
        raise InvalidArgument(f"gil_switch_interval_s must be None or a number from {low:g} to {high:g}, "
                              f"not {gil_switch_interval_s!r}")
    for name, fn in (("clock", clock), ("wall_clock", wall_clock)):
        if not callable(fn):
            raise InvalidArgument(f"{name} must be callable, not {fn!r}")


def gil_switch_interval_s_of(switch_ms: Any) -> float | None:
    """Return the ``gil_switch_interval_s`` of Settings' ``gil_switch_interval_ms`` (0: None)."""
    if not _is_real(switch_ms) or not 0 <= switch_ms < math.inf:
        raise InvalidArgument(f"settings.gil_switch_interval_ms must be a number >= 0, not {switch_ms!r}")
    return switch_ms / 1000 if switch_ms > 0 else None


def _is_real(value: Any) -> bool:
    # bool is an int subclass: True as a timeout is a caller bug, not 1 s.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_credentials(credentials: dict[str, Any]) -> None:
    if all(value is None for value in credentials.values()):
        return
    for name, value in credentials.items():
        if value is None:
            raise InvalidArgument("api_key, api_secret and api_passphrase go together (all or none)")
        # They travel in HTTP headers or as HMAC keys: printable ASCII, so no CR/LF in a header.
        if not isinstance(value, str) or not value or not (value.isascii() and value.isprintable()):
            raise InvalidArgument(f"{name} must be a non-empty str of printable ASCII characters")


def _check_seconds(name: str, value: Any, *, high: float = math.inf, zero_ok: bool = True) -> None:
    in_range = _is_real(value) and math.isfinite(value) and (0 <= value if zero_ok else 0 < value) and value <= high
    if not in_range:
        bounds = (">= 0" if zero_ok else "> 0") + (f" and <= {high:g}" if high < math.inf else "")
        raise InvalidArgument(f"{name} must be a finite number {bounds}, not {value!r}")


def _check_url(futures_url: Any) -> None:
    try:
        parts = urlsplit(futures_url) if isinstance(futures_url, str) else None
        host = parts.hostname if parts is not None else None
    except ValueError:  # e.g. "http://[::1" (an unclosed IPv6 bracket)
        parts = host = None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise InvalidArgument(f"futures_url must be an http(s) URL with a host, not {futures_url!r}")
