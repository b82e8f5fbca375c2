"""The peers, measured the way their users run them: ccxt.pro (asyncio) and plain ccxt (REST).

Both are unmodified ccxt 4.5.x with only their URLs pointed at the simulator (as
tests/helpers.ccxt_config does) and ccxt's own throttle off, so no peer figure contains a
deliberate wait. ccxt.pro runs on its own asyncio loop in a thread (``ProLoop``); a CPU-busy
variant keeps the main thread busy meanwhile, as our busy rows do.

What is measured for ccxt.pro, exactly (``ProFirehose``, ``ProBookFirehose``, ``pro_watch_ticker_ns``):
  ingest     ``watch_bids_asks([BTC])`` (the tickerV2 topic: ``watch_ticker`` subscribes the v1
             ticker topic, which the firehose does not carry) with a consumer task awaiting it in
             a loop; every frame ccxt.pro parsed into ``bidsasks`` is counted by a subclass hook
             after ``handle_bid_ask`` (so coalesced wake-ups of the consumer do not undercount);
             one connection serves every run of a row (its setup is in no figure)
  book       ``watch_order_book(BTC)`` (level2 topic + REST snapshot) with a consumer task awaiting
             it in a loop; every delta ccxt.pro applied to its synced book is counted by a hook
             after ``handle_order_book`` (the consumer's wake-ups coalesce); the connection is
             opened and synced once, before the runs (ccxt.pro fetches its snapshot only after
             the 6th delta, so a short warm-up firehose syncs it)
  latency    frame ``ts`` (simulator wall clock at send) to the end of ``handle_bid_ask`` (the
             frame is in ``ex.bidsasks`` and the waiting future resolved): the same point as our
             ``on_ticker``, which runs after the cache update
  read       ``await watch_ticker(symbol)`` timed in the loop itself (no thread hop charged to
             it), one awaiting loop per contract; it returns on the next ticker push, so its
             latency is the wait for that push (about one trade a second per contract here)
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Self

import ccxt
import ccxt.pro

from common import Firehose, Meter, peak_rss_mib, spin_until, wait_no_connections, wait_subscribed, wait_until

SYMBOL, KUCOIN_ID = "BTC/USDT:USDT", "XBTUSDTM"
TOPIC_V2 = f"/contractMarket/tickerV2:{KUCOIN_ID}"
TOPIC_L2 = f"/contractMarket/level2:{KUCOIN_ID}"
BOOK_WARMUP_FRAMES = 200  # ccxt.pro asks for its REST snapshot on the 6th delta it caches
# bench/ceiling.py (BookMeter, book_sequence, fire_level2) is imported where used, so the memory
# child (``--memory``) holds only what a ccxt.pro user's process does.
LOOP_TIMEOUT_S = 120.0


def ccxt_config(base: str) -> dict[str, Any]:
    """ccxt options with every REST URL at the simulator, no credentials, ccxt's throttle off."""
    # Imported here, not at the top: the memory child (``--memory``) must not hold our library.
    from kucoin_futures.rest.gateway import URL_KEYS

    return {"urls": {"api": {key: base for key in URL_KEYS}}, "timeout": 10_000, "enableRateLimit": False}


class CountingCcxt(ccxt.kucoinfutures):
    """Plain ccxt that counts its HTTP requests."""

    rest_calls = 0

    def fetch(self, url, method="GET", headers=None, body=None):  # noqa: ANN001, ANN201 - ccxt's signature
        self.rest_calls += 1
        return super().fetch(url, method, headers, body)


class BenchPro(ccxt.pro.kucoinfutures):
    """ccxt.pro with bench hooks: HTTP requests counted; callbacks after each tickerV2 parsed into
    ``bidsasks`` (with the frame's ``data``) and after each level-2 delta applied to a synced book
    (``on_book`` with the KuCoin id, ``on_level2`` with the frame's ``data``)."""

    rest_calls = 0
    on_bid_ask: Callable[[dict[str, Any]], object] | None = None
    on_book: Callable[[str], object] | None = None
    on_level2: Callable[[dict[str, Any]], object] | None = None

    async def fetch(self, url, method="GET", headers=None, body=None):  # noqa: ANN001, ANN201
        self.rest_calls += 1
        return await super().fetch(url, method, headers, body)

    def handle_bid_ask(self, client, message):  # noqa: ANN001, ANN201
        super().handle_bid_ask(client, message)
        hook = self.on_bid_ask
        if hook is not None:
            hook(message["data"])

    def handle_order_book(self, client, message):  # noqa: ANN001, ANN201
        super().handle_order_book(client, message)
        hook, level2 = self.on_book, self.on_level2
        if hook is None and level2 is None:
            return
        data = message["data"]
        kucoin_id = data.get("symbol") or message["topic"].split(":")[1]
        book = self.orderbooks.get(self.safe_symbol(kucoin_id, None, "-"))
        if book is None or book["nonce"] is None:  # None until the REST snapshot is merged
            return
        if hook is not None:
            hook(kucoin_id)
        if level2 is not None and book["nonce"] == data.get("sequence"):  # this delta was applied
            level2(data)


