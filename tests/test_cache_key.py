"""Cache keys: code fingerprints, what the key covers, what the policy drops, and stability
across processes and hash seeds."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import importlib.util
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine._artifacts import ArtifactStore
from engine._cache_key import (
    CACHE_VERSION,
    CacheKeyError,
    CacheKeyInputs,
    KeyTemplate,
    code_fingerprint,
    compute_cache_key,
    input_content_hash,
    inputs_from_refs,
    is_expired,
)
from engine._cache_typed import typed
from engine.config import CachePolicy
from engine.errors import InvalidParameterError, PipelineDefinitionError
from events import ArtifactRef

REPO = Path(__file__).resolve().parents[1]
MODULE = "evenflow_ck_flows"

FLOWS = """
import functools

from engine import step

LIMIT = {limit}
TAGS = {{"alpha", "beta", "gamma", "delta"}}


def helper(x):
    return x + {helper_add}


class Scaler:
    factor = 2

    def scale(self, x):
        return x * self.factor + {method_add}


def make(k):
    @step
    def add_k(x: int) -> int:
        return x + k

    return add_k


@functools.lru_cache
def cached_helper(x):
    return x * {cached_add}


{decorator}
def s(x: int, label: str = "a") -> int:
    if label in {{"p", "q", "r"}} or label in TAGS:
        x += 1
    return helper(x) * LIMIT + Scaler().scale(x) + cached_helper(x) + {body}
