"""A rebuild folded in a child process (``projections._rebuild_child``), and the fold it runs
there, which never reads the projection's tables (``projections._detached``): the same rows,
rowids and checkpoint as a rebuild in the process, and a fallback to that whenever it cannot."""

from __future__ import annotations

import io
import itertools
import logging
import re
import sqlite3
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import projections
from events import (
    ArtifactStored,
    Recorded,
    RunCreated,
    RunsDeleted,
    StepDeclared,
    StepReady,
    StepSpec,
    StepStarted,
    StepSucceeded,
    join_payloads,
)
from events import encode as events_encode
from projections import Projector, _memory, _projector, _rebuild_child, _tables
from projections._cache import Cache
from projections._detached import DetachedError, DetachedPass
from projections._pass import Sink
from tests.test_projections_properties import SETTINGS, _db, _insert, logs
from tests.test_projections_rebuild_fresh import deleted_then_stored_again
from tests.test_projections_storage import Log, append, dump, install, open_db, ref, w2_log


def _all_rows(conn: sqlite3.Connection) -> list[Any]:
    entries = conn.execute("SELECT rowid, * FROM cache_entries ORDER BY rowid").fetchall()
    return [*dump(conn), entries]


def _detached_rows(
    src: sqlite3.Connection,
    cache_size: int,
    flush: int,
    refold_limit: int = 10_000,
    chunk: int = 1000,
) -> list[Any]:
    """The rows a DetachedPass over ``src``'s log writes, in a database of their own."""
    dst = sqlite3.connect(":memory:", isolation_level=None)
    dst.execute("BEGIN")
    _tables.create(dst)
    p = DetachedPass(src, Cache(cache_size), Sink(dst), refold_limit=refold_limit)
    for page in _projector._read_events(src, 0, None):
        for start in range(0, len(page), chunk):
            p.fold_all(page[start : start + chunk])
            if p.pending >= flush:
                p.flush()
    p.flush()
    dst.execute("COMMIT")
    return _all_rows(dst)


def _same_name(records: Sequence[Recorded]) -> list[Recorded]:
    """Every run named alike, so the fold must rename all but the first."""
    out = []
    for r in records:
        if isinstance(r.event, RunCreated):
            event = msgspec.structs.replace(r.event, run_name="same")
            r = msgspec.structs.replace(r, event=event)
        out.append(r)
    return out


@SETTINGS
@given(logs(), st.integers(1, 6), st.integers(1, 30), st.integers(1, 20), st.booleans())
def test_a_detached_fold_writes_the_rows_of_a_rebuild(
    log: tuple[list[str], list[Recorded]], cache_size: int, flush: int, chunk: int, collide: bool
) -> None:
    _, records = log
    if collide:
        records = _same_name(records)
    conn = _db()
    conn.execute("BEGIN IMMEDIATE")
    _insert(conn, records)
    conn.execute("COMMIT")
    # A tiny cache evicts views all the time: the detached fold refolds them from the log.
    got = _detached_rows(conn, cache_size, flush, chunk=chunk)
    assert projections.rebuild(conn) == len(records)
    assert got == _all_rows(conn)


def _no_deletion(log: Log) -> Log:
    out = Log()
    for r in log.records:
        if not isinstance(r.event, RunsDeleted):
            out.add(r.stream, r.event)
    return out


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    home = tmp_path / "a home?#%20"  # the children open it by URI
    home.mkdir()
    c = open_db(home / "db")
    c.execute("PRAGMA journal_mode = WAL")
    yield c
    c.close()


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every rebuild folds in a child; the list gets what each child folded."""
    folded: list[int] = []
    real = _rebuild_child.fold_in_child

    def spy(conn: sqlite3.Connection, path: str, log_size: int) -> int:
        n = real(conn, path, log_size)
        folded.append(n)
        return n

    monkeypatch.setattr(_projector, "CHILD_MIN_EVENTS", 1)
    monkeypatch.setattr(_rebuild_child, "fold_in_child", spy)
    return folded


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every process a rebuild starts, as it starts it."""
    found: list[Any] = []
    real = _rebuild_child.subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> Any:
        found.append(real(*args, **kwargs))
        return found[-1]

    monkeypatch.setattr(_rebuild_child.subprocess, "Popen", popen)
    return found


