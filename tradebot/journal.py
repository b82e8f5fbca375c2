"""The bot's durable journal in SQLite: order intents before they are sent, fills, snapshots,
protective exits and the paper broker's state.

    with Journal("bot_journal.sqlite3").open() as journal:
        journal.record_intent(oid, "BTC/USDT:USDT", "buy", 3, kind="entry", contract_size=0.001)
        try:
            order = client.create_market_order(..., client_oid=oid)   # only after the commit
        except OrderOutcomeUnknown as exc:
            journal.mark_unknown(oid, str(exc))                        # never re-sent
        else:
            journal.apply_order(oid, order)                            # placed / filled + fill

Durability: WAL mode with ``synchronous=FULL``, so a committed intent survives a crash or power
loss before the order leaves. A restart never re-sends: ``reconcile.reconcile`` only looks intents
up by clientOid (KuCoin: GET /api/v1/orders/byClientOid) and records what the exchange says.

The values stored (Intent, Fill, Protection) and the intent state table (TRANSITIONS) are in
records.py. Fills are kept per order and upserted, so seeing an order twice never double-counts.
PnL assumes linear contracts; performance.summary reads the run's numbers back.
"""
from __future__ import annotations

import enum
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import astuple
from typing import Any

from kucoin_futures.errors import ClientClosed, ConfigError, InvalidArgument
from tradebot.records import (
    ACTIVE,
    CLIENT_OID_RE,
    KINDS,
    TRANSITIONS,
    UNRESOLVED,
    Fill,
    Intent,
    Protection,
    fill_from_order,
)

__all__ = ["Journal"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    client_oid TEXT PRIMARY KEY, symbol TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell')), amount INTEGER NOT NULL CHECK (amount > 0),
    kind TEXT NOT NULL, reduce_only INTEGER NOT NULL, contract_size REAL NOT NULL,
    reason TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
    status TEXT NOT NULL, order_id TEXT, error TEXT);
