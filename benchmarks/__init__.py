"""Runnable benchmarks, not timed tests: ``python -m benchmarks [--quick]`` runs the whole suite
(``_workloads`` lists it); ``python -m benchmarks.<name> [--json]`` runs one module on its own;
``python -m benchmarks.peers`` compares evenflow with Prefect and Dagster."""
