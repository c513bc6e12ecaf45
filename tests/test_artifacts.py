"""The artifact store and the materializers: round trips, content addressing, fallbacks, errors."""

from __future__ import annotations

import base64
import collections
import dataclasses
import datetime
import decimal
import enum
import math
import os
import threading
import time
import typing
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Literal, NewType, Optional, Protocol, TypeVar, Union

import msgspec
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine._artifacts import DATA_URI, INLINE_MAX, ArtifactStore, check_output_type
from engine._materializers import BaseMaterializer, uses_bytes_protocol
from engine._materializers_builtin import BuiltInContainerMaterializer, BuiltInMaterializer
from engine._materializers_extra import CloudpickleMaterializer
from engine.errors import ArtifactError, StepOutputError
from events import ArtifactRef

# ---------------------------------------------------------------------------------------------
# Helpers and fixture types (module level, so that their import paths resolve)
# ---------------------------------------------------------------------------------------------


# Round trips run both ways: content in files (inline_max=0), and small content inline in its
# reference as a data: URI (the default). Tests about files use the file-backed ``store``.
STORAGE = pytest.mark.parametrize("inline_max", [0, INLINE_MAX], ids=["file", "inline"])


@pytest.fixture(scope="module", params=[0, INLINE_MAX], ids=["file", "inline"])
def shared_store(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> ArtifactStore:
    """One store per storage mode for property tests (content addressing makes sharing
    harmless)."""
    return ArtifactStore(tmp_path_factory.mktemp("artifacts"), inline_max=request.param)


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    """A store that writes every value to a file (most tests here are about files)."""
    return ArtifactStore(tmp_path / "artifacts", inline_max=0)


def stored_size(store: ArtifactStore, ref: ArtifactRef) -> int:
    """The size of ``ref``'s content where it is kept: its file, or its data: URI."""
    if ref.uri.startswith(DATA_URI):
        return len(base64.b64decode(ref.uri[len(DATA_URI) :], validate=True))
    return store.path_of(ref).stat().st_size


def same(a: Any, b: Any) -> bool:
    """Equal, of exactly the same types all the way down, with NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, set | frozenset):
        return a == b and all(any(same(x, y) for y in b) for x in a)
    return bool(a == b)


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts]


class Point(msgspec.Struct, frozen=True):
    x: int
    y: tuple[int, ...] = ()
    tags: frozenset[str] = frozenset()


@dataclasses.dataclass
class Config:
    name: str
    sizes: list[int]
    when: datetime.datetime | None = None


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    LOW = 1


Pair = collections.namedtuple("Pair", "left right")


class Opaque:
    """No materializer handles this: it is pickled."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.value == self.value

    __hash__ = None  # type: ignore[assignment]


class OpaqueInList(Opaque):
    pass


class OpaqueExplicit(Opaque):
    pass


class TaggedDict(dict[str, int]):
    """A dict subclass with state of its own: rebuilding it from a dict would lose ``tag``."""

    tag = "x"


class Text:
    def __init__(self, body: str) -> None:
        self.body = body


class TextMaterializer(BaseMaterializer):
    """A user materializer in ZenML's style: plain files under self.uri."""

    ASSOCIATED_TYPES = (Text, str)
    ASSOCIATED_ARTIFACT_TYPE = "data"

    def save(self, data: Any) -> None:
        body = data.body if isinstance(data, Text) else data
        with open(os.path.join(self.uri, "data.txt"), "w") as f:
            f.write(body)
        os.makedirs(os.path.join(self.uri, "meta"))
        with self.artifact_store.open(os.path.join(self.uri, "meta", "kind"), "w") as f:
            f.write(type(data).__qualname__)

    def load(self, data_type: type[Any]) -> Any:
        with open(os.path.join(self.uri, "data.txt")) as f:
            body = f.read()
        return body.upper() if data_type is str else data_type(body)

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        return {"length": len(data.body if isinstance(data, Text) else data)}


class BrokenMaterializer(BaseMaterializer):
    def save(self, data: Any) -> None:
        raise RuntimeError("disk on fire")


# ---------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------

BUILTIN_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    2**64,
    -(2**63) - 1,
    10**40,
    0.0,
    -0.0,
    1.5,
    math.inf,
    -math.inf,
    math.nan,
    "",
    "héllo wörld",
    "lone \ud800 surrogate",
    b"",
    b"\x00\xff",
    bytearray(b"mutable"),
    [],
    (),
    {},
    set(),
    frozenset(),
    [1, "a", None, [2.5, (3, 4)]],
    (1, (2, (3,)), [4]),
    {"a": {"b": [1, {"c": (1, 2)}]}},
    {1: "int key", 2.5: "float key", None: "none key", b"k": "bytes key", (1, "t"): "tuple key"},
    {frozenset({1, 2}): {3, 4}},
    {1, "two", (3, 4), frozenset({5})},
    [{1, 2}, frozenset({"a"}), (set(), {})],
    {"big": [2**70, -(2**70)]},
    ["nested \ud800 surrogate"],  # not UTF-8: pickled
]


