"""KuCoin Futures client library, by layer (imports point downward only):

    errors      the one exception tree
    protocol/   pure: values, wire names, parsers, WebSocket session, level-2 book, candles, reconnect policy
    scheduling/ generic priority executor and rate-limit pools (nothing KuCoin-specific)
    rest/       public GETs, the ccxt seam, the REST gateway
    orders/     order rules (pure) and the order manager
    ws/         the WebSocket thread: subscriptions, links, socket, feed, backfill, caches
    client/     the facade KuCoinClient and its parts

This __init__ imports nothing, so `config` (which needs only `errors` and the pure `protocol`)
does not pull in ccxt.
The public entry points are the root modules kucoin_client, kucoin_websocket and api_priority.
"""
