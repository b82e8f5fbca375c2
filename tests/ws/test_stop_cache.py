"""Pure tests: the private feed's stop cache — freshness per connection epoch, seeds racing
pushes and this client's own place and cancel, and stops known only from a push never served."""
from __future__ import annotations

from types import MappingProxyType

import pytest

from kucoin_futures.protocol.account import StopSnapshot, parse_rest_stop_orders, pushed_stop_object
from kucoin_futures.protocol.private import StopChange, StopOrderUpdate
from kucoin_futures.protocol.types import Side
from kucoin_futures.ws.stop_cache import StopCache

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


class Epochs:
    """The feed's connection epochs, as AccountCache keeps them."""

    def __init__(self) -> None:
        self.epoch, self.live = 0, False

    def go_live(self) -> int:
        self.live = True
        return self.epoch

    def go_stale(self) -> None:
        self.epoch, self.live = self.epoch + 1, False

    def live_epoch(self) -> int | None:
        return self.epoch if self.live else None


@pytest.fixture
def epochs() -> Epochs:
    return Epochs()


@pytest.fixture
def cache(epochs: Epochs) -> StopCache:
    return StopCache(live_epoch=epochs.live_epoch, epoch=lambda: epochs.epoch)


def push(order_id: str, change: StopChange = StopChange.OPEN, symbol: str = BTC) -> StopOrderUpdate:
    return StopOrderUpdate(symbol=symbol, order_id=order_id, change=change, side=Side.SELL, size=1, order_price=None,
                           stop="down", stop_price=90.0, stop_price_type="MP", trigger_success=None, error=None,
                           created_ms=1000, ts_ms=1001, received_at=1.0)


def listed(order_id: str, symbol: str = BTC, client_oid: str | None = None) -> StopSnapshot:
    return StopSnapshot(order_id, client_oid or f"c-{order_id}", symbol,
                        MappingProxyType({"id": order_id, "clientOid": client_oid or f"c-{order_id}"}))


def ids(cache: StopCache, symbol: str | None = None) -> list[str] | None:
    stops = cache.stops(symbol)
    return None if stops is None else sorted(s.order_id for s in stops)


def test_served_only_while_live_and_seeded_in_this_epoch(cache: StopCache, epochs: Epochs) -> None:
    assert ids(cache) is None  # never seeded
    assert not cache.install([listed("s1")], 0, complete=True)  # not live: refused
    epoch = epochs.go_live()
    assert cache.install([listed("s1"), listed("e1", ETH)], epoch, complete=True)
    assert (ids(cache), ids(cache, ETH), cache.fresh()) == (["e1", "s1"], ["e1"], True)
    epochs.go_stale()
    assert (ids(cache), cache.fresh()) == (None, False)
    assert not cache.install([listed("s1")], epoch, complete=True)  # a seed of the lost epoch
    assert cache.install([], epochs.go_live(), complete=True)  # s1 ended while away: forgotten
    assert ids(cache) == []


def test_an_incomplete_listing_is_not_served(cache: StopCache, epochs: Epochs) -> None:
    assert cache.install([listed("s1")], epochs.go_live(), complete=False)
    assert (ids(cache), cache.fresh()) == (None, False)


def test_a_trigger_or_cancel_push_wins_over_a_seed_read_before_it(cache: StopCache, epochs: Epochs) -> None:
    epoch = epochs.go_live()
    cache.apply(push("s1", StopChange.TRIGGERED), pushed_stop_object)  # the seed's read still lists it
    cache.apply(push("s2", StopChange.CANCEL), pushed_stop_object)
    assert cache.install([listed("s1"), listed("s2"), listed("s3")], epoch, complete=True)
    cache.apply(push("s1"), pushed_stop_object)  # a repeated "open" of a gone stop: ignored
    assert ids(cache) == ["s3"]


def test_a_stop_pushed_or_placed_after_the_read_survives_the_seed(cache: StopCache, epochs: Epochs) -> None:
    epoch = epochs.go_live()
    cache.note_placed("mine", "c-mine", BTC, {"id": "mine", "clientOid": "c-mine", "reduceOnly": True})
    cache.apply(push("mine"), pushed_stop_object)
    assert cache.install([listed("old")], epoch, complete=True)
    (mine,) = [s for s in cache.stops() if s.order_id == "mine"]
    assert (mine.client_oid, mine.complete, mine.info["createdAt"], mine.info["reduceOnly"]) == (
        "c-mine", True, 1000, True)  # the push's createdAt, our flags
    assert ids(cache) == ["mine", "old"]


def test_a_stop_known_only_from_its_push_is_never_served(cache: StopCache, epochs: Epochs) -> None:
    epoch = epochs.go_live()
    assert cache.install([listed("s1", ETH)], epoch, complete=True)
    cache.apply(push("foreign"), pushed_stop_object)  # no clientOid, no flags
    assert (ids(cache), ids(cache, BTC), ids(cache, ETH), cache.fresh()) == (None, None, ["s1"], False)
    cache.note_placed("foreign", "c-f", BTC, {"id": "foreign"})  # its answer arrived after the push
    assert ids(cache) == ["foreign", "s1"]


def test_our_cancel_and_a_placement_after_it_never_bring_a_stop_back(cache: StopCache, epochs: Epochs) -> None:
    epoch = epochs.go_live()
    assert cache.install([listed("s1"), listed("s2")], epoch, complete=True)
    cache.note_gone(["s1"])
    cache.note_placed("s1", "c-s1", BTC, {"id": "s1"})  # a late answer of an earlier call
    cache.apply(push("s1"), pushed_stop_object)
    assert ids(cache) == ["s2"]


def test_the_gone_ids_are_bounded(epochs: Epochs) -> None:
    cache = StopCache(live_epoch=epochs.live_epoch, epoch=lambda: epochs.epoch, max_gone=2)
    cache.note_gone(["a", "b", "c"])
    assert cache.install([listed("a"), listed("c")], epochs.go_live(), complete=True)
    assert ids(cache) == ["a"]  # "a" forgotten (oldest), "c" still gone


def test_the_rest_listing_parses_into_snapshots_and_its_completeness() -> None:
    page = {"code": "200000", "data": {"currentPage": 1, "pageSize": 1, "totalNum": 2, "totalPage": 2, "items": [
        {"id": "5cd", "symbol": "XBTUSDTM", "type": "market", "side": "sell", "price": "0", "size": 1,
         "stop": "down", "stopPrice": "8000", "stopPriceType": "MP", "clientOid": "c1", "reduceOnly": True}]}}
    stops, complete = parse_rest_stop_orders(page)
    assert ([(s.order_id, s.client_oid, s.symbol) for s in stops], complete) == ([("5cd", "c1", BTC)], False)
    assert stops[0].info["stopPriceType"] == "MP"