@STORAGE
@pytest.mark.parametrize("value", BUILTIN_VALUES, ids=repr)
def test_builtin_round_trip(tmp_path: Path, inline_max: int, value: Any) -> None:
    store = ArtifactStore(tmp_path / "artifacts", inline_max=inline_max)
    ref = store.save(value, name="output")
    assert same(store.load(ref), value)
    assert same(ArtifactStore(store.root).load(ref), value)  # another process
    assert ref.type_name == f"builtins:{type(value).__qualname__}"
    assert ref.size == stored_size(store, ref)
    # every value here is small: inline unless the store writes files
    inline = inline_max > 0
    assert ref.uri.startswith(DATA_URI) is inline
    assert (files_under(store.root) == []) is inline


_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(max_size=20)
)
_hashables = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3).map(tuple) | st.frozensets(inner, max_size=3),
    max_leaves=8,
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        | st.dictionaries(_hashables, inner, max_size=3)
        | st.sets(_hashables, max_size=4)
        | st.frozensets(_hashables, max_size=3)
    ),
    max_leaves=20,
)

_property = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_property
@given(value=_values)
def test_nested_values_round_trip(shared_store: ArtifactStore, value: Any) -> None:
    ref = shared_store.save(value, name="output")
    assert ref.materializer.endswith(
        (":BuiltInMaterializer", ":BuiltInContainerMaterializer", ":BytesMaterializer")
    )
    assert same(shared_store.load(ref), value)
    assert shared_store.hash_value(value) == ref.content_hash


@_property
@given(value=_scalars)
def test_scalars_round_trip(shared_store: ArtifactStore, value: Any) -> None:
    assert same(shared_store.load(shared_store.save(value, name="x")), value)


@pytest.mark.parametrize(
    "value",
    [
        Point(1, (2, 3), frozenset({"a"})),
        Config("c", [1, 2], datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC)),
        Color.RED,
        Level.LOW,
        Pair(1, "b"),
        datetime.datetime(2024, 5, 6, 7, 8, 9),
        datetime.date(2024, 5, 6),
        datetime.time(7, 8),
        datetime.timedelta(days=2, microseconds=3),
        uuid.UUID(int=7),
        decimal.Decimal("1.10"),
        [Point(1), Config("n", []), Pair(Color.RED, Level.LOW)],
        {"when": datetime.date(2024, 1, 1), "id": uuid.UUID(int=1)},
    ],
    ids=repr,
)
@STORAGE
def test_typed_round_trip(tmp_path: Path, inline_max: int, value: Any) -> None:
    store = ArtifactStore(tmp_path / "artifacts", inline_max=inline_max)
    ref = store.save(value, name="output")
    assert not ref.materializer.endswith(":CloudpickleMaterializer")
    loaded = store.load(ref)
    assert type(loaded) is type(value)
    assert loaded == value
    assert ArtifactStore(store.root).load(ref) == value  # another process
    if isinstance(value, list):
        assert [type(v) for v in loaded] == [type(v) for v in value]


def test_struct_type_is_rebuilt_from_its_import_path(tmp_path: Path) -> None:
    ref = ArtifactStore(tmp_path).save(Point(3), name="p")
    assert ref.type_name == f"{__name__}:Point"
    # A fresh store (as another process) resolves the type by import path.
    assert ArtifactStore(tmp_path).load(ref) == Point(3)


def test_dataclass_that_would_not_decode_is_pickled(store: ArtifactStore) -> None:
    bad = Config("c", ["not an int"])  # type: ignore[list-item]
    with structlog.testing.capture_logs() as logs:
        ref = store.save(bad, name="cfg")
    assert ref.materializer.endswith(":CloudpickleMaterializer")
    assert store.load(ref) == bad
    assert [log["type"] for log in logs] == [f"{__name__}:Config"]


