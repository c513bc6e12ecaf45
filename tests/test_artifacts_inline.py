"""Small artifacts inline: content of at most ``INLINE_MAX`` bytes from a bytes-protocol
materializer travels inside its reference as a ``data:`` URI instead of a file, with the content
hash a file would have; ``EVENFLOW_INLINE_MAX`` sets the threshold (0: always files)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest
from typer.testing import CliRunner

import events
from engine import Client, Engine, ExecutionStatus, _artifacts, pipeline, step
from engine._artifacts import DATA_URI, INLINE_MAX, ArtifactStore
from engine._cli import app
from engine._materializers_builtin import BuiltInMaterializer
from engine._materializers_extra import CloudpickleMaterializer
from engine._retention import delete_runs
from engine.errors import ArtifactError, ConfigurationError, RunNotFoundError
from events import ArtifactRef

ROOT = Path(__file__).resolve().parents[1]


def files_under(root: Path) -> list[Path]:
    """Content files and directories of an artifact store (scratch space excepted)."""
    return [p for p in root.glob("*/*") if ".tmp" not in p.relative_to(root).parts]


def inline_bytes(ref: ArtifactRef) -> bytes:
    assert ref.uri.startswith(DATA_URI), ref.uri
    return base64.b64decode(ref.uri[len(DATA_URI) :], validate=True)


def file_uri(content_hash: str) -> str:
    return f"{content_hash[:2]}/{content_hash}"


class Opaque:
    """Not a type the built-ins handle: stored by the cloudpickle fallback."""

    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.x == self.x

    def __repr__(self) -> str:
        return f"Opaque({self.x})"

    __hash__ = None  # type: ignore[assignment]


SMALL_VALUES: list[Any] = [
    None,
    True,
    7,
    2**70,
    1.5,
    "",
    "héllo",
    b"",
    b"\x00\xff",
    bytearray(b"mutable"),
    [1, "a", None],
    (1, (2,)),
    {"k": [1, 2]},
    {1, 2},
    frozenset({"a"}),
]


# -- the store ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", SMALL_VALUES, ids=repr)
def test_small_values_round_trip_inline_and_write_no_file(tmp_path: Path, value: Any) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    ref = store.save(value, name="small")
    assert ref.uri.startswith(DATA_URI)
    assert ref.size == len(inline_bytes(ref)) <= INLINE_MAX
    assert store.load(ref) == value
    assert type(store.load(ref)) is type(value)
    assert ArtifactStore(tmp_path / "elsewhere").load(ref) == value  # the ref is all it needs
    assert store.exists(ref)
    assert files_under(store.root) == []
    assert not store.root.exists()  # not even the directory was created
    with pytest.raises(ArtifactError, match="is inline: it has no file"):
        store.path_of(ref)
    # saving it again needs no file system either (the executor does this on the event loop)
    again = store.save_if_known(value, name="small")
    assert again is not None
    assert again.uri == ref.uri
    assert again.id != ref.id


def test_small_pickled_values_are_inline_too(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    ref = store.save(Opaque(3), name="opaque")
    assert ref.materializer.endswith(":CloudpickleMaterializer")
    assert ref.uri.startswith(DATA_URI)
    assert store.load(ref) == Opaque(3)
    explicit = store.save({"a": 1}, name="p", materializer=CloudpickleMaterializer)
    assert explicit.uri.startswith(DATA_URI)
    assert store.load(explicit) == {"a": 1}
    assert files_under(store.root) == []


@pytest.mark.parametrize("value", [*SMALL_VALUES, Opaque(5)], ids=repr)
def test_inline_content_hash_is_the_hash_of_the_same_value_in_a_file(
    tmp_path: Path, value: Any
) -> None:
    inline = ArtifactStore(tmp_path / "inline")
    in_file = ArtifactStore(tmp_path / "files", inline_max=0)
    a = inline.save(value, name="v")
    b = in_file.save(value, name="v")
    assert a.uri.startswith(DATA_URI)
    assert b.uri == file_uri(b.content_hash)
    assert a.content_hash == b.content_hash
    assert inline.hash_value(value) == in_file.hash_value(value) == a.content_hash
    assert (a.materializer, a.type_name, a.size) == (b.materializer, b.type_name, b.size)
    assert inline_bytes(a) == in_file.path_of(b).read_bytes()
    assert files_under(inline.root) == []
    assert len(files_under(in_file.root)) == 1


@pytest.mark.parametrize(
    ("size", "inline"), [(0, True), (1, True), (511, True), (512, True), (513, False)]
)
def test_threshold_boundary(tmp_path: Path, size: int, inline: bool) -> None:
    assert INLINE_MAX == 512
    store = ArtifactStore(tmp_path / "artifacts")
    payload = bytes(range(256)) * 2 + b"!"
    value = payload[:size]
    ref = store.save(value, name="payload")
    assert ref.size == size  # bytes are stored as they are: the payload is the content
    assert ref.uri.startswith(DATA_URI) is inline
    assert store.load(ref) == value
    if inline:
        assert inline_bytes(ref) == value
        assert files_under(store.root) == []
    else:
        assert ref.uri == file_uri(ref.content_hash)
        assert store.path_of(ref).read_bytes() == value
        assert files_under(store.root) == [store.path_of(ref)]


def test_custom_threshold_and_zero_means_always_files(tmp_path: Path) -> None:
    small = ArtifactStore(tmp_path / "small", inline_max=16)
    assert small.save(b"x" * 16, name="b").uri.startswith(DATA_URI)
    assert not small.save(b"x" * 17, name="b").uri.startswith(DATA_URI)
    never = ArtifactStore(tmp_path / "never", inline_max=0)
    for value in (b"", "", None, 1):  # even empty content gets a file
        ref = never.save(value, name="v")
        assert ref.uri == file_uri(ref.content_hash)
        assert never.path_of(ref).is_file()
        assert never.load(ref) == value


def test_values_larger_than_the_threshold_are_files(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    ref = store.save(list(range(1000)), name="big")
    assert ref.size > INLINE_MAX
    assert ref.uri == file_uri(ref.content_hash)
    assert store.path_of(ref).stat().st_size == ref.size
    assert ArtifactStore(store.root).load(ref) == list(range(1000))


def test_inline_content_does_not_depend_on_files(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    ref = store.save([1, 2, 3], name="l")
    assert not store.delete(ref.content_hash)  # there is no file to delete
    assert store.exists(ref)
    assert store.load(ref) == [1, 2, 3]


def test_a_corrupt_data_uri_is_an_artifact_error(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    ref = store.save([1], name="l")
    fields = {f: getattr(ref, f) for f in ref.__struct_fields__}
    for uri in (DATA_URI + "not base64!", DATA_URI + base64.b64encode(b"\xc1").decode()):
        bad = ArtifactRef(**{**fields, "uri": uri})
        with pytest.raises(ArtifactError, match=rf"artifact 'l' \(id {ref.id}\) cannot be loaded"):
            store.load(bad)


# -- pipelines ----------------------------------------------------------------------------------


@step
def small(value: int = 3) -> int:
    return value


@step
def label(x: int) -> str:
    return f"value {x}"


@pipeline
def tiny(value: int = 3) -> str:
    return label(small(value=value))


def artifact_files(home: Path) -> list[Path]:
    return files_under(home / "artifacts")


@pytest.fixture
def files_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENFLOW_INLINE_MAX", "0")


LOAD_IN_ANOTHER_PROCESS = textwrap.dedent(
    """
    import sys
    from engine import Client
    run = Client().get_pipeline_run(sys.argv[1])
    print(repr([run.steps[s].output.load() for s in ("small", "label")]))
    """
)


@pytest.mark.parametrize("value", [12345678901, 2.5, "text", b"raw", None, (1, ("a", 2.0))])
def test_an_immutable_inline_value_is_decoded_once(tmp_path: Path, value: Any) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    ref = store.save(value, name="small")
    first = store.load(ref)
    assert first == value
    assert store.load(ref) is first  # shared: nothing can change it
    other = ArtifactStore(tmp_path / "artifacts").load(ref)
    assert other == value


class MyInt(int):
    """An int subclass: it may carry state, so the saved object never stands for a load."""


class _Spy(dict[Any, Any]):
    def __init__(self, misses: list[Any]) -> None:
        super().__init__()
        self.misses = misses

    def get(self, key: Any, default: Any = None) -> Any:
        found = super().get(key, default)
        self.misses.append(found is default)
        return found


@pytest.mark.parametrize("value", [12345678901, 2**70, 2.5, -0.0, True, "text", None])
def test_a_saved_builtin_scalar_loads_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: Any
) -> None:
    # The next step of a chain loads what this one saved: the saved value stands for it.
    store = ArtifactStore(tmp_path / "artifacts")
    ref = store.save(value, name="small")

    def no_decoding(self: Any, data: bytes, data_type: type[Any]) -> Any:
        raise AssertionError("decoded")

    with monkeypatch.context() as patched:
        patched.setattr(BuiltInMaterializer, "_from_bytes", no_decoding)
        loaded = store.load(ref)
    assert loaded is value
    fresh = ArtifactStore(tmp_path / "artifacts").load(ref)  # decoded: the same value and type
    assert fresh == value
    assert type(fresh) is type(value)
    assert str(fresh) == str(value)  # -0.0 stays -0.0


@pytest.mark.parametrize("value", [(1, 2), b"raw", frozenset({1}), MyInt(3)])
def test_other_saved_values_are_decoded_on_their_first_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: Any
) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    ref = store.save(value, name="small")
    decoded: list[Any] = []
    real = ArtifactStore.load

    with monkeypatch.context() as patched:
        patched.setattr(store, "_inline_values", _Spy(decoded))
        loaded = real(store, ref)
    assert loaded == value
    assert decoded == [True]  # looked up, missed: decoded from the ref's bytes


@pytest.mark.parametrize("value", [[1, 2], {"k": [1]}, {1, 2}, (1, [2]), bytearray(b"x")])
def test_a_mutable_inline_value_is_decoded_afresh_for_every_load(
    tmp_path: Path, value: Any
) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    ref = store.save(value, name="small")
    first = store.load(ref)
    assert store.load(ref) is not first
    assert store.load(ref) == value


def test_the_decoded_inline_values_are_bounded(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    refs = [store.save(i, name="n") for i in range(_artifacts._INLINE_VALUES_MAX + 10)]
    assert [store.load(ref) for ref in refs] == list(range(len(refs)))
    assert len(store._inline_values) <= _artifacts._INLINE_VALUES_MAX


@step
def _numbers() -> list[int]:
    return [1, 2, 3]


@step
def _append_four(xs: list[int]) -> list[int]:
    xs.append(4)  # changes its own copy of the input only
    return xs


@pipeline
def _two_mutators() -> None:
    xs = _numbers()
    _append_four(xs, id="first")
    _append_four(xs, id="second")


def test_steps_that_change_a_shared_list_input_each_get_their_own_copy(
    evenflow_home: Path,
) -> None:
    run = _two_mutators.with_options(enable_cache=False)()
    assert run.steps["first"].output.load() == [1, 2, 3, 4]
    assert run.steps["second"].output.load() == [1, 2, 3, 4]
    assert run.steps["_numbers"].output.load() == [1, 2, 3]


def test_a_pipeline_keeps_small_outputs_inline(evenflow_home: Path) -> None:
    run = tiny(value=4)
    assert run.status is ExecutionStatus.COMPLETED
    for sid, value in (("small", 4), ("label", "value 4")):
        output = run.steps[sid].output
        assert output.uri.startswith(DATA_URI)
        assert output.load() == value
        assert Client().get_pipeline_run(run.id).steps[sid].output.load() == value
    assert artifact_files(evenflow_home) == []
    env = {**os.environ, "EVENFLOW_HOME": str(evenflow_home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_IN_ANOTHER_PROCESS, run.id],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[4, 'value 4']"


def test_a_cache_hit_reuses_the_inline_artifact(evenflow_home: Path) -> None:
    first = tiny(value=5)
    second = tiny(value=5)
    assert {s.status for s in second.steps.values()} == {ExecutionStatus.CACHED}
    for sid in ("small", "label"):
        before, after = first.steps[sid].output, second.steps[sid].output
        assert after.id == before.id
        assert after.uri == before.uri
        assert after.uri.startswith(DATA_URI)
    assert second.steps["label"].output.load() == "value 5"
    assert Client().get_pipeline_run(second.id).steps["label"].output.load() == "value 5"
    assert artifact_files(evenflow_home) == []


@pytest.mark.usefixtures("files_only")
def test_evenflow_inline_max_0_makes_a_pipeline_write_files(evenflow_home: Path) -> None:
    run = tiny(value=6)
    outputs = [run.steps[sid].output for sid in ("small", "label")]
    for output in outputs:
        assert output.uri == file_uri(output.content_hash)
        assert (evenflow_home / "artifacts" / output.uri).is_file()
    assert sorted(artifact_files(evenflow_home)) == sorted(
        evenflow_home / "artifacts" / o.uri for o in outputs
    )
    assert [o.load() for o in outputs] == [6, "value 6"]


def test_evenflow_inline_max_sets_the_threshold(
    evenflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENFLOW_INLINE_MAX", "4")
    run = tiny(value=7)
    assert run.steps["small"].output.uri.startswith(DATA_URI)  # one msgpack byte
    assert run.steps["label"].output.uri == file_uri(run.steps["label"].output.content_hash)
    assert len(artifact_files(evenflow_home)) == 1


@pytest.mark.parametrize("raw", ["x", "-1", "1.5", "512 bytes"])
def test_an_invalid_evenflow_inline_max_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("EVENFLOW_INLINE_MAX", raw)

    async def open_home() -> None:
        async with Engine.open():
            pass

    with pytest.raises(ConfigurationError, match="EVENFLOW_INLINE_MAX") as info:
        anyio.run(open_home, backend="asyncio")
    assert repr(raw) in str(info.value)
    with pytest.raises(ConfigurationError, match="EVENFLOW_INLINE_MAX"):
        tiny(value=1)


def test_audit_export_shows_inline_outputs(evenflow_home: Path) -> None:
    run = tiny(value=8)
    output = run.steps["label"].output
    result = CliRunner().invoke(app, ["audit", "export", run.id, "--out", "-"])
    assert result.exit_code == 0, result.output
    assert output.uri in result.output  # the value itself is in the log


# -- retention ----------------------------------------------------------------------------------


def test_deleting_a_run_with_only_inline_artifacts(evenflow_home: Path) -> None:
    run = tiny(value=9)
    kept = tiny.with_options(enable_cache=False)(value=10)
    produced = sorted(s.output.id for s in run.steps.values())

    report = Client().delete_pipeline_run(run.id, reason="inline only")

    assert [r.id for r in report.runs] == [run.id]
    assert sorted(report.artifacts) == produced
    assert report.uris == []
    assert report.bytes_freed == 0
    assert report.seq is not None
    with pytest.raises(RunNotFoundError):
        Client().get_pipeline_run(run.id)
    assert Client().get_pipeline_run(kept.id).steps["label"].output.load() == "value 10"
    assert artifact_files(evenflow_home) == []
    assert events.audit_database(evenflow_home / "evenflow.db").ok
    assert CliRunner().invoke(app, ["audit", "verify"]).exit_code == 0


@pytest.mark.parametrize("files_first", [True, False], ids=["files-first", "inline-first"])
def test_deleting_inline_and_file_versions_of_one_content_together_removes_the_file(
    evenflow_home: Path, monkeypatch: pytest.MonkeyPatch, files_first: bool
) -> None:
    def as_files() -> Any:
        with monkeypatch.context() as patched:
            patched.setenv("EVENFLOW_INLINE_MAX", "0")
            return tiny.with_options(enable_cache=False)(value=12)

    if files_first:
        old = as_files()
        new = tiny.with_options(enable_cache=False)(value=12)
    else:
        new = tiny(value=12)
        old = as_files()
    old_uris = sorted(s.output.uri for s in old.steps.values())
    assert len(artifact_files(evenflow_home)) == 2

    async def delete_both() -> Any:
        async with Engine.open() as engine:
            return await delete_runs(engine, [new.id, old.id])

    report = anyio.run(delete_both, backend="asyncio")

    assert sorted(report.uris) == old_uris
    assert artifact_files(evenflow_home) == []
    assert Client().list_pipeline_runs() == []
    assert events.audit_database(evenflow_home / "evenflow.db").ok


# -- loads that an event loop may do itself --------------------------------------------------


def test_in_memory_says_whether_a_load_reads_a_file(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    small = store.save(7, name="small")
    big = store.save(b"x" * (INLINE_MAX + 1), name="big")
    assert small.uri.startswith(DATA_URI)
    assert store.in_memory(small)
    assert store.in_memory(big)  # just written: its bytes are at hand
    fresh = ArtifactStore(tmp_path / "artifacts")  # another process, say
    assert fresh.in_memory(small)
    assert not fresh.in_memory(big)  # only its file has it
    assert fresh.load(big) == b"x" * (INLINE_MAX + 1)
    assert fresh.in_memory(big)  # read once: at hand now


def test_an_async_steps_inputs_are_read_off_the_event_loop_when_they_are_files(
    evenflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file input (maybe gigabytes) is loaded on a worker thread, never on the event loop:
    the loop keeps committing other steps' events meanwhile. Inline inputs stay on the loop."""
    import threading

    loads: list[tuple[str, bool]] = []
    original = ArtifactStore.load

    def load(self: ArtifactStore, ref: ArtifactRef) -> Any:
        loads.append((ref.type_name, threading.current_thread() is threading.main_thread()))
        return original(self, ref)

    monkeypatch.setattr(ArtifactStore, "load", load)
    # As in a process that did not write them (a resumed run): the files are not at hand.
    monkeypatch.setattr(ArtifactStore, "in_memory", lambda self, ref: ref.uri.startswith(DATA_URI))

    @step(enable_cache=False)
    async def produce() -> bytes:
        return b"y" * (INLINE_MAX + 10)

    @step(enable_cache=False)
    async def count() -> int:
        return 3

    @step(enable_cache=False)
    async def consume(data: bytes, n: int) -> int:
        return len(data) + n

    @step(enable_cache=False)
    async def double(n: int) -> int:
        return 2 * n

    @pipeline
    def files() -> None:
        n = count()
        consume(produce(), n, after="double")
        double(n)

    run = files()
    on_loop = [name for name, main in loads if main]
    off_loop = [name for name, main in loads if not main]
    # double's input is inline: the event loop loads it itself. consume's include a file: all
    # of them are loaded on a thread.
    assert on_loop == ["builtins:int"]
    assert sorted(off_loop) == ["builtins:bytes", "builtins:int"]
    assert run.steps["consume"].output.load() == INLINE_MAX + 13
