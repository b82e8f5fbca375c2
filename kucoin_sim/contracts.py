"""The simulator's contract catalogue: static specs of each listed futures contract.

Values follow KuCoin's `GET /api/v1/contracts/active` objects (protocol notes §6.1). Dynamic
fields (prices, funding, open interest, 24 h stats) live in the market model, not here.
"""
from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone


@dataclass(frozen=True, slots=True)
class RiskTier:
    """One risk-limit level (GET /api/v1/contracts/risk-limit/{symbol})."""

    level: int
    max_risk_limit: float  # position value cap of this tier, in settle currency
    min_risk_limit: float
    max_leverage: int
    initial_margin: float
    maintain_margin: float


@dataclass(frozen=True, slots=True)
class ContractSpec:
    symbol: str  # KuCoin id, e.g. "XBTUSDTM"
    root_symbol: str  # "USDT" for USDT-margined, "XBT" for coin-margined
    type: str  # "FFWCSX" perpetual, "FFICSX" dated future
    base_currency: str  # KuCoin code ("XBT", not "BTC")
    quote_currency: str
    settle_currency: str
    is_inverse: bool
    multiplier: float  # coins per lot (linear); -1 (USD per lot) for inverse
    lot_size: int
    tick_size: str  # decimal string, e.g. "0.1"
    max_order_qty: int
    max_price: float
    max_leverage: int
    initial_margin: float
    maintain_margin: float
    maker_fee_rate: float
    taker_fee_rate: float
    first_open_ms: int
    expire_ms: int | None  # dated futures only
    base_price: float  # seed price of the simulated price process
    daily_vol: float  # daily volatility of the price process (fraction, e.g. 0.03)
    funding_granularity_ms: int  # 28800000 (8 h) for perpetuals
    risk_tiers: tuple[RiskTier, ...]
    index_symbol: str  # ".KXBTUSDT"
    funding_rate_symbol: str | None  # ".XBTUSDTMFPI8H" for perpetuals, None for dated futures

    @property
    def is_perpetual(self) -> bool:
        return self.type == "FFWCSX"


# -- catalogue ---------------------------------------------------------------------------------
# The simulator lists KuCoin-like contracts with realistic (late-2020s) parameters. Everything
# here is static; default_contracts() only uses now_ms to place the dated futures' expiries and
# the first-open dates (old enough that 500 weekly candles of history exist).

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
MONDAY_OFFSET_MS = 4 * DAY_MS  # 1970-01-05 was a Monday; weekly candles open Monday 00:00 UTC
FUNDING_8H_MS = 28_800_000
HISTORY_WEEKS = 560  # > 500 weekly candles (~10.7 years) before now for the oldest perpetual

MAKER_FEE = 0.0002
TAKER_FEE = 0.0006
QUARTER_MONTH_CODES = {3: "H", 6: "M", 9: "U", 12: "Z"}  # KuCoin/CME month letters F G H J K M N Q U V X Z

# base, base price, tick size, multiplier, max leverage, daily vol, first risk limit (USDT)
_LINEAR: tuple[tuple[str, float, str, float, int, float, float], ...] = (
    ("XBT", 90_000.0, "0.1", 0.001, 125, 0.025, 100_000),
    ("ETH", 3_000.0, "0.01", 0.01, 100, 0.035, 100_000),
    ("SOL", 140.0, "0.001", 0.1, 75, 0.045, 50_000),
    ("XRP", 2.2, "0.0001", 10.0, 75, 0.045, 50_000),
    ("DOGE", 0.16, "0.00001", 100.0, 75, 0.055, 50_000),
    ("ADA", 0.45, "0.0001", 10.0, 75, 0.05, 25_000),
    ("BNB", 900.0, "0.01", 0.01, 75, 0.03, 50_000),
    ("LTC", 85.0, "0.01", 0.1, 75, 0.045, 25_000),
    ("DOT", 2.5, "0.001", 1.0, 75, 0.05, 25_000),
    ("AVAX", 14.0, "0.001", 0.1, 75, 0.055, 25_000),
    ("LINK", 13.0, "0.001", 0.1, 75, 0.05, 25_000),
    ("TRX", 0.28, "0.00001", 100.0, 75, 0.03, 25_000),
    ("BCH", 520.0, "0.01", 0.01, 75, 0.045, 25_000),
    ("UNI", 6.0, "0.001", 1.0, 75, 0.055, 20_000),
    ("ATOM", 2.7, "0.001", 1.0, 75, 0.05, 20_000),
    ("NEAR", 2.0, "0.001", 1.0, 75, 0.06, 20_000),
    ("APT", 2.5, "0.001", 1.0, 50, 0.06, 20_000),
    ("ARB", 0.22, "0.0001", 1.0, 50, 0.06, 20_000),
    ("OP", 0.35, "0.0001", 1.0, 50, 0.06, 20_000),
    ("FIL", 1.6, "0.001", 0.1, 50, 0.055, 20_000),
    ("ETC", 13.0, "0.001", 0.1, 50, 0.05, 20_000),
    ("SUI", 1.7, "0.0001", 1.0, 75, 0.065, 25_000),
    ("TON", 1.6, "0.0001", 1.0, 50, 0.05, 20_000),
    ("XLM", 0.25, "0.00001", 10.0, 50, 0.045, 20_000),
)