def test_locally_defined_types_are_pickled(store: ArtifactStore) -> None:
    @dataclasses.dataclass
    class Local:
        x: int

    ref = store.save(Local(1), name="local")
    assert ref.materializer.endswith(":CloudpickleMaterializer")
    assert store.load(ref) == Local(1)
    # Another process cannot import the type by name; the pickle carries it.
    assert ArtifactStore(store.root).load(ref) == Local(1)


def test_subclass_of_a_builtin_keeps_its_type(store: ArtifactStore) -> None:
    value = TaggedDict(a=1)
    ref = store.save(value, name="d")
    loaded = store.load(ref)
    assert type(loaded) is TaggedDict
    assert loaded == value


def test_equal_sets_get_one_hash_whatever_their_iteration_order(store: ArtifactStore) -> None:
    words = [f"w{i}" for i in range(50)]
    first = set(words)
    second = set(range(1000)) | set(reversed(words))
    second -= set(range(1000))  # a bigger table: usually another iteration order
    assert first == second
    assert store.hash_value(first) == store.hash_value(second)
    assert store.hash_value({"k": first}) == store.hash_value({"k": second})


def test_equal_bytes_of_different_types_hash_apart(store: ArtifactStore) -> None:
    assert store.hash_value("a") != store.hash_value(b"a")
    assert store.hash_value([1, 2]) != store.hash_value((1, 2))
    assert store.hash_value(1) != store.hash_value(True)


def test_numpy_arrays_and_scalars(store: ArtifactStore) -> None:
    np = pytest.importorskip("numpy")
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    ref = store.save(array, name="array")
    assert ref.materializer.endswith(":NumpyMaterializer")
    loaded = store.load(ref)
    assert loaded.dtype == array.dtype
    assert (loaded == array).all()
    scalar = store.load(store.save(np.float64(0.5), name="scalar"))
    assert type(scalar) is np.float64
    assert scalar == 0.5
    objects = np.array([Opaque(1), None], dtype=object)
    ref = store.save(objects, name="objects")
    assert ref.materializer.endswith(":CloudpickleMaterializer")
    assert list(store.load(ref)) == list(objects)


# ---------------------------------------------------------------------------------------------
# User materializers and selection
# ---------------------------------------------------------------------------------------------


def test_user_materializer_writes_files_under_its_uri(store: ArtifactStore) -> None:
    ref = store.save(Text("hello"), name="text", materializer=TextMaterializer)
    directory = store.path_of(ref)
    assert directory.is_dir()
    assert (directory / "data.txt").read_text() == "hello"
    assert (directory / "meta" / "kind").read_text() == "Text"
    assert ref.size == len("hello") + len("Text")
    assert ref.materializer == f"{__name__}:TextMaterializer"
    loaded = store.load(ref)
    assert isinstance(loaded, Text)
    assert loaded.body == "hello"
    again = store.save(Text("hello"), name="text", materializer=TextMaterializer)
    assert again.content_hash == ref.content_hash
    assert store.hash_value(Text("hello"), materializer=TextMaterializer) == ref.content_hash
    assert store.extract_metadata(Text("hey"), materializer=TextMaterializer) == {"length": 3}
    assert len([p for p in store.root.iterdir() if p.name != ".tmp"]) == 1
    assert not any((store.root / ".tmp").iterdir())


def test_explicit_materializer_wins_over_the_builtin(store: ArtifactStore) -> None:
    ref = store.save("shout", name="s", materializer=TextMaterializer)
    assert ref.materializer.endswith(":TextMaterializer")
    assert store.load(ref) == "SHOUT"
    assert store.load(store.save("shout", name="s")) == "shout"


def test_explicit_materializer_must_handle_the_type(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactError, match=r"'n'.*TextMaterializer handles only Text, str"):
        store.save(3, name="n", materializer=TextMaterializer)
    ref = store.save(3, name="n", materializer=BuiltInMaterializer, data_type=int)
    assert store.load(ref) == 3


def test_failing_user_materializer_is_an_artifact_error(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactError, match=r"artifact 'model'.*disk on fire") as info:
        store.save(1, name="model", materializer=BrokenMaterializer)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert not any((store.root / ".tmp").iterdir())


