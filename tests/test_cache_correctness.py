"""Caching and artifact storage that a review found wrong: a stale cache hit (a global rebound
in the same process, a global msgspec cannot encode, outputs that changed under a policy that
leaves the code out), a needless miss (a script's own materializer), values that did not come
back as they were stored, and an artifact directory lost to another process's gc."""

from __future__ import annotations

import dataclasses
import datetime
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest

from engine import CachePolicy, Client, ExecutionStatus, pipeline, step
from engine._artifacts import ArtifactStore
from engine._materializers import BaseMaterializer
from tests.pipelines.versions import load_version

REPO = Path(__file__).resolve().parents[1]


# -- helpers --------------------------------------------------------------------------------------


@pytest.fixture
def fresh_module() -> Iterator[str]:
    name = f"qa_review_flow_{time.monotonic_ns()}"
    yield name
    sys.modules.pop(name, None)


def python(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


# -- a referenced global rebound in the same process ----------------------------------------------

THRESHOLD_FLOW = """
    from engine import pipeline, step

    THRESHOLD = 0.5

    @step
    def classify(x: float = 0.7) -> bool:
        return x > THRESHOLD

    @pipeline
    def flow() -> bool:
        return classify()
"""


def test_rebinding_a_referenced_global_in_the_same_process_invalidates(
    tmp_path: Path, fresh_module: str
) -> None:
    """A notebook (or `evenflow serve`, or any long-lived app) changes a global the step reads:
    the next run must not reuse the result computed with the old value."""
    module = load_version(tmp_path, "v1", fresh_module, THRESHOLD_FLOW)
    first = module.flow()
    assert first.steps["classify"].output.load() is True
    module.THRESHOLD = 0.9
    again = module.flow()
    assert again.steps["classify"].status is ExecutionStatus.COMPLETED  # was: CACHED
    assert again.steps["classify"].output.load() is False  # was: True (stale)


# -- referenced globals msgspec cannot encode contribute only their type --------------------------

REGISTRY_FLOW = """
    from engine import pipeline, step

    def double(x):
        return x * 2

    TRANSFORMS = [double]

    @step
    def apply(x: int = 3) -> int:
        for transform in TRANSFORMS:
            x = transform(x)
        return x

    @pipeline
    def flow() -> int:
        return apply()
"""

PATH_FLOW = """
    from pathlib import Path

    from engine import pipeline, step

    DATA = Path("data/v1.csv")

    @step
    def apply() -> str:
        return DATA.stem

    @pipeline
    def flow() -> str:
        return apply()
"""


@pytest.mark.parametrize(
    ("source", "old", "new", "expected"),
    [
        (REGISTRY_FLOW, "x * 2", "x * 10", 30),
        (PATH_FLOW, "v1.csv", "v2.csv", "v2"),
    ],
    ids=["list-of-helper-functions", "pathlib-path"],
)
def test_changing_a_global_msgspec_cannot_encode_invalidates(
    tmp_path: Path, fresh_module: str, source: str, old: str, new: str, expected: Any
) -> None:
    """A global list of helper functions (a registry) or a ``Path`` constant: editing the file
    (a new process, or a fresh import) must change the step's key."""
    load_version(tmp_path, "v1", fresh_module, source).flow()
    run = load_version(tmp_path, "v2", fresh_module, source.replace(old, new)).flow()
    assert run.steps["apply"].status is ExecutionStatus.COMPLETED  # was: CACHED
    assert run.steps["apply"].output.load() == expected  # was: the v1 result


# -- output names are not in the key --------------------------------------------------------------


def test_changed_outputs_are_a_miss_even_when_step_code_is_left_out() -> None:
    """ZenML keys on the output names (and their materializers) whatever ``include_step_code``
    says; here a hit from the one-output version feeds a two-output step, and the downstream
    step fails with a KeyError."""
    no_code = CachePolicy(include_step_code=False)

    @step(name="split", cache_policy=no_code)
    def split_two(v: int = 1) -> tuple[Annotated[int, "train"], Annotated[int, "test"]]:
        return v, v + 1

    @step(name="split", cache_policy=no_code)
    def split_one(v: int = 1) -> Annotated[int, "train"]:
        return v

    @step
    def use(x: int) -> int:
        return x

    @pipeline(name="outputs_flow")
    def v1() -> None:
        use(split_one())

    @pipeline(name="outputs_flow")
    def v2() -> None:
        _, test = split_two()
        use(test)

    v1()
    run = v2.with_options(raise_on_failure=False)()
    assert run.steps["split"].status is ExecutionStatus.COMPLETED  # was: CACHED
    assert run.status is ExecutionStatus.COMPLETED  # was: FAILED ("use": KeyError 'test')
    assert run.steps["use"].output.load() == 2


# -- values that do not round-trip through MsgspecMaterializer ------------------------------------


@dataclasses.dataclass
class Score:
    value: float


@dataclasses.dataclass
class Report:
    rows: list  # type: ignore[type-arg]  # un-parameterized: list[Any]
    extra: Any


def test_aware_datetime_keeps_its_utc_offset(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    noon_in_paris = datetime.datetime(
        2024, 6, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )
    loaded = store.load(store.save(noon_in_paris, name="output"))
    assert loaded.utcoffset() == noon_in_paris.utcoffset()  # was: 0:00:00 (UTC)
    assert loaded.hour == 12  # was: 10


def test_dataclass_with_untyped_fields_round_trips(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    value = Report(rows=[("a", 1)], extra={"when": datetime.date(2024, 1, 1), "best": Score(0.9)})
    loaded = store.load(store.save(value, name="output"))
    # was: Report(rows=[['a', 1]], extra={'when': '2024-01-01', 'best': {'value': 0.9}})
    assert loaded == value


# -- a directory artifact removed by another process ----------------------------------------------


class Text:
    def __init__(self, body: str) -> None:
        self.body = body


class TextMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES = (Text,)

    def save(self, data: Text) -> None:
        with open(os.path.join(self.uri, "data.txt"), "w") as f:
            f.write(data.body)

    def load(self, data_type: type[Any]) -> Text:
        with open(os.path.join(self.uri, "data.txt")) as f:
            return Text(f.read())


def test_a_known_directory_removed_by_another_process_is_written_again(tmp_path: Path) -> None:
    """The bytes-protocol twin of this test exists (test_artifacts.py); for a user
    (directory-protocol) materializer a long-lived process records a reference to content
    another process's gc has deleted."""
    serve = ArtifactStore(tmp_path / "artifacts")  # the long-lived process (`evenflow serve`)
    gc = ArtifactStore(tmp_path / "artifacts")  # `evenflow runs delete` in another process
    first = serve.save(Text("hello"), name="text", materializer=TextMaterializer)
    assert gc.delete(first.content_hash)
    again = serve.save(Text("hello"), name="text", materializer=TextMaterializer)
    assert serve.path_of(again).is_dir()  # was: missing
    assert serve.load(again).body == "hello"  # was: ArtifactError "... is missing"


# -- scripts run as __main__ ----------------------------------------------------------------------

SCRIPT_TYPES = """
    import dataclasses

    from engine import pipeline, step

    @dataclasses.dataclass
    class Metrics:
        accuracy: float

    @step
    def evaluate() -> Metrics:
        return Metrics(0.9)

    @pipeline
    def p() -> Metrics:
        return evaluate()

    if __name__ == "__main__":
        print(p().id)
"""


def test_an_output_whose_type_is_defined_in_a_script_loads_in_another_process(
    tmp_path: Path,
) -> None:
    """`python flows.py` stores the output as type ``__main__:Metrics``: no other process (the
    Client in a notebook, a later run reusing it from the cache) can load it."""
    (tmp_path / "flows.py").write_text(textwrap.dedent(SCRIPT_TYPES))
    result = python(["flows.py"], tmp_path)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip().splitlines()[-1]
    output = Client().get_pipeline_run(run_id).steps["evaluate"].output
    loaded = output.load()  # was: ArtifactError "cannot import its type '__main__:Metrics'"
    assert loaded.accuracy == 0.9


SCRIPT_MATERIALIZER = """
    import os

    from engine import BaseMaterializer, pipeline, step

    class TextMaterializer(BaseMaterializer):
        ASSOCIATED_TYPES = (str,)

        def save(self, data):
            with open(os.path.join(self.uri, "t.txt"), "w") as f:
                f.write(data)

        def load(self, data_type):
            with open(os.path.join(self.uri, "t.txt")) as f:
                return f.read()

    @step(output_materializers=TextMaterializer)
    def make() -> str:
        return "hello"

    @pipeline
    def p() -> str:
        return make()

    if __name__ == "__main__":
        print(p().steps["make"].status.value)
"""


def test_a_script_materializer_keeps_the_key_whether_run_as_main_or_imported(
    tmp_path: Path,
) -> None:
    """The code fingerprint names a script's module by its file either way
    (``_cache_typed.module_label``), and so does the materializer part of the key."""
    (tmp_path / "flows.py").write_text(textwrap.dedent(SCRIPT_MATERIALIZER))
    as_main = python(["flows.py"], tmp_path)
    assert as_main.returncode == 0, as_main.stderr
    imported = python(["-c", "import flows; print(flows.p().steps['make'].status.value)"], tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip().splitlines()[-1] == "cached"  # was: completed
