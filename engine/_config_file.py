"""Reading a run configuration file (``PipelineRunConfiguration.from_yaml``, ``--config``).

Every error names the file and, where YAML can tell, the line: ``run.yaml:7: steps.trainer:
unknown key 'enable_cach' (did you mean 'enable_cache'?)``. PyYAML is imported here, only when a
file is read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._config_checks import unknown_key
from ._run_config import PipelineRunConfiguration, StepConfigurationUpdate
from .errors import ConfigurationError

if TYPE_CHECKING:
    import yaml

FILE_KEYS = frozenset(PipelineRunConfiguration._checks) - {"config_path"}
"""Top-level keys a configuration file may have (a file cannot point at another file)."""
STEP_KEYS = frozenset(StepConfigurationUpdate._checks)


def _parse(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The document and its node tree (for line numbers)."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "cannot be parsed"
        raise ConfigurationError(f"{source}{line}: invalid YAML: {problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{source}: invalid YAML: {exc}") from exc
    finally:
        loader.dispose()
    return data, node


def _key_lines(node: yaml.Node | None) -> dict[Any, tuple[str, yaml.Node]]:
    """For a mapping node: each scalar key -> (``":LINE"``, value node)."""
    import yaml

    lines: dict[Any, tuple[str, yaml.Node]] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                lines[key_node.value] = (f":{key_node.start_mark.line + 1}", value_node)
    return lines


def _line(node: yaml.Node | None) -> str:
    return "" if node is None else f":{node.start_mark.line + 1}"


def _check_key(key: Any, allowed: frozenset[str], where: str) -> None:
    if key not in allowed:
        raise ConfigurationError(unknown_key(where, key, allowed, what="key"))


def load_run_configuration(path: str | os.PathLike[str]) -> PipelineRunConfiguration:
    """Read, check and build the :class:`PipelineRunConfiguration` in the YAML file ``path``.

    Raises:
        ConfigurationError: the file is missing or unreadable, is not valid YAML, is not a
            mapping, or has an unknown key (top level or per step) or a bad value.
    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"{source}: configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{source}: configuration file cannot be read ({exc})") from exc
    data, node = _parse(text, source)
    if data is None:
        return PipelineRunConfiguration()
    if not isinstance(data, Mapping):
        raise ConfigurationError(
            f"{source}{_line(node)}: expected a mapping of configuration keys at the top level, "
            f"got {type(data).__name__}"
        )
    # Check and validate key by key, so that every error can name its line; the checks are
    # idempotent, so building the whole configuration at the end repeats them harmlessly.
    lines = _key_lines(node)
    for key, value in data.items():
        line, value_node = lines.get(key, ("", None))
        _check_key(key, FILE_KEYS, f"{source}{line}")
        if key == "steps" and isinstance(value, Mapping):
            step_lines = _key_lines(value_node)
            for step_id, options in value.items():
                step_line, step_node = step_lines.get(step_id, (line, None))
                if not isinstance(options, Mapping):
                    PipelineRunConfiguration._build(
                        {key: {step_id: options}}, f"{source}{step_line}"
                    )
                    continue
                option_lines = _key_lines(step_node)
                for option, option_value in options.items():
                    option_line = option_lines.get(option, (step_line, None))[0]
                    where = f"{source}{option_line}: steps.{step_id}"
                    _check_key(option, STEP_KEYS, where)
                    StepConfigurationUpdate._build({option: option_value}, where)
        PipelineRunConfiguration._build({key: value}, f"{source}{line}")
    return PipelineRunConfiguration(**data)
