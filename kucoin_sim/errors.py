"""The one error the simulator's core raises: a KuCoin error envelope waiting to be sent."""
from __future__ import annotations


class SimError(Exception):
    """A KuCoin error response: HTTP status, KuCoin's 6-digit code (a string) and its message."""

    def __init__(self, http_status: int, code: str, msg: str) -> None:
        super().__init__(f"{http_status} {code} {msg}")
        self.http_status = http_status
        self.code = code
        self.msg = msg


# Error constructors used across the simulator, with KuCoin's codes (protocol notes §3.4).
def bad_param(msg: str = "Invalid Parameter.") -> SimError:
    return SimError(400, "400100", msg)  # 400100: parameter error


def unknown_symbol(symbol: str) -> SimError:
    return SimError(400, "200003", f"Contract {symbol} not found")  # 200003: invalid symbol


def order_not_found() -> SimError:
    return SimError(404, "100001", "error.getOrder.orderNotExist")  # ccxt maps 100001 to OrderNotFound
