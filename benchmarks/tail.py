"""Cross-process tail latency, fold rate and projection rebuild rate.

    python -m benchmarks.tail [--json] [--seconds S] [--rate R] [--fold-events N]
                              [--rebuild-events N] [--rebuild-rounds K]

1. Tail: a writer subprocess appends one ``metadata.logged`` event at a time at ``R`` events/s
   for ``S`` seconds (each carrying its send time), while this process follows the database with
   ``events.Follower``. Latency is receive wall time minus ``recorded_at`` (stamped inside the
   write transaction, just before COMMIT); ``from_send`` also counts the append itself. Measured
   once woken by file-system events (the default) and once polling ``PRAGMA data_version``
   (the fallback). The largest WAL size seen while following is reported too.
2. Fold: ``projections.fold_run`` over one synthetic run of ``N`` events (records in memory).
3. Rebuild: ``projections.rebuild`` over a database of ``N`` events (10,000-odd runs of 99
   events, four at a time interleaved); the rows are generated first, straight into SQLite with
   their chain hashes (reported separately as ``generate``). The rebuild runs ``K`` times, each
   on a fresh copy of that database, and the median round is reported (every round as
   ``rounds``).

Targets: tail median < 20 ms and p99 < 100 ms; fold >= 300,000 events/s; rebuild >= 150,000
events/s.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

import projections
from events import (
    GENESIS,
    ArtifactRef,
    ArtifactStored,
    EventStore,
    Follower,
    MetadataLogged,
    Recorded,
    RunCreated,
    RunStarted,
    RunSucceeded,
    StepReady,
    StepSpec,
    StepStarted,
    StepSucceeded,
    _schema,
    encode,
    row_hash,
    tag_of,
)

from ._common import emit, environment, latency_summary_ms, parser, peak_rss_mb, stopwatch

TARGETS = {"tail_median_ms": 20, "tail_p99_ms": 100, "fold": 300_000, "rebuild": 150_000}
_STEPS_PER_RUN = 24  # 1 + 1 + 24 * 4 + 1 = 99 events per run
EVENTS_PER_RUN = 3 + 4 * _STEPS_PER_RUN


# -- 1. tail ---------------------------------------------------------------------------------


async def _writer(path: str, rate: float, seconds: float) -> None:
    """The writer subprocess: paced single-event appends, each stamped with its send time."""
    count = int(rate * seconds)
    async with EventStore.open(path) as store:
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        start = time.perf_counter()
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await anyio.sleep(delay)
            await store.append("bench", [MetadataLogged(metadata={"t": time.time(), "i": i})])
        print(f"done {count} {count / (time.perf_counter() - start):.0f}", flush=True)


async def _follow(path: Path, rate: float, seconds: float, watch: bool) -> dict[str, Any]:
    count = int(rate * seconds)
    wal = path.with_name(path.name + "-wal")
    from_commit: list[float] = []
    from_send: list[float] = []
    largest_wal = 0
    command = [sys.executable, "-m", "benchmarks.tail", "--writer", str(path)]
    async with await anyio.open_process([*command, str(rate), str(seconds)]) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        lines = BufferedByteReceiveStream(proc.stdout)
        line = await lines.receive_until(b"\n", 1000)
        assert line == b"ready", line
        follower = Follower(path, backlog=1, watch=watch)
        async with contextlib.aclosing(follower.records()) as feed:
            await feed.__anext__()  # the one event already there: following from now on
            await proc.stdin.send(b"go\n")
            with anyio.fail_after(seconds * 3 + 30):
                async for rec in feed:
                    now = time.time()
                    assert isinstance(rec.event, MetadataLogged)
                    from_commit.append(now - rec.recorded_at)
                    from_send.append(now - rec.event.metadata["t"])
                    if len(from_commit) % 100 == 0:
                        largest_wal = max(largest_wal, wal.stat().st_size)
                    if rec.event.metadata["i"] == count - 1:
                        break
        done = (await lines.receive_until(b"\n", 1000)).split()
    return {
        "mode": follower.mode,
        "events_sent": int(done[1]),
        "events_received": len(from_commit),
        "writer_events_per_s": int(done[2]),
        "from_commit": latency_summary_ms(from_commit),
        "from_send": latency_summary_ms(from_send),
        "largest_wal_mb": round(largest_wal / 2**20, 2),
    }


def tail_latency(rate: float, seconds: float, watch: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="evenflow-bench-") as tmp:
        path = Path(tmp) / "evenflow.db"

        async def create() -> None:
            async with EventStore.open(path) as store:
                await store.append("bench", [StepReady(step="start")])

        anyio.run(create, backend="asyncio")
        return anyio.run(_follow, path, rate, seconds, watch, backend="asyncio")


# -- 2. fold ---------------------------------------------------------------------------------


def _run_events(run: int, steps: int) -> list[Any]:
    """The events of one successful run of ``steps`` steps: 3 + 4 * steps of them."""
    specs = [StepSpec(id=f"s{i}", name="work", outputs=["output"]) for i in range(steps)]
    out: list[Any] = [
        RunCreated(pipeline="bench", run_name=f"bench-{run}", steps=specs),
        RunStarted(owner="bench", pid=1, host="h"),
    ]
    for i in range(steps):
        ref = ArtifactRef(
            id=f"a{run}-{i}",
            name="output",
            content_hash="0" * 64,
            uri="00/" + "0" * 64,
            materializer="builtin",
            type_name="builtins:int",
            size=1,
        )
        out += [
            StepReady(step=f"s{i}"),
            StepStarted(step=f"s{i}"),
            ArtifactStored(step=f"s{i}", artifact=ref),
            StepSucceeded(step=f"s{i}", outputs={"output": ref.id}, duration=0.001),
        ]
    out.append(RunSucceeded())
    return out


def fold_rate(n_events: int, rounds: int = 3) -> dict[str, Any]:
    steps = (n_events - 3) // 4
    events = _run_events(0, steps)
    records = [
        Recorded(seq, "run-0", seq, tag_of(e), 1.0 + seq / 1000, e)
        for seq, e in enumerate(events, start=1)
    ]
    best = float("inf")
    for _ in range(rounds):
        with stopwatch() as sw:
            state = projections.fold_run(records)
        best = min(best, sw.seconds)
    assert state is not None
    assert state.run.status.value == "completed"
    return {"events": len(records), "steps": steps, "events_per_s": round(len(records) / best)}


# -- 3. rebuild ------------------------------------------------------------------------------


def generate(path: Path, n_events: int) -> int:
    """Write about ``n_events`` events of whole runs, four runs at a time interleaved, with
    their chain hashes, straight into a fresh database. Returns the number written."""
    per_run = EVENTS_PER_RUN
    runs = max(1, n_events // per_run)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        _schema.initialise_in_tx(conn)
        seq, prev, at = 0, GENESIS, time.time()
        insert = (
            "INSERT INTO events (seq, stream, version, type, recorded_at, payload, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        for first in range(0, runs, 4):
            group = [
                (f"run-{r:08d}", _run_events(r, _STEPS_PER_RUN)) for r in range(first, first + 4)
            ]
            group = group[: runs - first]
            rows = []
            for version in range(per_run):
                for stream, evs in group:
                    event = evs[version]
                    seq += 1
                    payload, tag = encode(event), tag_of(event)
                    prev = row_hash(prev, stream, version + 1, tag, at, payload)
                    rows.append((seq, stream, version + 1, tag, at, payload, prev))
            conn.executemany(insert, rows)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return seq


def rebuild_rate(n_events: int, rounds: int = 1) -> dict[str, Any]:
    """``projections.rebuild`` over a generated database of ``n_events`` events, ``rounds``
    times (each on a fresh copy of it): the median round, and every round's seconds."""
    with tempfile.TemporaryDirectory(prefix="evenflow-bench-") as tmp:
        source = Path(tmp) / "generated.db"
        with stopwatch() as gen:
            written = generate(source, n_events)
        size = os.path.getsize(source)
        times: list[float] = []
        runs = 0
        for round_ in range(max(1, rounds)):
            path = Path(tmp) / f"evenflow-{round_}.db"
            shutil.copyfile(source, path)  # closed: checkpointed, no WAL to copy
            conn = sqlite3.connect(path, isolation_level=None)
            try:
                with stopwatch() as sw:
                    folded = projections.rebuild(conn)
                runs = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            finally:
                conn.close()
            assert folded == written
            times.append(sw.seconds)
            size = os.path.getsize(path)
            path.unlink()
    seconds = statistics.median(times)
    return {
        "events": written,
        "runs": runs,
        "seconds": round(seconds, 3),
        "events_per_s": round(written / seconds),
        "rounds": [round(t, 3) for t in times],
        # The folding child's (see projections._rebuild_child): not in this process's RSS.
        "children_peak_rss_mb": _children_peak_rss_mb(),
        "generate": {
            "seconds": round(gen.seconds, 3),
            "events_per_s": round(written / gen.seconds),
            "database_mb": round(size / 2**20, 1),
        },
    }