def test_registered_materializer_is_chosen_by_mro(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, materializers=[TextMaterializer])
    assert store.save(Text("x"), name="t").materializer.endswith(":TextMaterializer")
    assert store.save(b"x", name="b").materializer.endswith(":BytesMaterializer")


def test_bytes_protocol_detection() -> None:
    class Overrides(BuiltInMaterializer):
        def save(self, data: Any) -> None:
            raise NotImplementedError

    assert uses_bytes_protocol(BuiltInMaterializer)
    assert not uses_bytes_protocol(Overrides)
    assert not uses_bytes_protocol(TextMaterializer)


def test_builtins_also_speak_zenml_directory_protocol(tmp_path: Path) -> None:
    materializer = BuiltInContainerMaterializer(str(tmp_path))
    materializer.save([1, (2,)])
    assert materializer.load(list) == [1, (2,)]


# ---------------------------------------------------------------------------------------------
# The cloudpickle fallback
# ---------------------------------------------------------------------------------------------


def test_cloudpickle_fallback_warns_once_per_type(store: ArtifactStore) -> None:
    with structlog.testing.capture_logs() as logs:
        refs = [store.save(Opaque(i), name="o") for i in range(3)]
        store.save(OpaqueInList(1), name="o")
        store.save([OpaqueInList(2)], name="o")
    assert [store.load(ref) for ref in refs] == [Opaque(0), Opaque(1), Opaque(2)]
    assert all(ref.materializer.endswith(":CloudpickleMaterializer") for ref in refs)
    assert [(log["event"], log["log_level"], log["type"]) for log in logs] == [
        ("artifact_pickled", "warning", f"{__name__}:Opaque"),
        ("artifact_pickled", "warning", f"{__name__}:OpaqueInList"),
    ]
    assert "only load artifacts from a store you trust" in logs[0]["detail"]


def test_container_holding_unknown_objects_is_pickled_whole(store: ArtifactStore) -> None:
    value = {"a": [OpaqueInList(5)], "b": (1, 2)}
    ref = store.save(value, name="mixed")
    assert ref.materializer.endswith(":CloudpickleMaterializer")
    assert ref.type_name == "builtins:dict"
    assert store.load(ref) == value


def test_explicit_builtin_does_not_fall_back(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactError, match=r"cannot store a .*OpaqueExplicit"):
        store.save([OpaqueExplicit(1)], name="x", materializer=BuiltInContainerMaterializer)


def test_unserializable_value_names_its_type(store: ArtifactStore) -> None:
    lock = threading.Lock()
    with pytest.raises(ArtifactError, match=r"artifact 'out' \(a value of type _thread:lock\)"):
        store.save(lock, name="out")
    with pytest.raises(ArtifactError, match=r"_thread:lock"):
        store.hash_value(lock)


def test_explicit_cloudpickle(store: ArtifactStore) -> None:
    ref = store.save({"a": 1}, name="p", materializer=CloudpickleMaterializer)
    assert ref.materializer.endswith(":CloudpickleMaterializer")
    assert store.load(ref) == {"a": 1}


# ---------------------------------------------------------------------------------------------
# Content addressing, errors, concurrency
# ---------------------------------------------------------------------------------------------


def test_same_value_shares_one_file_with_distinct_ids(store: ArtifactStore) -> None:
    refs = [store.save({"k": [1, 2]}, name=f"n{i}") for i in range(5)]
    assert len({ref.content_hash for ref in refs}) == 1
    assert len({ref.id for ref in refs}) == 5
    assert len({ref.uri for ref in refs}) == 1
    assert len(files_under(store.root)) == 1
    assert store.hash_value({"k": [1, 2]}) == refs[0].content_hash
    store.save({"k": [1, 3]}, name="other")
    assert len(files_under(store.root)) == 2


def test_fsync_mode_writes_files_and_directories(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, fsync=True, inline_max=0)
    ref = store.save({"a": 1}, name="f")
    assert store.path_of(ref).is_file()
    text = store.save(Text("t"), name="d", materializer=TextMaterializer)
    assert store.load(ref) == {"a": 1}
    assert store.load(text).body == "t"
    assert store.extract_metadata({"a": 1}) == {}


def test_content_written_by_an_earlier_process_is_reused(tmp_path: Path) -> None:
    ref = ArtifactStore(tmp_path, inline_max=0).save("x" * 100, name="a")
    path = ArtifactStore(tmp_path, inline_max=0).path_of(ref)
    before = path.stat().st_mtime_ns
    again = ArtifactStore(tmp_path, inline_max=0).save("x" * 100, name="a")
    assert again.uri == ref.uri
    assert path.stat().st_mtime_ns == before


