"""A second OS process for tests/test_store_processes.py.

Usage: ``python tests/_store_worker.py DB STREAM COUNT BATCH``

Opens the store at DB, prints ``ready``, waits for one line on stdin (the start signal, so both
processes append at the same time), then appends COUNT ``StepReady`` events to STREAM in appends
of BATCH events, each with the ``expected_version`` it knows (it is STREAM's only writer), plus one
event to the stream ``shared`` every 10 appends without an expected version. Prints one JSON
line with what it appended. Any error goes to stderr with exit status 1.
"""

from __future__ import annotations

import json
import sys
import time

import anyio

from events import EventStore, StepReady


async def main(db: str, stream: str, count: int, batch: int) -> dict[str, object]:
    async with EventStore.open(db) as store:
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        start = time.perf_counter()
        version = 0
        shared = 0
        for n, first in enumerate(range(0, count, batch)):
            events = [
                StepReady(step=f"{stream}-{i}") for i in range(first, min(first + batch, count))
            ]
            await store.append(stream, events, expected_version=version)
            version += len(events)
            if n % 10 == 0:
                await store.append("shared", [StepReady(step=f"{stream}-shared-{shared}")])
                shared += 1
        return {
            "stream": stream,
            "appended": version,
            "shared": shared,
            "seconds": round(time.perf_counter() - start, 3),
        }


if __name__ == "__main__":
    db, stream, count, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    result = anyio.run(main, db, stream, count, batch, backend="asyncio")
    print(json.dumps(result), flush=True)
