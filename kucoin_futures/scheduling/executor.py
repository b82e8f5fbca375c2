"""Run blocking calls on worker threads, most urgent first, within resource-pool rate limits.

Generic: this module knows nothing of ccxt or KuCoin's wire. The caller supplies the pool table
(``RateLimit`` values), each call's pool and weight, and the server's rate-limit header values;
the pure decisions live in ratelimit_pools.py.

Scheduling rules:

- The most urgent call that may start, starts; FIFO within a priority.
- While a CRITICAL call is queued or in flight, no NORMAL or LOW call starts (HIGH may).
- ``reserved_workers`` workers never run NORMAL or LOW calls: a CRITICAL (or HIGH) call finds
  a free worker at once instead of waiting for a scan's call in flight to end.
- Within one pool the order is strict: a call waits behind a more urgent or earlier call of its
  own pool even if it would fit. A call of another pool, or with no pool, may overtake a call
  that is waiting for its pool's quota.

Errors::

    SchedulerClosed (RuntimeError)   submit() or start() after close(), or a queued call that
                                     close() dropped (the client facade maps it to ClientClosed)
    ValueError                       bad priority, pool or cost at submit()
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import enum
import heapq
import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kucoin_futures.scheduling.pools import (
    DEFAULT_RESERVE_FRACTION,
    DEFAULT_WINDOW_S,
    PoolState,
    Priority,
    RateLimit,
    ResourcePools,
    delay_until_allowed,
)

__all__ = [
    "DEFAULT_RESERVE_FRACTION",
    "CallAbandoned",
    "DEFAULT_WINDOW_S",
    "PoolState",
    "Priority",
    "PriorityExecutor",
    "RateLimit",
    "SchedulerClosed",
    "delay_until_allowed",
]

log = logging.getLogger(__name__)

# -- Constants ---------------------------------------------------------------------------------

DEFAULT_WORKERS = 4
DEFAULT_CLOSE_TIMEOUT_S = 2.0  # a worker still in a sent call is left (a daemon): SIGTERM must end a bot within 5 s
MAX_WAIT_S = 3600.0  # Condition.wait() rejects huge timeouts; a worker simply re-decides


class SchedulerClosed(RuntimeError):
    """The executor is closed: nothing more is accepted, and queued calls were dropped."""


class CallAbandoned(RuntimeError):
    """close() gave up waiting for a call already running: its outcome is not known (for a call
    that sent a request, it may have taken effect). The worker finishes it in the background."""


class State(enum.Enum):
    """Lifecycle of a ``PriorityExecutor``."""

    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


@dataclass(order=True, slots=True)
class _Job:
    priority: Priority
    seq: int
    fn: Callable[..., Any] = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)
    kwargs: dict[str, Any] = field(compare=False)
    pool: str | None = field(compare=False)
    cost: int = field(compare=False)
    label: str = field(compare=False)
    future: concurrent.futures.Future = field(compare=False)


class PriorityExecutor:
    """Run submitted callables on ``workers`` threads in priority order, within pool limits.

    Thread-safe. No thread starts before ``start()`` or the first ``submit()``. A call that waits
    for its pool's quota waits on a Condition with a timeout computed from the injected clock;
    with a fake clock, advance it and call ``wake()``.

    Args:
        limits: the pool table; a call names one of these pools, or none.
        reserve_fraction: share of each pool that only CRITICAL calls may spend.
        workers: number of worker threads.
        reserved_workers: how many of them only CRITICAL and HIGH calls may use (< workers).
        clock: monotonic seconds.
        on_start: called as ``on_start(priority, label)`` on the worker thread just before a call
            runs; its exceptions are logged and ignored.
        name: prefix of the worker threads' names.
    """

    def __init__(
        self,
        *,
        limits: Iterable[RateLimit] = (),
        reserve_fraction: float = DEFAULT_RESERVE_FRACTION,
        workers: int = DEFAULT_WORKERS,
        reserved_workers: int = 0,
        clock: Callable[[], float] = time.monotonic,
        on_start: Callable[[Priority, str], object] | None = None,
        name: str = "api-priority",
    ) -> None:
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        if not isinstance(reserved_workers, int) or not 0 <= reserved_workers < workers:
            raise ValueError(f"reserved_workers must be an int from 0 to workers - 1, got {reserved_workers!r}")
        self._pools = ResourcePools(limits, reserve_fraction=reserve_fraction)
        self._workers = workers
        self._routine_slots = workers - reserved_workers  # workers NORMAL/LOW calls may occupy
        self._clock = clock
        self._on_start = on_start
        self._name = name
        self._debug = log.isEnabledFor(logging.DEBUG)
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # workers wait here for something to start
        self._settled = threading.Condition(self._lock)  # wait_until_settled() waits here
        self._state = State.NEW
        self._threads: list[threading.Thread] = []
        self._seq = itertools.count()
        self._queues: dict[str | None, list[_Job]] = {}  # one heap per pool (None: no pool)
        self._depths: Counter[Priority] = Counter()
        self._started: Counter[Priority] = Counter()
        self._in_flight = 0
        self._running_jobs: dict[int, _Job] = {}  # seq -> started, not finished (close() may give up on them)
        self._critical_in_flight = 0
        self._routine_in_flight = 0  # NORMAL and LOW calls running
        self._version = 0  # bumped on every change that may let a waiting call start
        self._waiting: dict[int, int] = {}  # idle worker index -> version it decided on

    # -- Lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker threads (``submit()`` does this on first use)."""
        with self._lock:
            started = self._start_locked()
        if started:
            log.debug("started %s with %d workers", self._name, self._workers)

    def close(self, *, cancel_pending: bool = True, timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S) -> None:
        """Stop accepting calls, fail or finish the queued ones, and join the workers.

        Calls already running finish normally. Idempotent.

        Args:
            cancel_pending: fail queued calls with ``SchedulerClosed``; if false, run them first.
            timeout_s: how long to wait for all the workers together.
        """
        with self._lock:
            first_close = self._state is not State.CLOSED
            self._state = State.CLOSED
            dropped = self._drain_locked() if cancel_pending else []
            threads = list(self._threads)
            self._changed_locked()
        if first_close:
            # Calls dropped are news (a stop cut them short); a quiet close is internal.
            log.log(logging.INFO if dropped else logging.DEBUG, "closing %s: %d queued calls dropped",
                    self._name, len(dropped))
        for job in dropped:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(SchedulerClosed(f"{self._name} closed before {job.label} started"))
        deadline = time.monotonic() + timeout_s
        for thread in threads:
            if thread is not threading.current_thread():  # close() called from inside a call
                thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in threads if t.is_alive() and t is not threading.current_thread()]
        if alive:
            log.warning("%s: workers still running after %.1fs: %s", self._name, timeout_s, alive)
            # Their callers stop waiting now (a stop must not wait out a request timeout); the
            # worker's own result, when it comes, is dropped.
            with self._lock:
                abandoned = list(self._running_jobs.values())
            for job in abandoned:
                with contextlib.suppress(concurrent.futures.InvalidStateError):
                    job.future.set_exception(CallAbandoned(f"{self._name} closed while {job.label} was running"))

    def __enter__(self) -> PriorityExecutor:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- Submitting ----------------------------------------------------------------------------

    def submit(
        self,
        priority: Priority,
        fn: Callable[..., Any],
        *args: Any,
        cost: int = 1,
        pool: str | None = None,
        label: str | None = None,
        **kwargs: Any,
    ) -> concurrent.futures.Future:
        """Queue ``fn(*args, **kwargs)`` and return a Future of its result.

        ``cost``, ``pool`` and ``label`` are ours, so ``fn`` cannot receive keyword arguments of
        those names (wrap it in ``functools.partial``). A call waiting on another call's future
        from inside the executor can deadlock it, as with any thread pool.

        Args:
            priority: how urgent the call is.
            cost: the call's weight in ``pool``.
            pool: the rate-limit pool it is charged to; ``None``: not rate-limited.
            label: names the call for ``on_start`` and errors (default: ``fn``'s qualified name).

        Raises:
            SchedulerClosed: after ``close()``.
            ValueError: unknown priority or pool, or a cost outside 1..the pool's limit.
        """
        priority = Priority(priority)
        if label is None:
            label = getattr(fn, "__qualname__", repr(fn))
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            self._pools.check_call(pool, cost)
            started = self._start_locked()
            job = _Job(priority, next(self._seq), fn, args, kwargs, pool, cost, label, future)
            heapq.heappush(self._queues.setdefault(pool, []), job)
            self._depths[priority] += 1
            self._changed_locked()
        if started:
            log.debug("started %s with %d workers", self._name, self._workers)
        return future

    # -- Rate-limit feedback -------------------------------------------------------------------

    def observe_headers(
        self, pool: str, limit: int, remaining: int, reset_ms: int, now: float | None = None
    ) -> None:
        """Adopt the server's gw-ratelimit-limit/-remaining/-reset values for ``pool``.

        Args:
            reset_ms: milliseconds until the server's window ends.
            now: monotonic seconds when the response arrived (default: the clock).
        """
        with self._lock:
            now = self._clock() if now is None else now
            self._pools.observe_headers(pool, limit=limit, remaining=remaining, reset_ms=reset_ms, now=now)
            self._changed_locked()

    def observe_rate_limited(self, pool: str, reset_ms: int | None, now: float | None = None) -> None:
        """Record a 429 for ``pool``: wait for ``reset_ms`` if given, else back off (overload)."""
        with self._lock:
            now = self._clock() if now is None else now
            state = self._pools.observe_rate_limited(pool, reset_ms=reset_ms, now=now)
            self._changed_locked()
        if reset_ms is not None:
            log.warning("pool %s exhausted (429): waiting %.3fs for the reset", pool, reset_ms / 1000.0)
        else:
            log.warning(
                "pool %s overloaded (429 without headers): non-critical calls pause %.3fs",
                pool,
                state.overload_until - now,
            )

    def wake(self) -> None:
        """Make waiting workers decide again (call after advancing a fake clock)."""
        with self._lock:
            self._changed_locked()

    # -- Observing -----------------------------------------------------------------------------

    def budget(self) -> dict[str, dict[str, float]]:
        """Return ``pool -> {"limit", "remaining", "reset_in_s"}`` as we currently believe it."""
        with self._lock:
            return self._pools.budget(self._clock())

    def queue_depths(self) -> dict[Priority, int]:
        """Return how many calls of each priority are queued (not yet started)."""
        with self._lock:
            return {priority: self._depths[priority] for priority in Priority}

    def in_flight(self) -> int:
        """Return how many calls are running."""
        with self._lock:
            return self._in_flight

    def started_counts(self) -> dict[Priority, int]:
        """Return how many calls of each priority have been started."""
        with self._lock:
            return {priority: self._started[priority] for priority in Priority}

    def wait_until_settled(self, timeout_s: float) -> bool:
        """Wait until every worker runs a call or has decided, on the latest state, to wait.

        After this returns True, nothing will start until something changes (a submit, a call
        finishing, feedback, ``wake()``, or a real-time rate-limit timeout). Tests use it to
        prove that a call did *not* start. Returns False on timeout.
        """
        with self._lock:
            return self._settled.wait_for(self._is_settled_locked, timeout_s)

    # -- Internals -----------------------------------------------------------------------------

    def _start_locked(self) -> bool:
        # Return whether this call started the workers.
        assert self._lock.locked()
        if self._state is State.CLOSED:
            raise SchedulerClosed(f"{self._name} is closed")
        if self._state is State.RUNNING:
            return False
        self._state = State.RUNNING
        for index in range(self._workers):
            thread = threading.Thread(
                target=self._worker, args=(index,), name=f"{self._name}-{index}", daemon=True
            )
            # The new thread needs the lock only after start() returns, so this cannot deadlock.
            thread.start()
            self._threads.append(thread)
        return True

    def _changed_locked(self) -> None:
        assert self._lock.locked()
        self._version += 1
        self._work.notify_all()

    def _is_settled_locked(self) -> bool:
        assert self._lock.locked()
        decided = sum(1 for version in self._waiting.values() if version == self._version)
        return self._in_flight + decided == len(self._threads)

    def _drain_locked(self) -> list[_Job]:
        assert self._lock.locked()
        jobs = sorted(job for queue in self._queues.values() for job in queue)
        self._queues.clear()
        self._depths.clear()
        return jobs

    def _worker(self, index: int) -> None:
        try:
            while (job := self._next_job(index)) is not None:
                self._run(job)
        except Exception:
            # Safety net for a bug in this module; callers' exceptions never get here.
            log.exception("%s worker %d crashed", self._name, index)

    def _next_job(self, index: int) -> _Job | None:
        with self._lock:
            while True:
                job, wait_s = self._pick_locked(self._clock())
                if job is not None:
                    return job
                if self._state is State.CLOSED and not any(self._queues.values()):
                    return None
                self._waiting[index] = self._version
                self._settled.notify_all()
                self._work.wait(None if wait_s is None else min(wait_s, MAX_WAIT_S))
                del self._waiting[index]

    def _pick_locked(self, now: float) -> tuple[_Job | None, float | None]:
        # Look at the head of each pool's heap: the most urgent head that may start now wins.
        # Returns (job, None) or (None, seconds until a rate-limited head may start, if any).
        assert self._lock.locked()
        # NORMAL/LOW wait while a CRITICAL call is pending, or when they fill their workers;
        # either way they are re-decided when a call finishes (_run bumps the version).
        routine_held = (self._depths[Priority.CRITICAL] + self._critical_in_flight > 0
                        or self._routine_in_flight >= self._routine_slots)
        best: _Job | None = None
        wait_s: float | None = None
        for queue in self._queues.values():
            if not queue:
                continue
            head = queue[0]
            if routine_held and head.priority >= Priority.NORMAL:
                continue
            delay = self._pools.delay(head.priority, head.pool, head.cost, now)
            if delay > 0.0:
                wait_s = delay if wait_s is None else min(wait_s, delay)
            elif best is None or head < best:
                best = head
        if best is not None:
            heapq.heappop(self._queues[best.pool])
            self._depths[best.priority] -= 1
            self._started[best.priority] += 1
            self._in_flight += 1
            if best.priority == Priority.CRITICAL:
                self._critical_in_flight += 1
            elif best.priority >= Priority.NORMAL:
                self._routine_in_flight += 1
            self._pools.start(best.pool, best.cost, now)
            return best, None
        return None, wait_s

    def _run(self, job: _Job) -> None:
        # Its weight is charged even if the caller cancelled the future meanwhile: the pick and
        # the cancel race, and overcounting is the safe side.
        error: BaseException | None = None
        result: Any = None
        running = job.future.set_running_or_notify_cancel()
        if running:
            with self._lock:
                self._running_jobs[job.seq] = job
            self._notify_start(job)
            try:
                result = job.fn(*job.args, **job.kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller via the future
                error = exc
        with self._lock:
            self._running_jobs.pop(job.seq, None)
            self._in_flight -= 1
            if job.priority == Priority.CRITICAL:
                self._critical_in_flight -= 1
            elif job.priority >= Priority.NORMAL:
                self._routine_in_flight -= 1
            self._changed_locked()
        if not running:
            return
        with contextlib.suppress(concurrent.futures.InvalidStateError):  # abandoned by close()
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result)

    def _notify_start(self, job: _Job) -> None:
        if self._debug:
            log.debug("> %s %s (pool=%s cost=%d)", job.priority.name, job.label, job.pool, job.cost)
        if self._on_start is None:
            return
        try:
            self._on_start(job.priority, job.label)
        except Exception:
            log.exception("on_start callback failed for %s", job.label)
