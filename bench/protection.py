"""How fast the bot learns of a fill and protects a new position, on the simulator (its own process).

    python bench/protection.py [--runs 20]

Each run places a 1-lot market order through KuCoinClient and measures, from the moment the
order is sent (KuCoin's answer carries ids only, not the fill):

    fill via the private feed     until the fill's OrderUpdate is in client.account_events()
    fill via a REST read          the answer, then one get_order over REST at once (the best a
                                  poller can do; one polling every P seconds adds P/2 on average)
    entry fill -> stop resting    create_stop_order for the position's stop-loss (the mark price
                                  read that sets its direction, the POST, the answer)
    floor: one order round trip   the market order call itself (POST and answer)

Medians over the runs, in ms; ratios are measured in the same run.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from kucoin_client import KuCoinClient, OrderUpdate  # noqa: E402
from ticker_read import start_sim  # noqa: E402  (bench/ is on sys.path: it runs from there)

SYMBOL = "BTC/USDT:USDT"
SIM_KEYS = ("sim-key", "sim-secret", "sim-passphrase")  # what `python -m kucoin_sim` accepts


def fill_event_ms(client: KuCoinClient, order_id: str, since: float) -> float:
    while True:
        for event in client.account_events(timeout_s=5.0):
            if isinstance(event, OrderUpdate) and event.order_id == order_id and event.is_fill:
                return (time.perf_counter() - since) * 1000
        if time.perf_counter() - since > 10:
            raise RuntimeError("no fill event within 10 s")


def measure(base: str, runs: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"feed": [], "rest": [], "stop": [], "order": []}
    with KuCoinClient(*SIM_KEYS, futures_url=base) as feed_client, \
            KuCoinClient(*SIM_KEYS, futures_url=base, enable_websocket=False) as rest_client:
        feed_client.get_balance()  # starts the private feed
        deadline = time.monotonic() + 10
        while not feed_client.health()["private_websocket"]["fresh"].get("positions"):
            if time.monotonic() > deadline:
                raise RuntimeError("the private feed did not come up")
            feed_client.account_events(timeout_s=0.05)
        feed_client.account_events()
        for i in range(runs):
            side = "buy" if i % 2 == 0 else "sell"
            # the private feed: the fill as an event
            t0 = time.perf_counter()
            order = feed_client.create_market_order(SYMBOL, side, 1)
            t1 = time.perf_counter()
            found["order"].append((t1 - t0) * 1000)
            found["feed"].append(fill_event_ms(feed_client, str(order["id"]), t0))
            # REST: read the order right after the answer
            t0 = time.perf_counter()
            order = rest_client.create_market_order(SYMBOL, side, 1)
            read = rest_client.get_order(order["id"], SYMBOL)
            found["rest"].append((time.perf_counter() - t0) * 1000)
            assert read.get("filled"), read
            # the position's stop-loss, right after its entry filled
            mark = rest_client.get_mark_price(SYMBOL)["markPrice"]
            t1 = time.perf_counter()
            stop = rest_client.create_stop_order(SYMBOL, "sell", 1, round(mark * 0.9, 1), close_order=True)
            found["stop"].append((time.perf_counter() - t1) * 1000)
            rest_client.cancel_stop_order(stop["id"], symbol=SYMBOL)
    return found


def bench_rows(*, details: dict, runs: int = 10) -> list:
    """bench/run.py's rows (its own simulator process): the feed vs a REST read, and the stop."""
    from report import Row, attempt, pick

    def run() -> dict[str, float]:
        proc, base = start_sim()
        try:
            return {k: statistics.median(v) for k, v in measure(base, runs).items()}
        finally:
            proc.terminate()
            proc.wait(10)

    got = attempt("protection", run)
    details["protection"] = got
    return [Row("Fill known after the order is sent", "ms", "lower", ours=pick(got, lambda r: r["feed"]),
                other=pick(got, lambda r: r["rest"]), other_label="REST read at once",
                ceiling=pick(got, lambda r: r["order"])),
            Row("Entry fill → its stop resting on the exchange", "ms", "lower", ours=pick(got, lambda r: r["stop"]),
                ceiling=pick(got, lambda r: r["order"]))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    proc, base = start_sim()
    try:
        found = measure(base, args.runs)
    finally:
        proc.terminate()
        proc.wait(10)
    med = {k: statistics.median(v) for k, v in found.items()}
    print(f"{'':34}{'median ms':>10}{'min':>8}{'max':>8}")
    for key, label in (("feed", "fill via the private feed"), ("rest", "fill via a REST read"),
                       ("stop", "entry fill -> stop resting"), ("order", "floor: one order round trip")):
        print(f"{label:34}{med[key]:>10.2f}{min(found[key]):>8.2f}{max(found[key]):>8.2f}")
    print(f"\nfill known: REST read / private feed: {med['rest'] / med['feed']:.2f}x "
          f"(a poller every 1 s: ~{(500 + med['rest']) / med['feed']:.0f}x); the feed's floor is the order "
          f"round trip: {med['feed'] / med['order']:.2f}x of it")
    print(f"stop resting / one order round trip: {med['stop'] / med['order']:.1f}x "
          "(the mark price read that sets the direction is the other round trip)")


if __name__ == "__main__":
    main()