def _incremental(conn: sqlite3.Connection, log: Log) -> list[Any]:
    proj = Projector()
    install(conn, proj)
    for start in range(0, len(log.records), 3):
        append(conn, log.records[start : start + 3], proj)
    return _all_rows(conn)


@pytest.mark.parametrize("cache_size", [32_768, 2])
def test_a_rebuild_in_a_child_gives_the_incremental_rows(
    conn: sqlite3.Connection,
    children: list[int],
    monkeypatch: pytest.MonkeyPatch,
    cache_size: int,
) -> None:
    log = _no_deletion(deleted_then_stored_again())
    log.add("late", RunCreated(pipeline="p", run_name="o", steps=[]))  # a second "o": "o_2"
    log.add("late", StepDeclared(spec=StepSpec(id="d", name="n")), StepReady(step="d"))
    before = _incremental(conn, log)
    monkeypatch.setattr(_rebuild_child, "CACHE_SIZE", cache_size)
    assert projections.rebuild(conn) == len(log.records)
    assert children == [len(log.records)]
    assert _all_rows(conn) == before
    assert conn.execute("SELECT name FROM runs WHERE id = 'late'").fetchone() == ("o_2",)


def test_a_log_with_a_deletion_is_rebuilt_in_the_process(
    conn: sqlite3.Connection, children: list[int]
) -> None:
    log = deleted_then_stored_again()
    before = _incremental(conn, log)
    assert projections.rebuild(conn) == len(log.records)
    assert children == []
    assert _all_rows(conn) == before


