"""README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_quick_start_runs() -> None:
    code = next(b for b in _blocks() if "def numbers" in b)
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(code, "README.md", "exec"), namespace)
    run = namespace["numbers"](n=4)  # type: ignore[operator]
    assert run.steps["total"].output.load() == 14


def test_dynamic_example_runs() -> None:
    code = next(b for b in _blocks() if "dynamic=True" in b)
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(code, "README.md", "exec"), namespace)
    small = namespace["squares"](n=3)  # type: ignore[operator]
    assert small.outputs[0].load() == 5
    big = namespace["squares"](n=10)  # type: ignore[operator]
    assert big.outputs[0].load() == 500
