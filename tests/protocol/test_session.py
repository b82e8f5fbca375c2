"""Pure tests: WsSession flows with explicit ``now``, reconnect backoff and error classification."""
from __future__ import annotations

import json
import random

import pytest

from kucoin_futures.errors import (
    AuthError,
    ConfigError,
    InvalidArgument,
    ProtocolError,
    RateLimited,
    TransportError,
)
from kucoin_futures.protocol.policy import ReconnectDelays, backoff
from kucoin_futures.protocol.session import WsSession, classify_ws_error
from kucoin_futures.protocol.types import Ack, Pong, ServerError, Welcome, WsEndpoint

ENDPOINT = WsEndpoint(url="ws://127.0.0.1:1/", token="t", ping_interval_s=18.0, ping_timeout_s=10.0, encrypt=False)
TICKER = "/contractMarket/tickerV2:XBTUSDTM"
TICKER_ETH = "/contractMarket/tickerV2:ETHUSDTM"
LEVEL2 = "/contractMarket/level2:XBTUSDTM"


def frames(texts: list[str]) -> list[dict]:
    return [json.loads(text) for text in texts]


def welcome(session: WsSession, now: float, connect_id: str = "cid") -> list:
    return session.on_text(json.dumps({"id": connect_id, "type": "welcome"}), now)


def ack(session: WsSession, msg_id: str, now: float) -> list:
    return session.on_text(json.dumps({"id": msg_id, "type": "ack"}), now)


def connected(now: float = 0.0, **kwargs) -> WsSession:
    session = WsSession(**kwargs)
    session.reset(now, ENDPOINT)
    welcome(session, now)
    return session


# -- welcome, subscribe, ack ---------------------------------------------------------------------
def test_session_holds_subscribes_until_welcome():
    session = WsSession()
    session.reset(0.0, ENDPOINT)
    assert session.subscribe([TICKER, TICKER_ETH], 0.0) == []
    assert welcome(session, 0.2) == [Welcome(connect_id="cid")]
    sent = frames(session.pending_frames(0.2))
    assert sent == [{"id": sent[0]["id"], "type": "subscribe", "topic": f"{TICKER},ETHUSDTM",
                     "privateChannel": False, "response": True}]
    assert (session.is_welcomed, session.connect_id, session.pending_ack_count) == (True, "cid", 1)


def test_session_ack_matched_to_request():
    session = connected()
    (sent,) = frames(session.subscribe(TICKER, 1.0))
    assert ack(session, sent["id"], 1.1) == [Ack(id=sent["id"], topic=TICKER)]
    assert (session.active_topics, session.pending_ack_count) == (frozenset({TICKER}), 0)


def test_session_unknown_ack_passes_through():
    session = connected()
    assert ack(session, "999", 1.0) == [Ack(id="999")]


def test_session_subscribe_is_idempotent():
    session = connected()
    first = session.subscribe(TICKER, 1.0)
    assert (len(first), session.subscribe([TICKER], 1.1), session.desired_topics) == (1, [], (TICKER,))


def test_session_ids_are_unique():
    session = connected()
    ids = [f["id"] for f in frames(session.subscribe([TICKER], 1.0) + session.subscribe([LEVEL2], 1.0))]
    ids.append(json.loads(session.due_ping(30.0))["id"])
    session.reset(40.0, ENDPOINT)
    welcome(session, 40.0)
    ids += [f["id"] for f in frames(session.resubscribe_all(40.0))]
    assert len(ids) == len(set(ids)) == 5


def test_session_private_topic_sets_private_channel():
    session = connected()
    assert frames(session.subscribe("/contractMarket/tradeOrders", 1.0))[0]["privateChannel"] is True


def test_session_unsubscribe():
    session = connected()
    (sub,) = frames(session.subscribe([TICKER, TICKER_ETH], 1.0))
    ack(session, sub["id"], 1.1)
    (unsub,) = frames(session.unsubscribe(TICKER_ETH, 2.0))
    events = ack(session, unsub["id"], 2.1)
    assert (unsub["type"], unsub["topic"], events, session.desired_topics, session.active_topics) == (
        "unsubscribe", TICKER_ETH, [Ack(id=unsub["id"], topic=TICKER_ETH)], (TICKER,), frozenset({TICKER}))


