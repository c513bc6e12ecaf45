"""The peers' workloads on Dagster: ``.venv-dagster/bin/python -m benchmarks.peers.dagster_w``.

Same step bodies as evenflow (``_logic``) as ``@op``s composed in ``@job``s (a repeated op is
aliased ``noop_2``, ``noop_3``, ...; W2's join is a fan-in), run with ``execute_in_process``:
an ephemeral instance and the in-process executor, which runs one op at a time (so W3 takes
about 20 x 0.5 s). Console logging at WARNING. Dagster has no cache that skips an op across
runs, so W4 is not measured.
"""

from __future__ import annotations

import sys
from typing import Any

from . import _logic as L

_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def main(argv: list[str]) -> None:
    import dagster
    from dagster import job, op

    n_chain, n_fan = L.sizes(argv)
    source, noop, join = op(L.source), op(L.noop), op(L.join)
    sleep_sync, sleep_async = op(L.sleep_sync), op(L.sleep_async)

    @op
    def index_0() -> int:
        return 0

    @job
    def w1() -> None:
        x = source()
        for _ in range(n_chain - 1):
            x = noop(x)

    @job
    def w2() -> None:
        s = source()
        join([noop(s) for _ in range(n_fan)])

    def w3(sleep: Any, name: str) -> Any:
        @job(name=name)
        def w3_job() -> None:
            zero = index_0()
            join([sleep(zero) for _ in range(L.W3_STEPS)])

        return w3_job

    def value(the_job: Any, last: str) -> Any:
        result = the_job.execute_in_process(run_config=_QUIET)
        if not result.success:
            raise RuntimeError(f"{the_job.name} did not succeed")
        return result.output_for_node(last)

    last_noop = "noop" if n_chain == 2 else f"noop_{n_chain - 1}"
    value(w1, last_noop)  # warm-up: first-use imports and set-up
    results: dict[str, Any] = {}
    L.timed(results, "W1", n_chain, lambda: value(w1, last_noop), 1)
    L.timed(results, "W2", n_fan + 2, lambda: value(w2, "join"), n_fan)
    sync_job, async_job = w3(sleep_sync, "w3_sync"), w3(sleep_async, "w3_async")
    L.timed(results, "W3_sync", L.W3_STEPS + 2, lambda: value(sync_job, "join"), L.W3_STEPS)
    L.timed(results, "W3_async", L.W3_STEPS + 2, lambda: value(async_job, "join"), L.W3_STEPS)
    results["W4"] = {"error": "not available: Dagster has no cross-run op cache"}
    L.emit(
        "dagster",
        dagster.__version__,
        results,
        {"executor": "execute_in_process (in-process executor, one op at a time)"},
    )


if __name__ == "__main__":
    main(sys.argv[1:])
