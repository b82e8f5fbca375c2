"""Journal operations over a whole run: restart reconciliation and the exit summary.

Split from journal.py (which re-exports these names); nothing here sends an order.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kucoin_futures.errors import KuCoinError
from tradebot.risk import Summary, summarize

if TYPE_CHECKING:
    from tradebot.journal import Journal

log = logging.getLogger(__name__)

# -- restart reconciliation ---------------------------------------------------------------------
OrderLookup = Callable[[str, str], Mapping[str, Any] | None]
_REPORT_KEY = {"placed": "placed", "filled": "filled", "canceled": "canceled",
               "rejected": "not_placed"}


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """clientOids by what the exchange said; `unresolved` ones stay blocked (lookup failed)."""

    placed: tuple[str, ...] = ()
    filled: tuple[str, ...] = ()
    canceled: tuple[str, ...] = ()
    not_placed: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = ()


def reconcile(journal: Journal, lookup: OrderLookup) -> ReconcileReport:
    """Resolve every non-final intent by looking it up by clientOid; never send anything.

    `lookup(client_oid, symbol)` returns the exchange's ccxt order dict, or None when the exchange
    has no such order; a KuCoinError (timeout, rate limit) leaves the intent unknown, to be
    retried at the next reconciliation. A placed intent the exchange no longer knows is left as
    it is: that contradicts what we saw, so nothing is guessed.
    """
    found: dict[str, list[str]] = {k: [] for k in ReconcileReport.__dataclass_fields__}
    for intent in journal.active_intents():
        oid = intent.client_oid
        try:
            order = lookup(oid, intent.symbol)
        except KuCoinError as exc:
            log.warning("reconcile: lookup of %s failed, outcome still unknown: %s", oid, exc)
            if intent.status == "pending":
                journal.mark_unknown(oid, f"reconcile lookup failed: {exc}")
            found["unresolved"].append(oid)
            continue
        if order is None:
            if intent.status == "placed":
                log.warning("reconcile: placed order %s (%s) not found", oid, intent.order_id)
                found["unresolved"].append(oid)
            else:
                journal.mark_rejected(oid, "not placed: clientOid unknown to the exchange")
                found["not_placed"].append(oid)
            continue
        status = journal.apply_order(oid, order).status
        found[_REPORT_KEY[status]].append(oid)
    return ReconcileReport(**{k: tuple(v) for k, v in found.items()})


# -- summary ------------------------------------------------------------------------------------
def summary(journal: Journal, *, since_ms: int | None = None,
            source_counts: Mapping[str, int] | None = None) -> Summary:
    """Return the Summary of the journal's fills and equity snapshots since `since_ms`."""
    return summarize(journal.fills(since_ms), [e for _, e in journal.equity_curve(since_ms)],
                     source_counts=source_counts)
