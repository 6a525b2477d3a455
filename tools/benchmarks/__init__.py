"""Benchmarks: each module has ``run() -> dict`` (figures, ratios against a same-process reference)."""
