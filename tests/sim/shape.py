"""Compare a served payload with a documented one: keys, JSON types and time units."""
from __future__ import annotations

from typing import Any

# Keys that hold times: the served value must be in the same unit (same digit count +/- 1)
# as KuCoin's example (s ~10 digits, ms ~13, ns ~19).
TIME_KEYS = frozenset({
    "ts", "orderTime", "tradeTime", "createdAt", "updatedAt", "endAt", "timestamp", "time",
    "timePoint", "timepoint", "fundingTime", "currentTimestamp", "openingTimestamp", "firstOpenDate",
    "expireDate", "settleDate",
})


# Keys that KuCoin documents as integers (lots, counts, levels, times): a float here is a bug.
INT_KEYS = TIME_KEYS | frozenset({
    "size", "currentQty", "bestBidSize", "bestAskSize", "filledSize", "dealSize", "lotSize",
    "maxOrderQty", "level", "maxLeverage", "sequence", "pingInterval", "pingTimeout", "granularity",
    "totalNum", "totalPage", "currentPage", "pageSize", "riskLimitLevel",
})


def _digits(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return len(str(abs(value)))
    if isinstance(value, str) and value.isdigit():
        return len(value)
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def shape_diff(expected: Any, actual: Any, path: str = "$", *, ignore: frozenset[str] = frozenset()) -> list[str]:
    """Return the differences that matter between a documented example and a served value."""
    if expected is None:
        return []  # documented as null: any served type is acceptable
    if _kind(expected) != _kind(actual):
        return [f"{path}: documented {_kind(expected)} {expected!r}, served {_kind(actual)} {actual!r}"]
    if isinstance(expected, bool):
        return []
    problems: list[str] = []
    if isinstance(expected, dict):
        for key, value in expected.items():
            if key in ignore:
                continue
            if key not in actual:
                problems.append(f"{path}.{key}: missing (documented {value!r})")
                continue
            problems += shape_diff(value, actual[key], f"{path}.{key}", ignore=ignore)
            if key in INT_KEYS and isinstance(value, int) and not isinstance(actual[key], int):
                problems.append(f"{path}.{key}: documented integer {value!r}, served {actual[key]!r}")
            if key in TIME_KEYS:
                want, got = _digits(value), _digits(actual[key])
                if want is not None and got is not None and abs(want - got) > 1:
                    problems.append(f"{path}.{key}: time unit differs: documented {value!r}, served {actual[key]!r}")
    elif isinstance(expected, list) and expected and actual:
        if isinstance(expected[0], (dict, list)):
            problems += shape_diff(expected[0], actual[0], f"{path}[0]", ignore=ignore)
        else:  # a row of scalars (kline row, candle array, price level): position by position
            for i, (e, a) in enumerate(zip(expected, actual)):
                problems += shape_diff(e, a, f"{path}[{i}]", ignore=ignore)
    return problems
