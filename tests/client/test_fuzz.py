"""Fuzzed arguments to every public member of KuCoinClient, against the simulator.

The members are enumerated from the class, so a new one fails ``test_every_public_member_is_fuzzed``
until it gets a spec here. For each fuzzed method hypothesis draws every argument either from a
few valid values or, for at most two of them, from junk (wrong types, bool, bytes, None,
NaN/inf, zero/negative/huge numbers, empty/huge/odd strings, unknown symbols, containers).
Whether the whole call is valid is decided by the spec's predicate, written here from the
documented contract, not by the client's own checks. Then:

- invalid call: ``InvalidArgument``, no request of any kind reached the simulator and nothing was
  subscribed;
- valid call: a result, or a KuCoinError other than InvalidArgument (the exchange may refuse);
- never anything outside the tree (TypeError, AttributeError, ValueError, KeyError, ...).
"""
from __future__ import annotations

import inspect
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from config import Settings
from kucoin_client import KuCoinClient
from kucoin_futures.errors import InvalidArgument, KuCoinError
from kucoin_sim import Simulator
from kucoin_websocket import FeedStats, State
from tests.helpers import wait_until

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
TIMEFRAMES = frozenset({"1m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "1w"})
MAX_OHLCV_LIMIT = 500
SETTLE_CURRENCIES = frozenset({"USDT", "BTC"})  # the simulator's (ccxt's unified codes)
ORDER_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
CLIENT_OID_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")  # KuCoin: <= 40 of letters, digits, _ and -
# FUZZ_EXAMPLES=200 python -m pytest tests/client/test_fuzz.py: a deeper, randomised run.
DEEP_EXAMPLES = os.environ.get("FUZZ_EXAMPLES")
FUZZ = settings(max_examples=int(DEEP_EXAMPLES or 15), derandomize=DEEP_EXAMPLES is None, deadline=None,
                database=None, suppress_health_check=[HealthCheck.too_slow])

JUNK_VALUES: list[Any] = [
    True, False, None, b"", b"USDT", b"BTC/USDT:USDT", bytearray(b"buy"), "", " ", "\x00", "\n", "é",
    "x" * 100_000, "BTC/USDT:USDT\n", " BTC/USDT:USDT", "btc/usdt:usdt", "BTC/USDT", "XBTUSDTM", "FOO/USDT:USDT",
    "BTC/USD:BTC-261225", "BTC/USDT:USDT:USDT", "buy ", "BUY", "long", "7m", "1M", "XBT", "USDC", "usdt",
    "USDT&currency=XBT", "../orders", "a/b?c", "1", "0", "-1", "1e3", "nan", "inf", "http://", "ftp://host",
    0, 1, -1, 2, 2**63, -(2**63), 10**30, 10**400, 0.0, -0.0, 0.5, 1.5, -1.5, 1e-300, 1e300, 5e-324,
    math.nan, math.inf, -math.inf, Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-1"),
    Decimal("1E+1000"), Decimal("0.5"), 1j, {}, [], (), {"symbol": BTC}, [BTC], (BTC,), {BTC}, [None], [[]],
    ["1m", 5], range(3), frozenset(), object(), type, Ellipsis, print,
]
JUNK = st.one_of(
    st.sampled_from(JUNK_VALUES),
    st.text(max_size=24),
    st.binary(max_size=8),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=6)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


# -- the contract, written independently of the client's checks ------------------------------------
def _decimal(value: Any) -> Decimal | None:
    """The finite number `value` is (int, float or Decimal, never bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    number = Decimal(value)
    return number if number.is_finite() else None


def _whole_in(value: Any, low: int, high: float) -> bool:
    number = _decimal(value)
    return number is not None and number == number.to_integral_value() and low <= number <= high


def _int_in(value: Any, low: int, high: float = math.inf) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _real_in(value: Any, low: float, high: float, *, low_open: bool = False) -> bool:
    """An int or float (no bool, no Decimal) in [low, high] (or (low, high])."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return False
    return (low < value if low_open else low <= value) and value <= high


def _market(markets: Mapping[str, Any], symbol: Any) -> Mapping[str, Any] | None:
    market = markets.get(symbol) if isinstance(symbol, str) else None
    return market if market is not None and market.get("active") is not False else None


def _perpetual(markets: Mapping[str, Any], symbol: Any) -> bool:
    market = _market(markets, symbol)
    return market is not None and market["type"] == "swap"


def _strings(value: Any, allowed: Callable[[str], bool]) -> bool:
    """A collection (not a str) of allowed strings."""
    if isinstance(value, str):
        return False
    try:
        items = tuple(value)
    except TypeError:
        return False
    return all(isinstance(item, str) and allowed(item) for item in items)


def _amount_ok(market: Mapping[str, Any], amount: Any) -> bool:
    return _whole_in(amount, int(market["limits"]["amount"]["min"]), market["limits"]["amount"]["max"])


def _price_ok(market: Mapping[str, Any], price: Any) -> bool:
    number = _decimal(price)
    limits = market["limits"]["price"]
    if number is None or number <= 0 or not Decimal(repr(limits["min"])) <= number <= Decimal(repr(limits["max"])):
        return False
    try:
        return number % Decimal(repr(market["precision"]["price"])) == 0
    except InvalidOperation:
        return False


def _leverage_ok(market: Mapping[str, Any], leverage: Any, *, optional: bool = True) -> bool:
    if leverage is None:
        return optional
    return _whole_in(leverage, 1, market["limits"]["leverage"]["max"])


@dataclass
class Context:
    """What validity depends on besides the arguments: the markets, the clientOids already placed."""

    markets: Mapping[str, Any]
    used_client_oids: set[str] = field(default_factory=set)


def _order_ok(c: Context, a: dict[str, Any]) -> bool:
    market = _market(c.markets, a["symbol"])
    client_oid = a["client_oid"]
    return (market is not None and isinstance(a["side"], str) and a["side"] in ("buy", "sell")
            and _amount_ok(market, a["amount"]) and _leverage_ok(market, a["leverage"])
            and type(a["reduce_only"]) is bool
            and (client_oid is None or (isinstance(client_oid, str) and client_oid not in c.used_client_oids
                                        and CLIENT_OID_RE.fullmatch(client_oid) is not None))
            and ("price" not in a or _price_ok(market, a["price"]))
            and type(a.get("post_only", False)) is bool)


def _order_id_ok(value: Any) -> bool:
    return isinstance(value, str) and ORDER_ID_RE.fullmatch(value) is not None


def _cancel_ok(c: Context, a: dict[str, Any]) -> bool:
    return _order_id_ok(a["order_id"]) and (a["symbol"] is None or _market(c.markets, a["symbol"]) is not None)


def _set_leverage_ok(c: Context, a: dict[str, Any]) -> bool:
    market = _market(c.markets, a["symbol"])
    return market is not None and _leverage_ok(market, a["leverage"], optional=False)


def _get_order_ok(c: Context, a: dict[str, Any]) -> bool:
    m = c.markets
    order_id, client_oid, symbol = a["order_id"], a["client_oid"], a["symbol"]
    if (order_id is None) == (client_oid is None) or (symbol is not None and _market(m, symbol) is None):
        return False
    if order_id is not None:
        return _order_id_ok(order_id)
    return isinstance(client_oid, str) and CLIENT_OID_RE.fullmatch(client_oid) is not None


def _stop_ok(c: Context, a: dict[str, Any]) -> bool:
    """A stop at 1000 (below every contract's price here): valid when every argument is."""
    market = _market(c.markets, a["symbol"])
    return (market is not None and isinstance(a["side"], str) and a["side"] in ("buy", "sell")
            and _amount_ok(market, a["amount"]) and _price_ok(market, a["stop_price"])
            and isinstance(a["price_type"], str) and a["price_type"] in ("mark", "last", "index")
            and type(a["reduce_only"]) is bool and type(a["close_order"]) is bool
            and (a["limit_price"] is None or _price_ok(market, a["limit_price"])) and a["client_oid"] is None
            and a["expect_direction"] in (None, "down") and _perpetual(c.markets, a["symbol"]))


def _cancel_stop_ok(c: Context, a: dict[str, Any]) -> bool:
    order_id, client_oid, symbol = a["order_id"], a["client_oid"], a["symbol"]
    if (order_id is None) == (client_oid is None) or (symbol is not None and _market(c.markets, symbol) is None):
        return False
    if order_id is not None:
        return _order_id_ok(order_id)
    return (symbol is not None and isinstance(client_oid, str)
            and CLIENT_OID_RE.fullmatch(client_oid) is not None)


def _range_ok(a: dict[str, Any]) -> bool:
    since, until = a["since_ms"], a["until_ms"]
    return _int_in(since, 0, 10**13) and _int_in(until, 0, 10**13) and since < until


def _credential(value: Any) -> bool:
    return isinstance(value, str) and value != "" and value.isascii() and value.isprintable()


def _url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def _constructor_ok(a: dict[str, Any]) -> bool:
    credentials = (a["api_key"], a["api_secret"], a["api_passphrase"])
    return ((all(c is None for c in credentials) or all(_credential(c) for c in credentials))
            and type(a["enable_websocket"]) is bool and _url(a["futures_url"])
            and _real_in(a["request_timeout_s"], 0, 3600, low_open=True)
            and (a["gil_switch_interval_s"] is None or _real_in(a["gil_switch_interval_s"], 1e-6, 1.0))
            and all(_real_in(a[k], 0, math.inf) and a[k] != math.inf for k in ("ticker_max_age_s", "book_max_age_s"))
            and _real_in(a["first_read_wait_s"], 0, 3600)
            and callable(a["clock"]) and callable(a["wall_clock"])
            and a["ws_transport"] in ("auto", "picows", "websocket-client")
            and (a["on_account_event"] is None or callable(a["on_account_event"]))
            and _int_in(a["account_queue_size"], 1))


def _settings_ok(s: Any) -> bool:
    if type(s) is not Settings:
        return False
    switch_ms = s.gil_switch_interval_ms
    if not _real_in(switch_ms, 0, 100):
        return False
    return _constructor_ok({
        "api_key": s.api_key, "api_secret": s.api_secret, "api_passphrase": s.api_passphrase,
        "enable_websocket": s.enable_websocket, "futures_url": s.futures_url, "request_timeout_s": 10.0,
        "gil_switch_interval_s": switch_ms / 1000 if switch_ms > 0 else None, "ticker_max_age_s": 10.0,
        "book_max_age_s": 10.0, "first_read_wait_s": 0.5, "clock": time.monotonic, "wall_clock": time.time,
        "ws_transport": s.ws_transport, "on_account_event": None, "account_queue_size": 1000})


@dataclass(frozen=True)
class Spec:
    """How to fuzz one member: valid values per parameter, and when a whole call is valid."""

    valid: Mapping[str, tuple[Any, ...]]
    is_valid: Callable[[Context, dict[str, Any]], bool]
    clients: tuple[str, ...] = ("rest",)  # which fixture clients to call it on
    extra_junk: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)


ORDER_VALID = {"symbol": (BTC, ETH), "side": ("buy", "sell"), "amount": (1, 2.0), "leverage": (None, 5),
               "reduce_only": (False,), "client_oid": (None,)}
# Settings built by hand, not by load_settings: nothing checked them.
BAD_SETTINGS: tuple[Any, ...] = (
    Settings(gil_switch_interval_ms="0.5"), Settings(gil_switch_interval_ms=math.nan), Settings(futures_url=5),
    Settings(futures_url="api-futures.kucoin.com"), Settings(api_key=5, api_secret="s", api_passphrase="p"),
    Settings(api_key="k"), Settings(enable_websocket="no"), Settings(gil_switch_interval_ms=5000))

SPECS: dict[str, Spec] = {
    "get_ticker": Spec({"symbol": (BTC, ETH)}, lambda c, a: _perpetual(c.markets, a["symbol"]),
                       ("websocket", "rest")),
    "get_ohlcv": Spec(
        {"symbol": (BTC,), "timeframe": ("1m", "1h"), "limit": (1, 100)},
        lambda c, a: (_perpetual(c.markets, a["symbol"]) and isinstance(a["timeframe"], str)
                      and a["timeframe"] in TIMEFRAMES and _int_in(a["limit"], 1, MAX_OHLCV_LIMIT)),
        ("websocket", "rest")),
    "get_order_book": Spec({"symbol": (BTC, ETH), "limit": (1, 20, 10**6)},
                           lambda c, a: _perpetual(c.markets, a["symbol"]) and _int_in(a["limit"], 1),
                           ("websocket", "rest")),
    "prefetch": Spec(
        {"symbols": ((BTC,), [ETH, BTC], ()), "timeframes": (("1m",), ["5m", "1h"], ()),
         "tickers": (True, False), "order_books": (False, True), "timeout_s": (0, 0.0, 0.001),
         "on_symbol_done": (None, len)},
        lambda c, a: (_strings(a["symbols"], lambda s: _perpetual(c.markets, s))
                      and _strings(a["timeframes"], TIMEFRAMES.__contains__)
                      and type(a["tickers"]) is bool and type(a["order_books"]) is bool
                      and _real_in(a["timeout_s"], 0, 3600)
                      and (a["on_symbol_done"] is None or callable(a["on_symbol_done"]))),
        ("websocket", "rest")),
    "create_market_order": Spec(ORDER_VALID, _order_ok),
    "create_limit_order": Spec({**ORDER_VALID, "price": (1000.0, 1000, Decimal("1000.5")), "post_only": (False,)},
                               _order_ok),
    "cancel_order": Spec({"order_id": ("5bd6e9286d99522a52e458de",), "symbol": (None, BTC)}, _cancel_ok),
    "get_order": Spec({"order_id": (None, "5bd6e9286d99522a52e458de"), "symbol": (None, BTC),
                       "client_oid": (None, "fuzz-lookup-1")}, _get_order_ok),
    "get_open_orders": Spec({"symbol": (None, BTC)},
                            lambda c, a: a["symbol"] is None or _market(c.markets, a["symbol"]) is not None),
    "close_position": Spec({"symbol": (BTC, ETH)}, lambda c, a: _market(c.markets, a["symbol"]) is not None),
    "get_balance": Spec({"currency": ("USDT", "BTC")},
                        lambda c, a: isinstance(a["currency"], str) and a["currency"] in SETTLE_CURRENCIES),
    "set_leverage": Spec({"symbol": (BTC, ETH), "leverage": (1, 10)}, _set_leverage_ok),
    "from_settings": Spec({"settings": (Settings(), Settings(enable_websocket=False, gil_switch_interval_ms=0))},
                          lambda c, a: _settings_ok(a["settings"]), extra_junk={"settings": BAD_SETTINGS}),
}
SPECS.update({
    "create_stop_order": Spec(
        {"symbol": (BTC, ETH), "side": ("buy", "sell"), "amount": (1, 2.0), "stop_price": (1000.0, 1000),
         "price_type": ("mark", "last", "index"), "reduce_only": (True,), "close_order": (False, True),
         "limit_price": (None, 999.0), "client_oid": (None,), "expect_direction": (None, "down")},
        lambda c, a: _stop_ok(c, a)),
    "get_stop_orders": Spec({"symbol": (None, BTC), "force_rest": (False, True)},
                            lambda c, a: (a["symbol"] is None or _market(c.markets, a["symbol"]) is not None)
                            and type(a["force_rest"]) is bool),
    "cancel_stop_order": Spec({"order_id": (None, "5bd6e9286d99522a52e458de"), "client_oid": (None, "fuzz-stop-1"),
                               "symbol": (None, BTC)}, lambda c, a: _cancel_stop_ok(c, a)),
    "cancel_stop_orders": Spec({"symbol": (BTC, ETH)}, lambda c, a: _market(c.markets, a["symbol"]) is not None),
    "check_account_modes": Spec({"symbols": ((BTC,), [ETH, BTC]), "margin_mode": ("isolated",)},
                                lambda c, a: (_strings(a["symbols"], lambda s: _perpetual(c.markets, s))
                                              and isinstance(a["margin_mode"], str)
                                              and a["margin_mode"] in ("isolated", "cross"))),
    "get_mark_price": Spec({"symbol": (BTC, ETH)}, lambda c, a: _perpetual(c.markets, a["symbol"])),
    "fetch_ohlcv_history": Spec(
        {"symbol": (BTC,), "timeframe": ("1d",), "since_ms": (0,), "until_ms": (86_400_000,), "on_page": (None, max)},
        lambda c, a: (_perpetual(c.markets, a["symbol"]) and isinstance(a["timeframe"], str)
                      and a["timeframe"] in TIMEFRAMES and _range_ok(a)
                      and (a["on_page"] is None or callable(a["on_page"])))),
    "fetch_funding_rate_history": Spec(
        {"symbol": (BTC,), "since_ms": (0,), "until_ms": (86_400_000,)},
        lambda c, a: _perpetual(c.markets, a["symbol"]) and _range_ok(a)),
    "get_positions": Spec({"force_rest": (False, True)}, lambda c, a: type(a["force_rest"]) is bool),
    "account_events": Spec({"timeout_s": (0, 0.0, 0.01)},
                           lambda c, a: _real_in(a["timeout_s"], 0, math.inf) and a["timeout_s"] != math.inf),
})


# Members without arguments to fuzz: each is exercised once (test_members_without_arguments).
WITHOUT_ARGUMENTS = frozenset({"start", "close", "health", "markets", "websocket",
                               "source_counts", "check_credentials"})
CONSTRUCTOR = Spec(
    {"api_key": (None, "key"), "api_secret": (None, "secret"), "api_passphrase": (None, "pass"),
     "enable_websocket": (True, False), "futures_url": ("https://api-futures.kucoin.com", "http://127.0.0.1:9"),
     "ws_transport": ("auto", "websocket-client"),
     "request_timeout_s": (10.0, 1), "gil_switch_interval_s": (None, 0.0005), "ticker_max_age_s": (10.0, 0),
     "book_max_age_s": (10.0,), "first_read_wait_s": (0.5, 0), "clock": (time.monotonic,),
     "wall_clock": (time.time,), "on_account_event": (None, print), "account_queue_size": (1000, 1)},
    lambda c, a: _constructor_ok(a))
# Constructor parameters not fuzzed: injected parts, duck-typed seams (tests pass fakes).
INJECTED = frozenset({"exchange", "gateway", "websocket", "orders"})


# -- fixtures ------------------------------------------------------------------------------------
class RecordingWebSocket:
    """A KuCoinWebSocket stand-in that records subscriptions and never has data (reads go to REST)."""

    def __init__(self) -> None:
        self.subscribed: list[tuple[str, ...]] = []
        self.state = State.NEW

    def start(self) -> RecordingWebSocket:
        self.state = State.RUNNING
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        self.state = State.CLOSED

    def subscribe_ticker(self, symbol: str) -> None:
        self.subscribed.append(("ticker", symbol))

    def subscribe_candles(self, symbol: str, timeframe: str) -> None:
        self.subscribed.append(("candles", symbol, timeframe))

    def subscribe_order_book(self, symbol: str) -> None:
        self.subscribed.append(("book", symbol))

    def _nothing(self, *args: Any, **kwargs: Any) -> None:
        return None

    get_ticker = get_candles = get_order_book = _nothing
    wait_for_ticker = wait_for_candles = wait_for_order_book = _nothing

    def is_healthy(self) -> bool:
        return True

    def stats(self) -> FeedStats:
        return FeedStats(self.state, {}, 0, 0, 0, 0, 0, 0, (), {}, (), (), {})


@pytest.fixture(scope="module")
def sim():
    with Simulator(seed=12, rate_limits=False) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def context(clients: dict[str, Any]) -> Context:
    return Context(clients["rest"][0].markets)


@pytest.fixture(scope="module")
def clients(sim: Simulator):
    """Two started clients: one with a recording WebSocket, one REST only."""
    creds = sim.credentials
    recorder = RecordingWebSocket()
    with KuCoinClient(creds.api_key, creds.api_secret, creds.api_passphrase, futures_url=sim.url,
                      websocket=recorder, first_read_wait_s=0) as with_ws, \
            KuCoinClient(creds.api_key, creds.api_secret, creds.api_passphrase, futures_url=sim.url,
                         enable_websocket=False) as rest_only:
        # Its private feed starts at the first account read: let its token and seeds land now,
        # not inside a later test's request count.
        with_ws.get_balance()
        wait_until(lambda: with_ws.health()["private_websocket"]["fresh"]["positions"], what="the account feed")
        yield {"websocket": (with_ws, recorder), "rest": (rest_only, None)}


def _requests(sim: Simulator) -> dict[tuple[str, str], int]:
    return sim.call(lambda: dict(sim.requests))


def _public_members() -> set[str]:
    return {name for name, _ in inspect.getmembers(KuCoinClient) if not name.startswith("_")}


def _parameters(fn: Callable[..., Any]) -> set[str]:
    return {name for name, p in inspect.signature(fn).parameters.items()
            if name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


@st.composite
def _arguments(draw: st.DrawFn, spec: Spec, target: str | None) -> dict[str, Any]:
    # Junk in `target` (and maybe one more parameter), the others valid: a check missing for one
    # parameter is not hidden by another's firing first. Without a target: junk in up to two
    # random parameters, or none (a valid call).
    names = sorted(spec.valid)
    if target is None:
        corrupt = draw(st.sets(st.sampled_from(names), max_size=2), label="corrupted")
    else:
        others = [n for n in names if n != target]
        corrupt = {target} | (draw(st.sets(st.sampled_from(others), max_size=1), label="also") if others else set())
    arguments = {}
    for name in names:
        junk = st.one_of(JUNK, st.sampled_from(spec.extra_junk[name])) if name in spec.extra_junk else JUNK
        arguments[name] = draw(junk if name in corrupt else st.sampled_from(spec.valid[name]), label=name)
    return arguments


def _check(sim: Simulator, call: Callable[..., Any], kwargs: dict[str, Any], valid: bool,
           recorder: RecordingWebSocket | None, *, sends: bool = True) -> Any:
    """Call, then assert the outcome the contract demands (see the module docstring)."""
    before, subscribed = _requests(sim), list(recorder.subscribed) if recorder else []
    try:
        result, error = call(**kwargs), None
    except KuCoinError as exc:  # anything outside the tree fails the test as it is
        result, error = None, exc
    if not valid:
        assert isinstance(error, InvalidArgument), f"invalid call not refused: {kwargs!r} -> {result!r} / {error!r}"
        assert _requests(sim) == before, f"invalid call sent requests: {kwargs!r}"
        assert (recorder.subscribed if recorder else []) == subscribed, f"invalid call subscribed: {kwargs!r}"
    else:
        assert not isinstance(error, InvalidArgument), f"valid call refused: {kwargs!r}: {error}"
        if not sends:
            assert _requests(sim) == before
    return result


# -- tests ---------------------------------------------------------------------------------------
def test_every_public_member_is_fuzzed() -> None:
    """A new public member (or a new parameter of one) fails here until it has a spec."""
    members = _public_members()
    assert members == set(SPECS) | WITHOUT_ARGUMENTS
    for name, spec in SPECS.items():
        assert set(spec.valid) == _parameters(getattr(KuCoinClient, name)), name
    for name in WITHOUT_ARGUMENTS:
        member = inspect.getattr_static(KuCoinClient, name)
        assert isinstance(member, property) or _parameters(member) == set(), name
    assert set(CONSTRUCTOR.valid) | INJECTED == _parameters(KuCoinClient.__init__)


def _cases(spec: Spec, name: str, kinds: tuple[str, ...]) -> list[Any]:
    return [pytest.param(name, kind, target, id=f"{name}-{kind}-{target or 'any'}")
            for kind in kinds for target in (None, *sorted(spec.valid))]


CASES = [case for name, spec in SPECS.items() for case in _cases(spec, name, spec.clients)]


@pytest.mark.parametrize(("name", "kind", "target"), CASES)
@FUZZ
@given(data=st.data())
def test_fuzzed_arguments_are_refused_before_anything_is_sent(sim: Simulator, clients: dict[str, Any],
                                                              context: Context, name: str, kind: str,
                                                              target: str | None, data: st.DataObject) -> None:
    client, recorder = clients[kind]
    spec = SPECS[name]
    kwargs = data.draw(_arguments(spec, target), label="arguments")
    valid = spec.is_valid(context, kwargs)
    event("valid call" if valid else "invalid call")
    result = _check(sim, getattr(client, name), kwargs, valid, recorder, sends=name != "from_settings")
    if isinstance(result, KuCoinClient):
        result.close()
    if result is not None and isinstance(kwargs.get("client_oid"), str) and name.startswith("create_"):
        context.used_client_oids.add(kwargs["client_oid"])  # placed: this process never sends it again


@pytest.mark.parametrize(("name", "kind", "target"), _cases(CONSTRUCTOR, "KuCoinClient", ("new",)))
@FUZZ
@given(data=st.data())
def test_fuzzed_constructor_arguments_are_refused_without_io(sim: Simulator, name: str, kind: str,
                                                             target: str | None, data: st.DataObject) -> None:
    kwargs = data.draw(_arguments(CONSTRUCTOR, target), label="arguments")
    valid = CONSTRUCTOR.is_valid(Context({}), kwargs)
    event("valid call" if valid else "invalid call")
    client = _check(sim, KuCoinClient, kwargs, valid, None, sends=False)
    if client is not None:
        client.close()


def test_members_without_arguments(sim: Simulator, clients: dict[str, Any]) -> None:
    """Nothing to fuzz: each answers on a started client (close on a spare one, twice)."""
    client, recorder = clients["websocket"]
    spare = KuCoinClient(futures_url=sim.url, enable_websocket=False)
    spare.start()
    spare.close()
    spare.close()
    with pytest.raises(KuCoinError):  # ClientClosed
        spare.get_positions()
    assert (client.start() is client, client.websocket is recorder, BTC in client.markets) == (True, True, True)
    assert (isinstance(client.get_positions(), list), client.health()["started"], spare.health()["closed"],
            set(client.source_counts) <= {"websocket", "rest"}) == (True, True, True, True)
    assert "total" in client.check_credentials()  # the keys work: the USDT balance
    with pytest.raises(KuCoinError):  # ClientClosed
        spare.check_credentials()


@pytest.mark.parametrize("currency", [True, False, b"USDT", None, 1, "", "usdt", "XBT", "USDC", "USDT&x=1",
                                      "x" * 10_000, {"code": "USDT"}, ["USDT"]])
def test_get_balance_refuses_junk_before_sending(sim: Simulator, clients: dict[str, Any], currency: Any) -> None:
    """Defect 7: True and b"USDT" used to return a balance, other junk an AuthError."""
    client, _ = clients["rest"]
    before = _requests(sim)
    with pytest.raises(InvalidArgument) as refused:
        client.get_balance(currency)
    assert ("currency=" in str(refused.value), _requests(sim)) == (True, before)


@pytest.mark.parametrize(("currency", "code"), [("USDT", "USDT"), ("BTC", "BTC")])
def test_get_balance_of_each_settle_currency(clients: dict[str, Any], currency: str, code: str) -> None:
    client, _ = clients["rest"]
    balance = client.get_balance(currency)
    assert set(balance["total"]) == {code} and balance["total"][code] >= 0


# -- the holes the fuzzing found, as plain regression cases ----------------------------------------
BAD_OPTIONS = [
    ("request_timeout_s", math.nan), ("request_timeout_s", math.inf), ("request_timeout_s", None),
    ("request_timeout_s", b""), ("request_timeout_s", 0), ("request_timeout_s", True), ("request_timeout_s", 1e10),
    ("gil_switch_interval_s", b"x"), ("gil_switch_interval_s", Decimal("NaN")), ("gil_switch_interval_s", 1e300),
    ("gil_switch_interval_s", 0), ("enable_websocket", []), ("enable_websocket", "no"),
    ("first_read_wait_s", True), ("first_read_wait_s", 1e300), ("ticker_max_age_s", math.nan),
    ("book_max_age_s", -1), ("clock", 0), ("wall_clock", ""), ("futures_url", "http://"), ("futures_url", 5),
    ("futures_url", "http://[::1"), ("api_key", 5), ("api_secret", b"secret"), ("api_passphrase", "pass\nX-A: b"),
    ("api_key", None), ("api_secret", ""),
]


@pytest.mark.parametrize(("name", "value"), BAD_OPTIONS)
def test_constructor_refuses_each_bad_option_by_name(name: str, value: Any) -> None:
    """These raised TypeError/ValueError/OverflowError, or built a client that failed later."""
    with pytest.raises(InvalidArgument) as refused:
        KuCoinClient(**{"api_key": "key", "api_secret": "secret", "api_passphrase": "pass", name: value})
    assert name in str(refused.value)
    if name.startswith("api_") and value:
        assert repr(value) not in str(refused.value)  # a credential is never echoed


@pytest.mark.parametrize("settings_value", [True, None, {"api_key": "k"}, *BAD_SETTINGS])
def test_from_settings_refuses_what_is_not_usable_settings(settings_value: Any) -> None:
    """A non-Settings raised AttributeError; a bad GIL interval TypeError."""
    with pytest.raises(InvalidArgument):
        KuCoinClient.from_settings(settings_value)
