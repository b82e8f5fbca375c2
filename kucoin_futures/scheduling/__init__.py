"""Generic scheduling: a priority thread pool and rate-limit pools (imports nothing of KuCoin)."""