def test_session_unsubscribe_unknown_topic_sends_nothing():
    assert connected().unsubscribe(TICKER, 1.0) == []


def test_session_rejected_topic_leaves_desired_set():
    session = connected()
    (sub,) = frames(session.subscribe("/contractMarket/level2:NOPEUSDTM", 1.0))
    error = {"id": sub["id"], "type": "error", "code": 404, "data": "topic not found"}
    events = session.on_text(json.dumps(error), 1.1)
    assert events == [ServerError(id=sub["id"], code=404, message="topic not found",
                                  topic="/contractMarket/level2:NOPEUSDTM")]
    assert (session.desired_topics, list(session.rejected_topics), session.pending_ack_count) == (
        (), ["/contractMarket/level2:NOPEUSDTM"], 0)


def test_session_transient_subscribe_error_keeps_topic():
    session = connected()
    (sub,) = frames(session.subscribe(TICKER, 1.0))
    session.on_text(json.dumps({"id": sub["id"], "type": "error", "code": 509, "data": "exceed"}), 1.1)
    assert (session.desired_topics, session.rejected_topics) == ((TICKER,), {})


def test_session_leaves_market_pushes_to_the_feed():
    session = connected()
    push = {"type": "message", "topic": LEVEL2, "subject": "level2",
            "data": {"sequence": 5, "change": "100.5,buy,3", "timestamp": 1731897467182}}
    assert session.on_text(json.dumps(push).encode(), 2.0) == []


# -- heartbeat and liveness ----------------------------------------------------------------------
def test_session_ping_due_at_ping_interval():
    session = connected(now=1.0)
    results = [session.due_ping(t) for t in (1.0, 18.9)]
    ping = session.due_ping(19.0)
    results += [session.due_ping(t) for t in (19.5, 36.9)]
    assert (results, json.loads(ping)["type"], session.due_ping(37.0) is not None) == (
        [None] * 4, "ping", True)


def test_session_no_ping_before_welcome():
    session = WsSession()
    session.reset(0.0, ENDPOINT)
    assert session.due_ping(100.0) is None


def test_session_pong_event():
    session = connected()
    ping = json.loads(session.due_ping(18.0))
    assert session.on_text(json.dumps({"id": ping["id"], "type": "pong"}), 18.2) == [Pong(id=ping["id"])]


def test_session_dead_without_pong():
    """A ping unanswered (no frame at all) for ping_timeout_s kills the connection."""
    session = connected()
    session.due_ping(18.0)
    assert (session.is_dead(27.9), session.is_dead(28.1)) == (False, True)


def test_session_pong_keeps_alive_until_interval_plus_timeout():
    session = connected()
    session.due_ping(18.0)
    session.on_text('{"id": "x", "type": "pong"}', 18.5)
    assert (session.is_dead(28.1), session.is_dead(18.5 + 28.0), session.is_dead(18.5 + 28.1)) == (
        False, False, True)


def test_session_any_frame_counts_as_life_but_not_as_a_pong():
    session = connected()
    with pytest.raises(ProtocolError):
        session.on_text(b"garbage", 20.0)  # malformed, still a sign of life
    alive_until = (session.dead_reason(47.9), session.dead_reason(48.1))
    session.due_ping(40.0)
    session.on_text('{"id": "x", "type": "message", "topic": "/t", "subject": "s", "data": {}}', 45.0)
    assert alive_until == (None, "no frame for 28.1s")
    assert (session.dead_reason(50.0), session.dead_reason(50.1)) == (None, "no pong within 10s")


def test_session_note_activity_counts_a_push_decoded_elsewhere_as_life():
    session = connected()
    session.note_activity(20.0)
    assert (session.dead_reason(48.0), session.dead_reason(48.1)) == (None, "no frame for 28.1s")