# typical 24 h turnover in USD, sizing the simulated volume, trades and market-maker depth
_DAILY_TURNOVER_USD = {"XBT": 2e9, "ETH": 1e9, "SOL": 4e8, "XRP": 3e8, "DOGE": 2e8, "BNB": 1e8}
DEFAULT_DAILY_TURNOVER_USD = 3e7

# step-down of leverage and multiples of the first limit for the risk-limit tiers
_TIER_LEVERAGES = (100, 75, 50, 30, 25, 20, 15, 10, 8, 5, 4, 3, 2, 1)
_TIER_LIMIT_MULTIPLES = (1, 2, 5, 10, 20, 40, 80, 150, 300, 500)


def daily_turnover_usd(spec: ContractSpec) -> float:
    """Return the typical 24 h USD turnover the simulator gives a contract."""
    turnover = _DAILY_TURNOVER_USD.get(spec.base_currency, DEFAULT_DAILY_TURNOVER_USD)
    return turnover / 4 if spec.is_inverse else turnover


def default_contracts(now_ms: int) -> tuple[ContractSpec, ...]:
    """Return the simulator's catalogue: USDT perpetuals, XBTUSDM and two quarterly futures."""
    week0 = now_ms - (now_ms - MONDAY_OFFSET_MS) % WEEK_MS  # Monday 00:00 UTC of this week
    specs = [
        _linear(row, first_open_ms=week0 - (HISTORY_WEEKS - 2 * i) * WEEK_MS)
        for i, row in enumerate(_LINEAR)
    ]
    specs.append(_inverse_perpetual(first_open_ms=week0 - HISTORY_WEEKS * WEEK_MS))
    specs.extend(_quarterly(expire_ms, now_ms) for expire_ms in next_quarterly_expiries(now_ms, 2))
    return tuple(specs)


def risk_tiers(max_leverage: int, first_limit: float) -> tuple[RiskTier, ...]:
    """Return risk-limit tiers: position caps growing from first_limit, leverage stepping down."""
    leverages = [max_leverage] + [lev for lev in _TIER_LEVERAGES if lev < max_leverage]
    tiers = []
    low = 0.0
    for level, (lev, mult) in enumerate(zip(leverages, _TIER_LIMIT_MULTIPLES), start=1):
        initial = round(1 / lev, 4)
        cap = float(first_limit * mult)
        tiers.append(RiskTier(level, cap, low, lev, initial, round(initial / 2, 5)))
        low = cap
    return tuple(tiers)


def next_quarterly_expiries(now_ms: int, count: int) -> list[int]:
    """Return the next `count` quarterly expiries after now_ms: last Friday of Mar/Jun/Sep/Dec 08:00 UTC."""
    now = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc)
    year, expiries = now.year, []
    while len(expiries) < count:
        for month in QUARTER_MONTH_CODES:
            expire_ms = _last_friday_8utc_ms(year, month)
            if expire_ms > now_ms and len(expiries) < count:
                expiries.append(expire_ms)
        year += 1
    return expiries


