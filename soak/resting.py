"""The resting-stop invariant: every open position has, on the exchange, a stop that would close
it on the loss side, whether the bot runs or not.

A position's first stop is owed within ENTRY_GRACE_S of bot time (the bot up, no REST fault
window: its entry fill must be seen and the stop sent); a bot killed between the fill and the
stop owes it from its restart (reconciliation places it). Once a position has had its stop, a
sample that shows it open without one is a violation at once, bot up or down: the stop rests on
the exchange, a trailing move places the new one before it cancels the old, and a restart never
removes it. Trailing must not pile stops up either: at most MAX_STOPS_PER_POSITION each, in two
samples running (a replacement has its new stop placed for an instant before the old one goes).

A position whose size changed between two samples is a new one (the bot only opens from flat and
closes whole): its flat moment fell between the samples (say, a stop filled during a restart and
the restarted bot entered again), so it owes its own first stop.
"""
from __future__ import annotations

from collections.abc import Sequence

from .model import CheckResult, RestingStop, Sample, Status, Violation, in_window

ENTRY_GRACE_S = 3.0  # one round trip to see the fill, one to place the stop, with room to spare
MAX_STOPS_PER_POSITION = 2  # the stop-loss and the take-profit


def protects(stop: RestingStop, qty: int) -> bool:
    """True if ``stop`` would close a position of ``qty`` signed contracts on its loss side."""
    closing_side, loss_direction = ("sell", "down") if qty > 0 else ("buy", "up")
    return (stop.side == closing_side and stop.direction == loss_direction
            and (stop.close_order or (stop.reduce_only and stop.size >= abs(qty))))


def check_resting_stops(samples: Sequence[Sample], rest_windows: Sequence[tuple[float, float]], *,
                        grace_s: float = ENTRY_GRACE_S) -> CheckResult:
    """See the module docstring."""
    name = "open positions have a resting stop on the exchange"
    if not samples:
        return CheckResult(name, Status.NOT_CHECKABLE, note="no samples")
    found: list[Violation] = []
    owed: dict[str, float] = {}  # symbol -> bot time counted before its first stop
    covered: set[str] = set()  # symbols whose current position has had its stop
    reported: set[tuple[str, str]] = set()
    piled: dict[str, float] = {}  # symbol -> since when more than MAX_STOPS_PER_POSITION rest
    judged, previous = 0, None
    for s in samples:
        dt = 0.0 if previous is None else s.t - previous.t
        for symbol in set(owed) | covered | set(s.positions):
            qty = s.positions.get(symbol, 0)
            if previous is not None and qty and previous.positions.get(symbol, 0) not in (0, qty):
                covered.discard(symbol)  # a new position: flat between the samples
                owed[symbol] = 0.0
                reported = {r for r in reported if r[0] != symbol}
            if not qty:
                owed.pop(symbol, None)
                covered.discard(symbol)
                reported = {r for r in reported if r[0] != symbol}
                continue
            judged += 1
            stops = s.stops.get(symbol, ())
            if len(stops) > MAX_STOPS_PER_POSITION:  # a replacement's instant is fine; twice in a row is not
                if symbol in piled and (symbol, "piled") not in reported:
                    reported.add((symbol, "piled"))
                    found.append(Violation(s.t, "resting_stop", f"{symbol}: {len(stops)} stops rest for one "
                                           f"position ({s.t - piled[symbol]:.1f}s)"))
                piled.setdefault(symbol, s.t)
            else:
                piled.pop(symbol, None)
            if any(protects(stop, qty) for stop in stops):
                covered.add(symbol)
                owed.pop(symbol, None)
                continue
            if symbol in covered:
                if (symbol, "lost") not in reported:
                    reported.add((symbol, "lost"))
                    found.append(Violation(s.t, "resting_stop", f"{symbol}: {qty:+d} open and its resting stop "
                                           f"is gone ({'bot up' if s.bot_up else 'bot down'})"))
                continue
            if s.bot_up and not in_window(s.t, rest_windows):
                owed[symbol] = owed.get(symbol, 0.0) + dt
            else:
                owed.setdefault(symbol, 0.0)
            if owed[symbol] > grace_s and (symbol, "late") not in reported:
                reported.add((symbol, "late"))
                found.append(Violation(s.t, "resting_stop", f"{symbol}: {qty:+d} open {owed[symbol]:.1f}s of bot "
                                       "time without a resting stop"))
        previous = s
    return CheckResult.of(name, found, f"{judged} samples of open positions judged")
