"""Restart reconciliation: every journaled intent not yet final is looked up by clientOid and the
journal records what the exchange says. Nothing here sends an order.

    report = reconcile(journal, lookup)   # at start-up: resolve pending/unknown/placed intents
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kucoin_futures.errors import KuCoinError
from tradebot.journal import Journal
from tradebot.records import RESTING_KINDS

__all__ = ["OrderLookup", "ReconcileReport", "reconcile"]

log = logging.getLogger(__name__)

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
        if intent.kind in RESTING_KINDS:
            continue  # stops rest until they trigger: tradebot/resting.py settles them (and books fees)
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