"""

BASE = {
    "limit": "3",
    "helper_add": "1",
    "method_add": "0",
    "cached_add": "2",
    "decorator": "@step",
    "body": "0",
}


@pytest.fixture
def load(tmp_path: Path) -> Iterator[Callable[..., ModuleType]]:
    """Load FLOWS with some placeholders changed, always under the same module name (the
    module name is part of what a fingerprint names), each version from its own file."""
    counter = iter(range(1000))

    def _load(**changes: str) -> ModuleType:
        folder = tmp_path / f"v{next(counter)}"
        folder.mkdir()
        path = folder / "flows.py"
        path.write_text(FLOWS.format(**{**BASE, **changes}))
        spec = importlib.util.spec_from_file_location(MODULE, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE] = module
        spec.loader.exec_module(module)
        return module

    yield _load
    sys.modules.pop(MODULE, None)


# -- code fingerprints ---------------------------------------------------------------------------


def test_fingerprint_is_the_same_for_a_step_and_its_function(
    load: Callable[..., ModuleType],
) -> None:
    flows = load()
    assert code_fingerprint(flows.s) == code_fingerprint(flows.s.entrypoint)
    assert code_fingerprint(flows.s) == code_fingerprint(load().s)  # same code, new objects


@pytest.mark.parametrize(
    "change",
    [
        {"body": "1"},  # the step body
        {"helper_add": "2"},  # a helper function the step calls
        {"limit": "4"},  # a referenced global constant
        {"method_add": "5"},  # a method of a user class the step uses
        {"cached_add": "3"},  # a helper behind functools.lru_cache
    ],
    ids=lambda c: next(iter(c)),
)
def test_code_changes_change_the_fingerprint(
    load: Callable[..., ModuleType], change: dict[str, str]
) -> None:
    before = code_fingerprint(load().s)
    assert code_fingerprint(load(**change).s) != before


@pytest.mark.parametrize(
    "decorator",
    ["@step(enable_cache=True)", "@step(\n    enable_cache=False,\n    name='s',\n)"],
)
def test_decorator_changes_do_not_change_the_fingerprint(
    load: Callable[..., ModuleType], decorator: str
) -> None:
    assert code_fingerprint(load(decorator=decorator).s) == code_fingerprint(load().s)


def test_closure_variable_changes_the_fingerprint(load: Callable[..., ModuleType]) -> None:
    flows = load()
    assert code_fingerprint(flows.make(1)) != code_fingerprint(flows.make(2))
    assert code_fingerprint(flows.make(1)) == code_fingerprint(flows.make(1))


def test_library_code_is_named_not_read(load: Callable[..., ModuleType]) -> None:
    from engine._fingerprint import _is_library

    load()
    assert _is_library("json")  # the standard library
    assert _is_library("hypothesis.strategies")  # site-packages
    assert _is_library("engine._step")  # evenflow itself: CACHE_VERSION covers it
    assert not _is_library(MODULE)  # user code
    assert not _is_library(__name__)


def _lock_user() -> Callable[[], bool]:
    import threading

    lock = threading.Lock()

    def uses_lock() -> bool:
        return lock.locked()

    return uses_lock


def test_values_without_canonical_encoding_contribute_their_type() -> None:
    # two different locks: only their type is in the fingerprint
    assert code_fingerprint(_lock_user()) == code_fingerprint(_lock_user())


def _module_user(add: int) -> Callable[[int], int]:
    helpers = ModuleType("evenflow_ck_helpers")  # no file: its code is fingerprinted by bytecode
    exec(f"def clean(x):\n    return x + {add}\n", helpers.__dict__)

    def uses_module(x: int) -> int:
        return helpers.clean(x)  # type: ignore[no-any-return]

    return uses_module


def test_attributes_of_a_user_module_are_followed() -> None:
    assert code_fingerprint(_module_user(1)) == code_fingerprint(_module_user(1))
    assert code_fingerprint(_module_user(1)) != code_fingerprint(_module_user(2))


def test_recursive_functions_terminate() -> None:
    def even(n: int) -> bool:
        return n == 0 or odd(n - 1)

    def odd(n: int) -> bool:
        return n != 0 and even(n - 1)

    assert code_fingerprint(even) != code_fingerprint(odd)


def test_a_fingerprint_is_kept_until_a_name_it_read_is_rebound(
    load: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    import inspect

    module = load()
    first = code_fingerprint(module.s.entrypoint)

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the source was read again")

    monkeypatch.setattr(inspect, "getsourcelines", fail)
    assert code_fingerprint(module.s.entrypoint) == first  # same code, same values
    module.TAGS.add("epsilon")  # changed in place: the fingerprint is kept (documented)
    assert code_fingerprint(module.s.entrypoint) == first
    module.LIMIT = 99  # a referenced global rebound while the process runs (a notebook)
    assert code_fingerprint(module.s.entrypoint) != first


# -- keys ----------------------------------------------------------------------------------------

BASE_INPUTS = CacheKeyInputs(
    step="train",
    code="c0de",
    parameters={"lr": 0.1, "epochs": 3, "tags": ["a", "b"]},
    input_hashes={"data": "h1", "parts": ["h2", "h3"]},
    input_ids={"data": "id1", "parts": ["id2", "id3"]},
    environment={"MODE": "fast"},
    secrets=["db", "aws"],
    materializers={"output": "my.mod:Mat"},
)


def key(inputs: CacheKeyInputs = BASE_INPUTS, policy: CachePolicy | None = None) -> str:
    return compute_cache_key(inputs, policy)


def test_key_is_a_hex_digest_and_deterministic() -> None:
    assert key() == key()
    assert len(key()) == 64
    int(key(), 16)
    assert key(policy=CachePolicy()) == key()


@pytest.mark.parametrize(
    "change",
    [
        {"step": "train2"},
        {"code": "c0de2"},
        {"parameters": {"lr": 0.2, "epochs": 3, "tags": ["a", "b"]}},
        {"parameters": {"lr": 0.1, "epochs": 3, "tags": ["b", "a"]}},
        {"input_hashes": {"data": "h9", "parts": ["h2", "h3"]}},
        {"input_hashes": {"data": "h1", "parts": ["h3", "h2"]}},  # fan-in order matters
        {"environment": {"MODE": "slow"}},
        {"secrets": ["db"]},
        {"materializers": {"output": "my.mod:Other"}},
        {"cache_version": "next"},
        {"extra": "v2"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_each_part_changes_the_key(change: dict[str, Any]) -> None:
    assert key(dataclasses.replace(BASE_INPUTS, **change)) != key()


def test_order_of_secrets_and_mappings_does_not_matter() -> None:
    reordered = dataclasses.replace(
        BASE_INPUTS,
        secrets=["aws", "db", "db"],
        parameters=dict(reversed(list(BASE_INPUTS.parameters.items()))),
        input_hashes=dict(reversed(list(BASE_INPUTS.input_hashes.items()))),
    )
    assert key(reordered) == key()


def test_ids_are_not_used_when_content_hashes_are() -> None:
    # ZenML's default (both include flags on) keys on content: a re-run upstream step makes
    # new ids for the same bytes, and that must still hit the cache
    assert key(dataclasses.replace(BASE_INPUTS, input_ids={"data": "x", "parts": ["y", "z"]})) == (
        key()
    )


def test_include_step_code_and_parameters() -> None:
    no_code = CachePolicy(include_step_code=False)
    assert key(dataclasses.replace(BASE_INPUTS, code="other"), no_code) == key(policy=no_code)
    no_params = CachePolicy(include_step_parameters=False)
    changed = dataclasses.replace(BASE_INPUTS, parameters={"lr": object()})
    assert key(changed, no_params) == key(policy=no_params)
    assert key(policy=no_code) != key() != key(policy=no_params)


def test_artifact_ids_instead_of_values() -> None:
    ids_only = CachePolicy(include_artifact_values=False)
    assert key(dataclasses.replace(BASE_INPUTS, input_hashes={}), ids_only) == key(policy=ids_only)
    other_ids = dataclasses.replace(BASE_INPUTS, input_ids={"data": "id9", "parts": ["id2", "id3"]})
    assert key(other_ids, ids_only) != key(policy=ids_only)


def test_neither_values_nor_ids_keeps_input_names_only() -> None:
    neither = CachePolicy(include_artifact_values=False, include_artifact_ids=False)
    changed = dataclasses.replace(
        BASE_INPUTS, input_hashes={"data": "z", "parts": []}, input_ids={}
    )
    assert key(changed, neither) == key(policy=neither)


def test_an_input_without_a_usable_identity_is_an_error() -> None:
    no_hash = dataclasses.replace(BASE_INPUTS, input_hashes={"data": "h1", "parts": ["h2", ""]})
    # falls back to the ids, as ZenML does
    assert key(no_hash) != key()
    values_only = CachePolicy(include_artifact_ids=False)
    with pytest.raises(CacheKeyError, match=r"step 'train': input 'parts' has no content hash"):
        key(no_hash, values_only)
    ids_only = CachePolicy(include_artifact_values=False)
    with pytest.raises(CacheKeyError, match=r"input 'data' has no artifact id"):
        key(dataclasses.replace(BASE_INPUTS, input_ids={}), ids_only)


@pytest.mark.parametrize("field", ["ignore_fields", "ignored_inputs"])
def test_ignored_names_drop_parameters_and_inputs(field: str) -> None:
    policy = CachePolicy(**{field: ["lr", "data"]})
    changed = dataclasses.replace(
        BASE_INPUTS,
        parameters={**BASE_INPUTS.parameters, "lr": open},  # not even encoded
        input_hashes={**BASE_INPUTS.input_hashes, "data": "other"},
        input_ids={},
    )
    assert key(changed, policy) == key(policy=policy)
    assert key(dataclasses.replace(BASE_INPUTS, parameters={"epochs": 4}), policy) != key(
        policy=policy
    )


def test_unencodable_parameter_names_step_and_parameter() -> None:
    bad = dataclasses.replace(BASE_INPUTS, parameters={"lr": 0.1, "fh": lambda: 1})
    with pytest.raises(InvalidParameterError, match=r"step 'train': parameter 'fh'"):
        key(bad)


def _token() -> str:
    return "token-1"


def _number() -> int:
    return 7


def _broken() -> str:
    raise RuntimeError("no network")


def test_cache_func_result_joins_the_key() -> None:
    with_func = CachePolicy(cache_func=_token)
    assert key(policy=with_func) != key()
    assert key(policy=with_func) == key(dataclasses.replace(BASE_INPUTS, extra="token-1"))
    assert key(policy=CachePolicy(cache_func=_number)) != key()
    with pytest.raises(CacheKeyError, match=r"step 'train': cache_func .*RuntimeError: no network"):
        key(policy=CachePolicy(cache_func=_broken))
    with pytest.raises(CacheKeyError, match="must return a string"):
        key(policy=CachePolicy(cache_func=object))


def test_cache_key_error_is_a_definition_error() -> None:
    assert issubclass(CacheKeyError, PipelineDefinitionError)


# -- inputs --------------------------------------------------------------------------------------


def test_inputs_from_refs() -> None:
    def ref(i: int) -> ArtifactRef:
        return ArtifactRef(
            id=f"id{i}", name="x", content_hash=f"h{i}", uri="u", materializer="m", type_name="t"
        )

    hashes, ids = inputs_from_refs({"a": ref(1), "b": [ref(2), ref(3)]})
    assert hashes == {"a": "h1", "b": ["h2", "h3"]}
    assert ids == {"a": "id1", "b": ["id2", "id3"]}


def test_input_content_hash_matches_save(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    digest = input_content_hash(store, "train", "data", {"rows": [1, 2, 3]})
    assert digest == store.save({"rows": [1, 2, 3]}, name="data").content_hash


def test_input_that_cannot_be_hashed_names_step_and_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.errors import ArtifactError

    store = ArtifactStore(tmp_path / "artifacts")

    def refuse(value: Any, **_: Any) -> str:
        raise ArtifactError("a value of type Gizmo cannot be serialized")

    monkeypatch.setattr(store, "hash_value", refuse)
    with pytest.raises(CacheKeyError, match=r"step 'train': input 'data' \(int\) cannot be hashed"):
        input_content_hash(store, "train", "data", 3)


# -- expiry --------------------------------------------------------------------------------------


def test_expiry() -> None:
    day = CachePolicy(max_age_days=1)
    assert not is_expired(1000.0, 1000.0 + 86_400, day)  # valid up to and including the age
    assert is_expired(1000.0, 1000.0 + 86_400.5, day)
    assert not is_expired(1000.0, 10.0**12, None)
    assert not is_expired(1000.0, 10.0**12, CachePolicy())
    assert is_expired(0.0, 61.0, CachePolicy(expires_after=60))
    assert not is_expired(100.0, 50.0, CachePolicy(expires_after=60))  # clock skew


@settings(max_examples=200, deadline=None)
@given(
    created=st.floats(0, 2e9),
    age=st.floats(0, 1e7),
    max_age=st.floats(1e-3, 1e7),
)
def test_expiry_is_age_beyond_the_limit(created: float, age: float, max_age: float) -> None:
    policy = CachePolicy(expires_after=max_age)
    assert is_expired(created, created + age, policy) == ((created + age) - created > max_age)
    # monotonic: once expired, it stays expired
    if is_expired(created, created + age, policy):
        assert is_expired(created, created + age + 1, policy)


# -- properties ----------------------------------------------------------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)  # msgpack's range
    | st.floats(allow_nan=False)
    | st.text()
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    params=st.dictionaries(st.text(), _VALUES, max_size=6),
    env=st.dictionaries(st.from_regex(r"[A-Z_]{1,5}", fullmatch=True), st.text(), max_size=3),
)
def test_key_ignores_dict_order(params: dict[str, Any], env: dict[str, str]) -> None:
    first = dataclasses.replace(BASE_INPUTS, parameters=params, environment=env)
    second = dataclasses.replace(
        BASE_INPUTS,
        parameters=dict(reversed(list(params.items()))),
        environment=dict(reversed(list(env.items()))),
    )
    assert key(first) == key(second) == key(first)


@settings(max_examples=200, deadline=None)
@given(name=st.text(min_size=1), value=_VALUES, other=_VALUES)
def test_key_tells_parameter_values_apart(name: str, value: Any, other: Any) -> None:
    from engine._cache_key import _canonical

    first = dataclasses.replace(BASE_INPUTS, parameters={name: value})
    second = dataclasses.replace(BASE_INPUTS, parameters={name: other})
    same = _canonical.encode(typed(value)) == _canonical.encode(typed(other))
    assert (key(first) == key(second)) is same


# -- across processes ------------------------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import importlib.util, sys
    from engine._cache_key import CacheKeyInputs, code_fingerprint, compute_cache_key
    from engine.config import CachePolicy

    spec = importlib.util.spec_from_file_location("evenflow_ck_flows", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    sys.modules["evenflow_ck_flows"] = module
    spec.loader.exec_module(module)
    inputs = CacheKeyInputs(
        step="s",
        code=code_fingerprint(module.s),
        parameters={"b": {"y", "x", "z"}, "a": [1, 2.5, "t"], "c": {"k2": 1, "k1": 2}},
        input_hashes={"x": "h", "y": ["h1", "h2"]},
        environment={"B": "2", "A": "1"},
        secrets=["s2", "s1"],
        materializers={"output": "m:M"},
    )
    policy = CachePolicy(ignore_fields=["zz"], max_age_days=2)
    print(code_fingerprint(module.s), compute_cache_key(inputs, policy))
    """
)


