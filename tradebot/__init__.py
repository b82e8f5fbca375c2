"""The trading bot's parts: trader, strategy, risk, journal, paper broker. It uses the library
through KuCoinClient only (never ws/ or rest/ internals)."""
