"""A local OpenAI-compatible server for tests and benchmarks (see server.py)."""
