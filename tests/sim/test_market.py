"""The simulated market: determinism, level-2 integrity, quoting, hooks and public payloads."""
from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from kucoin_sim.book import Book
from kucoin_sim.contracts import default_contracts
from kucoin_sim.errors import SimError
from kucoin_sim.events import (
    BestQuote, BookDelta, CandleUpdate, FundingRate, MarkIndex, TickerUpdate, Trade,
)
from kucoin_sim.market import Market

NOW = 1_795_000_123_456  # 2026-11-18 11:08:43.456 UTC
HOUR_MS = 3_600_000
FEW = ("XBTUSDTM", "ETHUSDTM", "SOLUSDTM", "DOGEUSDTM", "XBTUSDM", "XBTMZ26")


def _few() -> list:
    """A smaller catalogue (linear, inverse and dated) for tests that need no full market."""
    return [s for s in default_contracts(NOW) if s.symbol in FEW]


def _run(market: Market, start_ms: int, seconds: float, step_ms: int = 100) -> int:
    t = start_ms
    for _ in range(int(seconds * 1000 / step_ms)):
        t += step_ms
        market.advance(t)
    return t


def test_same_seed_same_events_and_other_seed_other_events():
    a, b, c = (Market(seed=s, now_ms=NOW) for s in (42, 42, 43))
    for market in (a, b, c):
        _run(market, NOW, 3, step_ms=250)
    events_a, events_b, events_c = a.drain_events(), b.drain_events(), c.drain_events()
    assert len(events_a) > 1000
    assert events_a == events_b
    assert events_a != events_c
    assert a.contracts_active(NOW + 3000) == b.contracts_active(NOW + 3000)


def _apply(snapshot: dict, deltas: list[BookDelta]) -> dict:
    sides = {"buy": dict((p, s) for p, s in snapshot["bids"]),
             "sell": dict((p, s) for p, s in snapshot["asks"])}
    expected = snapshot["sequence"] + 1
    for delta in deltas:
        if delta.sequence <= snapshot["sequence"]:
            continue
        assert delta.sequence == expected
        expected += 1
        if delta.size:
            sides[delta.side][float(delta.price)] = delta.size
        else:
            del sides[delta.side][float(delta.price)]
    return {
        "sequence": expected - 1,
        "bids": sorted(([p, s] for p, s in sides["buy"].items()), reverse=True),
        "asks": sorted([p, s] for p, s in sides["sell"].items()),
    }


def test_deltas_applied_on_an_earlier_snapshot_give_the_later_snapshot():
    market = Market(seed=3, now_ms=NOW, vol_scale=5.0)
    t = _run(market, NOW, 1)
    market.drain_events()
    before = {s: market.level2_snapshot(s, None, t) for s in market.symbols()}
    market.book("ETHUSDTM").add_user("buy", market.book("ETHUSDTM").best("buy") - 3, 4, t)
    t = _run(market, t, 4)
    deltas = defaultdict(list)
    for event in market.drain_events():
        if isinstance(event, BookDelta):
            deltas[event.symbol].append(event)
    for symbol in market.symbols():
        after = market.level2_snapshot(symbol, None, t)
        rebuilt = _apply(before[symbol], deltas[symbol])
        assert rebuilt == {k: after[k] for k in ("sequence", "bids", "asks")}, symbol
        assert 1_000_000_000 < after["sequence"] < 2_000_000_000  # far below the ms clock


def test_book_is_never_crossed_and_keeps_about_100_levels_a_side():
    market = Market(seed=9, now_ms=NOW, vol_scale=20.0)
    t = NOW
    for _ in range(40):
        t = _run(market, t, 0.25)
        for symbol in market.symbols():
            book = market.book(symbol)
            assert book.best("buy") < book.best("sell"), symbol
            assert 90 <= len(book.levels("buy")) <= 100 and 90 <= len(book.levels("sell")) <= 100


def test_quiet_market_still_streams_six_deltas_a_second_per_symbol():
    market = Market(seed=4, now_ms=NOW, vol_scale=0.0)
    t = NOW
    for _ in range(3):
        t = _run(market, t, 1)
        counts = Counter(e.symbol for e in market.drain_events() if isinstance(e, BookDelta))
        assert min(counts[s] for s in market.symbols()) >= 6