class ProLoop:
    """A ccxt.pro exchange living on its own asyncio loop thread, driven from synchronous code."""

    def __init__(self, base: str, markets: Any = None) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="ccxt.pro-loop", daemon=True)
        self._thread.start()
        self.exchange: BenchPro = self.run(self._create(base, markets))

    async def _create(self, base: str, markets: Any) -> BenchPro:
        exchange = BenchPro(ccxt_config(base))
        if markets is not None:
            exchange.open()  # binds the running loop; load_markets would (ccxt.pro spawns on it)
            exchange.set_markets(markets)
        else:
            await exchange.load_markets()
        return exchange

    def run(self, coro: Coroutine[Any, Any, Any], timeout_s: float = LOOP_TIMEOUT_S) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        try:
            self.run(self.exchange.close(), 30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()

    def __enter__(self) -> ProLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_markets(base: str) -> Any:
    """Markets for every ProLoop of the run (so each one skips load_markets)."""
    exchange = ccxt.kucoinfutures(ccxt_config(base))
    try:
        return exchange.load_markets()
    finally:
        exchange.session.close()


class _ProFeed:
    """One ccxt.pro connection on one BTC topic with a user's consumer loop awaiting ``_watch()``.

    The connection is opened once and kept for every run (its setup is no part of any figure);
    ``wait_no_connections`` first, so the previous contender's subscription cannot stand in.
    """

    topic = ""

    def __init__(self, base: str, markets: Any) -> None:
        wait_no_connections(base)
        self.base = base
        self.pro = ProLoop(base, markets)
        self._stop = threading.Event()
        self._consumer = self.pro.spawn(self._consume())
        wait_subscribed(base, [self.topic])

    def _watch(self) -> Coroutine[Any, Any, Any]:
        raise NotImplementedError

    async def _consume(self) -> None:
        # A ccxt.pro user's loop: await the next update, again and again.
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._watch(), 1.0)
            except asyncio.TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._consumer.cancel()  # it may be inside a 1 s wait_for
        try:
            self._consumer.result(LOOP_TIMEOUT_S)
        except concurrent.futures.CancelledError:
            pass
        finally:
            self.pro.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ProFirehose(_ProFeed):
    """ccxt.pro on BTC's tickerV2 (``watch_bids_asks``), fed tickerV2 firehoses."""

    topic = TOPIC_V2

    def _watch(self) -> Coroutine[Any, Any, Any]:
        return self.pro.exchange.watch_bids_asks([SYMBOL])

    def _run(self, total: int, rate: float | None, busy: bool, hook: Callable[[dict[str, Any]], object],
             meter: Meter) -> None:
        self.pro.exchange.on_bid_ask = hook
        try:
            sender = Firehose(self.base, total, [KUCOIN_ID], rate)
            if busy:
                spin_until(meter.done)
            arrived = meter.done.wait(600)
            sender.join()
        finally:
            self.pro.exchange.on_bid_ask = None
        if not arrived:
            raise RuntimeError(f"ccxt.pro: only {meter.n} of {total} frames were handled")

    def ingest(self, total: int, busy: bool) -> float:
        """Firehose of ``total`` tickerV2 frames; msgs/s ccxt.pro handled, first to last."""
        meter = Meter(total)
        self._run(total, None, busy, lambda data: meter.hit(data["sequence"]), meter)
        return meter.rate()

    def latency(self, total: int, rate: float, busy: bool) -> list[float]:
        """Microseconds from each frame's send ``ts`` to the end of ccxt.pro's handle_bid_ask."""
        meter = Meter(total)
        out: list[float] = []

        def hook(data: dict[str, Any]) -> None:
            out.append((time.time_ns() - data["ts"]) / 1000)
            meter.hit(data["sequence"])

        self._run(total, rate, busy, hook, meter)
        return out


class ProBookFirehose(_ProFeed):
    """ccxt.pro on BTC's level-2 book (``watch_order_book``), synced once, fed level-2 firehoses."""

    topic = TOPIC_L2

    def __init__(self, base: str, markets: Any) -> None:
        super().__init__(base, markets)
        try:
            self._sync()
        except BaseException:
            self.close()
            raise

    def _watch(self) -> Coroutine[Any, Any, Any]:
        return self.pro.exchange.watch_order_book(SYMBOL)

    def _sync(self) -> None:
        from ceiling import book_sequence

        # The market is paused: only firehose deltas move the book, so after the warm-up ccxt.pro's
        # book must reach exactly the simulator's sequence.
        target = book_sequence(self.base) + BOOK_WARMUP_FRAMES
        Firehose(self.base, BOOK_WARMUP_FRAMES, [KUCOIN_ID], topic="level2").join()
        wait_until(lambda: (self.pro.exchange.orderbooks.get(SYMBOL) or {}).get("nonce") == target, 30,
                   "ccxt.pro's order book synced")

    def ingest(self, total: int, busy: bool) -> float:
        """Level-2 firehose of ``total`` deltas; msgs/s of deltas ccxt.pro applied, first to last."""
        from ceiling import BookMeter, book_sequence, fire_level2

        meter = BookMeter(book_sequence(self.base), total)
        self.pro.exchange.on_level2 = lambda data: meter.hit(data["sequence"])
        try:
            fire_level2(self.base, total, busy, meter, "ccxt.pro")
        finally:
            self.pro.exchange.on_level2 = None
        return meter.rate()


