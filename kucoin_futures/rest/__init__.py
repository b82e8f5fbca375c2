"""REST: lean public GETs, the ccxt seam (errors mapped in one place), the gateway."""