def test_market_maker_never_removes_the_accounts_resting_orders():
    market = Market(seed=5, now_ms=NOW, contracts=_few(), vol_scale=3.0)
    book = market.book("SOLUSDTM")
    bid, ask = book.best("buy") - 1000, book.best("sell") + 1000  # ~0.7 % away
    book.add_user("buy", bid, 3, NOW)
    book.add_user("sell", ask, 2, NOW)
    top_bid = book.best("buy")
    book.add_user("buy", top_bid, 1, NOW)
    _run(market, NOW, 10)
    assert (book.size_at("buy", bid) - book.mm_at("buy", bid)) == 3
    assert (book.size_at("sell", ask) - book.mm_at("sell", ask)) == 2
    assert (book.size_at("buy", top_bid) - book.mm_at("buy", top_bid)) == 1


class RecordingHooks:
    """A stand-in for Trading: logs hook calls and fills one resting buy when the ask reaches it."""

    def __init__(self, market: Market, symbol: str, bid_ticks: int) -> None:
        self.market, self.symbol, self.bid_ticks = market, symbol, bid_ticks
        self.calls: list[tuple] = []
        self.filled_at: int | None = None

    def before_quote(self, symbol: str, bid_ticks: int, ask_ticks: int, now_ms: int) -> None:
        self.calls.append(("before", symbol, now_ms, bid_ticks < ask_ticks))
        if symbol == self.symbol and self.filled_at is None and ask_ticks <= self.bid_ticks:
            book = self.market.book(symbol)
            book.remove_user("buy", self.bid_ticks, 5, now_ms)
            self.market.record_trade(symbol, taker_side="sell", price_ticks=self.bid_ticks, size=5,
                                     maker_order_id="user-1", taker_order_id="mm", now_ms=now_ms)
            self.filled_at = now_ms

    def after_tick(self, symbol: str, now_ms: int) -> None:
        self.calls.append(("after", symbol, now_ms, True))


def test_hooks_run_around_every_symbol_tick_and_can_fill_crossed_orders():
    market = Market(seed=8, now_ms=NOW, contracts=_few(), vol_scale=30.0)
    book = market.book("DOGEUSDTM")
    bid = book.best("buy") - 2
    book.add_user("buy", bid, 5, NOW)
    hooks = RecordingHooks(market, "DOGEUSDTM", bid)
    market.hooks = hooks
    t = NOW
    while hooks.filled_at is None and t < NOW + 60_000:
        t = _run(market, t, 0.1)
        assert book.best("buy") < book.best("sell")
    ticks = (t - NOW) // 100
    symbols = market.symbols()
    per_kind = ticks * len(symbols)
    assert Counter(c[0] for c in hooks.calls) == {"before": per_kind, "after": per_kind}
    assert hooks.calls[:2 * len(symbols)] == [
        (kind, s, NOW + 100, True) for s in symbols for kind in ("before", "after")]
    fills = [e for e in market.drain_events() if isinstance(e, Trade) and e.maker_order_id == "user-1"]
    assert [(f.symbol, f.size, f.price, f.ts_ns) for f in fills] == [
        ("DOGEUSDTM", 5, market.fmt("DOGEUSDTM").to_str(bid), hooks.filled_at * 1_000_000)]


def test_public_trades_tickers_and_trade_history_agree():
    market = Market(seed=2, now_ms=NOW, contracts=_few())
    t = _run(market, NOW, 20, step_ms=500)
    events = market.drain_events()
    trades = [e for e in events if isinstance(e, Trade) and e.symbol == "ETHUSDTM"]
    tickers = [e for e in events if isinstance(e, TickerUpdate) and e.symbol == "ETHUSDTM"]
    assert len(trades) == len(tickers) >= 5
    assert [x.sequence for x in trades] == list(range(trades[0].sequence, trades[0].sequence + len(trades)))
    history = market.trade_history("ETHUSDTM")
    last = trades[-1]
    assert history[0] == {
        "sequence": last.sequence, "contractId": 2, "tradeId": last.trade_id,
        "makerOrderId": last.maker_order_id, "takerOrderId": last.taker_order_id,
        "ts": last.ts_ns, "size": last.size, "price": last.price, "side": last.side}
    assert [h["tradeId"] for h in history] == [x.trade_id for x in reversed(trades)][:100]
    ticker = market.ticker("ETHUSDTM", t)
    book = market.book("ETHUSDTM")
    fmt = market.fmt("ETHUSDTM")
    assert ticker == {
        "sequence": last.sequence, "symbol": "ETHUSDTM", "side": last.side, "size": last.size,
        "tradeId": last.trade_id, "price": last.price,
        "bestBidPrice": fmt.to_str(book.best("buy")), "bestBidSize": book.size_at("buy", book.best("buy")),
        "bestAskPrice": fmt.to_str(book.best("sell")), "bestAskSize": book.size_at("sell", book.best("sell")),
        "ts": t * 1_000_000}
    assert [x["symbol"] for x in market.all_tickers(t)] == market.symbols()
    assert market.last_price("ETHUSDTM") == float(last.price)


