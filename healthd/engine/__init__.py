"""The check engine: scheduling, health state, and the pure policy that yields the desired IPVS table."""
