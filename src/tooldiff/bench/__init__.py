"""Benchmarks of a (steered) model: `run_bench_bfcl` generates on BFCL and scores it."""

from tooldiff.bench.bfcl import DEFAULT_CATEGORIES, parse_categories, run_bench_bfcl

__all__ = ["DEFAULT_CATEGORIES", "parse_categories", "run_bench_bfcl"]