def test_best_quote_events_follow_the_book():
    market = Market(seed=2, now_ms=NOW, contracts=_few())
    t = _run(market, NOW, 2)
    quotes = [e for e in market.drain_events() if isinstance(e, BestQuote) and e.symbol == "XBTUSDTM"]
    book, fmt = market.book("XBTUSDTM"), market.fmt("XBTUSDTM")
    assert len(quotes) >= 10
    assert quotes[-1] == BestQuote(
        "XBTUSDTM", quotes[-1].sequence, fmt.to_str(book.best("buy")), book.size_at("buy", book.best("buy")),
        fmt.to_str(book.best("sell")), book.size_at("sell", book.best("sell")), quotes[-1].ts_ns)
    assert quotes[-1].sequence <= book.sequence and quotes[-1].ts_ns <= t * 1_000_000


def test_mark_index_every_second_and_funding_every_minute():
    market = Market(seed=6, now_ms=NOW, contracts=_few(), tick_ms=500)
    _run(market, NOW, 125, step_ms=1000)
    events = market.drain_events()
    marks = Counter(e.symbol for e in events if isinstance(e, MarkIndex))
    funding = Counter(e.symbol for e in events if isinstance(e, FundingRate))
    perpetuals = [s for s in market.symbols() if market.spec(s).is_perpetual]
    assert set(marks.values()) == {126}  # on the first tick, then on every second
    assert funding == {s: 3 for s in perpetuals}
    for symbol in market.symbols():
        mark, index = market.mark_price(symbol), market.index_price(symbol)
        spec = market.spec(symbol)
        premium = 0.0 if spec.is_perpetual else spec.base_price / market.spec("XBTUSDTM").base_price - 1
        assert abs(mark / index - 1 - premium) < 0.003
        assert abs(mark / market.last_price(symbol) - 1) < 0.01
    rate = next(e for e in reversed(events) if isinstance(e, FundingRate) and e.symbol == "XBTUSDTM")
    assert rate.funding_rate == market.funding_rate_current("XBTUSDTM", NOW + 125_000)["value"]


def test_funding_payloads_and_history_agree():
    market = Market(seed=6, now_ms=NOW, contracts=_few())
    current = market.funding_rate_current("XBTUSDTM", NOW)
    assert current == {
        "symbol": ".XBTUSDTMFPI8H", "granularity": 28_800_000, "timePoint": 1_794_974_400_000,
        "value": current["value"], "predictedValue": current["predictedValue"],
        "fundingRateCap": 0.003, "fundingRateFloor": -0.003, "period": 0,
        "fundingTime": 1_795_003_200_000}  # 04:00 and 12:00 UTC on 2026-11-18
    later = current["fundingTime"] + 1
    history = market.funding_rate_history("XBTUSDTM", NOW - 24 * HOUR_MS, later, later)
    assert [h["timepoint"] for h in history] == [current["fundingTime"] - k * 8 * HOUR_MS for k in range(4)]
    assert history[0] == {"symbol": "XBTUSDTM", "fundingRate": current["value"],
                          "timepoint": current["fundingTime"]}
    assert market.funding_rate_current("XBTUSDTM", later)["value"] == current["predictedValue"]
    assert len(market.funding_rate_history("XBTUSDTM", None, None, NOW)) == 100
    rates = [h["fundingRate"] for h in market.funding_rate_history("ETHUSDTM", 0, NOW, NOW)]
    assert all(-0.003 <= r <= 0.003 for r in rates) and len(set(rates)) > 50
    with pytest.raises(SimError) as info:
        market.funding_rate_current("XBTMZ26", NOW)
    assert info.value.code == "400100"


def test_order_book_payloads():
    market = Market(seed=1, now_ms=NOW, contracts=_few())
    t = _run(market, NOW, 1)
    book: Book = market.book("XBTUSDTM")
    snap = market.level2_snapshot("XBTUSDTM", 20, t)
    assert (snap["sequence"], snap["symbol"], snap["ts"]) == (book.sequence, "XBTUSDTM", t * 1_000_000)
    assert snap["bids"] == [[p / 10, s] for p, s in book.levels("buy", 20)]
    assert snap["asks"] == [[p / 10, s] for p, s in book.levels("sell", 20)]
    assert len(market.level2_snapshot("XBTUSDTM", None, t)["bids"]) > 20
    depth = market.depth("XBTUSDTM", 5, t)
    fmt = market.fmt("XBTUSDTM")
    assert depth == {"bids": [[fmt.to_str(p), s] for p, s in book.levels("buy", 5)],
                     "asks": [[fmt.to_str(p), s] for p, s in book.levels("sell", 5)],
                     "ts": t, "timestamp": t, "sequence": book.sequence}
    market.drain_events()
    skipped = market.skip_level2_sequence("XBTUSDTM")
    market.advance(t + 100)
    first = next(e for e in market.drain_events() if isinstance(e, BookDelta) and e.symbol == "XBTUSDTM")
    assert first.sequence == skipped + 1


