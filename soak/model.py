"""The soak's recorded world: frozen values the I/O loop records and the invariant checks read.

Times are seconds since the soak started (`t`, monotonic); the simulator's wall-clock stamps are
converted once, where they are read (observe.py). Symbols are the simulator's KuCoin ids
(XBTUSDTM), converted from the bot's ccxt symbols where the journal is read.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


class FaultKind(enum.StrEnum):
    """Every simulator fault the soak injects (kucoin_sim/README.md, "Fault injection")."""

    WS_DROP = "ws_drop"  # drop_ws()
    HALF_OPEN = "half_open"  # half_open()
    LEVEL2_GAP = "level2_gap"  # skip_level2_sequence(symbol)
    MALFORMED = "malformed"  # send_malformed()
    TOKEN_EXPIRED = "token_expired"  # expire_tokens()
    WS_REFUSED = "ws_refused"  # refuse_ws(n), then drop_ws() so the bot meets the refusals
    RATE_LIMITED = "429_rate_headers"  # fail_next(status=429, rate_headers=True)
    RATE_LIMITED_BARE = "429_no_headers"  # fail_next(status=429, rate_headers=False)
    SERVER_ERROR = "5xx"  # fail_next(status=500/502/503)
    SLOW_REST = "slow_rest"  # with delay_rest(seconds): for a while
    LOST_ORDER_RESPONSE = "lost_order_response"  # lose_response("POST", "/api/v1/orders")
    MAINTENANCE = "maintenance"  # set_maintenance(True) for a while
    MARKET_PAUSED = "market_paused"  # pause_market() for a while
    STARTUP_429 = "startup_429"  # a 429 on the first REST call of a restarting bot


# Faults that hold up the bot's REST calls (its account reads, orders, position reads). The
# others hit the WebSocket or the market: the bot's REST path, and so its journal and scans, go on.
REST_FAULTS = frozenset({FaultKind.RATE_LIMITED, FaultKind.RATE_LIMITED_BARE, FaultKind.SERVER_ERROR,
                         FaultKind.SLOW_REST, FaultKind.LOST_ORDER_RESPONSE, FaultKind.STARTUP_429})


class RestartKind(enum.StrEnum):
    SIGTERM = "sigterm"
    SIGKILL = "sigkill"
    KILL_AFTER_ORDER = "kill_after_order"  # SIGKILL as soon as a new order reaches the exchange


class RunEnd(enum.StrEnum):
    """How one bot process ended."""

    SIGTERM = "sigterm"
    SIGKILL = "sigkill"
    KILL_AFTER_ORDER = "kill_after_order"
    EXITED = "exited"  # on its own, without a signal from the soak
    FINAL = "final_sigterm"  # the soak's own end (a SIGTERM, held to the same rule)


# -- the plan -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PlannedFault:
    at_s: float
    kind: FaultKind
    duration_s: float = 0.0  # how long a lasting fault (slow REST, maintenance, pause) lasts
    target: int = 0  # picks a REST path / symbol / count, reproducibly (index into a table)
    status: int = 429  # HTTP status of a fail_next fault
    delay_s: float = 0.0  # slow REST: the delay of each request


@dataclass(frozen=True, slots=True)
class PlannedRestart:
    at_s: float
    kind: RestartKind
    startup_fault: bool = False  # inject STARTUP_429 just before the new process starts
    startup_target: int = 0  # picks the startup call and whether the 429 has rate headers


@dataclass(frozen=True, slots=True)
class Plan:
    faults: tuple[PlannedFault, ...]
    restarts: tuple[PlannedRestart, ...]


# -- what happened --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FaultEvent:
    """One injected fault; [window_start, window_end] is when the bot may fairly be degraded by
    it (a fail/lose rule only from when the bot met it: empty if it never did)."""

    t: float
    kind: FaultKind
    detail: str
    window_start: float
    window_end: float


@dataclass(frozen=True, slots=True)
class Order:
    """One order the exchange holds or held."""

    t: float
    order_id: str
    symbol: str
    side: str  # "buy" | "sell"
    size: int
    reduce_only: bool  # reduceOnly or closeOrder: it can only shrink a position
    client_oid: str
    filled: int
    stop: bool = False  # a stop order: it acts when it triggers, judged by its fills


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution on the exchange, oldest first; liquidations have no order of ours."""

    t: float
    symbol: str
    side: str
    size: int
    order_id: str | None


