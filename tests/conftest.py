"""Every test gets its own EVENFLOW_HOME; async tests run on anyio's asyncio backend; property
tests have no time limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# CI machines are shared and now and then several times slower: an example that takes long to
# generate or to run is not a failure (a test's own @settings still set what they name).
settings.register_profile("evenflow", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("evenflow")


@pytest.fixture(autouse=True)
def evenflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("EVENFLOW_HOME", str(home))
    return home


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
