"""healthd's benchmarks: `python -m bench NAME` (they print times and ratios; nothing here asserts speed)."""
