"""Which library carries the WebSocket: the transport names and the choice among them.

Internal to ``kucoin_websocket``. A transport is a ``Connection`` subclass (``ws/socket.py``
describes the seam); this module maps ``KuCoinWebSocket(transport=...)`` (``KuCoinClient``'s
``ws_transport``, the ``WS_TRANSPORT`` setting) to one, importing only the chosen library:

- ``"picows"``: ``transport_picows.PicowsConnection`` (Cython; many frames per socket read).
- ``"websocket-client"``: ``transport_wsclient.WsClientConnection`` (pure Python, a reader
  thread per socket) for platforms without a picows wheel, or by choice.
- ``"auto"`` (the default): picows when it imports, else websocket-client.
"""
from __future__ import annotations

from typing import Any

from kucoin_futures.errors import InvalidArgument
from kucoin_futures.ws.socket import Connection

__all__ = ["AUTO", "TRANSPORT_NAMES", "check_transport_name", "resolve_transport"]

AUTO = "auto"
PICOWS = "picows"
WEBSOCKET_CLIENT = "websocket-client"
TRANSPORT_NAMES = (AUTO, PICOWS, WEBSOCKET_CLIENT)  # config.WS_TRANSPORTS repeats them (layering)


def check_transport_name(value: Any, *, option: str = "transport") -> str:
    """Return ``value`` if it names a transport; else raise ``InvalidArgument`` naming ``option``."""
    if not isinstance(value, str) or value not in TRANSPORT_NAMES:
        raise InvalidArgument(f"{option} must be one of {', '.join(map(repr, TRANSPORT_NAMES))}, not {value!r}")
    return value


def resolve_transport(name: str, *, option: str = "transport") -> type[Connection]:
    """Return the ``Connection`` class of transport ``name`` ("auto": picows if it imports).

    Raises:
        InvalidArgument: an unknown name, or a named transport whose library does not import.
    """
    check_transport_name(name, option=option)
    if name == AUTO:
        try:
            return _load(PICOWS)
        except ImportError:  # no picows wheel for this platform: the pure-Python transport
            return _load(WEBSOCKET_CLIENT)
    try:
        return _load(name)
    except ImportError as exc:
        raise InvalidArgument(f"{option}={name!r}: its library does not import here ({exc})") from exc


def _load(name: str) -> type[Connection]:
    # Imported here, not at the top: only the chosen library is loaded (and needs to exist).
    if name == PICOWS:
        from kucoin_futures.ws.transport_picows import PicowsConnection
        return PicowsConnection
    from kucoin_futures.ws.transport_wsclient import WsClientConnection
    return WsClientConnection