def test_session_dead_without_welcome():
    session = WsSession(welcome_timeout_s=5.0)
    session.reset(100.0, ENDPOINT)
    assert (session.is_dead(104.9), session.is_dead(105.1)) == (False, True)


def test_session_dead_when_ack_overdue():
    session = connected(ack_timeout_s=10.0)
    session.subscribe(TICKER, 1.0)
    session.on_text('{"id": "p", "type": "pong"}', 11.0)
    assert (session.is_dead(11.0), session.is_dead(11.1)) == (False, True)


def test_session_not_dead_before_first_connection():
    assert WsSession().is_dead(1e9) is False


def test_session_takes_ping_timings_from_endpoint():
    session = WsSession()
    endpoint = WsEndpoint(url="ws://x/", token="t", ping_interval_s=5.0, ping_timeout_s=2.0, encrypt=False)
    session.reset(0.0, endpoint)
    welcome(session, 0.0)
    assert (session.due_ping(4.9), session.due_ping(5.0) is not None, session.is_dead(7.1)) == (None, True, True)


def test_session_pings_at_least_as_often_as_its_cap_and_tells_how_quiet_it_is():
    session = connected(now=0.0, max_ping_interval_s=2.0)  # the server asks every 18 s
    pings = [session.due_ping(t) is not None for t in (1.9, 2.0, 3.9, 4.0)]
    quiet = [session.quiet_s(3.0)]
    session.on_text(json.dumps({"id": "1", "type": "pong"}), 3.5)
    quiet.append(session.quiet_s(4.5))
    assert (pings, session.ping_interval_s, quiet, WsSession().quiet_s(1.0)) == (
        [False, True, False, True], 2.0, [3.0, 1.0], None)


# -- reconnect -----------------------------------------------------------------------------------
def test_session_resubscribe_after_reset():
    session = connected()
    for frame in frames(session.subscribe([TICKER, LEVEL2, TICKER_ETH], 1.0)):
        ack(session, frame["id"], 1.1)
    assert session.active_topics == frozenset({TICKER, TICKER_ETH, LEVEL2})
    session.reset(50.0, ENDPOINT)
    assert (session.active_topics, session.pending_ack_count, session.is_welcomed) == (frozenset(), 0, False)
    assert session.resubscribe_all(50.0) == []  # waits for the welcome
    welcome(session, 50.3)
    replay = frames(session.pending_frames(50.3))
    assert [f["topic"] for f in replay] == [LEVEL2, f"{TICKER},ETHUSDTM"]  # books first (snapshots)
    for frame in replay:
        ack(session, frame["id"], 50.4)
    assert session.active_topics == frozenset({TICKER, TICKER_ETH, LEVEL2})


def test_session_resubscribe_after_welcome_sends_at_once():
    session = connected()
    session.subscribe(TICKER, 1.0)
    session.reset(10.0, ENDPOINT)
    welcome(session, 10.1)
    assert [f["topic"] for f in frames(session.resubscribe_all(10.2))] == [TICKER]


def test_session_unsubscribed_topic_not_replayed():
    session = connected()
    session.subscribe([TICKER, TICKER_ETH], 1.0)
    session.unsubscribe(TICKER, 2.0)
    session.reset(10.0, ENDPOINT)
    welcome(session, 10.0)
    assert [f["topic"] for f in frames(session.resubscribe_all(10.0))] == [TICKER_ETH]


# -- uplink budget -------------------------------------------------------------------------------
def test_session_uplink_budget_100_per_10s():
    session = connected(max_topics_per_message=1)
    session.ping_interval_s = 2.0
    topics = [f"/contractMarket/tickerV2:C{i}USDTM" for i in range(150)]
    first = session.subscribe(topics, 1.0)
    assert (len(first), session.send_allowed(1.0), session.due_ping(5.0)) == (100, False, None)
    assert session.pending_frames(10.9) == []
    later = session.pending_frames(11.0)
    assert [f["topic"] for f in frames(first + later)] == topics
    assert (len(later), session.send_allowed(11.0), session.due_ping(11.0) is not None) == (50, True, True)


