"""The peers' workloads on Prefect 3: ``.venv-prefect/bin/python -m benchmarks.peers.prefect_w``.

Same step bodies as evenflow (``_logic``) as ``@task``s in ``@flow``s, against Prefect's own
temporary local server in a fresh ``PREFECT_HOME``, logging at WARNING (as evenflow's runs).
W1 calls each task directly (a chain runs one task at a time); W2 and sync W3 ``submit`` to a
``ThreadPoolTaskRunner`` of 64 workers (evenflow's default concurrency); async W3 gathers async
tasks. W4 caches on inputs and task source (Prefect's default policy adds the run id, so it
never hits across runs), with the cache filled by one run before the timed one.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from typing import Any

from . import _logic as L


def main(argv: list[str]) -> None:
    # Prefect reads these when it is imported.
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-peers-"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    import prefect
    from prefect import flow, task
    from prefect.cache_policies import INPUTS, TASK_SOURCE
    from prefect.task_runners import ThreadPoolTaskRunner

    n_chain, n_fan = L.sizes(argv)
    source, noop, join = task(L.source), task(L.noop), task(L.join)
    sleep_sync, sleep_async = task(L.sleep_sync), task(L.sleep_async)
    c_source = source.with_options(cache_policy=INPUTS + TASK_SOURCE)
    c_noop = noop.with_options(cache_policy=INPUTS + TASK_SOURCE)
    runner = ThreadPoolTaskRunner(max_workers=64)  # type: ignore[no-untyped-call]

    def chain(src: Any, step: Any) -> Any:
        x = src()
        for _ in range(n_chain - 1):
            x = step(x)
        return x

    @flow
    def w1() -> Any:
        return chain(source, noop)

    @flow(task_runner=runner)
    def w2() -> Any:
        s = source()
        return join([noop.submit(s) for _ in range(n_fan)])

    @flow(task_runner=runner)
    def w3_sync() -> Any:
        return join([sleep_sync.submit(i) for i in range(L.W3_STEPS)])

    @flow
    async def w3_async() -> Any:
        done = await asyncio.gather(*(sleep_async(i) for i in range(L.W3_STEPS)))
        return join(list(done))

    @flow
    def w4() -> Any:
        return chain(c_source, c_noop)

    def cached() -> tuple[Any, int]:
        return w4(), L.CALLS[0]

    w1()  # warm-up: starts the temporary server, first-use imports
    results: dict[str, Any] = {}
    L.timed(results, "W1", n_chain, w1, 1)
    L.timed(results, "W2", n_fan + 2, w2, n_fan)
    L.timed(results, "W3_sync", L.W3_STEPS + 1, w3_sync, L.W3_STEPS)
    L.timed(results, "W3_async", L.W3_STEPS + 1, lambda: asyncio.run(w3_async()), L.W3_STEPS)
    w4()  # fill the cache
    L.timed(results, "W4", n_chain, cached, (1, 0))
    L.emit(
        "prefect",
        prefect.__version__,
        results,
        {"server": "temporary local server (SQLite)", "W2/W3": "ThreadPoolTaskRunner(64)"},
    )


if __name__ == "__main__":
    main(sys.argv[1:])
