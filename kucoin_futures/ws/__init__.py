"""The WebSocket layer: one thread keeping the ticker, candle and book caches fresh."""
