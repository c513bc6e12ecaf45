"""The layering rule: ``events`` <- ``projections`` <- ``engine``. Dependencies point one way;
this walks every module's imports (absolute and relative, ``import x`` and ``from x import y``,
at any depth, including under ``if TYPE_CHECKING:``) and fails on one that points back up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# package -> the evenflow packages it must not import
FORBIDDEN = {
    "events": {"projections", "engine"},
    "projections": {"engine"},
    "engine": set[str](),
}


def _module_name(path: Path, root: Path) -> list[str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_packages(path: Path, root: Path = ROOT) -> set[tuple[int, str]]:
    """``(line, top-level package)`` of every import in the file at ``path`` under ``root``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module[:-1]
    found: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                assert node.module is not None
                found.add((node.lineno, node.module.split(".")[0]))
                continue
            # Relative: climb ``level - 1`` packages up from this module's package.
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = [*base, *(node.module.split(".") if node.module else [])]
            if target:
                found.add((node.lineno, target[0]))
            else:  # ``from .. import x`` from a top-level package: x is the package
                found.update((node.lineno, alias.name) for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add((node.lineno, node.args[0].value.lstrip(".").split(".")[0]))
    return found


def violations(package: str) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, target in sorted(imported_packages(path)):
            if target in FORBIDDEN[package]:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    return out


@pytest.mark.parametrize("package", list(FORBIDDEN))
def test_dependencies_point_one_way(package: str) -> None:
    assert (ROOT / package).is_dir()
    assert violations(package) == []


@pytest.mark.parametrize(
    ("source", "where", "target"),
    [
        ("import engine", "events/_x.py", "engine"),
        ("import engine.errors as e", "events/_x.py", "engine"),
        ("from engine import errors", "events/_x.py", "engine"),
        ("from engine._run import Run", "projections/_x.py", "engine"),
        ("from ..engine import errors", "events/_x.py", "engine"),
        ("from .. import projections", "events/_x.py", "projections"),
        ("from ...projections import x", "events/sub/_x.py", "projections"),
        ("from . import _codec", "events/_x.py", "events"),
        ("from .sub import y", "events/__init__.py", "events"),
        ("if TYPE_CHECKING:\n    from engine import Engine", "events/_x.py", "engine"),
        ("def f():\n    import projections", "events/_x.py", "projections"),
        ("importlib.import_module('engine._run')", "events/_x.py", "engine"),
    ],
)
def test_the_walker_sees_every_kind_of_import(
    tmp_path: Path, source: str, where: str, target: str
) -> None:
    path = tmp_path / where
    path.parent.mkdir(parents=True)
    path.write_text(source + "\n")
    assert target in {t for _, t in imported_packages(path, tmp_path)}