def quarterly_symbol(expire_ms: int) -> str:
    """Return KuCoin's symbol for the XBT quarterly future expiring at expire_ms ("XBTMH27")."""
    when = datetime.fromtimestamp(expire_ms / 1000, tz=timezone.utc)
    return f"XBTM{QUARTER_MONTH_CODES[when.month]}{when.year % 100:02d}"


def _last_friday_8utc_ms(year: int, month: int) -> int:
    day = date(year, month, calendar.monthrange(year, month)[1])
    day -= timedelta(days=(day.weekday() - 4) % 7)  # weekday 4 = Friday
    return int(datetime(day.year, day.month, day.day, 8, tzinfo=timezone.utc).timestamp() * 1000)


def _max_price(base_price: float) -> float:
    return float(10 ** max(2, math.ceil(math.log10(base_price * 10))))


def _linear(row: tuple[str, float, str, float, int, float, float], *, first_open_ms: int) -> ContractSpec:
    base, price, tick, multiplier, max_lev, vol, first_limit = row
    initial = round(1 / max_lev, 4)
    return ContractSpec(
        symbol=f"{base}USDTM", root_symbol="USDT", type="FFWCSX", base_currency=base,
        quote_currency="USDT", settle_currency="USDT", is_inverse=False, multiplier=multiplier,
        lot_size=1, tick_size=tick, max_order_qty=1_000_000, max_price=_max_price(price),
        max_leverage=max_lev, initial_margin=initial, maintain_margin=round(initial / 2, 5),
        maker_fee_rate=MAKER_FEE, taker_fee_rate=TAKER_FEE, first_open_ms=first_open_ms,
        expire_ms=None, base_price=price, daily_vol=vol, funding_granularity_ms=FUNDING_8H_MS,
        risk_tiers=risk_tiers(max_lev, first_limit), index_symbol=f".K{base}USDT",
        funding_rate_symbol=f".{base}USDTMFPI8H",
    )


def _inverse_perpetual(*, first_open_ms: int) -> ContractSpec:
    return ContractSpec(
        symbol="XBTUSDM", root_symbol="XBT", type="FFWCSX", base_currency="XBT",
        quote_currency="USD", settle_currency="XBT", is_inverse=True, multiplier=-1.0,
        lot_size=1, tick_size="0.1", max_order_qty=10_000_000, max_price=1_000_000.0,
        max_leverage=100, initial_margin=0.01, maintain_margin=0.005,
        maker_fee_rate=MAKER_FEE, taker_fee_rate=TAKER_FEE, first_open_ms=first_open_ms,
        expire_ms=None, base_price=_LINEAR[0][1], daily_vol=_LINEAR[0][5],
        funding_granularity_ms=FUNDING_8H_MS, risk_tiers=risk_tiers(100, 20.0),
        index_symbol=".BXBT", funding_rate_symbol=".XBTUSDMFPI8H",
    )


def _quarterly(expire_ms: int, now_ms: int) -> ContractSpec:
    listed_ms = expire_ms - 52 * WEEK_MS
    listed_ms -= (listed_ms - MONDAY_OFFSET_MS) % WEEK_MS
    years_left = (expire_ms - now_ms) / (365 * DAY_MS)
    price = round(_LINEAR[0][1] * (1 + 0.06 * years_left), 1)  # contango: ~6 % a year premium
    return ContractSpec(
        symbol=quarterly_symbol(expire_ms), root_symbol="XBT", type="FFICSX",
        base_currency="XBT", quote_currency="USD", settle_currency="XBT", is_inverse=True,
        multiplier=-1.0, lot_size=1, tick_size="0.1", max_order_qty=1_000_000,
        max_price=1_000_000.0, max_leverage=100, initial_margin=0.01, maintain_margin=0.005,
        maker_fee_rate=MAKER_FEE, taker_fee_rate=TAKER_FEE, first_open_ms=listed_ms,
        expire_ms=expire_ms, base_price=price, daily_vol=_LINEAR[0][5], funding_granularity_ms=0,
        risk_tiers=risk_tiers(100, 20.0), index_symbol=".BXBT", funding_rate_symbol=None,
    )
