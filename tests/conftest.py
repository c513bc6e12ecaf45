"""Every test gets its own EVENFLOW_HOME; async tests run on anyio's asyncio backend."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def evenflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("EVENFLOW_HOME", str(home))
    return home


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
