"""The soak's schedule: which fault and which restart when, drawn from one seed (pure).

Faults cycle through every kind in a shuffled order, so every kind is injected once before any
is injected twice; restarts cycle through SIGTERM, SIGKILL and kill-after-order the same way.
Gaps are random around a mean that scales with the soak's length, so a one-minute test sees
every restart kind and a dozen faults while a long soak is not a storm. Some restarts meet a 429
on their first call and are stopped again while they wait on it. A soak of LONG_RUN_SOAK_S or
more restarts nothing in its last third: one process lives through those faults.
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from typing import TypeVar

from .model import FaultKind, Plan, PlannedFault, PlannedRestart, RestartKind

T = TypeVar("T")

FIRST_ACTION_S = 6.0  # let the first bot start and trade before anything is broken
PLANNED_FAULTS = tuple(k for k in FaultKind if k is not FaultKind.STARTUP_429)  # that one rides a restart
LASTING = (FaultKind.SLOW_REST, FaultKind.MAINTENANCE, FaultKind.MARKET_PAUSED)
FAIL_STATUSES = {FaultKind.RATE_LIMITED: (429,), FaultKind.RATE_LIMITED_BARE: (429,),
                 FaultKind.SERVER_ERROR: (500, 502, 503)}
TARGETS = 1_000  # `target` is drawn in [0, TARGETS) and taken modulo the length of a table
# mean gap between two faults / two restarts: duration / N, within [low, high] seconds
FAULT_GAP = (20, 4.0, 12.0)
RESTART_GAP = (6, 9.0, 35.0)
STOP_WHILE_STARTING_S = (2.0, 6.0)  # a SIGTERM this long after a restart that met a startup 429
# a soak this long ends with one long run (the last third, faults going on, no restart): the
# one process whose memory and threads can be judged flat
LONG_RUN_SOAK_S = 600.0


def mean_gaps(duration_s: float) -> tuple[float, float]:
    """Return the mean seconds between faults and between restarts for a soak this long."""
    def clamp(n: int, low: float, high: float) -> float:
        return min(high, max(low, duration_s / n))
    return clamp(*FAULT_GAP), clamp(*RESTART_GAP)


def make_plan(seed: int, duration_s: float, *, fault_gap_s: float | None = None,
              restart_gap_s: float | None = None) -> Plan:
    """Return the schedule of a soak of `duration_s` seconds; the same seed, the same plan."""
    rng = random.Random(seed)
    default_fault_gap, default_restart_gap = mean_gaps(duration_s)
    fault_gap = fault_gap_s or default_fault_gap
    restart_gap = restart_gap_s or default_restart_gap
    faults = [_fault(rng, at, kind) for at, kind in
              zip(_times(rng, duration_s, fault_gap), _cycle(rng, PLANNED_FAULTS))]
    restarts = []
    restarts_end_s = duration_s * 2 / 3 if duration_s >= LONG_RUN_SOAK_S else duration_s - 5.0
    for i, (at, kind) in enumerate(zip(_times(rng, restarts_end_s, restart_gap),
                                       _cycle(rng, tuple(RestartKind)))):
        # the second restart always meets a startup 429, later ones now and then; half of those
        # (the first always) are stopped again while they start, as one stops a bot stuck starting
        startup_fault = i == 1 or rng.random() < 0.3
        restarts.append(PlannedRestart(at, kind, startup_fault=startup_fault,
                                       startup_target=rng.randrange(TARGETS)))
        if startup_fault and (i == 1 or rng.random() < 0.5) and at + STOP_WHILE_STARTING_S[1] < restarts_end_s:
            restarts.append(PlannedRestart(round(at + rng.uniform(*STOP_WHILE_STARTING_S), 2), RestartKind.SIGTERM))
    return Plan(tuple(faults), tuple(sorted(restarts, key=lambda r: r.at_s)))


def _times(rng: random.Random, end_s: float, mean_gap_s: float) -> list[float]:
    times, at = [], FIRST_ACTION_S
    while at < end_s:
        times.append(round(at, 2))
        at += rng.uniform(0.5 * mean_gap_s, 1.5 * mean_gap_s)
    return times


def _cycle(rng: random.Random, kinds: tuple[T, ...]) -> Iterator[T]:
    while True:
        order = list(kinds)
        rng.shuffle(order)
        yield from order


def _fault(rng: random.Random, at: float, kind: FaultKind) -> PlannedFault:
    duration = round(rng.uniform(4.0, 12.0), 1) if kind in LASTING else 0.0
    delay = round(rng.uniform(0.5, 3.0), 2) if kind is FaultKind.SLOW_REST else 0.0
    status = rng.choice(FAIL_STATUSES.get(kind, (429,)))
    return PlannedFault(at, kind, duration_s=duration, target=rng.randrange(TARGETS), status=status,
                        delay_s=delay)
