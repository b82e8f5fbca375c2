"""The journal: durable intents, status transitions, fills, restart reconciliation, summary."""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from tradebot.journal import Journal
from kucoin_futures.errors import ClientClosed, ConfigError, InvalidArgument, TransportError
from tradebot.paper import PaperBroker
from tradebot.performance import Summary, max_drawdown, summarize, summary
from tradebot.reconcile import ReconcileReport, reconcile
from tradebot.records import Fill, Intent

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
T0_S = 1_700_000_000.0
T0_MS = int(T0_S * 1000)


class FakeWallClock:
    def __init__(self, t_s: float = T0_S) -> None:
        self.t_s = t_s

    def __call__(self) -> float:
        return self.t_s

    def advance(self, s: float) -> None:
        self.t_s += s


class FakeExchange:
    """Knows orders by clientOid; counts every call so a re-send would show."""

    def __init__(self, orders: dict[str, dict] | None = None, *, fail: bool = False) -> None:
        self.orders = orders or {}
        self.fail = fail
        self.lookups: list[tuple[str, str]] = []
        self.creates = 0

    def lookup(self, client_oid: str, symbol: str) -> dict | None:
        self.lookups.append((client_oid, symbol))
        if self.fail:
            raise TransportError("timed out")
        return self.orders.get(client_oid)

    def create_market_order(self, *args: object, **kwargs: object) -> dict:
        self.creates += 1
        raise AssertionError("reconciliation must never send an order")


@pytest.fixture
def clock() -> FakeWallClock:
    return FakeWallClock()


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "journal.sqlite3")


@pytest.fixture
def journal(path: str, clock: FakeWallClock):
    with Journal(path, wall_clock=clock) as opened:
        yield opened


def _intent(oid: str = "oid-1", *, status: str = "pending", order_id: str | None = None,
            error: str | None = None, updated_ms: int = T0_MS) -> Intent:
    return Intent(oid, BTC, "buy", 3, "entry", False, 0.001, "test", T0_MS, updated_ms, status,
                  order_id, error)


def _record(journal: Journal, oid: str = "oid-1") -> Intent:
    return journal.record_intent(oid, BTC, "buy", 3, kind="entry", contract_size=0.001,
                                 reason="test")


def _closed_order(order_id: str, oid: str, *, filled: int = 3, price: float = 50_010.0,
                  fee: float = 0.09) -> dict:
    return {"id": order_id, "clientOrderId": oid, "status": "closed", "filled": filled,
            "average": price, "fee": {"cost": fee, "currency": "USDT"},
            "lastTradeTimestamp": T0_MS + 5}


# -- intents ----------------------------------------------------------------------------------
def test_intent_is_durable_before_the_order_is_sent(journal, path):
    """Another connection (another process after a crash) sees the intent once recorded."""
    seen_at_send: list[tuple] = []

    def send() -> None:
        with sqlite3.connect(path) as other:
            seen_at_send.extend(other.execute("SELECT client_oid, status FROM intents"))

    assert _record(journal) == _intent()
    send()
    assert seen_at_send == [("oid-1", "pending")]
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_intent_transitions(journal, clock):
    _record(journal)
    clock.advance(1)
    assert journal.mark_placed("oid-1", "o-77") == _intent(status="placed", order_id="o-77",
                                                           updated_ms=T0_MS + 1000)
    assert journal.mark_placed("oid-1", "o-77").status == "placed"  # idempotent
    assert journal.mark_filled("oid-1").order_id == "o-77"
    with pytest.raises(InvalidArgument):
        journal.mark_placed("oid-1", "o-77")  # filled is final
    with pytest.raises(InvalidArgument):
        journal.mark_rejected("nope", "x")


def test_record_intent_refuses_duplicates_and_bad_input(journal):
    _record(journal)
    with pytest.raises(InvalidArgument):
        _record(journal)
    for oid, side, amount, kind in [("a" * 41, "buy", 1, "entry"), ("bad oid", "buy", 1, "entry"),
                                    ("ok", "long", 1, "entry"), ("ok", "buy", 0, "entry"),
                                    ("ok", "buy", 1.5, "entry"), ("ok", "buy", 1, "open")]:
        with pytest.raises(InvalidArgument):
            journal.record_intent(oid, BTC, side, amount, kind=kind, contract_size=0.001)
    assert journal.intents() == [_intent()]


@pytest.mark.parametrize("order, status", [
    ({"id": "o-1", "clientOrderId": "oid-1", "symbol": BTC}, "placed"),  # ccxt create_order
    ({"id": "o-1", "status": "open", "filled": 0}, "placed"),
    ({"id": "o-1", "status": "canceled", "filled": 0}, "canceled"),
    ({"id": "o-1", "status": "rejected", "filled": 0}, "rejected"),
    (_closed_order("o-1", "oid-1"), "filled"),
    ({**_closed_order("o-1", "oid-1", filled=2), "status": "canceled"}, "filled"),  # partial
])
def test_apply_order_maps_ccxt_status(journal, order, status):
    _record(journal)
    assert journal.apply_order("oid-1", order).status == status


