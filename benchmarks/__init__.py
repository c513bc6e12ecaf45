"""Runnable benchmarks: ``python -m benchmarks.<name> [--json]``. Not timed tests."""
