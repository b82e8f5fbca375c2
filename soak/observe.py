"""Reading the world from outside the bot: the simulator's state, the journal (read-only), /proc.

Each reader returns the soak's values (model.py); nothing here changes what it reads. The
journal is opened read-only (SQLite URI mode=ro) for one short query at a time, so it never holds
up the bot's writes or its checkpoint at exit.
"""
from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .model import Fill, Order, Protection, RestingStop

log = logging.getLogger(__name__)

JOURNAL_TIMEOUT_S = 0.5
_KUCOIN_BASE = {"BTC": "XBT"}  # KuCoin Futures names bitcoin XBT


def sim_symbol(ccxt_symbol: str) -> str:
    """Return the KuCoin id of a linear perpetual's ccxt symbol: BTC/USDT:USDT -> XBTUSDTM."""
    base, _, rest = ccxt_symbol.partition("/")
    quote = rest.partition(":")[0]
    return f"{_KUCOIN_BASE.get(base, base)}{quote}M"


@dataclass(frozen=True, slots=True)
class JournalView:
    """What the soak reads of the journal; `protections` None when the table is absent."""

    readable: bool
    client_oids: frozenset[str] = frozenset()
    protections: Mapping[str, Protection] | None = None


def read_journal(path: str, *, with_oids: bool = False) -> JournalView:
    """Read the journal's protections (and clientOids) read-only; unreadable -> readable False."""
    if not os.path.exists(path):
        return JournalView(False)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=JOURNAL_TIMEOUT_S)
    except sqlite3.Error as exc:
        log.debug("journal not readable: %s", exc)
        return JournalView(False)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        oids: frozenset[str] = frozenset()
        if with_oids and "intents" in tables:
            oids = frozenset(row[0] for row in conn.execute("SELECT client_oid FROM intents"))
        protections = None
        if "protections" in tables:
            rows = conn.execute("SELECT symbol, side, stop_price FROM protections")
            protections = {sim_symbol(symbol): Protection(side, float(stop)) for symbol, side, stop in rows
                           if stop is not None}
        return JournalView("intents" in tables, oids, protections)
    except sqlite3.Error as exc:  # busy, or a schema mid-migration: try again at the next sample
        log.debug("journal read failed: %s", exc)
        return JournalView(False)
    finally:
        conn.close()


def orders_from_sim(raw: Iterable[Mapping[str, Any]], *, wall0_s: float) -> tuple[Order, ...]:
    """The simulator's order dicts (Simulator.orders()) as Orders, t relative to the soak."""
    return tuple(Order(t=int(o["createdAt"]) / 1000 - wall0_s, order_id=str(o["id"]), symbol=o["symbol"],
                       side=o["side"], size=int(o["size"]),
                       reduce_only=bool(o.get("reduceOnly") or o.get("closeOrder")),
                       client_oid=o.get("clientOid") or "", filled=int(o.get("filledSize") or 0),
                       stop=bool(o.get("stop")))
                 for o in raw)


def fills_from_sim(raw: Iterable[Mapping[str, Any]], *, wall0_s: float) -> tuple[Fill, ...]:
    """The simulator's fill dicts (Simulator.fills(), oldest first) as Fills."""
    return tuple(Fill(t=int(f["createdAt"]) / 1000 - wall0_s, symbol=f["symbol"], side=f["side"],
                      size=int(f["size"]), order_id=str(f["orderId"]) if f.get("orderId") else None)
                 for f in raw)


def market_state(sim: Any, symbols: list[str]) -> tuple[dict[str, int], dict[str, float], dict[str, float]]:
    """Return (signed contracts, last price, mark price) per symbol from the simulator."""
    positions, marks = {}, {}
    for p in sim.positions():
        if p.get("currentQty"):
            positions[p["symbol"]] = int(p["currentQty"])
            marks[p["symbol"]] = float(p["markPrice"])
    last = sim.last_prices(sorted(set(symbols) | set(positions)))
    return positions, last, marks


def proc_status(pid: int) -> tuple[int, int] | None:
    """Return (VmRSS in kB, thread count) of a live process, None once it is gone (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return None
    try:
        return int(fields["VmRSS"].split()[0]), int(fields["Threads"])
    except (KeyError, ValueError, IndexError):  # a zombie has no VmRSS
        return None


def resting_stops(sim: Any) -> dict[str, tuple[RestingStop, ...]]:
    """The untriggered stop orders on the simulator, by symbol."""
    found: dict[str, list[RestingStop]] = {}
    for s in sim.stop_orders():
        found.setdefault(s["symbol"], []).append(RestingStop(
            side=s["side"], direction=s["stop"], stop_price=float(s["stopPrice"]), size=int(s.get("size") or 0),
            reduce_only=bool(s.get("reduceOnly")), close_order=bool(s.get("closeOrder"))))
    return {symbol: tuple(stops) for symbol, stops in found.items()}