def _children_peak_rss_mb() -> float | None:
    """The largest peak RSS of this process's finished children, in MiB (None if unknown)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def run(
    rate: float, seconds: float, fold_events: int, rebuild_events: int, rebuild_rounds: int = 3
) -> dict[str, Any]:
    """All three measurements; the result dict."""
    watch = tail_latency(rate, seconds, watch=True)
    poll = tail_latency(rate, seconds, watch=False)
    fold = fold_rate(fold_events)
    rebuild = rebuild_rate(rebuild_events, rebuild_rounds)
    met = {
        "tail_median": watch["from_commit"]["median_ms"] < TARGETS["tail_median_ms"],
        "tail_p99": watch["from_commit"]["p99_ms"] < TARGETS["tail_p99_ms"],
        "fold": fold["events_per_s"] >= TARGETS["fold"],
        "rebuild": rebuild["events_per_s"] >= TARGETS["rebuild"],
    }
    return {
        "benchmark": "tail",
        "tail": {"rate": rate, "seconds": seconds, "watch": watch, "poll": poll},
        "fold": fold,
        "rebuild": rebuild,
        "targets": TARGETS,
        "met": met,
        "peak_rss_mb": peak_rss_mb(),
        "environment": environment(),
    }


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--writer":
        anyio.run(_writer, sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), backend="asyncio")
        return
    p = parser(__doc__.splitlines()[0] if __doc__ else "tail benchmark")
    p.add_argument("--seconds", type=float, default=5.0, help="how long the writer writes")
    p.add_argument("--rate", type=float, default=1000.0, help="events per second written")
    p.add_argument("--fold-events", type=int, default=100_000)
    p.add_argument("--rebuild-events", type=int, default=1_000_000)
    p.add_argument("--rebuild-rounds", type=int, default=3, help="rebuilds; the median is reported")
    args = p.parse_args()
    result = run(
        args.rate, args.seconds, args.fold_events, args.rebuild_events, args.rebuild_rounds
    )
    emit(result, as_json=args.json)
    if not args.json:
        w, f, r = result["tail"]["watch"], result["fold"], result["rebuild"]
        print(
            f"tail median {w['from_commit']['median_ms']:.2f} ms, p99 "
            f"{w['from_commit']['p99_ms']:.2f} ms ({w['mode']}); fold {f['events_per_s']:,}/s; "
            f"rebuild {r['events_per_s']:,}/s; all targets met: {all(result['met'].values())}"
        )


if __name__ == "__main__":
    main()
