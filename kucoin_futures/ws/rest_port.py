"""The REST the WebSocket feed needs (bullet tokens, level-2 snapshots, kline history): one seam.

Internal to ``kucoin_websocket``. The feed never blocks on REST and owns no threads for it: it
submits a call and awaits its Future on the loop (``asyncio.wrap_future``). ``RestPort`` is the
whole interface:

- ``submit_get(path, params, priority)``: a public GET; the Future gives the decoded envelope.
- ``submit_token()``: a fresh bullet token; the Future gives a ``WsEndpoint``.
- ``submit_private_token()``: the same from ``bullet-private`` (signed: the account's feed; a
  ``LocalRest`` has no credentials, so its Future fails with ``ConfigError``).

``KuCoinClient`` passes its ``RestGateway``, so the feed's calls share the client's one priority
scheduler and rate-limit pools (the token HIGH, snapshots NORMAL, history LOW). A standalone
``KuCoinWebSocket`` builds a ``LocalRest``: the same generic ``PriorityExecutor`` with
``rest_threads`` workers and no pool limits, running the stdlib ``PublicRest`` (or an injected
``rest_get`` / ``token_provider``).
"""
from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from kucoin_futures.errors import ConfigError
from kucoin_futures.protocol.types import WsEndpoint
from kucoin_futures.rest.public import PublicRest, RestGet
from kucoin_futures.scheduling.executor import PriorityExecutor
from kucoin_futures.scheduling.pools import Priority

__all__ = ["PRIORITY_CANDLES", "PRIORITY_SNAPSHOT", "LocalRest", "RestPort"]

PRIORITY_SNAPSHOT = Priority.NORMAL  # a book out of sync is market data the bot waits for
PRIORITY_CANDLES = Priority.LOW  # history: behind the scans' own calls


class RestPort(Protocol):
    """What the WebSocket feed asks of REST (``RestGateway`` and ``LocalRest`` provide it)."""

    def submit_get(self, path: str, params: Mapping[str, Any], priority: Priority) -> concurrent.futures.Future: ...

    def submit_token(self) -> concurrent.futures.Future: ...

    def submit_private_token(self) -> concurrent.futures.Future: ...


class LocalRest:
    """A standalone feed's REST: ``threads`` workers of a ``PriorityExecutor``, most urgent first.

    ``rest_get`` and ``token_provider`` are blocking callables (defaults: ``PublicRest`` on
    ``rest_url``). No I/O and no thread before the first call. ``close`` aborts the stdlib
    requests in flight, fails queued calls and joins the workers within ``timeout_s``.
    """

    def __init__(self, *, rest_url: str, rest_get: RestGet | None, token_provider: Callable[[], WsEndpoint] | None,
                 timeout_s: float, threads: int, name: str) -> None:
        self._public = PublicRest(rest_url, timeout_s=timeout_s) if rest_get is None or token_provider is None else None
        self._get = rest_get if rest_get is not None else self._public.get  # type: ignore[union-attr]
        self._token = token_provider if token_provider is not None else self._public.bullet_public  # type: ignore[union-attr]
        self._executor = PriorityExecutor(workers=threads, name=name)

    def submit_get(self, path: str, params: Mapping[str, Any], priority: Priority) -> concurrent.futures.Future:
        return self._executor.submit(priority, self._get, path, params, label=path)

    def submit_token(self) -> concurrent.futures.Future:
        return self._executor.submit(Priority.HIGH, self._token, label="bullet")

    def submit_private_token(self) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_exception(ConfigError("a private WebSocket token needs API credentials: use KuCoinClient"))
        return future

    def close(self, timeout_s: float) -> None:
        if self._public is not None:
            self._public.close()  # aborts a request in flight so its worker can finish
        self._executor.close(timeout_s=timeout_s)
