"""REST work the WebSocket feed needs, submitted through the ``RestPort`` and awaited on the loop.

Internal to ``kucoin_websocket``. ``RestJobs`` lives on the WebSocket thread's event loop; every
request goes to the port's scheduler (``ws.rest_port``) and its Future is awaited through
``asyncio.wrap_future``, so the reader never waits for REST:

- level-2 snapshots: ``request_snapshot`` starts one sync task per book (repeated, with backoff,
  while the snapshot is older than the buffered deltas: KuCoin's REST may lag its stream);
- kline history: the first subscribe loads the last ``max_candles`` periods; a resubscribe after
  a lost socket refills from the newest candle held when the socket was lost (``note_gap``:
  pushes on the new socket may come first and must not hide the hole); a period that just
  closed is re-read from REST ``confirm_delay_s`` later; requests that arrive during a fetch are
  merged into one more.

Retryable failures (network, 5xx, rate limits: ``classify_ws_error``) are retried with
``backoff()`` or the rate limit's ``retry_after_s``; a fatal one is logged as ERROR and dropped.
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from functools import partial
from typing import Any

from kucoin_futures.ws.bookfeed import BookFeed
from kucoin_futures.ws.caches import CandleCache
from kucoin_futures.errors import RateLimited
from kucoin_futures.protocol.book import BookStatus
from kucoin_futures.protocol.policy import backoff
from kucoin_futures.protocol.session import FATAL, classify_ws_error
from kucoin_futures.protocol.parse import parse_rest_klines, parse_rest_order_book
from kucoin_futures.protocol.types import timeframe_ms
from kucoin_futures.rest.public import PATH_KLINES, PATH_LEVEL2_SNAPSHOT, KlinePager
from kucoin_futures.scheduling.pools import Priority
from kucoin_futures.ws.rest_port import PRIORITY_CANDLES, PRIORITY_SNAPSHOT, RestPort

__all__ = ["RestJobs"]

log = logging.getLogger(__name__)

JOB_BACKOFF_INITIAL_S = 0.5
JOB_BACKOFF_CAP_S = 30.0
SNAPSHOT_RETRY_INITIAL_S = 0.1  # a snapshot older than the buffered deltas: REST lags the stream
SNAPSHOT_RETRY_CAP_S = 5.0


class RestJobs:
    """Snapshot syncs and kline fetches for the feed (call everything on the loop)."""

    def __init__(self, *, rest: RestPort, books: BookFeed, candles: CandleCache,
                 clock: Callable[[], float], wall_clock: Callable[[], float], rng: random.Random,
                 confirm_delay_s: float | None) -> None:
        self._rest = rest
        self._books = books
        self._candles = candles
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng
        self._confirm_delay_s = confirm_delay_s
        self._candle_topics: dict[str, tuple[str, str, str]] = {}  # topic -> (symbol, tf, kucoin id)
        # (symbol, timeframe) whose full history window was merged once; until then a live push
        # (one candle) must not make the next fetch start from that candle
        self._history_done: set[tuple[str, str]] = set()
        self._gap_from: dict[str, int] = {}  # topic -> newest candle start held when its socket was lost
        self._tasks: set[asyncio.Task[Any]] = set()
        self._book_tasks: dict[str, asyncio.Task[Any]] = {}
        self._backfill_tasks: dict[str, asyncio.Task[Any]] = {}
        self._backfill_from: dict[str, set[int | None]] = {}  # requested starts; None: newest held

    def cancel_all(self) -> list[asyncio.Task[Any]]:
        """Cancel every running job; return the tasks (to wait for)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        return tasks

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- order books ----------------------------------------------------------------------------
    def request_snapshot(self, kucoin_id: str) -> None:
        """Sync ``kucoin_id``'s book from a REST snapshot unless a sync already runs."""
        task = self._book_tasks.get(kucoin_id)
        if task is None or task.done():
            self._book_tasks[kucoin_id] = self._spawn(self._sync_book(kucoin_id))

    async def _sync_book(self, kucoin_id: str) -> None:
        delays = backoff(initial_s=SNAPSHOT_RETRY_INITIAL_S, cap_s=SNAPSHOT_RETRY_CAP_S, rng=self._rng)
        while self._books.needs_snapshot(kucoin_id):
            snapshot = await self._job(f"level2 snapshot {kucoin_id}", PRIORITY_SNAPSHOT, PATH_LEVEL2_SNAPSHOT,
                                       {"symbol": kucoin_id}, partial(parse_rest_order_book, received_at=self._clock()))
            if snapshot is None:
                return
            status = self._books.apply_snapshot(snapshot, kucoin_id, self._clock())
            if status is BookStatus.OK:
                log.info("= %s book synced at sequence %d", kucoin_id, snapshot.sequence)
            if status is not BookStatus.GAP:
                return
            await asyncio.sleep(next(delays))

    # -- candles --------------------------------------------------------------------------------
    def want_candles(self, topic: str, symbol: str, timeframe: str, kucoin_id: str) -> None:
        """Fetch history for ``topic`` when asked (its subscribe acks, its periods close)."""
        self._candle_topics[topic] = (symbol, timeframe, kucoin_id)

    def unwant_candles(self, topic: str) -> None:
        """Stop fetching history for ``topic``."""
        wanted = self._candle_topics.pop(topic, None)
        self._gap_from.pop(topic, None)
        if wanted is not None:
            self._history_done.discard(wanted[:2])

    def candle_period_closed(self, topic: str, start_ms: int) -> None:
        """Re-read a period that just closed from REST, once REST has its last trades."""
        if self._confirm_delay_s is not None:
            asyncio.get_running_loop().call_later(self._confirm_delay_s, self.request_backfill, topic, start_ms)

    def note_gap(self, topic: str) -> None:
        """The socket carrying ``topic`` was lost: its refill must start at the newest candle
        held now, whatever pushes arrive on the next socket before the refill runs."""
        wanted = self._candle_topics.get(topic)
        if wanted is not None and topic not in self._gap_from:  # the first loss counts
            newest_ms = self._candles.last_start_ms(wanted[0], wanted[1])
            if newest_ms is not None:
                self._gap_from[topic] = newest_ms

    def request_backfill(self, topic: str, from_ms: int | None = None) -> None:
        """Fetch ``topic``'s candles from ``from_ms`` (None: from the newest held, or from where
        a lost socket left off) to now."""
        if topic not in self._candle_topics:
            return
        if from_ms is None and topic in self._gap_from:
            from_ms = self._gap_from.pop(topic)
        self._backfill_from.setdefault(topic, set()).add(from_ms)
        task = self._backfill_tasks.get(topic)
        if task is None or task.done():
            self._backfill_tasks[topic] = self._spawn(self._backfill(topic))

    async def _backfill(self, topic: str) -> None:
        while topic in self._candle_topics and self._backfill_from.get(topic):
            starts = self._backfill_from.pop(topic)
            symbol, timeframe, kucoin_id = self._candle_topics[topic]
            explicit = min((start for start in starts if start is not None), default=None)
            await self._fetch_candles(symbol, timeframe, kucoin_id, explicit, None in starts)

    async def _fetch_candles(self, symbol: str, timeframe: str, kucoin_id: str, from_ms: int | None,
                             from_newest: bool) -> None:
        # Fetch from the newest candle held (it may have been partial) and/or an explicit start,
        # to now, and merge. Without history: the last max_candles.
        span_ms = timeframe_ms(timeframe)
        now_ms = int(self._wall_clock() * 1000)
        oldest_ms = now_ms - self._candles.max_candles * span_ms
        starts = [from_ms] if from_ms is not None else []
        if from_newest:
            done = (symbol, timeframe) in self._history_done
            newest_ms = self._candles.last_start_ms(symbol, timeframe) if done else None
            starts.append(oldest_ms if newest_ms is None else newest_ms)
        received_at = self._clock()  # request start: a push received after it wins the merge
        parse = partial(parse_rest_klines, received_at=received_at)
        pager = KlinePager(kucoin_id, timeframe, from_ms=max(min(starts), oldest_ms), to_ms=now_ms)
        while (params := pager.next_params()) is not None:
            answer = await self._job(f"klines {kucoin_id} {timeframe}", PRIORITY_CANDLES, PATH_KLINES, params, parse)
            if answer is None:
                return
            pager.add(answer)
        self._candles.merge(symbol, timeframe, pager.candles(), received_at=received_at)
        if from_newest:
            self._history_done.add((symbol, timeframe))

    # -- one request, retried -------------------------------------------------------------------
    async def _job(self, label: str, priority: Priority, path: str, params: dict[str, Any],
                   parse: Callable[[Any], Any]) -> Any:
        # The parsed answer, or None after a fatal failure (logged).
        delays = backoff(initial_s=JOB_BACKOFF_INITIAL_S, cap_s=JOB_BACKOFF_CAP_S, rng=self._rng)
        while True:
            try:
                return parse(await asyncio.wrap_future(self._rest.submit_get(path, params, priority)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if classify_ws_error(exc) == FATAL:
                    log.error("! %s failed: %s", label, exc, exc_info=exc)
                    return None
                retry_after = exc.retry_after_s if isinstance(exc, RateLimited) else None
                delay = retry_after if retry_after is not None else next(delays)
                log.warning("! %s failed (%s); retrying in %.1fs", label, exc, delay)
                await asyncio.sleep(delay)
