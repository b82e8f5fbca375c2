"""Pure tests: the private feed's caches — freshness per connection epoch, seeds racing pushes,
funding outdating positions, and which orders can be served."""
from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

from kucoin_futures.protocol.account import OrderSnapshot
from kucoin_futures.protocol.private import (
    OrderChange,
    OrderStatus,
    OrderUpdate,
    PositionChange,
    PositionChangeReason,
    WalletChange,
)
from kucoin_futures.protocol.types import Side
from kucoin_futures.ws.account_cache import AccountCache, Fill, PlacedOrder
from tests.helpers import FakeClock

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def position(symbol: str = BTC, qty: int | None = 2, *, ts_ms: int = 1000, mark: float = 100.0,
             reason: PositionChangeReason | None = PositionChangeReason.POSITION_CHANGE,
             source: str = "websocket", **info: Any) -> PositionChange:
    data = {"symbol": symbol, "currentQty": qty, "markPrice": mark, "currentTimestamp": ts_ms, **info}
    return PositionChange(symbol=symbol, reason=reason, qty=qty, avg_entry_price=90.0, mark_price=mark,
                          liquidation_price=50.0, unrealised_pnl=1.0, realised_pnl=0.0, margin_mode="ISOLATED",
                          settle_currency="USDT", ts_ms=ts_ms, received_at=1.0, source=source,  # type: ignore[arg-type]
                          info=MappingProxyType(data))


def wallet(available: float = 10.0, equity: float | None = 12.0, *, currency: str = "USDT",
           source: str = "websocket") -> WalletChange:
    return WalletChange(currency=currency, available=available, hold=0.0, equity=equity,
                        wallet_balance=None if equity is None else equity, version=None, ts_ms=1, received_at=1.0,
                        source=source, info=MappingProxyType({"currency": currency}))  # type: ignore[arg-type]


def update(order_id: str = "o1", change: OrderChange = OrderChange.MATCH, *, filled: int = 1, size: int = 2,
           fill: tuple[float, int] | None = (100.0, 1), done: bool = False, ts_ms: int = 2000,
           client_oid: str | None = "c1") -> OrderUpdate:
    status = OrderStatus.DONE if done else OrderStatus.OPEN
    return OrderUpdate(symbol=BTC, order_id=order_id, client_oid=client_oid, change=change, status=status,
                       side=Side.BUY, order_type="limit", size=size, filled_size=filled, remain_size=size - filled,
                       canceled_size=0, price=100.0, fill_price=fill[0] if fill else None,
                       fill_size=fill[1] if fill else None, trade_id="t" if fill else None, liquidity="maker",
                       trade_type=None, fee=None, margin_mode="ISOLATED", created_ms=1000, ts_ms=ts_ms,
                       received_at=1.0)


def snapshot(order_id: str = "o1", *, filled: int = 0, active: bool = True, updated_ms: int = 1500,
             client_oid: str | None = "c1") -> OrderSnapshot:
    return OrderSnapshot(order_id=order_id, client_oid=client_oid, symbol=BTC, side=Side.BUY, order_type="limit",
                         price=100.0, size=2, filled_size=filled, filled_value=filled * 0.1, is_active=active,
                         cancel_exist=False, created_ms=1000, updated_ms=updated_ms,
                         info=MappingProxyType({"id": order_id}))


def placed(order_id: str = "o1") -> PlacedOrder:
    return PlacedOrder(order_id=order_id, client_oid="c1", symbol=BTC, side="buy", order_type="limit", amount=2,
                       price=100.0, post_only=False, reduce_only=False, stop_price=None)


def live_cache(clock: FakeClock | None = None) -> tuple[AccountCache, int]:
    cache = AccountCache(clock=clock or FakeClock())
    epoch = cache.go_live()
    cache.install_positions([], cache.positions_ticket())
    cache.install_open_orders([], epoch)
    return cache, epoch


# -- freshness -------------------------------------------------------------------------------------
def test_nothing_is_fresh_before_the_seed_nor_after_a_loss():
    cache = AccountCache(clock=FakeClock())
    assert cache.positions() is None  # not live
    epoch = cache.go_live()
    assert cache.positions() is None  # live, not seeded
    assert cache.install_positions([position()], cache.positions_ticket())
    assert cache.install_wallet(wallet(source="rest"), epoch)
    assert cache.positions() == (position(),) and cache.wallet("USDT") == wallet(source="rest")
    cache.go_stale()
    assert (cache.positions(), cache.wallet("USDT"), cache.order("o1")) == (None, None, None)
    epoch2 = cache.go_live()
    assert epoch2 == epoch + 1 and cache.positions() is None  # subscribed again, not seeded again


def test_a_seed_of_a_past_connection_is_refused():
    cache = AccountCache(clock=FakeClock())
    cache.go_live()
    ticket = cache.positions_ticket()
    cache.go_stale()
    epoch = cache.go_live()
    assert not cache.install_positions([position()], ticket)
    assert not cache.install_open_orders([], epoch - 1) and not cache.install_wallet(wallet(), epoch - 1)
    assert cache.freshness() == {"live": True, "positions": False, "orders": False, "balances": {}}


# -- seeds racing pushes ------------------------------------------------------------------------
def test_a_push_of_this_connection_wins_over_the_seed_and_the_rest_is_replaced():
    cache = AccountCache(clock=FakeClock())
    cache.go_live()
    cache.apply_position(position(ETH, 1))  # a push of a past connection
    cache.go_stale()
    cache.go_live()
    ticket = cache.positions_ticket()
    pushed = position(BTC, 3, ts_ms=2000)
    cache.apply_position(pushed)  # received after the subscription, before the REST answer
    assert cache.install_positions([position(BTC, 2, ts_ms=1500, source="rest")], ticket)
    assert cache.positions() == (pushed,)  # ETH: flat per REST and not pushed since: forgotten


