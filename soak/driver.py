"""The soak's I/O loop: host the simulator, run the bot, inject the plan, record what happens.

    recording = run_soak(SoakConfig(duration_s=180, seed=1))

One thread. Each turn of the loop injects the faults and restarts that are due, notices scans
(the bot's account read, GET /api/v1/account-overview, begins every scan) and unexpected exits,
and every SAMPLE_S records a Sample. Waits are Event.wait / process waits with timeouts. The
judging is invariants.py's, over the returned Recording.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .botproc import BotProcess, bot_environment
from .faults import STARTUP_TARGETS, Injector
from .model import (
    Plan, PlannedRestart, Recording, RestartKind, Run, RunEnd, Sample, Secret,
)
from .observe import fills_from_sim, market_state, orders_from_sim, proc_status, read_journal, resting_stops, sim_symbol
from .plan import make_plan

log = logging.getLogger(__name__)

SAMPLE_S = 0.5
POLL_S = 0.1
ARMED_POLL_S = 0.01  # kill-after-order: how often the order count is read while armed
ORDER_APPEAR_S = 0.5  # after the POST arrived, wait this long for the order itself
KILL_AFTER_ORDER_WAIT_S = 45.0  # armed this long at most (a quarter of a short soak), then a plain SIGKILL
SIGTERM_LIMIT_S = 5.0
# A restart waits until the bot has run this long and logged its first line: a signal during
# Python's imports, before main() installs its handler, tests the interpreter, not the bot.
MIN_RUN_S = 2.0
LAST_RUN_GRACE_S = 20.0  # the soak's end waits at most this long for the last bot to be signal-ready
SIGTERM_GIVE_UP_S = 30.0  # a SIGTERM'd bot still running after this is killed
SCAN_PATH = ("GET", "/api/v1/account-overview")  # Trader.scan begins with the balance
TRADING_LINE = b" tradebot.trader: trading "  # Trader.run's first line: scans begin
ORDER_PATH = ("POST", "/api/v1/orders")
# kucoin_sim.faults.Faults counters: how often each fault actually fired in the simulator
SIM_COUNTERS = ("failed", "lost", "delayed", "ws_refused", "ws_dropped", "malformed_sent", "tokens_expired",
                "sequences_skipped")
DEFAULT_SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")
# trades every minute (soak/strategy.py): with tight stops, orders and stops keep coming
DEFAULT_STRATEGY = "soak.strategy:churn"


@dataclass(frozen=True, slots=True)
class SoakConfig:
    duration_s: float
    seed: int = 1
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    max_open_positions: int = 2
    scan_interval_s: float = 2.0
    strategy: str = DEFAULT_STRATEGY
    timeframe: str = "1m"
    stop_atr_multiple: float = 0.3
    take_profit_atr_multiple: float = 0.6
    vol_scale: float = 3.0
    workdir: str | None = None  # default: a new temporary directory (kept: outputs, journal)
    fault_gap_s: float | None = None  # mean seconds between faults (default: by duration)
    restart_gap_s: float | None = None


class _RunTracker:
    """The running bot process and what is seen of it (mutable while it runs)."""

    def __init__(self, proc: BotProcess, started_t: float) -> None:
        self.proc = proc
        self.started_t = started_t
        self.signalled_t: float | None = None
        self.scans: list[float] = []
        self.rss_kb: list[int] = []
        self.threads: list[int] = []
        self._trading = False

    @property
    def up(self) -> bool:
        return self.signalled_t is None and self.proc.exit_code() is None

    def trading(self) -> bool:
        """The bot logged its Trader.run line: account reads from now on are scans (before it,
        one is the start-up check of the keys)."""
        if not self._trading:
            try:
                with open(self.proc.output_path, "rb") as out:
                    self._trading = TRADING_LINE in out.read()
            except OSError:
                return False
        return self._trading

    def has_logged(self) -> bool:
        """The bot wrote its first line: main() has installed its SIGTERM handler by then."""
        try:
            return os.path.getsize(self.proc.output_path) > 0
        except OSError:
            return False

    def ended(self, t: float, end: RunEnd, code: int | None, stop_s: float | None = None) -> Run:
        return Run(index=self.proc.index, started_t=self.started_t, ended_t=t, end=end,
                   signalled_t=self.signalled_t, exit_code=code, stop_s=stop_s, scans=tuple(self.scans),
                   rss_kb=tuple(self.rss_kb), threads=tuple(self.threads), output_path=self.proc.output_path)


class Soak:
    """One soak run; `run()` once."""

    def __init__(self, config: SoakConfig, sim: Any, *, plan: Plan | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.sim = sim
        self.plan = plan or make_plan(config.seed, config.duration_s, fault_gap_s=config.fault_gap_s,
                                      restart_gap_s=config.restart_gap_s)
        self.workdir = Path(config.workdir) if config.workdir else None  # made by run()
        self.symbols = [sim_symbol(s) for s in config.symbols]
        self._clock = clock
        self._t0 = 0.0
        self._wall0 = 0.0
        self._pause = threading.Event()  # never set: its wait() is the loop's timed pause
        self._injector = Injector(sim, symbols=self.symbols)
        self._runs: list[Run] = []
        self._samples: list[Sample] = []
        self._notes: list[str] = []
        self._current: _RunTracker | None = None
        self._scan_count = 0
        # kill-after-order, armed: (deadline, POSTs seen, orders seen, the planned restart)
        self._armed: tuple[float, int, int, PlannedRestart] | None = None

    def now(self) -> float:
        return self._clock() - self._t0

    @property
    def journal_path(self) -> str:
        return str(self.workdir / "journal.sqlite3")

    @property
    def env_file(self) -> str:
        return str(self.workdir / "empty.env")  # --env-file: no developer's .env leaks in

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> Recording:
        """Run the soak to its end; return what was recorded (the bot is stopped, the sim not)."""
        self.workdir = self.workdir or Path(tempfile.mkdtemp(prefix="soak-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        Path(self.env_file).write_text("")
        os.chmod(self.env_file, 0o600)  # the bot warns about a settings file others can read
        self._t0, self._wall0 = self._clock(), time.time()
        faults, restarts = list(self.plan.faults), list(self.plan.restarts)
        next_sample = 0.0
        self._start_bot()
        try:
            while (now := self.now()) < self.config.duration_s:
                while faults and faults[0].at_s <= now:
                    if self._injector.inject(faults.pop(0), now) is None:
                        self._notes.append(f"{now:.1f}s: slow_rest skipped (one already active)")
                self._injector.tick(now)
                self._watch_scans(now)
                self._watch_exit(now)
                if self._armed is not None:
                    self._kill_if_ordered(now)
                elif restarts and restarts[0].at_s <= now and self._signal_ready(now):
                    self._restart(restarts.pop(0), now)
                if now >= next_sample:
                    self._sample(now)
                    next_sample = now + SAMPLE_S
                self._pause.wait(ARMED_POLL_S if self._armed is not None else POLL_S)
            end_by = self.now() + LAST_RUN_GRACE_S
            while not self._signal_ready(self.now()) and self.now() < end_by:
                self._watch_exit(self.now())
                self._pause.wait(POLL_S)
            self._stop_bot(RunEnd.FINAL)
        finally:
            if self._current is not None:  # an error above: never leave a bot behind
                self._current.proc.kill()
            self._injector.close(self.now())
        return self._recording()

    def _signal_ready(self, now: float) -> bool:
        tracker = self._current
        return tracker is not None and now - tracker.started_t >= MIN_RUN_S and tracker.has_logged()

    def _start_bot(self) -> None:
        index = len(self._runs)
        creds = self.sim.credentials
        settings = {
            "KUCOIN_FUTURES_URL": self.sim.url, "KUCOIN_API_KEY": creds.api_key,
            "KUCOIN_API_SECRET": creds.api_secret, "KUCOIN_API_PASSPHRASE": creds.api_passphrase,
            "DRY_RUN": "false", "JOURNAL_PATH": self.journal_path, "SYMBOLS": ",".join(self.config.symbols),
            "MAX_OPEN_POSITIONS": str(self.config.max_open_positions),
            "SCAN_INTERVAL_S": str(self.config.scan_interval_s), "STRATEGY": self.config.strategy,
            "TIMEFRAME": self.config.timeframe, "STOP_ATR_MULTIPLE": str(self.config.stop_atr_multiple),
            "TAKE_PROFIT_ATR_MULTIPLE": str(self.config.take_profit_atr_multiple), "LOG_LEVEL": "INFO",
            # the churn pays fees every minute: at the default 5 % the bot would stop entering
            # after a few minutes and the rest of the soak would test a bot that only watches
            "DAILY_LOSS_LIMIT": "1",
        }
        proc = BotProcess(index, env=bot_environment(settings), env_file=self.env_file,
                          output_path=str(self.workdir / f"run-{index:02d}.log"), clock=self._clock)
        self._current = _RunTracker(proc, self.now())
        self._scan_count = self.sim.request_count(*SCAN_PATH)
        log.info("bot run %d started (pid %d) at %.1fs", index, proc.pid, self.now())

    def _end_run(self, end: RunEnd, code: int | None, stop_s: float | None = None) -> None:
        run = self._current.ended(self.now(), end, code, stop_s)
        self._runs.append(run)
        self._current = None
        log.info("bot run %d ended at %.1fs: %s, exit code %s%s", run.index, run.ended_t, end.value, code,
                 "" if stop_s is None else f" after {stop_s:.2f}s")

    def _stop_bot(self, end: RunEnd) -> None:
        tracker = self._current
        tracker.signalled_t = self.now()
        if end in (RunEnd.SIGTERM, RunEnd.FINAL):
            stop_s, code = tracker.proc.terminate(limit_s=SIGTERM_LIMIT_S, give_up_s=SIGTERM_GIVE_UP_S)
            self._end_run(end, code, stop_s)
        else:
            self._end_run(end, tracker.proc.kill())

    def _restart(self, planned: PlannedRestart, now: float) -> None:
        if planned.kind is RestartKind.KILL_AFTER_ORDER:
            wait_s = min(KILL_AFTER_ORDER_WAIT_S, self.config.duration_s / 4)
            self._armed = (now + wait_s, self.sim.request_count(*ORDER_PATH), len(self.sim.orders()), planned)
            log.info("armed at %.1fs: SIGKILL at the next order", now)
            return
        self._stop_bot(RunEnd.SIGTERM if planned.kind is RestartKind.SIGTERM else RunEnd.SIGKILL)
        self._respawn(planned)

    def _respawn(self, planned: PlannedRestart) -> None:
        if planned.startup_fault:
            target = planned.startup_target
            self._injector.startup_429(self.now(), target=target,
                                       rate_headers=(target // len(STARTUP_TARGETS)) % 2 == 0)
        self._start_bot()

    def _kill_if_ordered(self, now: float) -> None:
        deadline, posts, orders, planned = self._armed
        seen = self.sim.request_count(*ORDER_PATH)
        if seen > posts:
            if not self._wait_for_order(orders):  # refused (an injected 429/5xx): stay armed
                self._armed = (deadline, seen, len(self.sim.orders()), planned)
                return
            self._armed = None
            self._stop_bot(RunEnd.KILL_AFTER_ORDER)
            self._respawn(planned)
        elif now >= deadline:
            self._armed = None
            self._notes.append(f"{now:.1f}s: kill_after_order: no order while armed; plain SIGKILL instead")
            self._stop_bot(RunEnd.SIGKILL)
            self._respawn(planned)

    def _wait_for_order(self, orders_before: int) -> bool:
        deadline = self._clock() + ORDER_APPEAR_S
        while len(self.sim.orders()) <= orders_before:
            if self._clock() >= deadline:
                return False
            self._pause.wait(ARMED_POLL_S)
        return True

    # -- watching ---------------------------------------------------------------------------------
    def _watch_scans(self, now: float) -> None:
        count = self.sim.request_count(*SCAN_PATH)
        if count > self._scan_count and self._current is not None and self._current.up and self._current.trading():
            self._current.scans.append(now)
        self._scan_count = count

    def _watch_exit(self, now: float) -> None:
        tracker = self._current
        if tracker is None or tracker.signalled_t is not None:
            return
        code = tracker.proc.exit_code()
        if code is not None:
            log.warning("bot run %d exited on its own with code %s at %.1fs", tracker.proc.index, code, now)
            self._end_run(RunEnd.EXITED, code)
            if now - tracker.started_t < MIN_RUN_S:  # it dies at start: do not spin
                self._pause.wait(MIN_RUN_S)
            self._start_bot()

    def _sample(self, now: float) -> None:
        tracker = self._current
        if tracker is not None and tracker.up and tracker.has_logged():
            status = proc_status(tracker.proc.pid)
            if status is not None:
                tracker.rss_kb.append(status[0])
                tracker.threads.append(status[1])
        positions, last, mark = market_state(self.sim, self.symbols)
        view = read_journal(self.journal_path)
        if not view.readable and self._samples:  # mid-write or not created yet: keep the last look
            protections = self._samples[-1].protections
        else:
            protections = view.protections
        up = tracker is not None and tracker.up
        self._samples.append(Sample(t=now, bot_up=up, bot_ready=up and bool(tracker.scans),
                                    run=tracker.proc.index if tracker is not None else len(self._runs),
                                    positions=positions, last=last, mark=mark, protections=protections,
                                    stops=resting_stops(self.sim)))

    # -- the record -------------------------------------------------------------------------------
    def _recording(self) -> Recording:
        orders = orders_from_sim(self.sim.orders(), wall0_s=self._wall0)
        runs = tuple(dataclasses.replace(r, orders=sum(r.started_t <= o.t <= r.ended_t for o in orders))
                     for r in self._runs)
        journal = read_journal(self.journal_path, with_oids=True)
        outputs = {r.index: Path(r.output_path).read_text(errors="replace") for r in runs}
        creds = self.sim.credentials
        tokens = self.sim.call(lambda: tuple(self.sim.hub.tokens))  # every bullet token issued
        counters = {name: getattr(self.sim.faults, name) for name in SIM_COUNTERS}
        return Recording(
            seed=self.config.seed, duration_s=self.now(), max_open_positions=self.config.max_open_positions,
            faults=self._injector.events, runs=runs, samples=tuple(self._samples), orders=orders,
            fills=fills_from_sim(self.sim.fills(), wall0_s=self._wall0),
            journal_oids=journal.client_oids if journal.readable else None, outputs=outputs,
            secrets=(Secret("api key", creds.api_key), Secret("api secret", creds.api_secret),
                     Secret("api passphrase", creds.api_passphrase),
                     *(Secret("bullet token", token) for token in tokens)),
            workdir=str(self.workdir), sim_faults=counters, notes=tuple(self._notes))


def run_soak(config: SoakConfig) -> Recording:
    """Host a Simulator, run the soak against it, return what was recorded."""
    from kucoin_sim import Simulator  # here: the pure parts of soak import without aiohttp

    sim = Simulator(seed=config.seed, vol_scale=config.vol_scale, api_key=f"soak-key-{secrets.token_hex(8)}",
                    api_secret=f"soak-secret-{secrets.token_hex(12)}",
                    api_passphrase=f"soak-pass-{secrets.token_hex(6)}")
    with sim:
        return Soak(config, sim).run()
