"""The facade KuCoinClient and its parts (prefetch, health, options, ccxt-shaped values)."""
