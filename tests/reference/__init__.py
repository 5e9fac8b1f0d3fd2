"""Oracles: faithful re-implementations of the original research pipeline, used by parity tests and benchmarks."""