def test_misc_public_payloads():
    market = Market(seed=1, now_ms=NOW, contracts=_few())
    t = _run(market, NOW, 2)
    assert market.mark_price_current("ETHUSDTM", t) == {
        "symbol": "ETHUSDTM", "granularity": 1000, "timePoint": t - t % 1000,
        "value": market.mark_price("ETHUSDTM"), "indexPrice": market.index_price("ETHUSDTM")}
    index = market.index_query({"symbol": ".KXBTUSDT"}, t)
    point = index["dataList"][0]
    assert (index["hasMore"], point["symbol"], point["granularity"], point["value"]) == (
        False, ".KXBTUSDT", 1000, market.index_price("XBTUSDTM"))
    assert sum(p["weight"] for p in point["decomposionList"]) == pytest.approx(1.0)
    assert market.risk_limit("XBTUSDTM")[0] == {
        "symbol": "XBTUSDTM", "level": 1, "maxRiskLimit": 100000, "minRiskLimit": 0,
        "maxLeverage": 125, "initialMargin": 0.008, "maintainMargin": 0.004}
    stats = market.trade_statistics(t)
    assert list(stats) == ["turnoverOf24h"] and stats["turnoverOf24h"] > 1e9
    detail = market.contract_detail("SOLUSDTM", t)
    assert detail == next(c for c in market.contracts_active(t) if c["symbol"] == "SOLUSDTM")


@pytest.mark.parametrize("call", [
    lambda m: m.ticker("NOPE", NOW), lambda m: m.level2_snapshot("NOPE", None, NOW),
    lambda m: m.spec("NOPE"), lambda m: m.trade_history("NOPE"), lambda m: m.risk_limit("NOPE"),
    lambda m: m.index_query({"symbol": ".KNOPE"}, NOW), lambda m: m.contract_detail("NOPE", NOW),
])
def test_unknown_symbols_are_kucoin_200003(call):
    with pytest.raises(SimError) as info:
        call(Market(seed=1, now_ms=NOW, contracts=[]))
    assert (info.value.http_status, info.value.code) == (400, "200003")


def test_candle_updates_at_most_once_a_second_per_granularity():
    market = Market(seed=2, now_ms=NOW, contracts=_few())
    _run(market, NOW, 10)
    updates = [e for e in market.drain_events() if isinstance(e, CandleUpdate) and e.symbol == "XBTUSDTM"]
    by_gran = defaultdict(list)
    for update in updates:
        by_gran[update.granularity_min].append(update.time_ms)
    assert len(by_gran) == 11
    for times in by_gran.values():
        assert all(b - a >= 1000 for a, b in zip(times, times[1:]))
        assert len(times) >= 5


def test_a_long_gap_is_jumped_over_and_time_driven_state_catches_up():
    market = Market(seed=3, now_ms=NOW, contracts=_few())
    later = NOW + 2 * HOUR_MS + 50
    market.advance(later)
    events = market.drain_events()
    marks = [e for e in events if isinstance(e, MarkIndex) and e.symbol == "XBTUSDTM"]
    rows = market.klines("XBTUSDTM", 1, None, None, later)
    assert len(marks) == 61  # only the last 600 ticks (60 s) ran tick by tick
    assert later - 1000 < marks[-1].ts_ms <= later
    assert rows[-1][0] == later - later % 60_000
    assert rows[-120][5] == 0 and rows[-1][5] > 0  # skipped minutes are flat, live ones traded
    book = market.book("XBTUSDTM")
    assert book.best("buy") < book.best("sell")


def test_a_resumed_market_skips_its_pause_and_stamps_nothing_inside_it():
    market = Market(seed=42, now_ms=NOW, contracts=_few())
    _run(market, NOW, 1)
    market.drain_events()
    pause_end = NOW + 1_000 + 30_000  # 30 s paused: no tick ran
    market.resume(pause_end)
    market.advance(pause_end + 200)
    stamped = [e.ts_ns // 1_000_000 for e in market.drain_events() if isinstance(e, Trade)]
    assert stamped and min(stamped) > pause_end  # without resume: the pause is replayed, stamped inside it
