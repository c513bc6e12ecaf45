"""The model a run's outputs are linked to: :class:`Model` and the stage names it accepts.

What a run does with it (versions, stages, linked artifacts) is in :mod:`engine._models`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from ._config_base import ConfigObject
from ._config_checks import (
    as_bool,
    as_int,
    as_opt_str,
    as_str,
    as_str_tuple,
    invalid,
)

MODEL_STAGES = ("none", "staging", "production", "archived", "latest")
"""Stage names a ``Model(version=...)`` may refer to (ZenML's ``ModelStages``)."""


def _model_version(value: object) -> str | int | None:
    raw = value.value if isinstance(value, enum.Enum) else value
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return as_int("Model", "version", raw, minimum=1)
    if isinstance(raw, str) and raw.strip():
        return raw.lower() if raw.lower() in MODEL_STAGES else raw
    raise invalid("Model", "version", "a version name, a number or a stage", value)


class Model(ConfigObject):
    """The model a run's outputs are linked to: ``Model(name="churn", version="production")``.

    ``version`` is a version name (``"{date}"``/``"{time}"`` placeholders allowed), a number, a
    stage (``"production"``, ``"staging"``, ``"latest"``, ...) or ``None`` (a new version).
    """

    name: str
    version: str | int | None
    tags: tuple[str, ...]
    description: str | None
    license: str | None
    audience: str | None
    use_cases: str | None
    limitations: str | None
    trade_offs: str | None
    ethics: str | None
    save_models_to_registry: bool

    def __init__(
        self,
        name: str,
        version: str | int | enum.Enum | None = None,
        *,
        tags: Iterable[str] | None = None,
        description: str | None = None,
        license: str | None = None,
        audience: str | None = None,
        use_cases: str | None = None,
        limitations: str | None = None,
        trade_offs: str | None = None,
        ethics: str | None = None,
        save_models_to_registry: bool = True,
    ) -> None:
        w = "Model"
        self._set(
            name=as_str(w, "name", name),
            version=_model_version(version),
            tags=as_str_tuple(w, "tags", tags),
            description=as_opt_str(w, "description", description),
            license=as_opt_str(w, "license", license),
            audience=as_opt_str(w, "audience", audience),
            use_cases=as_opt_str(w, "use_cases", use_cases),
            limitations=as_opt_str(w, "limitations", limitations),
            trade_offs=as_opt_str(w, "trade_offs", trade_offs),
            ethics=as_opt_str(w, "ethics", ethics),
            save_models_to_registry=as_bool(w, "save_models_to_registry", save_models_to_registry),
        )

    @property
    def version_stage(self) -> str | None:
        """The stage ``version`` names, if it names one."""
        return self.version if self.version in MODEL_STAGES else None

    @property
    def version_number(self) -> int | None:
        """``version`` if it is a number."""
        return self.version if isinstance(self.version, int) else None