CREATE INDEX IF NOT EXISTS intents_by_status ON intents (status);
CREATE TABLE IF NOT EXISTS fills (
    fill_id TEXT PRIMARY KEY, client_oid TEXT, order_id TEXT, symbol TEXT NOT NULL,
    side TEXT NOT NULL, amount INTEGER NOT NULL, price REAL NOT NULL, fee REAL NOT NULL,
    fee_currency TEXT NOT NULL, contract_size REAL NOT NULL, ts_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS position_snapshots (
    id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    contracts INTEGER NOT NULL, entry_price REAL, mark_price REAL, unrealised_pnl REAL);
CREATE TABLE IF NOT EXISTS equity_snapshots (
    id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, equity REAL NOT NULL, free REAL);
CREATE TABLE IF NOT EXISTS protections (
    symbol TEXT PRIMARY KEY, client_oid TEXT, side TEXT NOT NULL CHECK (side IN ('long', 'short')),
    stop_price REAL NOT NULL, take_profit_price REAL, trailing_distance REAL, watermark REAL,
    trailing_active INTEGER NOT NULL, atr REAL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS paper_state (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS controls (
    id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS funding (
    symbol TEXT NOT NULL, ts_ms INTEGER NOT NULL, fee REAL NOT NULL, rate REAL NOT NULL,
    qty INTEGER NOT NULL, PRIMARY KEY (symbol, ts_ms));
"""
_INTENT_COLUMNS = ("client_oid, symbol, side, amount, kind, reduce_only, contract_size, reason, "
                   "created_ms, updated_ms, status, order_id, error")
_FILL_COLUMNS = ("fill_id, client_oid, order_id, symbol, side, amount, price, fee, fee_currency, "
                 "contract_size, ts_ms")
_PROTECTION_COLUMNS = ("symbol, client_oid, side, stop_price, take_profit_price, trailing_distance, "
                       "watermark, trailing_active, atr, updated_ms")
_UPSERT_PROTECTION = (f"INSERT OR REPLACE INTO protections ({_PROTECTION_COLUMNS}) "
                      f"VALUES ({', '.join('?' * 10)})")
_UPSERT_FILL = f"INSERT OR REPLACE INTO fills ({_FILL_COLUMNS}) VALUES ({', '.join('?' * 11)})"


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"



class Journal:
    """One SQLite connection guarded by a lock; safe to share between threads."""

    def __init__(self, path: str, *, wall_clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._state = _State.NEW
        self._fill_listeners: tuple[Callable[[Intent, Fill], None], ...] = ()

    # -- lifecycle ------------------------------------------------------------------------------
    def open(self) -> Journal:
        """Open (or create) the database file; return self.

        Raises:
            ConfigError: the file cannot be opened or is not a journal (variable JOURNAL_PATH).
        """
        with self._lock:
            if self._state is not _State.NEW:
                raise ClientClosed(f"journal already {self._state.value}")
            try:
                self._conn = _connect(self._path)
            except sqlite3.DatabaseError as exc:
                raise ConfigError(f"cannot use {self._path} as the journal: {exc}",
                                  variable="JOURNAL_PATH") from exc
            self._state = _State.OPEN
        return self

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close; idempotent."""
        with self._lock:
            if self._state is _State.OPEN and self._conn is not None:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._conn.close()
            self._conn, self._state = None, _State.CLOSED

    def __enter__(self) -> Journal:
        return self if self._state is _State.OPEN else self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- intents --------------------------------------------------------------------------------
    def record_intent(self, client_oid: str, symbol: str, side: str, amount: int, *, kind: str,
                      contract_size: float, reduce_only: bool = False, reason: str = "",
                      protection: Protection | None = None) -> Intent:
        """Commit a new intent (status pending) durably; send the order only after this returns.

        An entry's `protection` (its planned exits) commits in the same transaction, so a position
        the exchange opened for it is never without its stop after a crash.

        Raises:
            InvalidArgument: bad clientOid, side, amount or kind, or the clientOid already exists.
        """
        if not CLIENT_OID_RE.fullmatch(client_oid):
            raise InvalidArgument(f"clientOid must be 1-40 of [A-Za-z0-9_-]: {client_oid!r}")
        if side not in ("buy", "sell") or kind not in KINDS or int(amount) != amount or amount <= 0:
            raise InvalidArgument(f"bad intent: side={side!r} kind={kind!r} amount={amount!r}")
        now_ms = self._now_ms()
        intent = Intent(client_oid, symbol, side, int(amount), kind, bool(reduce_only),
                        float(contract_size), reason, now_ms, now_ms, "pending")
        try:
            with self._transaction() as conn:
                conn.execute(f"INSERT INTO intents ({_INTENT_COLUMNS}) VALUES "
                             "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", astuple(intent))
                if protection is not None:
                    conn.execute(_UPSERT_PROTECTION, _protection_row(protection, now_ms))
        except sqlite3.IntegrityError as exc:
            raise InvalidArgument(f"clientOid {client_oid} is already journaled") from exc
        return intent

    def mark_placed(self, client_oid: str, order_id: str | None) -> Intent:
        """The exchange accepted the order (it has an orderId)."""
        return self._transition(client_oid, "placed", order_id=order_id)

    def mark_rejected(self, client_oid: str, error: str) -> Intent:
        """The exchange definitively refused the order, or reconciliation proved it absent."""
        return self._transition(client_oid, "rejected", error=error)

    def mark_unknown(self, client_oid: str, error: str) -> Intent:
        """The order was sent but no definitive answer came back (OrderOutcomeUnknown)."""
        return self._transition(client_oid, "unknown", error=error)

    def mark_filled(self, client_oid: str, order_id: str | None = None) -> Intent:
        return self._transition(client_oid, "filled", order_id=order_id)

    def mark_canceled(self, client_oid: str, order_id: str | None = None) -> Intent:
        return self._transition(client_oid, "canceled", order_id=order_id)

    def apply_order(self, client_oid: str, order: Mapping[str, Any]) -> Intent:
        """Record what a ccxt order dict says about an intent: its status and, if any, its fill.

        ``status`` None (ccxt's create_order answer) or "open" -> placed; closed/canceled/expired
        with contracts filled -> filled (and the fill is upserted); without -> canceled
        ("rejected" -> rejected).
        """
        intent = self.get_intent(client_oid)
        if intent is None:
            raise InvalidArgument(f"no intent with clientOid {client_oid}")
        order_id = None if order.get("id") is None else str(order["id"])
        filled = int(round(float(order.get("filled") or 0)))
        status = order.get("status")
        if status in (None, "open"):
            return self.mark_placed(client_oid, order_id)
        if filled > 0:  # the fill and the status change commit together
            fill = fill_from_order(intent, order, order_id, filled, self._now_ms())
            return self._transition(client_oid, "filled", order_id=order_id, fill=fill)
        if status == "rejected":
            return self.mark_rejected(client_oid, "rejected by the exchange")
        return self.mark_canceled(client_oid, order_id)

    def get_intent(self, client_oid: str) -> Intent | None:
        rows = self._query(f"SELECT {_INTENT_COLUMNS} FROM intents WHERE client_oid = ?",
                           (client_oid,))
        return _intent(rows[0]) if rows else None

    def pending_intents(self) -> list[Intent]:
        """Return intents whose outcome is unknown (pending or unknown), oldest first."""
        return self._intents_with(UNRESOLVED)

    def active_intents(self, symbol: str | None = None) -> list[Intent]:
        """Return intents not yet final (pending, unknown, placed), oldest first."""
        intents = self._intents_with(ACTIVE)
        return [i for i in intents if symbol is None or i.symbol == symbol]

    def intents(self) -> list[Intent]:
        return self._intents_with(tuple(TRANSITIONS))

    # -- protective exits -----------------------------------------------------------------------
    def save_protection(self, protection: Protection) -> None:
        """Insert or replace the exits of `protection.symbol` (one row a symbol)."""
        with self._transaction() as conn:
            conn.execute(_UPSERT_PROTECTION, _protection_row(protection, self._now_ms()))

    def protection(self, symbol: str) -> Protection | None:
        rows = self._query(f"SELECT {_PROTECTION_COLUMNS} FROM protections WHERE symbol = ?", (symbol,))
        return _protection(rows[0]) if rows else None

    def protections(self) -> list[Protection]:
        rows = self._query(f"SELECT {_PROTECTION_COLUMNS} FROM protections ORDER BY symbol", ())
        return [_protection(row) for row in rows]

    def delete_protection(self, symbol: str) -> None:
        """Forget the exits of a position that is flat."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM protections WHERE symbol = ?", (symbol,))

    # -- fills and snapshots --------------------------------------------------------------------
    def record_fill(self, fill: Fill) -> None:
        """Insert or update (same fill_id) a fill."""
        with self._transaction() as conn:
            conn.execute(_UPSERT_FILL, astuple(fill))

    def record_funding(self, symbol: str, ts_ms: int, fee: float, rate: float, qty: int) -> None:
        """A funding settlement of a position (fee signed from the account's view: < 0 paid);
        the same settlement twice is kept once."""
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO funding (symbol, ts_ms, fee, rate, qty) VALUES (?, ?, ?, ?, ?)",
                         (symbol, int(ts_ms), float(fee), float(rate), int(qty)))

    def funding(self, since_ms: int | None = None) -> list[tuple[str, int, float]]:
        """(symbol, settlement ms, fee) of the funding settlements since `since_ms`, oldest first."""
        return [(str(s), int(ts), float(fee)) for s, ts, fee in self._query(
            "SELECT symbol, ts_ms, fee FROM funding WHERE ts_ms >= ? ORDER BY ts_ms", (since_ms or 0,))]

    def fills(self, since_ms: int | None = None) -> list[Fill]:
        rows = self._query(f"SELECT {_FILL_COLUMNS} FROM fills WHERE ts_ms >= ? ORDER BY ts_ms, "
                           "rowid", (since_ms or 0,))
        return [Fill(*row) for row in rows]

    def record_positions(self, positions: Iterable[Mapping[str, Any]]) -> None:
        """Snapshot ccxt position dicts (symbol, side, contracts, entryPrice, markPrice, ...)."""
        now_ms = self._now_ms()
        rows = [(now_ms, p["symbol"], p["side"], int(p["contracts"]), p.get("entryPrice"),
                 p.get("markPrice"), p.get("unrealizedPnl")) for p in positions]
        with self._transaction() as conn:
            conn.executemany("INSERT INTO position_snapshots (ts_ms, symbol, side, contracts, "
                             "entry_price, mark_price, unrealised_pnl) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def position_snapshots(self, since_ms: int | None = None) -> list[tuple[Any, ...]]:
        """Return (ts_ms, symbol, side, contracts, entry_price, mark_price, unrealised_pnl) rows."""
        return self._query("SELECT ts_ms, symbol, side, contracts, entry_price, mark_price, "
                           "unrealised_pnl FROM position_snapshots WHERE ts_ms >= ? ORDER BY id",
                           (since_ms or 0,))

    def record_equity(self, equity: float, *, free: float | None = None) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT INTO equity_snapshots (ts_ms, equity, free) VALUES (?, ?, ?)",
                         (self._now_ms(), float(equity), free))

    def equity_curve(self, since_ms: int | None = None) -> list[tuple[int, float]]:
        rows = self._query("SELECT ts_ms, equity FROM equity_snapshots WHERE ts_ms >= ? "
                           "ORDER BY ts_ms, id", (since_ms or 0,))
        return [(int(ts), float(eq)) for ts, eq in rows]

    def first_equity_since(self, since_ms: int) -> float | None:
        """Return the first equity snapshot at or after `since_ms` (e.g. the UTC day's start)."""
        curve = self._query("SELECT equity FROM equity_snapshots WHERE ts_ms >= ? "
                            "ORDER BY ts_ms, id LIMIT 1", (since_ms,))
        return float(curve[0][0]) if curve else None

    # -- paper broker state ---------------------------------------------------------------------
    def save_paper_state(self, state: Mapping[str, Any]) -> None:
        """Store the paper broker's state (JSON-serialisable) in one durable commit."""
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO paper_state (key, value, updated_ms) "
                         "VALUES ('broker', ?, ?)", (json.dumps(state), self._now_ms()))

    def load_paper_state(self) -> dict[str, Any] | None:
        rows = self._query("SELECT value FROM paper_state WHERE key = 'broker'", ())
        return json.loads(rows[0][0]) if rows else None

    # -- the owner's view and controls (tradebot/ops) ---------------------------------------------
    def add_fill_listener(self, listener: Callable[[Intent, Fill], None]) -> None:
        """Call listener(intent, fill) once an intent becomes filled, after the commit, on the
        writer's thread and outside the lock; it must return at once (it publishes an event)."""
        self._fill_listeners = (*self._fill_listeners, listener)

    def record_control(self, action: str, detail: str = "") -> None:
        """Journal an owner's control action (stopentry, startentry, forceexit) and its source."""
        with self._transaction() as conn:
            conn.execute("INSERT INTO controls (ts_ms, action, detail) VALUES (?, ?, ?)",
                         (self._now_ms(), action, detail))

    def controls(self, *, actions: tuple[str, ...] | None = None, limit: int = 50) -> list[tuple[int, str, str]]:
        """Return the latest control actions as (ts_ms, action, detail), newest first."""
        where = f"WHERE action IN ({', '.join('?' * len(actions))}) " if actions else ""
        return self._query(f"SELECT ts_ms, action, detail FROM controls {where}ORDER BY id DESC LIMIT ?",
                           (*(actions or ()), int(limit)))

    def intent_counts(self, since_ms: int | None = None) -> dict[tuple[str, str], int]:
        """Return {(kind, status): intents} of the intents created since `since_ms`."""
        rows = self._query("SELECT kind, status, COUNT(*) FROM intents WHERE created_ms >= ? "
                           "GROUP BY kind, status", (since_ms or 0,))
        return {(kind, status): int(n) for kind, status, n in rows}

    def fills_with_reasons(self, since_ms: int | None = None) -> list[tuple[Fill, str | None, str | None]]:
        """Return (fill, its intent's kind, its intent's reason) oldest first."""
        columns = ", ".join(f"f.{c.strip()}" for c in _FILL_COLUMNS.split(","))
        rows = self._query(f"SELECT {columns}, i.kind, i.reason FROM fills f LEFT JOIN intents i "
                           "ON f.client_oid = i.client_oid WHERE f.ts_ms >= ? ORDER BY f.ts_ms, f.rowid",
                           (since_ms or 0,))
        return [(Fill(*row[:11]), row[11], row[12]) for row in rows]

    # -- internals ------------------------------------------------------------------------------
    def _now_ms(self) -> int:
        return int(self._wall_clock() * 1000)

    def _transition(self, client_oid: str, status: str, *, order_id: str | None = None,
                    error: str | None = None, fill: Fill | None = None) -> Intent:
        with self._transaction() as conn:
            row = conn.execute(f"SELECT {_INTENT_COLUMNS} FROM intents WHERE client_oid = ?",
                               (client_oid,)).fetchone()
            if row is None:
                raise InvalidArgument(f"no intent with clientOid {client_oid}")
            current = _intent(row)
            if status != current.status and status not in TRANSITIONS[current.status]:
                raise InvalidArgument(f"intent {client_oid}: {current.status} -> {status} "
                                      "is not allowed")
            order_id = order_id or current.order_id
            error = error if error is not None else current.error
            conn.execute("UPDATE intents SET status = ?, order_id = ?, error = ?, updated_ms = ? "
                         "WHERE client_oid = ?",
                         (status, order_id, error, self._now_ms(), client_oid))
            if fill is not None:
                conn.execute(_UPSERT_FILL, astuple(fill))
        log.info("intent %s %s %s: %s -> %s", client_oid, current.symbol, current.side,
                 current.status, status)
        intent: Intent = self.get_intent(client_oid)  # type: ignore[assignment]
        if fill is not None and current.status != "filled":  # an order seen twice is one fill
            for listener in self._fill_listeners:
                try:
                    listener(intent, fill)
                except Exception:  # a listener's bug must not fail the order path
                    log.exception("fill listener failed on %s", client_oid)
        return intent

    def _intents_with(self, statuses: tuple[str, ...]) -> list[Intent]:
        marks = ", ".join("?" * len(statuses))
        rows = self._query(f"SELECT {_INTENT_COLUMNS} FROM intents WHERE status IN ({marks}) "
                           "ORDER BY created_ms, rowid", statuses)
        return [_intent(row) for row in rows]

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._open_conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # also when COMMIT itself failed (disk full, I/O error)
                    conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._open_conn().execute(sql, params).fetchall()

    def _open_conn(self) -> sqlite3.Connection:
        assert self._lock.locked()
        if self._conn is None:
            raise ClientClosed(f"journal is {self._state.value}: call open() first"
                               if self._state is _State.NEW else "journal is closed")
        return self._conn


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # fsync the WAL on every commit
        conn.executescript(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def _protection_row(p: Protection, now_ms: int) -> tuple[Any, ...]:
    if p.side not in ("long", "short"):
        raise InvalidArgument(f"protection side must be 'long' or 'short', not {p.side!r}")
    return (p.symbol, p.client_oid, p.side, float(p.stop_price), p.take_profit_price,
            p.trailing_distance, p.watermark, int(bool(p.trailing_active)), p.atr, now_ms)


def _protection(row: tuple[Any, ...]) -> Protection:
    return Protection(*row[:7], bool(row[7]), *row[8:])


def _intent(row: tuple[Any, ...]) -> Intent:
    return Intent(*row[:5], bool(row[5]), *row[6:])  # SQLite keeps reduce_only as 0/1