def test_apply_order_records_one_fill_per_order(journal):
    _record(journal)
    journal.apply_order("oid-1", {"id": "o-1", "status": "open", "filled": 0})
    journal.apply_order("oid-1", _closed_order("o-1", "oid-1"))
    journal.apply_order("oid-1", _closed_order("o-1", "oid-1"))  # seen twice: no double count
    assert journal.fills() == [Fill("order:o-1", "oid-1", "o-1", BTC, "buy", 3, 50_010.0, 0.09,
                                    "USDT", 0.001, T0_MS + 5)]


def test_a_refused_transition_records_no_fill(journal):
    _record(journal)
    journal.mark_rejected("oid-1", "300003")
    with pytest.raises(InvalidArgument):
        journal.apply_order("oid-1", _closed_order("o-1", "oid-1"))
    assert (journal.get_intent("oid-1").status, journal.fills()) == ("rejected", [])


def test_active_and_pending_intents(journal):
    for oid in ("a", "b", "c", "d"):
        _record(journal, oid)
    journal.mark_unknown("b", "timeout")
    journal.mark_placed("c", "o-c")
    journal.mark_rejected("d", "300003")
    assert [i.client_oid for i in journal.pending_intents()] == ["a", "b"]
    assert [i.client_oid for i in journal.active_intents()] == ["a", "b", "c"]
    assert journal.active_intents(ETH) == []


def test_reopening_restores_everything(path, clock):
    with Journal(path, wall_clock=clock) as first:
        _record(first)
        first.apply_order("oid-1", _closed_order("o-1", "oid-1"))
        first.record_equity(1000.0, free=900.0)
        first.record_positions([{"symbol": BTC, "side": "long", "contracts": 3,
                                 "entryPrice": 50_010.0, "markPrice": 50_020.0,
                                 "unrealizedPnl": 0.03}])
        first.save_paper_state({"version": 1, "wallet": 999.5})
    with Journal(path, wall_clock=clock) as second:
        assert second.intents() == [_intent(status="filled", order_id="o-1")]
        assert len(second.fills()) == 1
        assert second.equity_curve() == [(T0_MS, 1000.0)]
        assert second.position_snapshots() == [(T0_MS, BTC, "long", 3, 50_010.0, 50_020.0, 0.03)]
        assert second.load_paper_state() == {"version": 1, "wallet": 999.5}


def test_closed_or_unopened_journal_refuses_use(path):
    unopened = Journal(path)
    with pytest.raises(ClientClosed):
        unopened.intents()
    opened = Journal(path).open()
    opened.close()
    opened.close()  # idempotent
    with pytest.raises(ClientClosed):
        opened.intents()
    with pytest.raises(ClientClosed):
        opened.open()


def test_unusable_file_names_the_setting(tmp_path: Path):
    not_a_db = tmp_path / "junk.sqlite3"
    not_a_db.write_bytes(b"this is not a database, just some bytes " * 100)
    for path in (str(not_a_db), str(tmp_path / "missing-dir" / "j.sqlite3")):
        with pytest.raises(ConfigError) as info:
            Journal(path).open()
        assert info.value.variable == "JOURNAL_PATH"


def test_concurrent_writers_share_one_journal(journal):
    def write(worker: int) -> None:
        for n in range(25):
            _record(journal, f"w{worker}-{n}")
            journal.record_equity(1000.0 + n)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(journal.intents()), len(journal.equity_curve())) == (200, 200)


# -- restart reconciliation -------------------------------------------------------------------
def test_reconcile_crash_between_intent_and_fill_sends_nothing_twice(path, clock):
    """Kill the bot after the paper order filled but before the journal heard of it."""
    quote = lambda symbol: (50_000.0, 50_010.0)  # noqa: E731
    contracts = {BTC: (0.001, 1, 0.0006, 125)}
    with Journal(path, wall_clock=clock) as before_crash:
        _record(before_crash)
        broker = PaperBroker(quote, contracts, journal=before_crash, clock_ms=lambda: T0_MS)
        broker.create_market_order(BTC, "buy", 3, leverage=5, client_oid="oid-1")
        # crash: no apply_order, no mark_*
    with Journal(path, wall_clock=clock) as after:
        restarted = PaperBroker(quote, contracts, journal=after, clock_ms=lambda: T0_MS)
        assert restarted.restore()
        report = reconcile(after, restarted.lookup_order)
        assert report == ReconcileReport(filled=("oid-1",))
        assert after.intents() == [_intent(status="filled", order_id="paper000000000001")]
        assert [f.amount for f in after.fills()] == [3]
        assert len(restarted.state()["orders"]) == 1  # the order exists once
        assert reconcile(after, restarted.lookup_order) == ReconcileReport()  # nothing left


