"""The owner's controls of a running bot: stop/start new entries, force an exit.

The web server (another thread) asks; the trader acts on its own threads:

    controls.stop_entries("web")                  # journaled; the scans open nothing new
    future = controls.request_exit(symbol)        # journaled; the protection thread closes it
    ...
    for request in controls.take_exit_requests(): # the trader, on its protection thread
        request.future.set_result(trader_closes(request.symbol))

Stopping entries lasts across a restart: `restore` reads the journal's last stop/start, so a bot
restarted by systemd after the owner stopped its entries does not start entering again.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

__all__ = ["STOP_ENTRY", "START_ENTRY", "FORCE_EXIT", "Controls", "ExitRequest"]

log = logging.getLogger(__name__)

# The journal's names of the control actions (the endpoints' names, POST /api/v1/<action>).
STOP_ENTRY = "stopentry"
START_ENTRY = "startentry"
FORCE_EXIT = "forceexit"
MAX_PENDING_EXITS = 100  # more force-exit requests than positions can ever be: refuse the rest


@dataclass(frozen=True, slots=True)
class ExitRequest:
    """One force-exit the owner asked for; the trader sets `future` to what became of it."""

    symbol: str
    future: Future = field(default_factory=Future, compare=False)

    def resolve(self, outcome: str) -> None:
        """Tell the asker what became of the request (nobody may be waiting any more)."""
        if self.future.set_running_or_notify_cancel():
            self.future.set_result(outcome)


class Controls:
    """Thread-safe switches between the owner (web thread) and the trader (its threads).
    `journal` (optional) records every action with its source."""

    def __init__(self, journal: Any = None) -> None:
        self._journal = journal
        self._lock = threading.Lock()
        self._entries_stopped = False
        self._exits: list[ExitRequest] = []

    def attach(self, journal: Any) -> None:
        """Journal the actions from now on (the trader attaches its journal)."""
        self._journal = journal

    @property
    def entries_stopped(self) -> bool:
        return self._entries_stopped  # one bool read: atomic, no lock needed

    def stop_entries(self, source: str) -> bool:
        """Open no new position until start_entries; return whether they were running."""
        return self._set_entries_stopped(True, source)

    def start_entries(self, source: str) -> bool:
        """Allow new entries again; return whether they were stopped."""
        return self._set_entries_stopped(False, source)

    def _set_entries_stopped(self, stopped: bool, source: str) -> bool:
        action = STOP_ENTRY if stopped else START_ENTRY
        with self._lock:
            changed = self._entries_stopped != stopped
            self._entries_stopped = stopped
        self._record(action, source)
        log.warning("%s by %s: %s", action, source,
                    "no new entries until startentry" if stopped else "new entries allowed again")
        return changed

    def restore(self) -> None:
        """Take the last stop/start the journal holds (a previous run's), if any."""
        if self._journal is None:
            return
        last = self._journal.controls(actions=(STOP_ENTRY, START_ENTRY), limit=1)
        if last and last[0][1] == STOP_ENTRY:
            with self._lock:
                self._entries_stopped = True
            log.warning("new entries stay stopped (stopentry by %s before this start): POST /api/v1/startentry "
                        "to resume", last[0][2] or "the owner")

    def request_exit(self, symbol: str, source: str) -> Future:
        """Queue a force exit of `symbol` for the trader; the future gets its outcome.

        Raises:
            OverflowError: MAX_PENDING_EXITS requests are already waiting (the trader is stuck).
        """
        request = ExitRequest(symbol)
        with self._lock:
            if len(self._exits) >= MAX_PENDING_EXITS:
                raise OverflowError("too many force-exit requests waiting")
            self._exits.append(request)
        self._record(FORCE_EXIT, f"{source}: {symbol}")
        log.warning("forceexit of %s requested by %s", symbol, source)
        return request.future

    def take_exit_requests(self) -> list[ExitRequest]:
        """Return (and forget) the force exits asked for since the last call."""
        with self._lock:
            taken, self._exits = self._exits, []
        return taken

    def _record(self, action: str, detail: str) -> None:
        if self._journal is not None:
            self._journal.record_control(action, detail)
