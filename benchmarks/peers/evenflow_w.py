"""The peers' workloads on evenflow: ``python -m benchmarks.peers.evenflow_w [CHAIN FAN]``.

Same step bodies as the peers (``_logic``), wrapped with ``@step``; one fresh temporary home;
caching off except for W4, whose cache is filled by one run before the timed one.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from importlib.metadata import version
from typing import Any

from . import _logic as L


def main(argv: list[str]) -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    os.environ["EVENFLOW_HOME"] = tempfile.mkdtemp(prefix="evenflow-peers-")
    from engine import pipeline, step

    n_chain, n_fan = L.sizes(argv)
    source, noop, join = step(L.source), step(L.noop), step(L.join)
    sleep_sync, sleep_async = step(L.sleep_sync), step(L.sleep_async)

    @pipeline(enable_cache=False)
    def w1() -> Any:
        x = source()
        for _ in range(n_chain - 1):
            x = noop(x)
        return x

    @pipeline(enable_cache=False)
    def w2() -> Any:
        s = source()
        return join([noop(s) for _ in range(n_fan)])

    def w3(sleep: Any) -> Any:
        @pipeline(name=f"w3_{sleep.name}", enable_cache=False)
        def w3_run() -> Any:
            return join([sleep(i) for i in range(L.W3_STEPS)])

        return w3_run

    w4 = w1.with_options(enable_cache=True)

    def value(run: Any) -> Any:
        return run.outputs[0].load() if run.outputs else None

    def cached() -> tuple[Any, int]:
        got = value(w4())
        return got, L.CALLS[0]

    value(w1())  # warm-up: first-use imports and set-up, as for the peers
    results: dict[str, Any] = {}
    L.timed(results, "W1", n_chain, lambda: value(w1()), 1)
    L.timed(results, "W2", n_fan + 2, lambda: value(w2()), n_fan)
    L.timed(results, "W3_sync", L.W3_STEPS + 1, lambda: value(w3(sleep_sync)()), L.W3_STEPS)
    L.timed(results, "W3_async", L.W3_STEPS + 1, lambda: value(w3(sleep_async)()), L.W3_STEPS)
    w4()  # fill the cache
    L.timed(results, "W4", n_chain, cached, (1, 0))
    L.emit("evenflow", version("evenflow"), results, {"W3": "steps run concurrently"})


if __name__ == "__main__":
    main(sys.argv[1:])