def test_reconcile_marks_found_orders_placed_or_filled(journal):
    for oid in ("open-one", "done-one"):
        _record(journal, oid)
    journal.mark_unknown("done-one", "timeout")
    exchange = FakeExchange({"open-one": {"id": "o-1", "status": "open", "filled": 0},
                             "done-one": _closed_order("o-2", "done-one")})
    assert reconcile(journal, exchange.lookup) == ReconcileReport(placed=("open-one",),
                                                                  filled=("done-one",))
    assert [(i.status, i.order_id) for i in journal.intents()] == [("placed", "o-1"),
                                                                    ("filled", "o-2")]
    assert exchange.creates == 0


def test_reconcile_marks_absent_orders_not_placed(journal):
    _record(journal)
    exchange = FakeExchange()
    assert reconcile(journal, exchange.lookup) == ReconcileReport(not_placed=("oid-1",))
    assert journal.get_intent("oid-1") == _intent(
        status="rejected", error="not placed: clientOid unknown to the exchange")
    assert (exchange.lookups, exchange.creates) == ([("oid-1", BTC)], 0)


def test_reconcile_lookup_failure_keeps_the_outcome_unknown(journal):
    _record(journal)
    failing = FakeExchange(fail=True)
    assert reconcile(journal, failing.lookup) == ReconcileReport(unresolved=("oid-1",))
    assert journal.get_intent("oid-1") == _intent(
        status="unknown", error="reconcile lookup failed: timed out")
    assert [i.client_oid for i in journal.active_intents(BTC)] == ["oid-1"]  # still blocks BTC
    working = FakeExchange({"oid-1": _closed_order("o-9", "oid-1")})
    assert reconcile(journal, working.lookup) == ReconcileReport(filled=("oid-1",))
    assert failing.creates == working.creates == 0


def test_reconcile_leaves_a_vanished_placed_order_alone(journal):
    _record(journal)
    journal.mark_placed("oid-1", "o-1")
    assert reconcile(journal, FakeExchange().lookup) == ReconcileReport(unresolved=("oid-1",))
    assert journal.get_intent("oid-1").status == "placed"


# -- summary ----------------------------------------------------------------------------------
def _fill(n: int, symbol: str, side: str, amount: int, price: float, fee: float,
          size: float) -> Fill:
    return Fill(f"order:{n}", f"oid-{n}", str(n), symbol, side, amount, price, fee, "USDT", size,
                T0_MS + n)


FIXED_FILLS = [
    _fill(1, BTC, "buy", 10, 100.0, 0.5, 0.5),   # long 10 @ 100
    _fill(2, BTC, "sell", 10, 110.0, 0.5, 0.5),  # +10 x 10 x 0.5 = +50, trade 1
    _fill(3, ETH, "sell", 4, 50.0, 0.25, 1.0),   # short 4 @ 50
    _fill(4, ETH, "buy", 6, 45.0, 0.25, 1.0),    # +4 x 5 = +20, trade 2; long 2 @ 45
    _fill(5, ETH, "sell", 2, 40.0, 0.125, 1.0),  # 2 x -5 = -10, trade 3
]
FIXED_EQUITY = [1000.0, 1010.0, 990.0, 1030.0, 980.0, 1005.0]  # peaks 1010, 1030; worst 1030->980


def test_summary_of_a_fixed_journal(journal, clock):
    for f in FIXED_FILLS:
        journal.record_fill(f)
    for equity in FIXED_EQUITY:
        journal.record_equity(equity)
        clock.advance(60)
    assert summary(journal, source_counts={"websocket": 90, "rest": 10}) == Summary(
        trades=3, realised_pnl=60.0, fees=1.625, net_pnl=58.375, max_drawdown=50.0,
        max_drawdown_fraction=50.0 / 1030.0, ws_share=0.9, open_positions=0)


def test_summary_since_and_open_positions():
    fills = [*FIXED_FILLS, _fill(6, BTC, "buy", 1, 120.0, 0.0, 0.5)]
    assert summarize(fills[:4] + fills[5:], [], source_counts={"rest": 4}) == Summary(
        trades=2, realised_pnl=70.0, fees=1.5, net_pnl=68.5, max_drawdown=0.0,
        max_drawdown_fraction=0.0, ws_share=0.0, open_positions=2)
    assert summarize([], []) == Summary(0, 0.0, 0, 0.0, 0.0, 0.0, None, 0)


def test_max_drawdown_by_hand():
    assert max_drawdown(FIXED_EQUITY) == (50.0, 50.0 / 1030.0)
    assert max_drawdown([100.0, 80.0, 200.0, 150.0]) == (50.0, 0.25)  # 50/200 > 20/100
    assert max_drawdown([1.0, 2.0, 3.0]) == (0.0, 0.0)


def test_first_equity_since(journal, clock):
    for equity in (1000.0, 990.0):
        journal.record_equity(equity)
        clock.advance(3600)
    assert journal.first_equity_since(T0_MS + 1) == 990.0
    assert journal.first_equity_since(T0_MS + 7_200_000) is None
