"""Benchmarks for nudge: import, segment evaluation and delivery at scale, against references
measured in the same run. Entry point: `python -m bench --scale 10k` (or `make bench SCALE=1m`)."""