def test_key_is_stable_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    flows = tmp_path / "flows.py"
    flows.write_text(FLOWS.format(**BASE))
    outputs = set()
    for seed in ("0", "1", "12345"):
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(flows)],
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        outputs.add(result.stdout)
    assert len(outputs) == 1, outputs


def test_cache_version_is_a_string() -> None:
    assert CACHE_VERSION == "2"


def _whole_document_key(inputs: CacheKeyInputs, policy: CachePolicy | None) -> str:
    """The recipe written out: the ten-part document encoded in one piece (what keys were
    computed as before parts were encoded ahead, and what stored cache entries hold)."""
    import hashlib

    from engine._cache_key import _canonical

    p = policy or CachePolicy()
    ignored = p.ignored_names
    params = (
        {n: _canonical.encode(typed(v)) for n, v in inputs.parameters.items() if n not in ignored}
        if p.include_step_parameters
        else None
    )
    names = sorted({*inputs.input_hashes, *inputs.input_ids} - ignored)
    found: Any
    if p.include_artifact_values:
        found = {n: ["hash", inputs.input_hashes[n]] for n in names}
    elif p.include_artifact_ids:
        found = {n: ["id", inputs.input_ids[n]] for n in names}
    else:
        found = names
    document = [
        "evenflow-cache-key",
        inputs.cache_version,
        inputs.step,
        inputs.code if p.include_step_code else None,
        params,
        found,
        dict(inputs.environment),
        sorted(set(inputs.secrets)),
        dict(inputs.materializers),
        inputs.extra,
    ]
    return hashlib.blake2b(_canonical.encode(document), digest_size=32).hexdigest()