def test_a_child_that_cannot_start_leaves_the_rebuild_to_the_process(
    conn: sqlite3.Connection,
    children: list[int],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = w2_log(5)
    before = _incremental(conn, log)
    monkeypatch.setattr(sys, "executable", "/nonexistent/bin/python3")
    with caplog.at_level(logging.WARNING, logger="projections._projector"):
        assert projections.rebuild(conn) == len(log.records)
    assert "child process failed (cannot start" in caplog.text
    assert _all_rows(conn) == before


@pytest.mark.parametrize("executable", ["/usr/bin/uwsgi", "/opt/app/frozen-app", ""])
def test_no_child_is_started_by_an_executable_that_is_not_python(
    conn: sqlite3.Connection, children: list[int], monkeypatch: pytest.MonkeyPatch, executable: str
) -> None:
    log = w2_log(3)
    before = _incremental(conn, log)
    monkeypatch.setattr(sys, "executable", executable)
    assert projections.rebuild(conn) == len(log.records)
    assert children == []
    assert _all_rows(conn) == before


def test_no_child_is_started_by_a_frozen_application(
    conn: sqlite3.Connection, children: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = w2_log(3)
    _incremental(conn, log)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert projections.rebuild(conn) == len(log.records)
    assert children == []


def test_a_child_that_fails_midway_is_undone_and_the_process_rebuilds(
    conn: sqlite3.Connection,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = w2_log(400)  # more events than one page of the child's reads
    before = _incremental(conn, log)
    # Rows for a few views, then too many refolds: the rows sent must not stay.
    sent: list[int] = []
    real = _rebuild_child._pump

    def count(conn: sqlite3.Connection, log: Any, folder: Any) -> int | None:
        sent.append(conn.execute("SELECT COUNT(*) FROM step_runs").fetchone()[0])
        found = real(conn, log, folder)
        sent.append(conn.execute("SELECT COUNT(*) FROM step_runs").fetchone()[0])
        return found

    monkeypatch.setattr(_projector, "CHILD_MIN_EVENTS", 1)
    monkeypatch.setattr(_rebuild_child, "_pump", count)
    monkeypatch.setattr(_rebuild_child, "CACHE_SIZE", 1)
    monkeypatch.setattr(_rebuild_child, "FLUSH", 1)
    monkeypatch.setattr(_rebuild_child, "REFOLD_LIMIT", 5)
    with caplog.at_level(logging.WARNING, logger="projections._projector"):
        assert projections.rebuild(conn) == len(log.records)
    said = r"exit status 3: .*cannot fold detached: .* replayed more than 5 events"
    assert re.search(said, caplog.text, re.DOTALL)
    assert sent[0] == 0
    assert sent[1] > 0  # the child had sent rows before it failed
    assert _all_rows(conn) == before


def test_an_in_memory_database_is_rebuilt_in_the_process(children: list[int]) -> None:
    conn = _db()
    log = w2_log(3)
    conn.execute("BEGIN IMMEDIATE")
    _insert(conn, log.records)
    conn.execute("COMMIT")
    assert projections.rebuild(conn) == len(log.records)
    assert children == []


def test_a_detached_fold_refuses_a_deletion_and_too_many_refolds(
    conn: sqlite3.Connection,
) -> None:
    log = deleted_then_stored_again()
    append(conn, log.records, None)
    p = DetachedPass(conn, Cache(32), Sink(sqlite3.connect(":memory:")))
    (page,) = _projector._read_events(conn, 0, None)
    with pytest.raises(DetachedError, match=r"runs\.deleted"):
        p.fold_all(page)

    many = w2_log(30)
    conn2 = _db()
    conn2.execute("BEGIN IMMEDIATE")
    _insert(conn2, many.records)
    conn2.execute("COMMIT")
    with pytest.raises(DetachedError, match="replayed more than 3 events"):
        _detached_rows(conn2, cache_size=1, flush=1, refold_limit=3, chunk=5)


def _frame(body: Any) -> bytes:
    data = msgspec.msgpack.encode(body)
    return struct.pack(">I", len(data)) + data


M = _rebuild_child.MAGIC


@pytest.mark.parametrize(
    "stream",
    [
        b"",  # the child died before it wrote anything
        M + _frame([1, 5])[:-1],  # cut inside a frame
        M + _frame([1, 5]) + b"\x00\x00",  # cut inside a length
        M + _frame([1, 5]),  # no end frame
        _frame([1, 5]) + _frame([2, 1]),  # no magic: not what the folder writes
        b"hello from a sitecustomize\n" + M + _frame([2, 1]),  # something printed first
        M + struct.pack(">I", 2**31) + b"\x00",  # a length no frame has
        M + struct.pack(">I", 1) + b"\xc1",  # not msgpack
        M + _frame([0, 99, []]),  # no such write
        M + _frame([7]) + _frame([2, 1]),  # no such kind
        M + _frame([0, 0, [[1, 2]]]),  # rows that do not fit the write
    ],
)
def test_a_stream_of_frames_without_its_end_is_a_failure(
    conn: sqlite3.Connection, stream: bytes
) -> None:
    install(conn, Projector())
    conn.execute("BEGIN IMMEDIATE")
    assert _rebuild_child._receive(conn, io.BytesIO(stream)) is None
    conn.execute("ROLLBACK")


def test_frames_write_rows_and_the_checkpoint(conn: sqlite3.Connection) -> None:
    install(conn, Projector())
    artifact = _tables.artifact_row(ref("a1"), 1, "r", "s", 1.5)
    stream = (
        M
        + _frame([0, _tables.WRITES.index(_tables.INSERT_ARTIFACT), [list(artifact)]])
        + _frame([1, 7])
        + _frame([2, 9])
    )
    conn.execute("BEGIN IMMEDIATE")
    assert _rebuild_child._receive(conn, io.BytesIO(stream)) == 9
    conn.execute("COMMIT")
    assert conn.execute(f"SELECT {_tables.ARTIFACT_COLUMNS} FROM artifacts").fetchall() == [
        artifact
    ]
    assert projections.checkpoint(conn) == 7


def test_the_hot_step_events_of_a_big_run_fold_without_refolds(conn: sqlite3.Connection) -> None:
    """Steps first seen after their run's creation was folded come from it, not a refold."""
    log = Log()
    specs = [StepSpec(id=f"s{i}", name="n") for i in range(50)]
    log.add("r", RunCreated(pipeline="p", run_name="r", steps=specs))
    for i in range(50):
        a = ref(f"a{i}")
        log.add("r", StepReady(step=f"s{i}"), StepStarted(step=f"s{i}"))
        log.add("r", ArtifactStored(step=f"s{i}", artifact=a))
        log.add("r", StepSucceeded(step=f"s{i}", outputs={"output": a.id}))
    append(conn, log.records, None)
    rows = _detached_rows(conn, cache_size=8, flush=5, refold_limit=0, chunk=5)
    assert len(rows[1]) == 50  # every step has its row


def test_the_folder_takes_only_a_reader_stream_that_ends_with_its_count() -> None:
    row = [1, "r", 1, "step.ready", 1.0, bytes(events_encode(StepReady(step="s")))]
    page = M + _frame(_rebuild_child._page([row]))
    (got,) = list(_rebuild_child._pages(io.BytesIO(page + _frame(1))))
    assert [(r.seq, r.event) for r in got] == [(1, StepReady(step="s"))]
    with pytest.raises(EOFError, match="ended before its count"):
        list(_rebuild_child._pages(io.BytesIO(page)))  # the reader died after a page
    with pytest.raises(EOFError, match="sent 1 events, and counted 2"):
        list(_rebuild_child._pages(io.BytesIO(page + _frame(2))))


def test_the_folder_refuses_a_page_whose_columns_differ_in_length() -> None:
    payload = bytes(events_encode(StepReady(step="s")))
    columns = [[1, 2], ["r"], [1], ["step.ready"], [1.0], [len(payload)], join_payloads([payload])]
    with pytest.raises(ValueError, match="columns differ in length"):
        list(_rebuild_child._pages(io.BytesIO(M + _frame(columns) + _frame(1))))


def test_a_run_wider_than_the_cache_is_refolded_once_not_once_per_step(
    conn: sqlite3.Connection,
) -> None:
    """Every step ready before the first starts (a wide fan-out): each evicted step is found by
    folding the run's events since the last such lookup, so all lookups together replay about
    the run once, not once per step."""
    log = w2_log(300)
    append(conn, log.records, None)
    src = conn
    dst = sqlite3.connect(":memory:", isolation_level=None)
    dst.execute("BEGIN")
    _tables.create(dst)
    p = DetachedPass(src, Cache(10), Sink(dst))
    for page in _projector._read_events(src, 0, None):
        for start in range(0, len(page), 7):
            p.fold_all(page[start : start + 7])
            if p.pending >= 5:
                p.flush()
    p.flush()
    dst.execute("COMMIT")
    assert p.refolds > 250  # nearly every step was evicted before its next event
    assert p.replayed <= 2 * len(log.records)
    assert projections.rebuild(conn) == len(log.records)
    assert _all_rows(dst) == _all_rows(conn)


def test_a_package_in_the_working_directory_does_not_shadow_the_childrens(
    conn: sqlite3.Connection,
    children: list[int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    for name in ("events", "projections"):
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text("raise ImportError('the user s own')\n")
    log = w2_log(5)
    before = _incremental(conn, log)
    monkeypatch.chdir(project)
    assert projections.rebuild(conn) == len(log.records)
    assert children == [len(log.records)]  # folded by the children, not the fallback
    assert _all_rows(conn) == before


def test_a_log_larger_than_the_pipes_both_ways_is_rebuilt_alike(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch, children: list[int]
) -> None:
    # Megabytes of events to the folder and of rows back, against pipes of at most 1 MiB: the
    # parent must keep feeding the folder while it writes rows, and the other way round.
    log = w2_log(6000)
    conn.execute("BEGIN IMMEDIATE")
    _insert(conn, log.records)
    conn.execute("COMMIT")
    monkeypatch.setattr(_projector, "CHILD_MIN_EVENTS", len(log.records) + 1)
    assert projections.rebuild(conn) == len(log.records)  # in this process
    assert children == []
    alone = _all_rows(conn)
    monkeypatch.setattr(_projector, "CHILD_MIN_EVENTS", 1)
    monkeypatch.setattr(_rebuild_child, "FLUSH", 500)  # many frames of rows
    assert projections.rebuild(conn) == len(log.records)
    assert children == [len(log.records)]
    assert _all_rows(conn) == alone


def test_a_folder_that_sends_garbage_is_stopped_and_the_process_rebuilds(
    conn: sqlite3.Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = w2_log(5)
    before = _incremental(conn, log)
    # A "python" that answers like a folder, then with a frame that is not msgpack, and then
    # hangs: the rebuild must not wait for it.
    fake = tmp_path / "python-fake"
    fake.write_text(
        "#!/bin/sh\nprintf 'evenflow rebuild stream 2\\n\\000\\000\\000\\003\\301\\301\\301'\n"
        "exec sleep 60\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(_projector, "CHILD_MIN_EVENTS", 1)
    monkeypatch.setattr(sys, "executable", str(fake))
    with caplog.at_level(logging.WARNING, logger="projections._projector"):
        started = time.monotonic()
        assert projections.rebuild(conn) == len(log.records)
        assert time.monotonic() - started < 30  # not the fake's 60 s
    assert "the folder sent something else than rows" in caplog.text
    assert _all_rows(conn) == before


def _fake_folder(tmp_path: Path, script: str) -> str:
    """A "python" that answers the rebuild like a folder would not (``script``, in sh)."""
    fake = tmp_path / "python-fake"
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(0o755)
    return str(fake)


def test_a_folder_that_ends_before_it_got_the_log_is_a_failure(
    conn: sqlite3.Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = w2_log(3000)  # more than the pipe holds: the end frame comes while it is still sent
    before = _incremental(conn, log)
    # MAGIC, then the end frame [2, 0]: "folded 0 events", and a hang.
    end = (
        "printf 'evenflow rebuild stream 2\\n\\000\\000\\000\\003\\222\\002\\000'\nexec sleep 60\n"
    )
    monkeypatch.setattr(_projector, "CHILD_MIN_EVENTS", 1)
    monkeypatch.setattr(sys, "executable", _fake_folder(tmp_path, end))
    with caplog.at_level(logging.WARNING, logger="projections._projector"):
        started = time.monotonic()
        assert projections.rebuild(conn) == len(log.records)
        assert time.monotonic() - started < 30
    assert re.search(r"the folder ended after 0 events, of \d+ sent so far", caplog.text)
    assert _all_rows(conn) == before


def test_a_log_that_cannot_be_read_for_the_folder_falls_back_without_a_stray_child(
    conn: sqlite3.Connection,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    started: list[Any],
) -> None:
    log = w2_log(5)
    before = _incremental(conn, log)

    def unreadable(path: str) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(_projector, "CHILD_MIN_EVENTS", 1)
    monkeypatch.setattr(_rebuild_child, "_connect", unreadable)
    with caplog.at_level(logging.WARNING, logger="projections._projector"):
        assert projections.rebuild(conn) == len(log.records)
    assert "cannot read the log to send it: unable to open database file" in caplog.text
    assert _all_rows(conn) == before
    (child,) = started
    assert child.returncode is not None  # stopped and reaped, not left running or a zombie


def test_a_host_that_dies_of_sigpipe_survives_a_folder_that_stops_reading(
    tmp_path: Path,
) -> None:
    # Command-line tools often restore SIGPIPE's default action (death); a folder that exits
    # without reading its stdin must then not kill the rebuilding process.
    db = tmp_path / "log.db"
    c = open_db(db)
    c.execute("PRAGMA journal_mode = WAL")
    c.execute("BEGIN IMMEDIATE")
    records = w2_log(3000).records
    _insert(c, records)
    c.execute("COMMIT")
    c.close()
    fake = _fake_folder(tmp_path, "exit 3\n")
    probe = textwrap.dedent(
        f"""
        import signal, sqlite3, sys
        import projections
        from projections import _projector
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        _projector.CHILD_MIN_EVENTS = 1
        sys.executable = {fake!r}
        print(projections.rebuild(sqlite3.connect({str(db)!r}, isolation_level=None)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(len(records))


@pytest.mark.parametrize(
    ("available", "views"),
    [
        (None, 32_768),  # memory unknown: as Projector
        (10 * 2**20, 32_768),  # little memory: never fewer than Projector keeps
        (2**30, 2**30 // 8 // 2048),  # an eighth of what is available
        (100 * 2**30, 262_144),  # plenty: at most about 500 MiB of views
    ],
)
def test_the_folder_keeps_more_views_when_memory_allows(
    monkeypatch: pytest.MonkeyPatch, available: int | None, views: int
) -> None:
    monkeypatch.setattr(_memory, "available_memory", lambda: available)
    assert _rebuild_child._cache_size() == views


def test_available_memory_is_read_from_the_system() -> None:
    found = _memory.available_memory()
    assert found is None or found > 0


def _cgroup_files(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("groups", "files", "room"),
    [
        # cgroup v2, a container limited to 1 GiB with 400 MiB in use
        (
            "0::/box\n",
            {"box/memory.max": f"{2**30}\n", "box/memory.current": f"{400 * 2**20}\n"},
            624 * 2**20,
        ),
        ("0::/box\n", {"box/memory.max": "max\n", "box/memory.current": "5\n"}, None),
        # cgroup v1 (and the v2 line of a hybrid host, without files)
        (
            "4:memory:/job\n0::/\n",
            {
                "memory/job/memory.limit_in_bytes": "1000\n",
                "memory/job/memory.usage_in_bytes": "1200\n",
            },
            0,
        ),
        (
            "4:memory:/elsewhere\n",
            {
                "memory/memory.limit_in_bytes": "9223372036854771712\n",
                "memory/memory.usage_in_bytes": "7\n",
            },
            None,
        ),
        ("1:cpu:/\n", {}, None),  # no memory controller
    ],
)
def test_a_containers_memory_limit_bounds_the_folders_views(
    tmp_path: Path, groups: str, files: dict[str, str], room: int | None
) -> None:
    assert _memory.cgroup_room(groups, _cgroup_files(tmp_path, files)) == room


def test_the_rebuild_does_not_wait_for_a_finished_folder_to_exit(
    conn: sqlite3.Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    children: list[int],
    started: list[Any],
) -> None:
    # A folder that sent every row but lingers (here: the shell around it sleeps; a real one
    # frees hundreds of MB on its way out): the rows are in, the rebuild goes on, and the
    # process is reaped in the background (killed once the wait for it runs out).
    log = w2_log(5)
    before = _incremental(conn, log)
    wrapper = _fake_folder(tmp_path, f'"{sys.executable}" "$@"\nexec sleep 60\n')
    monkeypatch.setattr(_rebuild_child, "_EXIT_WAIT_S", 1.0)
    monkeypatch.setattr(sys, "executable", wrapper)
    began = time.monotonic()
    assert projections.rebuild(conn) == len(log.records)
    assert time.monotonic() - began < 30  # not the wrapper's 60 s
    assert children == [len(log.records)]  # the child's rows, not a fallback's
    assert _all_rows(conn) == before
    (child,) = started
    (reaper,) = [t for t in threading.enumerate() if t.name == "evenflow-rebuild-reap"]
    reaper.join(timeout=20)
    assert child.returncode is not None  # killed once the wait ran out, and reaped


class _Pieces:
    """A stream whose reads return the given pieces, one per read (as a pipe may)."""

    def __init__(self, data: bytes, cuts: list[int]) -> None:
        bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
        self.pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]

    def read(self, size: int = -1) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


@SETTINGS
@given(st.lists(st.integers(0, 10_000), max_size=12), st.integers(1, 4))
def test_a_stream_read_in_any_pieces_reads_as_read_whole(cuts: list[int], pages: int) -> None:
    rows = [
        [i, "r", i, "step.ready", 1.0, bytes(events_encode(StepReady(step=f"s{i}")))]
        for i in range(1, 3 * pages + 1)
    ]
    pages_of_3 = (_rebuild_child._page(rows[i : i + 3]) for i in range(0, len(rows), 3))
    to_folder = M + b"".join(_frame(page) for page in pages_of_3)
    to_folder += _frame(len(rows))
    whole = [r.seq for page in _rebuild_child._pages(io.BytesIO(to_folder)) for r in page]
    pieces = [r.seq for page in _rebuild_child._pages(_Pieces(to_folder, cuts)) for r in page]
    assert pieces == whole == list(range(1, len(rows) + 1))

    artifact = list(_tables.artifact_row(ref("a1"), 1, "r", "s", 1.5))
    insert = _tables.WRITES.index(_tables.INSERT_ARTIFACT)
    to_parent = M + _frame([0, insert, [artifact]]) + _frame([1, 7]) + _frame([2, 9])
    to_parent += b"\xc1 anything after the end frame"
    conn = _db()
    install(conn, Projector())
    conn.execute("BEGIN IMMEDIATE")
    assert _rebuild_child._receive(conn, _Pieces(to_parent, cuts)) == 9  # type: ignore[arg-type]
    assert conn.execute(f"SELECT {_tables.ARTIFACT_COLUMNS} FROM artifacts").fetchall() == [
        tuple(artifact)
    ]
    conn.execute("ROLLBACK")
