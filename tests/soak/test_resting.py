"""The soak's resting-stop invariant on hand-made samples: owed after the grace, lost at once
once it existed (bot up or down), not counted while the bot is down before its first stop,
never piled up."""
from __future__ import annotations

from soak.model import RestingStop, Sample, Status
from soak.resting import check_resting_stops, protects

SL_LONG = RestingStop("sell", "down", 95.0, 3, True, False)
TP_LONG = RestingStop("sell", "up", 110.0, 3, True, False)


def sample(t: float, qty: int, *stops: RestingStop, up: bool = True) -> Sample:
    return Sample(t=t, bot_up=up, bot_ready=up, positions={"XBTUSDTM": qty} if qty else {},
                  stops={"XBTUSDTM": stops} if stops else {})


def kinds(result) -> list[str]:
    return [v.detail.split(": ", 1)[1] for v in result.violations]


def test_a_stop_on_the_loss_side_protects_and_a_take_profit_does_not():
    assert (protects(SL_LONG, 3), protects(SL_LONG, 4), protects(TP_LONG, 3), protects(SL_LONG, -3)) == (
        True, False, False, False)
    assert protects(RestingStop("sell", "down", 95.0, 0, True, True), 7)  # closeOrder: any size


def test_a_position_protected_within_the_grace_passes():
    result = check_resting_stops([sample(0, 3), sample(1, 3), sample(2, 3, SL_LONG, TP_LONG),
                                  sample(3, 3, SL_LONG, TP_LONG, up=False), sample(4, 0)], [])
    assert (result.status, result.violations) == (Status.OK, ())


def test_a_position_left_without_a_stop_past_the_grace_is_a_violation():
    result = check_resting_stops([sample(t, 3) for t in range(6)], [])
    assert kinds(result) == ["+3 open 4.0s of bot time without a resting stop"]


def test_bot_down_time_and_rest_fault_windows_are_not_counted_before_the_first_stop():
    samples = [sample(0, 3, up=False), sample(10, 3, up=False), sample(11, 3), sample(12, 3), sample(13, 3),
               sample(14, 3, SL_LONG)]
    assert check_resting_stops(samples, [(11.5, 13.5)]).violations == ()


def test_a_new_position_whose_flat_moment_fell_between_samples_owes_its_own_first_stop():
    """A stop closed +3 and the bot entered +2 between two samples (the soak's 30-minute run:
    during a restart): the +2 is a new position, not the +3 that lost its stop."""
    sl_two = RestingStop("sell", "down", 95.0, 2, True, False)
    in_time = check_resting_stops([sample(0, 3, SL_LONG), sample(1, 2), sample(2, 2, sl_two)], [])
    late = check_resting_stops([sample(0, 3, SL_LONG), *(sample(t, 2) for t in range(1, 6))], [])
    assert (in_time.violations, kinds(late)) == ((), ["+2 open 4.0s of bot time without a resting stop"])


def test_a_stop_gone_while_the_position_stays_is_a_violation_at_once_even_with_the_bot_down():
    result = check_resting_stops([sample(0, 3, SL_LONG), sample(1, 3, up=False), sample(2, 3, SL_LONG)], [])
    assert kinds(result) == ["+3 open and its resting stop is gone (bot down)"]


def test_trailing_must_not_pile_stops_up():
    replacing = check_resting_stops([sample(0, 3, SL_LONG, SL_LONG, TP_LONG), sample(1, 3, SL_LONG, TP_LONG)], [])
    piled = check_resting_stops([sample(0, 3, SL_LONG, SL_LONG, TP_LONG), sample(1, 3, SL_LONG, SL_LONG, TP_LONG)], [])
    assert (replacing.violations, kinds(piled)) == ((), ["3 stops rest for one position (1.0s)"])


def test_a_stop_is_judged_by_its_fills_not_by_when_it_was_placed():
    from soak.invariants import check_exits_reduce
    from soak.model import Fill, Order

    entry = Order(0.0, "1", "XBTUSDTM", "buy", 3, False, "bot-e", 3)
    stop = Order(0.5, "2", "XBTUSDTM", "sell", 3, True, "bot-s", 3, stop=True)
    take_profit = Order(0.6, "3", "XBTUSDTM", "sell", 3, True, "bot-t", 0, stop=True)  # cancelled at its trigger
    fills = [Fill(0.1, "XBTUSDTM", "buy", 3, "1"), Fill(5.0, "XBTUSDTM", "sell", 3, "2")]
    assert check_exits_reduce([entry, stop, take_profit], fills).violations == ()
    again = [*fills, Fill(6.0, "XBTUSDTM", "sell", 3, "3")]  # a stop filling on a flat position
    assert [v.detail for v in check_exits_reduce([entry, stop, take_profit], again).violations] == [
        "XBTUSDTM: stop bot-t filled sell 3 on a position of 0"]
