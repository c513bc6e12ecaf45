"""Peers side by side: W1, W2, W3 and W4 on evenflow, Prefect 3 and Dagster with the same step
logic (``_logic``), each engine's runner executed by its own virtual environment's python.

Run ``make bench-peers`` (creates ``.venv-prefect`` and ``.venv-dagster`` from PyPI), or
``python -m benchmarks.peers`` once they exist. Nothing here imports evenflow at import time:
the runners for the peers load only ``_logic`` and their own engine.
"""
