"""Loading versions of one module's source side by side, for tests of cache invalidation."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType


def load_version(tmp_path: Path, version: str, module: str, source: str) -> ModuleType:
    """Write ``source`` as ``<tmp>/<version>/<module>.py`` and import it fresh under the same
    module name (so only the code differs between versions, not the names)."""
    folder = tmp_path / version
    folder.mkdir()
    path = folder / f"{module}.py"
    path.write_text(textwrap.dedent(source))
    sys.modules.pop(module, None)
    importlib.invalidate_caches()
    spec = importlib.util.spec_from_file_location(module, path)
    assert spec is not None
    assert spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[module] = loaded
    spec.loader.exec_module(loaded)
    return loaded