@dataclass(frozen=True, slots=True)
class Protection:
    """A journal `protections` row, as the invariants need it."""

    side: str  # "long" | "short"
    stop_price: float


@dataclass(frozen=True, slots=True)
class RestingStop:
    """An untriggered stop order on the exchange, as the invariants need it."""

    side: str  # "buy" | "sell"
    direction: str  # KuCoin's stop: "down" | "up"
    stop_price: float
    size: int
    reduce_only: bool
    close_order: bool


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at the world: the exchange's positions and prices, the journal's protections."""

    t: float
    bot_up: bool  # a bot process runs and has not been signalled
    bot_ready: bool  # ... and has scanned since it started (it trades)
    run: int = 0  # index of the bot process (the last one, while none is up)
    positions: Mapping[str, int] = field(default_factory=dict)  # symbol -> signed contracts
    last: Mapping[str, float] = field(default_factory=dict)  # symbol -> last trade price
    mark: Mapping[str, float] = field(default_factory=dict)  # symbol -> mark price (open positions)
    protections: Mapping[str, Protection] | None = None  # None: no `protections` table
    stops: Mapping[str, tuple[RestingStop, ...]] = field(default_factory=dict)  # symbol -> untriggered stops


@dataclass(frozen=True, slots=True)
class Run:
    """One bot process, from its start to its end."""

    index: int
    started_t: float
    ended_t: float
    end: RunEnd
    signalled_t: float | None = None
    exit_code: int | None = None
    stop_s: float | None = None  # SIGTERM to exit; None: it had to be killed
    scans: tuple[float, ...] = ()  # when the bot began a scan (its account read)
    orders: int = 0  # orders that reached the exchange during this run
    rss_kb: tuple[int, ...] = ()
    threads: tuple[int, ...] = ()
    output_path: str = ""

    @property
    def recovery_s(self) -> float | None:
        """Start to first scan, None if it never scanned."""
        return self.scans[0] - self.started_t if self.scans else None


@dataclass(frozen=True, slots=True)
class Secret:
    name: str  # "api key", "api secret", "api passphrase"
    value: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Recording:
    """Everything one soak recorded, for the invariant checks and the report."""

    seed: int
    duration_s: float
    max_open_positions: int
    faults: tuple[FaultEvent, ...] = ()
    runs: tuple[Run, ...] = ()
    samples: tuple[Sample, ...] = ()
    orders: tuple[Order, ...] = ()
    fills: tuple[Fill, ...] = ()
    journal_oids: frozenset[str] | None = None  # None: the journal could not be read
    outputs: Mapping[int, str] = field(default_factory=dict)  # run index -> stdout+stderr
    secrets: tuple[Secret, ...] = ()
    workdir: str = ""
    sim_faults: Mapping[str, int] = field(default_factory=dict)  # the simulator's own counters
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Violation:
    t: float | None
    invariant: str
    detail: str


class Status(enum.StrEnum):
    OK = "ok"
    VIOLATED = "VIOLATED"
    NOT_CHECKABLE = "not checkable"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: Status
    violations: tuple[Violation, ...] = ()
    note: str = ""

    @classmethod
    def of(cls, name: str, violations: list[Violation], note: str = "") -> CheckResult:
        status = Status.VIOLATED if violations else Status.OK
        return cls(name, status, tuple(violations), note)


def in_window(t: float, windows: Sequence[tuple[float, float]]) -> bool:
    """True if ``t`` falls in one of the (start, end) windows."""
    return any(start <= t <= end for start, end in windows)