def test_missing_file_is_an_artifact_error_naming_it(store: ArtifactStore) -> None:
    ref = store.save([1, 2, 3], name="model")
    assert store.exists(ref)
    store.path_of(ref).unlink()
    assert not store.exists(ref)
    with pytest.raises(
        ArtifactError, match=rf"artifact 'model' \(id {ref.id}\) is missing: .*{ref.content_hash}"
    ):
        store.load(ref)
    again = store.save([1, 2, 3], name="model")  # the store noticed: it writes the file again
    assert store.exists(ref)
    assert store.load(again) == [1, 2, 3]


def test_a_missing_known_file_is_noticed(store: ArtifactStore) -> None:
    first = store.save(None, name="output")
    store.path_of(first).unlink()  # behind the store's back
    assert not store.exists(first)  # exists() checks the disk and forgets the hash
    with pytest.raises(ArtifactError, match="is missing"):
        store.load(first)
    store.save(None, name="output")  # a save writes it again
    assert store.load(first) is None
    store.path_of(first).unlink()
    store.save(None, name="output")  # also while the hash is still known (one stat)
    assert store.path_of(first).exists()


def test_delete_forgets_the_content(store: ArtifactStore) -> None:
    ref = store.save("gone", name="g")
    assert store.delete(ref.content_hash)
    assert not store.delete(ref.content_hash)
    with pytest.raises(ArtifactError, match="not an artifact content hash"):
        store.delete("../" * 21 + "x")
    assert not store.exists(ref)
    store.save("gone", name="g")
    assert store.load(ref) == "gone"


def test_bad_references(store: ArtifactStore) -> None:
    ref = store.save(1, name="one")
    fields = {f: getattr(ref, f) for f in ref.__struct_fields__}
    for change, message in [
        ({"materializer": "nowhere.module:Thing"}, "cannot import its materializer"),
        ({"materializer": "builtins:int"}, "is not a materializer"),
        ({"type_name": "nowhere.module:Thing"}, "cannot import its type"),
        ({"uri": "../../etc/passwd"}, "invalid uri"),
        ({"uri": "/etc/passwd"}, "invalid uri"),
    ]:
        with pytest.raises(ArtifactError, match=message):
            store.load(ArtifactRef(**{**fields, **change}))


def test_corrupt_file_is_an_artifact_error(store: ArtifactStore) -> None:
    ref = store.save([1], name="l")
    store.path_of(ref).write_bytes(b"\xc1")  # never valid msgpack
    later = ArtifactStore(store.root)  # another process: nothing of it in memory
    with pytest.raises(ArtifactError, match=r"artifact 'l' .* cannot be loaded"):
        later.load(ref)


def test_concurrent_saves_from_threads(store: ArtifactStore) -> None:
    barrier = threading.Barrier(8)

    def work(worker: int) -> list[tuple[Any, ArtifactRef]]:
        barrier.wait()
        values: list[Any] = [None, worker % 2, {"shared": [1, 2]}, f"mine {worker}", Text("t")]
        values += range(worker % 2, 50)
        out = []
        for value in values:
            materializer = TextMaterializer if isinstance(value, Text) else None
            out.append((value, store.save(value, name="v", materializer=materializer)))
        return out

    with ThreadPoolExecutor(8) as pool:
        results = [pair for chunk in pool.map(work, range(8)) for pair in chunk]
    for value, ref in results:
        loaded = store.load(ref)
        assert loaded.body == "t" if isinstance(value, Text) else loaded == value
    assert len({ref.id for _, ref in results}) == len(results)
    hashes = {ref.content_hash for _, ref in results}
    on_disk = {p.name for p in store.root.glob("??/*")}
    assert on_disk == hashes
    assert not any((store.root / ".tmp").iterdir())


# ---------------------------------------------------------------------------------------------
# check_output_type
# ---------------------------------------------------------------------------------------------

T = TypeVar("T")
UserId = NewType("UserId", int)


class Closeable(Protocol):
    def close(self) -> None: ...