async def _watch_ticker_times(exchange: BenchPro, symbol: str, end: float, out: list[float],
                              pending: dict[str, int]) -> None:
    await exchange.watch_ticker(symbol)  # subscribed (first window) or the next push: not a sample
    clock = time.perf_counter_ns
    while time.monotonic() < end:
        pending[symbol] = start = clock()
        await exchange.watch_ticker(symbol)
        out.append(clock() - start)
        del pending[symbol]


async def _watch_window(exchange: BenchPro, symbols: list[str], window_s: float, grace_s: float) -> list[float]:
    out: list[float] = []
    pending: dict[str, int] = {}
    end = time.monotonic() + window_s
    waits = asyncio.gather(*(_watch_ticker_times(exchange, s, end, out, pending) for s in symbols))
    try:
        await asyncio.wait_for(waits, window_s + grace_s)
    except asyncio.TimeoutError:
        now = time.perf_counter_ns()
        out += [now - start for start in pending.values()]  # still waiting: a lower bound each
    return out


def pro_watch_ticker_ns(base: str, markets: Any, symbols: list[str], *, window_s: float, grace_s: float,
                        runs: int) -> list[list[float]]:
    """ns of each ``await watch_ticker(symbol)``, one list per window (live market).

    The ticker (v1) topic pushes once per trade, about once a second per contract in the
    simulator, so one awaiting loop per contract runs concurrently to collect enough samples.
    A wait still open ``grace_s`` after the window is counted with the time it has waited so far
    (a lower bound: this favours ccxt.pro's p99).
    """
    with ProLoop(base, markets) as pro:
        return [pro.run(_watch_window(pro.exchange, symbols, window_s, grace_s)) for _ in range(runs)]


def ccxt_fetch_ticker_ns(base: str, calls: int) -> list[float]:
    """ns of each plain-ccxt ``fetch_ticker(BTC)`` (one REST round trip), after 20 warm-up calls."""
    exchange = ccxt.kucoinfutures(ccxt_config(base))
    clock = time.perf_counter_ns
    try:
        exchange.load_markets()
        out: list[float] = []
        for i in range(calls + 20):
            start = clock()
            exchange.fetch_ticker(SYMBOL)
            if i >= 20:
                out.append(clock() - start)
        return out
    finally:
        exchange.session.close()



# -- memory ----------------------------------------------------------------------------------------
async def _fill_pro_caches() -> BenchPro:
    from ccxt.async_support.base.ws.cache import ArrayCacheByTimestamp

    exchange = BenchPro({})  # no I/O: the caches are filled the way handle_* fills them
    for i in range(300):
        symbol = f"C{i:03d}/USDT:USDT"
        data = {"symbol": f"C{i:03d}USDTM", "sequence": i, "bestBidSize": 5, "bestBidPrice": str(100.0 + i),
                "bestAskPrice": str(100.1 + i), "bestAskSize": 7, "ts": 1_700_000_000_000_000_000}
        exchange.tickers[symbol] = exchange.safe_ticker({
            "symbol": symbol, "timestamp": 1_700_000_000_000, "bid": 100.0 + i, "bidVolume": 5.0,
            "ask": 100.1 + i, "askVolume": 7.0, "last": 100.05,
            "info": {"topic": "/contractMarket/tickerV2:" + data["symbol"], "type": "message",
                     "subject": "tickerV2", "data": data}})
        exchange.ohlcvs[symbol] = {}
        for timeframe in ("1m", "5m", "1h"):
            cache = ArrayCacheByTimestamp(500)
            for k in range(500):
                cache.append([1_700_000_000_000 + k * 60_000, 100.0 + k, 101.0 + k, 99.0 + k, 100.5 + k, float(k)])
            exchange.ohlcvs[symbol][timeframe] = cache
        if i < 20:
            exchange.orderbooks[symbol] = exchange.order_book({
                "bids": [[100.0 - k * 0.01, float(k + 1)] for k in range(500)],
                "asks": [[100.01 + k * 0.01, float(k + 1)] for k in range(500)], "nonce": i})
    return exchange


def memory_main() -> None:
    """Child process: ccxt.pro's caches holding 300 tickers, 300 x 3 x 500 candles and 20 books of
    500 levels a side; print peak RSS in MiB as JSON."""
    import json

    before = peak_rss_mib()
    exchange = asyncio.run(_fill_pro_caches())
    print(json.dumps({"before_mib": before, "peak_mib": peak_rss_mib(),
                      "series": sum(len(v) for v in exchange.ohlcvs.values())}))


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--memory"]:
        memory_main()
    else:
        sys.exit("usage: python bench/peers.py --memory   (the rows run from bench/run.py)")
