"""KuCoin Futures from one object: `KuCoinClient`, and the error tree it raises.

    from kucoin_client import KuCoinClient

    with KuCoinClient(api_key, api_secret, api_passphrase) as client:
        client.get_ticker("BTC/USDT:USDT")     # WebSocket cache, REST when missing or stale
        client.get_ohlcv("BTC/USDT:USDT", "1m", limit=100)
        client.get_order_book("BTC/USDT:USDT", limit=20)
        client.prefetch(symbols, timeframes=("1m",))
        client.create_market_order(...) / create_limit_order(...) / cancel_order(...)
        client.get_order(...) / get_open_orders(...) / close_position(...)
        client.get_balance() / get_positions() / set_leverage(...) / health()
        client.create_stop_order(...) / get_stop_orders(...) / cancel_stop_order(...)
        client.check_account_modes(symbols, margin_mode="isolated") / get_mark_price(symbol)
        client.account_events(timeout_s=1.0)   # fills, stop triggers, positions, funding, wallet

Account events (KuCoinClient(..., on_account_event=callback) or account_events()) are the typed
values OrderUpdate, StopOrderUpdate, PositionChange, FundingSettlement and WalletChange.

Defined in kucoin_futures.client.facade (see README "Using the library").
"""
from __future__ import annotations

from kucoin_futures.client.account import (
    AccountEvent,
    FundingSettlement,
    OrderChange,
    OrderStatus,
    OrderUpdate,
    PositionChange,
    PositionChangeReason,
    StopChange,
    StopOrderUpdate,
    TradeType,
    WalletChange,
)
from kucoin_futures.client.facade import (
    OHLCV,
    AccountModeError,
    AuthError,
    ClientClosed,
    ConfigError,
    ExchangeRejected,
    InsufficientFunds,
    InvalidArgument,
    InvalidOrder,
    KuCoinClient,
    KuCoinError,
    NoPosition,
    OrderNotFound,
    OrderNotPlaced,
    OrderOutcomeUnknown,
    PrefetchResult,
    ProtocolError,
    RateLimited,
    TransportError,
)

__all__ = [
    "OHLCV",
    "AccountEvent",
    "FundingSettlement",
    "OrderChange",
    "OrderStatus",
    "OrderUpdate",
    "PositionChange",
    "PositionChangeReason",
    "StopChange",
    "StopOrderUpdate",
    "TradeType",
    "WalletChange",
    "AccountModeError",
    "AuthError",
    "ClientClosed",
    "ConfigError",
    "ExchangeRejected",
    "InsufficientFunds",
    "InvalidArgument",
    "InvalidOrder",
    "KuCoinClient",
    "KuCoinError",
    "NoPosition",
    "OrderNotFound",
    "OrderNotPlaced",
    "OrderOutcomeUnknown",
    "PrefetchResult",
    "ProtocolError",
    "RateLimited",
    "TransportError",
]