_NAMES = st.from_regex(r"[a-z]{1,4}", fullmatch=True)
_HASHES = st.from_regex(r"[0-9a-f]{8}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(
    params=st.dictionaries(_NAMES, _VALUES, max_size=4),
    hashes=st.dictionaries(_NAMES, _HASHES | st.lists(_HASHES, min_size=1, max_size=3)),
    env=st.dictionaries(st.from_regex(r"[A-Z_]{1,5}", fullmatch=True), st.text(), max_size=3),
    secrets=st.lists(_NAMES, max_size=3),
    materializers=st.dictionaries(_NAMES, st.text(max_size=8), max_size=2),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    ignored=st.lists(_NAMES, max_size=2),
    extra=st.none() | st.text(max_size=8),
)
def test_keys_encoded_in_parts_are_the_whole_documents_keys(
    params: dict[str, Any],
    hashes: dict[str, Any],
    env: dict[str, str],
    secrets: list[str],
    materializers: dict[str, str],
    flags: tuple[bool, bool, bool, bool],
    ignored: list[str],
    extra: str | None,
) -> None:
    code, parameters, values, ids = flags
    policy = CachePolicy(
        include_step_code=code,
        include_step_parameters=parameters,
        include_artifact_values=values,
        include_artifact_ids=ids,
        ignored_inputs=ignored,
    )
    ids_of = {
        n: [f"id-{h}" for h in v] if isinstance(v, list) else f"id-{v}" for n, v in hashes.items()
    }
    inputs = CacheKeyInputs(
        step="train",
        code="c0de",
        parameters=params,
        input_hashes=hashes,
        input_ids=ids_of,
        environment=env,
        secrets=secrets,
        materializers=materializers,
        extra=extra,
    )
    for chosen in (policy, None):
        expected = _whole_document_key(inputs, chosen)
        assert compute_cache_key(inputs, chosen) == expected
        template = KeyTemplate("train", "c0de", env, secrets, materializers, chosen)
        assert template.key(params, hashes, ids_of, extra) == expected
        assert template.key(params, hashes, ids_of, extra) == expected  # reusable