# -- backoff -------------------------------------------------------------------------------------
def test_backoff_sequence_seeded():
    delays = [d for d, _ in zip(backoff(rng=random.Random(7)), range(10))]
    nominal = [1, 2, 4, 8, 16, 30, 30, 30, 30]
    assert delays[0] < 0.5
    assert all(0.8 * n <= d <= n for d, n in zip(delays[1:], nominal))
    assert delays == [d for d, _ in zip(backoff(rng=random.Random(7)), range(10))]


def test_backoff_first_retry_within_one_second_for_any_seed():
    assert max(next(backoff(rng=random.Random(seed))) for seed in range(200)) < 1.0


@pytest.mark.parametrize("kwargs", [{"initial_s": 0}, {"factor": 0.5}, {"cap_s": 0.1}, {"jitter": 1.0}])
def test_backoff_rejects_bad_policy(kwargs):
    with pytest.raises(InvalidArgument):
        next(backoff(**kwargs))


def delays(**kwargs) -> ReconnectDelays:
    return ReconnectDelays(initial_s=0.5, cap_s=30.0, rng=random.Random(3), **kwargs)


def test_reconnect_at_once_after_a_healthy_connection_then_backoff_while_attempts_fail():
    policy = delays()
    got = [policy.after_loss(100.0, healthy=True)] + [policy.after_failure(fatal=False) for _ in range(3)]
    assert got[0] == 0.0 and got[1] < 0.5
    assert [0.8 * n <= d <= n for d, n in zip(got[2:], [1, 2])] == [True, True]
    assert (policy.after_loss(200.0, healthy=True), policy.after_failure(fatal=False) < 0.5) == (0.0, True)


def test_reconnect_storm_guard_limits_immediate_reconnects_per_window():
    """A server that accepts, acknowledges and drops again and again: 5 immediate reconnects a
    minute, then growing delays; a minute later the budget is back."""
    policy = delays(fast_limit=5, fast_window_s=60.0)
    got = [policy.after_loss(t, healthy=True) for t in (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)]
    assert got[:5] == [0.0] * 5
    assert (got[5] < 0.5, 0.8 <= got[6] <= 1.0, 1.6 <= got[7] <= 2.0) == (True, True, True)
    assert (policy.after_loss(60.5, healthy=True), policy.after_loss(60.6, healthy=True) > 0) == (0.0, True)


def test_reconnect_after_an_unhealthy_loss_or_a_fatal_error_waits():
    policy = delays()
    assert (policy.after_loss(0.0, healthy=False) < 0.5, policy.after_failure(fatal=True)) == (True, 30.0)


# -- classify_ws_error ---------------------------------------------------------------------------
class _BadStatus(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(status_code)
        self.status_code = status_code


class _ConnectionClosed(Exception):
    """Stands in for a WebSocket library's own closed-connection exception."""


@pytest.mark.parametrize(("error", "expected"), [
    (401, "retry"), (509, "retry"), (429, "retry"), (500, "retry"), (503, "retry"),
    (400, "fatal"), (403, "fatal"), (404, "fatal"), (415, "fatal"),
    (ServerError(id=None, code=401, message="token is expired"), "retry"),
    (ServerError(id="1", code=404, message="topic not found"), "fatal"),
    (ServerError(id=None, code=None, message="?"), "retry"),
    (ConnectionResetError(), "retry"), (TimeoutError(), "retry"), (OSError("unreachable"), "retry"),
    (TransportError("x"), "retry"), (RateLimited("x", retry_after_s=1.0), "retry"), (ProtocolError("x"), "retry"),
    (_BadStatus(401), "retry"), (_BadStatus(404), "fatal"), (_BadStatus(502), "retry"),
    (_ConnectionClosed(), "retry"),
    (AuthError("bad key"), "fatal"), (ConfigError("no url", variable="KUCOIN_WS_URL"), "fatal"),
    (InvalidArgument("x"), "fatal"), (ValueError("scheme http is invalid"), "fatal"), (TypeError("bug"), "fatal"),
])
def test_classify_ws_error(error, expected):
    assert classify_ws_error(error) == expected
