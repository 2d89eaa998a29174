"""Reproducible benchmarks: `python -m bench NAME` (or `./run bench NAME`)."""
