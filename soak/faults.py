"""Fault injection: apply the plan's faults to a running Simulator, end lasting ones on time.

Each injected fault becomes a FaultEvent whose window is how long the bot may fairly be degraded
by it (WINDOW_S): the client serves a cached ticker up to 10 s old, reconnects with backoff,
waits out a 429's gw-ratelimit-reset (at most the 30 s pool window; a bare 429 pauses 0.5 s),
and gives up on a lost order response after its 10 s request timeout. A fail/lose rule's window
opens when the bot meets it. The invariants do not count that time.
"""
from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from kucoin_sim.engine import ORDER_ID_BASE

from .model import FaultEvent, FaultKind, PlannedFault
from .plan import LASTING

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0  # the bot's REST timeout (KuCoinClient request_timeout_s)
TICKER_MAX_AGE_S = 10.0  # the client serves a cached ticker this old, then REST (kucoin_client)
POOL_WINDOW_S = 30.0  # a 429 with rate headers resets within the simulator's pool window
# seconds after the fault (after its end, for lasting ones) the bot may be degraded
WINDOW_S: dict[FaultKind, float] = {
    FaultKind.WS_DROP: TICKER_MAX_AGE_S + 2, FaultKind.HALF_OPEN: TICKER_MAX_AGE_S + 3,
    FaultKind.LEVEL2_GAP: 2.0, FaultKind.MALFORMED: 2.0, FaultKind.TOKEN_EXPIRED: TICKER_MAX_AGE_S + 2,
    FaultKind.WS_REFUSED: TICKER_MAX_AGE_S + 5, FaultKind.RATE_LIMITED: POOL_WINDOW_S + 2,
    FaultKind.RATE_LIMITED_BARE: 4.0, FaultKind.SERVER_ERROR: 8.0, FaultKind.SLOW_REST: 3.0,
    FaultKind.LOST_ORDER_RESPONSE: REQUEST_TIMEOUT_S + 3, FaultKind.MAINTENANCE: 2.0,
    FaultKind.MARKET_PAUSED: 3.0, FaultKind.STARTUP_429: POOL_WINDOW_S + 2,
}
NEXT_ORDER_READ = "next order read-back"  # GET /api/v1/orders/{the id the next order will get}
# REST calls a running bot makes, the targets of fail_next faults. The read-back of a new order
# is listed three times (drawn three times as often): an order placed whose fill is unread is
# the moment a bot most easily enters or exits twice.
FAIL_TARGETS: tuple[tuple[str, str], ...] = (
    ("GET", "/api/v1/account-overview"), ("GET", "/api/v1/positions"), ("POST", "/api/v1/orders"),
    ("GET", NEXT_ORDER_READ), ("GET", "/api/v1/kline/query"), ("GET", NEXT_ORDER_READ),
    ("POST", "/api/v1/bullet-public"), ("GET", "/api/v1/ticker"), ("GET", NEXT_ORDER_READ),
)
# the first calls of a starting bot (load_markets, then reconcile / adopt)
STARTUP_TARGETS: tuple[tuple[str, str], ...] = (
    ("GET", "/api/v1/contracts/active"), ("GET", "/api/v1/positions"), ("GET", "/api/v1/account-overview"),
)
RuleKey = tuple[str, str, str]  # ("fail" | "lose", method, path) of a rule waiting in the simulator
REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class Injector:
    """Applies faults to `sim` (a kucoin_sim Simulator); records them as FaultEvents.

    A fail_next / lose_response rule waits in the simulator for the request it matches; its
    window opens when the bot meets it (the rule is gone), found by tick().
    """

    def __init__(self, sim: Any, *, symbols: list[str]) -> None:
        self._sim = sim
        self._symbols = symbols
        self._events: list[FaultEvent] = []
        self._ending: list[tuple[float, Callable[[], None]]] = []  # (due t, undo)
        self._delay = contextlib.ExitStack()
        self._delay_until = 0.0
        self._waiting: list[tuple[int, RuleKey, float]] = []  # (index in _events, rule, window s), oldest first

    @property
    def events(self) -> tuple[FaultEvent, ...]:
        return tuple(self._events)

    def inject(self, fault: PlannedFault, now: float) -> FaultEvent | None:
        """Apply one planned fault at `now`; None if it cannot apply now (one slow-REST at a time)."""
        kind = fault.kind
        if kind is FaultKind.SLOW_REST and now < self._delay_until:
            return None
        detail, rule = self._apply(fault, now)
        lasting = fault.duration_s + fault.delay_s if kind in LASTING else 0.0
        if rule is not None:  # its window opens when the bot meets it
            return self._record(FaultEvent(now, kind, detail, now, now), rule, WINDOW_S[kind])
        return self._record(FaultEvent(now, kind, detail, now, now + lasting + WINDOW_S[kind]), None)

    def startup_429(self, now: float, *, target: int, rate_headers: bool) -> FaultEvent:
        """Answer the first call of a starting bot with 429 (with or without rate headers)."""
        method, path = STARTUP_TARGETS[target % len(STARTUP_TARGETS)]
        self._sim.fail_next(method, path, status=429, code="429000", rate_headers=rate_headers)
        detail = f"{method} {path} -> 429 {'with' if rate_headers else 'without'} rate headers"
        window_s = WINDOW_S[FaultKind.STARTUP_429] if rate_headers else WINDOW_S[FaultKind.RATE_LIMITED_BARE]
        return self._record(FaultEvent(now, FaultKind.STARTUP_429, detail, now, now), ("fail", method, path),
                            window_s)

    def tick(self, now: float) -> None:
        """End lasting faults that are due; open the windows of rules the bot has just met."""
        due = [undo for at, undo in self._ending if at <= now]
        self._ending = [(at, undo) for at, undo in self._ending if at > now]
        for undo in due:
            undo()
        if not self._waiting:
            return
        left = collections.Counter(self._sim.call(self._rules_left))
        waiting = collections.Counter(rule for _, rule, _ in self._waiting)
        met = {rule: waiting[rule] - left[rule] for rule in waiting}  # rules are taken oldest first
        still: list[tuple[int, RuleKey, float]] = []
        for index, rule, window_s in self._waiting:
            if met[rule] > 0:
                met[rule] -= 1
                old = self._events[index]
                self._events[index] = FaultEvent(old.t, old.kind, f"{old.detail} (met at {now:.1f}s)",
                                                 now, now + window_s)
            else:
                still.append((index, rule, window_s))
        self._waiting = still

    def close(self, now: float) -> None:
        """End every lasting fault now (the soak is over); rules never met get no window."""
        for _, undo in self._ending:
            undo()
        self._ending = []
        self._delay.close()
        for index, _, _ in self._waiting:
            old = self._events[index]
            self._events[index] = FaultEvent(old.t, old.kind, f"{old.detail} (never met)", old.t, old.t)
        self._waiting = []

    def _record(self, event: FaultEvent, rule: RuleKey | None, window_s: float = 0.0) -> FaultEvent:
        if rule is not None:
            self._waiting.append((len(self._events), rule, window_s))
        self._events.append(event)
        log.info("fault at %.1fs: %s %s", event.t, event.kind.value, event.detail)
        return event

    def _rules_left(self) -> list[RuleKey]:
        # runs on the simulator's thread (Simulator.call): its fault state lives there
        faults = self._sim.faults
        return ([("fail", r.method, r.path) for r in faults.fail_rules for _ in range(r.remaining)]
                + [("lose", r.method, r.path) for r in faults.lose_rules for _ in range(r.remaining)])

    # -- one fault --------------------------------------------------------------------------------
    def _apply(self, fault: PlannedFault, now: float) -> tuple[str, RuleKey | None]:
        sim, kind = self._sim, fault.kind
        if kind is FaultKind.WS_DROP:
            return f"{sim.drop_ws()} connections aborted", None
        if kind is FaultKind.HALF_OPEN:
            return f"{sim.half_open()} connections half-open", None
        if kind is FaultKind.LEVEL2_GAP:
            symbol = self._symbols[fault.target % len(self._symbols)]
            return f"{symbol} level-2 sequence {sim.skip_level2_sequence(symbol)} skipped", None
        if kind is FaultKind.MALFORMED:
            return f"truncated frame to {sim.send_malformed()} connections", None
        if kind is FaultKind.TOKEN_EXPIRED:
            return f"{sim.expire_tokens()} tokens expired, open connections closed", None
        if kind is FaultKind.WS_REFUSED:
            refusals = 1 + fault.target % 3
            sim.refuse_ws(refusals)
            return f"next {refusals} upgrades refused, {sim.drop_ws()} connections aborted", None
        if kind in (FaultKind.RATE_LIMITED, FaultKind.RATE_LIMITED_BARE, FaultKind.SERVER_ERROR):
            return self._fail_next(fault)
        if kind is FaultKind.SLOW_REST:
            self._delay = contextlib.ExitStack()
            self._delay.enter_context(sim.delay_rest(fault.delay_s))
            self._delay_until = now + fault.duration_s
            self._ending.append((self._delay_until, self._delay.close))
            return f"every REST call delayed {fault.delay_s:.2f}s for {fault.duration_s:.1f}s", None
        if kind is FaultKind.LOST_ORDER_RESPONSE:
            mode = ("timeout", "reset")[fault.target % 2]
            sim.lose_response("POST", "/api/v1/orders", mode=mode)
            return f"next POST /api/v1/orders placed, response lost ({mode})", ("lose", "POST", "/api/v1/orders")
        if kind is FaultKind.MAINTENANCE:
            sim.set_maintenance(True)
            self._ending.append((now + fault.duration_s, lambda: sim.set_maintenance(False)))
            return f"status 'close' for {fault.duration_s:.1f}s", None
        if kind is FaultKind.MARKET_PAUSED:
            sim.pause_market(True)
            self._ending.append((now + fault.duration_s, lambda: sim.pause_market(False)))
            return f"market frozen for {fault.duration_s:.1f}s", None
        raise ValueError(f"not a planned fault: {kind}")

    def _fail_next(self, fault: PlannedFault) -> tuple[str, RuleKey]:
        method, path = FAIL_TARGETS[fault.target % len(FAIL_TARGETS)]
        if path == NEXT_ORDER_READ:  # the read-back of the order the bot will place next
            ids = [int(o["id"]) for o in self._sim.orders()]
            path = f"/api/v1/orders/{max(ids) + 1 if ids else ORDER_ID_BASE}"
        if fault.kind is FaultKind.SERVER_ERROR:
            self._sim.fail_next(method, path, status=fault.status, code=str(fault.status * 1000),
                                msg=REASONS.get(fault.status, "Server Error"), rate_headers=False)
            return f"{method} {path} -> {fault.status}", ("fail", method, path)
        headers = fault.kind is FaultKind.RATE_LIMITED
        self._sim.fail_next(method, path, status=429, code="429000", rate_headers=headers)
        return (f"{method} {path} -> 429 {'with' if headers else 'without'} rate headers",
                ("fail", method, path))
