"""The pure parts of bench/run.py: statistics, the lead ratios and table, the raw frame codec."""
from __future__ import annotations

import math
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

from ceiling import masked_text_frame, split_frames  # noqa: E402
from common import Meter, median_of_runs, p50_p99, percentile  # noqa: E402
from report import NA, Row, fmt, fmt_ratio, render, where_we_trail  # noqa: E402


def server_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (51, 100, 100)
    assert p50_p99([3.0, 1.0, 2.0]) == (2.0, 3.0)


def test_percentile_of_nothing_raises() -> None:
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_median_of_runs_is_per_column() -> None:
    assert median_of_runs([(1.0, 10.0), (3.0, 30.0), (2.0, 50.0)]) == [2.0, 30.0]


def test_meter_rate_runs_from_first_to_last_frame() -> None:
    meter = Meter(3)
    for seq in (Meter.FIRST_SEQ + 1, Meter.FIRST_SEQ + 2, Meter.FIRST_SEQ + 3):
        meter.hit(seq)
    assert (meter.n, meter.done.is_set(), meter.rate() > 0) == (3, True, True)


@pytest.mark.parametrize("better, ours, theirs, lead", [
    ("lower", 2.0, 10.0, 5.0),
    ("lower", 10.0, 2.0, 0.2),
    ("higher", 100.0, 25.0, 4.0),
    ("lower", 0, 50, math.inf),
    ("lower", 0, 0, 1.0),
])
def test_row_lead_is_how_many_times_better_ours_is(better: str, ours: float, theirs: float, lead: float) -> None:
    assert Row("r", "u", better, ours=ours, ccxt_pro=theirs).lead("ccxt_pro") == lead


def test_row_lead_is_none_without_both_figures() -> None:
    row = Row("r", "u", "lower", ours=1.0, ccxt=NA("peer failed"))
    assert (row.lead("ccxt"), row.lead("ccxt_pro")) == (None, None)


def test_formatting() -> None:
    assert [fmt(v) for v in (None, NA("x"), 0, 123456.7, 12.34, 1.234, 0.01234)] == [
        "—", "n/a (x)", "0", "123,457", "12.3", "1.23", "0.0123"]
    assert [fmt_ratio(v) for v in (None, math.inf, 1234.0, 12.4, 1.234)] == ["—", "∞", "1,234×", "12×", "1.23×"]


def test_render_has_a_line_per_row_and_names_the_other_column() -> None:
    rows = [Row("Scan", "ms", "lower", ours=2.0, other=200.0, ceiling=1.0, other_label="REST only")]
    lines = render(rows).splitlines()
    assert len(lines) == 3
    assert lines[2] == "| Scan (other: REST only) | ms | 2.00 | — | — | 200 | 1.00 | — | — | 100× | 0.50× |"


def test_where_we_trail_lists_narrow_leads_losses_and_distance_to_the_ceiling() -> None:
    rows = [Row("A", "msgs/s", "higher", ours=100.0, ccxt_pro=80.0, ceiling=400.0),
            Row("B", "s", "lower", ours=2.0, ccxt_pro=1.0),
            Row("C", "calls", "lower", ours=0, ccxt_pro=0, ceiling=0)]
    assert where_we_trail(rows) == ["A: ours leads ccxt.pro by only 1.25×", "A: ours is at 0.25× of the ceiling",
                                    "B: ccxt.pro beats ours (0.50×)"]


@pytest.mark.parametrize("size", [5, 125, 126, 300, 70_000])
def test_split_frames_cuts_whole_frames_and_keeps_the_rest(size: int) -> None:
    payload = b"x" * size
    stream = server_frame(payload) + server_frame(b'{"a":1}')
    assert split_frames(stream) == ([payload, b'{"a":1}'], b"")
    assert split_frames(stream[:-3]) == ([payload], server_frame(b'{"a":1}')[:-3])


def test_masked_text_frame_unmasks_to_the_payload() -> None:
    payload = b'{"type":"subscribe","topic":"/contractMarket/tickerV2:XBTUSDTM"}' * 3  # > 125 bytes
    frame = masked_text_frame(payload)
    assert frame[0] == 0x81 and frame[1] == 0x80 | 126
    length = int.from_bytes(frame[2:4], "big")
    mask, body = frame[4:8], frame[8:]
    assert length == len(payload)
    assert bytes(b ^ mask[i % 4] for i, b in enumerate(body)) == payload


@pytest.mark.parametrize(
    ("better", "ours", "raw", "share"),
    [
        ("lower", 3061.0, 11804.0, 1.0),   # the busy latency row that showed 3.86× "of ceiling"
        ("higher", 250.0, 200.0, 1.0),
        ("lower", 2.0, 1.0, 0.5),          # a real ceiling: unchanged
        ("higher", 100.0, 400.0, 0.25),
        ("lower", 0.0, 0.0, 1.0),
    ],
)
def test_of_ceiling_never_exceeds_one(better: str, ours: float, raw: float, share: float) -> None:
    """Issue 13.8: a raw reference ours beats is no ceiling; the row's ceiling is then ours."""
    row = Row("r", "u", better, ours=ours, ceiling=raw)
    assert (row.of_ceiling(), row.to_json()["of_ceiling"]) == (share, share)


def test_render_shows_ours_as_the_ceiling_where_it_beats_the_raw_loop() -> None:
    rows = [Row("Update→visible p50, busy", "µs", "lower", ours=3061.0, ccxt_pro=31939.0, ceiling=11804.0),
            Row("Update→visible p50, idle", "µs", "lower", ours=63.5, ccxt_pro=112.0, ceiling=47.1)]
    assert render(rows).splitlines()[2:] == [
        "| Update→visible p50, busy | µs | 3,061 | 31,939 | — | — | 3,061 (ours; raw 11,804) | 10× | — | — | 1.00× |",
        "| Update→visible p50, idle | µs | 63.5 | 112 | — | — | 47.1 | 1.76× | — | — | 0.74× |",
    ]
    assert where_we_trail([Row("busy", "µs", "lower", ours=3061.0, ceiling=11804.0)]) == []
