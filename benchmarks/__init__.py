"""Benchmarks: side-by-side timings (`python benchmarks/bench_*.py`); lab equipment, not part of the package."""
