"""The private feed's news reaches the bot on the simulator: an auto-deleveraging is booked as an
exit and announced as such, and a funding settlement is booked (and in the run's summary)."""
from __future__ import annotations

from tests.helpers import TIMEOUT_S, wait_until
from tests.tradebot.test_trader import BTC, _trader, env  # noqa: F401  (the fixture)
from tradebot.events import EventKind

BTC_ID = "XBTUSDTM"


def test_funding_and_an_adl_arrive_through_the_private_feed_and_are_booked(env) -> None:  # noqa: F811
    sim, settings, client = env
    trader, journal = _trader(client, settings)
    seen: list = []
    trader.events.subscribe(seen.append)
    trader.scan()
    held = trader.holdings[BTC].contracts
    trader.protect()  # the first account read starts the private feed
    wait_until(lambda: client.health()["private_websocket"]["fresh"]["positions"], what="the private feed")
    sim.settle_funding(BTC_ID)

    def funding_booked() -> bool:
        trader.protect()
        return bool(journal.funding())

    wait_until(funding_booked, TIMEOUT_S * 2, what="the funding settlement booked")
    sim.deleverage(BTC_ID)

    def closed() -> bool:
        trader.protect()
        return BTC not in trader.holdings

    wait_until(closed, TIMEOUT_S * 2, what="the ADL seen and the position dropped")
    forced = [f for f in journal.fills() if f.fill_id.startswith("adl:")]
    liquidation = [e for e in seen if e.kind is EventKind.LIQUIDATION]
    assert [(s, fee != 0) for s, _, fee in journal.funding()] == [(BTC, True)]
    assert [(f.side, f.amount) for f in forced] == [("sell", held)]
    assert [(e.details["symbol"], e.details["reason"], e.details["contracts"]) for e in liquidation] == [
        (BTC, "adl", held)]
    assert sim.stop_orders() == []  # its resting stops went with it
    journal.close()