def test_a_funding_settlement_outdates_positions_until_a_new_seed():
    cache, _ = live_cache()
    early = cache.positions_ticket()
    cache.apply_position(position(BTC, 2))
    cache.outdate_positions()
    assert cache.positions() is None
    assert not cache.install_positions([position(BTC, 2, source="rest")], early)  # asked before the funding
    later = cache.positions_ticket()
    refreshed = position(BTC, 2, source="rest", realisedPnl=-0.5)
    assert cache.install_positions([refreshed], later)
    assert cache.positions() == (refreshed,)  # the push before the funding did not win


def test_a_mark_update_merges_into_a_known_position_only():
    cache, _ = live_cache()
    mark = dataclasses.replace(position(BTC, None, reason=None, mark=120.0, ts_ms=3000),
                               info=MappingProxyType({"markPrice": 120.0, "currentTimestamp": 3000}))
    assert cache.apply_position(mark) is None and cache.positions() == ()
    cache.apply_position(position(BTC, 2, mark=100.0))
    merged = cache.apply_position(mark)
    assert (merged.qty, merged.mark_price, merged.ts_ms, dict(merged.info)) == (
        2, 120.0, 3000, {"symbol": BTC, "currentQty": 2, "markPrice": 120.0, "currentTimestamp": 3000})
    assert cache.positions() == (merged,)


def test_wallet_pushes_full_and_partial():
    cache, epoch = live_cache()
    cache.want_currency("USDT")
    assert cache.wallet("USDT") is None
    partial = wallet(available=9.0, equity=None)
    assert cache.apply_wallet(partial) is None  # nothing to merge into: the equity is unknown
    full = wallet(available=10.0, equity=12.0)
    assert cache.apply_wallet(full) == full and cache.wallet("USDT") == full  # a full push of this connection
    assert cache.apply_wallet(full) is None  # no change, no event
    merged = cache.apply_wallet(partial)
    assert (merged.available, merged.equity) == (9.0, 12.0) and cache.wallet("USDT") == merged
    assert cache.install_wallet(wallet(available=1.0, source="rest"), epoch)
    assert cache.wallet("USDT").available == 9.0  # pushed in this connection: kept over the seed


# -- orders -------------------------------------------------------------------------------------
def test_an_order_is_served_with_its_static_fields_and_its_pushes():
    cache, _ = live_cache()
    cache.apply_order(update(filled=1, fill=(100.0, 1)))
    assert cache.order("o1") is None  # pushes alone do not say postOnly, reduceOnly, timeInForce
    cache.note_placed(placed(), sent_at=None)
    record = cache.order(client_oid="c1")
    assert (record.order_id, record.placed, record.fills) == ("o1", placed(), (Fill(1, 100.0, 1),))
    cache.note_placed(placed("o2"), sent_at=5.0)
    assert cache.order("o2") is None  # no push yet: the fill may be in flight


def test_a_lost_fill_makes_the_order_unservable():
    cache, _ = live_cache()
    cache.note_placed(placed(), sent_at=None)
    cache.apply_order(update(filled=2, size=2, fill=(100.0, 1), done=True, change=OrderChange.MATCH))
    assert cache.order("o1") is None  # 2 filled, 1 accounted for: a fill was lost
    cache.note_order(snapshot(filled=2, active=False, updated_ms=3000), cache.live_epoch())
    record = cache.order("o1")
    assert record is not None and record.is_done and record.is_complete  # REST's object covers it


def test_done_orders_survive_a_reconnect_open_ones_need_the_seed():
    cache, _ = live_cache()
    for order_id in ("done", "open", "gone"):
        cache.note_placed(placed(order_id), sent_at=None)
        cache.apply_order(update(order_id, OrderChange.OPEN, filled=0, fill=None, client_oid=None))
    cache.apply_order(update("done", OrderChange.FILLED, filled=0, fill=None, done=True, client_oid=None))
    cache.go_stale()
    epoch = cache.go_live()
    assert cache.order("done") is None  # orders not seeded yet in this connection
    assert cache.install_open_orders([snapshot("open", updated_ms=9000, client_oid=None)], epoch)
    assert cache.order("done").is_done and cache.order("open").base.updated_ms == 9000
    assert cache.order("gone") is None and cache.order_count() == 2  # ended while away: REST knows how


def test_an_order_sent_before_the_subscription_is_not_trusted():
    clock = FakeClock(100.0)
    cache = AccountCache(clock=clock)
    epoch = cache.go_live()  # subscribed at 100 s: pushes of orders sent before may be lost
    cache.note_placed(placed("early"), sent_at=99.0)
    cache.note_placed(placed("late"), sent_at=101.0)
    assert cache.install_open_orders([], epoch)  # neither is open per REST yet (a race)
    for order_id in ("early", "late"):
        cache.apply_order(update(order_id, OrderChange.OPEN, filled=0, fill=None, client_oid=None))
    assert cache.order("early") is None and cache.order("late").placed == placed("late")


def test_orders_are_bounded_and_the_client_oid_index_follows():
    cache = AccountCache(clock=FakeClock(), max_orders=2)
    epoch = cache.go_live()
    cache.install_open_orders([], epoch)
    for n in range(3):
        cache.note_order(snapshot(f"o{n}", client_oid=f"c{n}"), epoch)
    assert cache.order_count() == 2
    assert cache.order(client_oid="c0") is None and cache.order(client_oid="c2").order_id == "o2"