ACCEPTED: list[tuple[Any, Any]] = [
    (int, 1),
    (int, True),
    (float, 1),
    (float, 1.5),
    (complex, 2),
    (str, "s"),
    (Any, object()),
    (object, 3),
    (T, "anything"),
    ("ForwardRef", 1),
    (None, None),
    (Optional[int], None),  # noqa: UP045  (the typing spelling is what is under test)
    (int | None, 4),
    (Union[int, str], "s"),  # noqa: UP007
    (list[int], ["not checked inside"]),
    (typing.List[int], []),  # noqa: UP006
    (dict[str, int], {}),
    (tuple[int, ...], (1,)),
    (Sequence[int], (1, 2)),
    (Annotated[int, "name"], 3),
    (Annotated[Optional[Point], "p"], Point(1)),  # noqa: UP045
    (Literal["a", "b"], "a"),
    (UserId, 5),
    (Closeable, 5),  # not runtime-checkable: cannot be answered, accepted
    (typing.ClassVar[int], "odd"),
    (typing.Callable[[int], int], len),
    (type[int], bool),
]

REJECTED: list[tuple[Any, Any, str]] = [
    (int, "s", "expected int, got str"),
    (str, 1, "expected str, got int"),
    (float, "1.0", "expected float, got str"),
    (None, 1, "expected None, got int"),
    (Optional[int], "s", "expected int | None, got str"),  # noqa: UP045
    (list[int], (1,), "expected list[int], got tuple"),
    (Annotated[Point, "p"], {"x": 1}, "expected Point, got dict"),
    (Literal["a"], "b", "expected Literal['a'], got str"),
    (UserId, "u", "got str"),
]


@pytest.mark.parametrize(("annotation", "value"), ACCEPTED, ids=repr)
def test_check_output_type_accepts(annotation: Any, value: Any) -> None:
    check_output_type("train", "model", value, annotation)


@pytest.mark.parametrize(("annotation", "value", "message"), REJECTED, ids=repr)
def test_check_output_type_rejects(annotation: Any, value: Any, message: str) -> None:
    with pytest.raises(StepOutputError, match=r"^step 'train' output 'model': ") as info:
        check_output_type("train", "model", value, annotation)
    assert message in str(info.value)


def test_check_output_type_unannotated() -> None:
    import inspect

    check_output_type("s", "output", object(), inspect.Parameter.empty)


def test_a_known_file_removed_by_another_process_is_written_again(store: ArtifactStore) -> None:
    """A long-lived process (``evenflow serve``) must not record content whose file another
    process's ``gc`` removed since this store wrote it."""
    value = "x" * 2000
    first = store.save(value, name="output")
    path = store.path_of(first)
    path.unlink()  # what another process's gc does
    again = store.save_if_known(value, name="output")
    assert again is None  # not known any more: the caller writes it (off the event loop)
    second = store.save(value, name="output")
    assert store.path_of(second).exists()
    assert store.load(second) == value


def test_artifact_ids_are_unique_uuid7s_in_the_order_they_were_made(tmp_path: Path) -> None:
    """Ids grow with time (so new ``artifacts`` rows land on the id index's last pages, not on
    random ones), are valid version-7 UUIDs, and never repeat, also across threads."""
    store = ArtifactStore(tmp_path / "artifacts")
    made = [store.save(i, name="output").id for i in range(2000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    for raw in made[:50]:
        parsed = uuid.UUID(raw)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert parsed.hex == raw
    # The leading 48 bits are the Unix time in milliseconds when the id was made.
    millis = int(made[-1][:12], 16)
    assert abs(millis / 1000 - time.time()) < 60

    with ThreadPoolExecutor(4) as pool:
        batches = list(
            pool.map(lambda k: [store.save(k, name="o").id for _ in range(500)], range(4))
        )
    everything = [i for batch in batches for i in batch]
    assert len(set(everything)) == len(everything) == 2000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_a_forked_child_does_not_repeat_its_parents_artifact_ids(tmp_path: Path) -> None:
    """The ids' random bits are reseeded in a forked child (a process-pool worker, say):
    otherwise parent and child would make the same ids within the same millisecond."""
    store = ArtifactStore(tmp_path / "artifacts")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids' random halves, and leave at once
        try:
            os.write(write, "".join(store.save(i, name="o").id[16:] for i in range(8)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as stream:
        child = stream.read()
    os.waitpid(pid, 0)
    parent = "".join(store.save(i, name="o").id[16:] for i in range(8))
    assert len(child) == len(parent) == 8 * 16
    assert child != parent
