"""The trading bot's parts: trader (with its order desk, protection and outage log), strategy,
risk, performance, journal (its records, reconcile), paper broker. It uses the library through
KuCoinClient only (never ws/ or rest/ internals)."""
