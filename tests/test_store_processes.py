"""Two OS processes appending to one database at the same time: both succeed (the store retries
while the other holds the write lock), and their rows form one valid hash chain."""

from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import events

WORKER = Path(__file__).with_name("_store_worker.py")
COUNT = 5000
BATCH = 10


def test_two_processes_append_to_one_database(tmp_path: Path) -> None:
    db = tmp_path / "evenflow.db"  # created by both workers at once
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(db), stream, str(COUNT), str(BATCH)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for stream in ("a", "b")
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", proc.communicate(timeout=30)
        for proc in procs:  # both start appending now
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=100) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert err == ""  # no error, no warning, no "database is locked"
    results = {r["stream"]: r for r in (json.loads(out) for out, _ in outputs)}
    assert {s: r["appended"] for s, r in results.items()} == {"a": COUNT, "b": COUNT}
    shared = sum(r["shared"] for r in results.values())

    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = [
            events.ChainRow(*row)
            for row in conn.execute(
                "SELECT seq, stream, version, type, recorded_at, payload, hash "
                "FROM events ORDER BY seq"
            )
        ]
    assert len(rows) == 2 * COUNT + shared
    problem, checked, _ = events.verify_rows(rows)
    assert problem is None
    assert checked == len(rows)
    for stream, total in (("a", COUNT), ("b", COUNT), ("shared", shared)):
        assert [r.version for r in rows if r.stream == stream] == list(range(1, total + 1))
    # The processes really interleaved: the log switches between their streams many times.
    order = [r.stream for r in rows if r.stream != "shared"]
    switches = sum(1 for x, y in itertools.pairwise(order) if x != y)
    # Both made progress while the other was appending (loose: a writer that commits back to
    # back may keep the lock for a while before the other one's backoff catches a gap).
    assert switches >= 1