def test_a_script_keeps_its_fingerprint_whether_run_as_main_or_imported(tmp_path: Path) -> None:
    """``python flows.py`` runs the module as ``__main__``; ``evenflow run flows.py:p`` and a
    resume import it as ``flows``. A step that calls a helper of the same file must get the
    same key both ways, or every cached result of a script misses the other way round."""
    script = tmp_path / "flows.py"
    script.write_text(
        textwrap.dedent(
            """
            from engine._cache_key import code_fingerprint

            class Scale:
                factor = 2

            def helper(x):
                return x * Scale.factor

            def step_function():
                return helper(21)

            if __name__ == "__main__":
                print(code_fingerprint(step_function))
            """
        )
    )
    as_main = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True
    ).stdout.strip()
    imported = subprocess.run(
        [sys.executable, "-c", "import flows, engine._cache_key as k;"
         " print(k.code_fingerprint(flows.step_function))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.strip()  # fmt: skip
    assert len(as_main) == 32
    assert as_main == imported


class _Mode(enum.Enum):
    FAST = "fast"


@dataclasses.dataclass
class _Point:
    x: int
    y: int


_PARIS = datetime.timezone(datetime.timedelta(hours=2))
_NOON_UTC = datetime.datetime(2024, 6, 1, 12, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("fast", _Mode.FAST),
        (["a", "b"], ("a", "b")),
        (_NOON_UTC, _NOON_UTC.astimezone(_PARIS)),  # the same instant at another offset
        ("1.5", decimal.Decimal("1.5")),
        ("12345678-1234-5678-1234-567812345678", uuid.UUID("12345678-1234-5678-1234-567812345678")),
        ({"x": 1, "y": 2}, _Point(1, 2)),
        ("2024-06-01", datetime.date(2024, 6, 1)),
        ([1, [2, 3]], [1, (2, 3)]),  # nested too
        ({1: "a"}, {"1": "a"}),
    ],
    ids=["enum", "tuple", "utc-offset", "decimal", "uuid", "dataclass", "date", "nested", "keys"],
)
def test_parameters_that_encode_alike_but_differ_get_different_keys(
    first: Any, second: Any
) -> None:
    """msgspec writes these pairs as the same msgpack; the step receives different values, so
    one must never be served the other's cached result."""
    one = dataclasses.replace(BASE_INPUTS, parameters={"p": first})
    other = dataclasses.replace(BASE_INPUTS, parameters={"p": second})
    assert key(one) != key(other)
    assert key(one) == key(dataclasses.replace(BASE_INPUTS, parameters={"p": first}))
