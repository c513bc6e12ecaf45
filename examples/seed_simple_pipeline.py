"""Seed: "Creating a Pipeline", "Local Execution" and "With Configuration Override".

The pipeline and the calls are the seed's, with only the imports changed; the seed does not show
`simple_step`, so it is defined here.
"""

from typing import Annotated

from engine import pipeline, step
from engine.config import PipelineRunConfiguration


@step
def simple_step(name: str) -> Annotated[str, "greeting"]:
    return f"Hello {name}!"


@pipeline
def simple_pipeline(name: str = "World") -> Annotated[str, "greeting"]:
    """A simple pipeline that demonstrates ZenML basics.

    Args:
        name: Name to include in greeting

    Returns:
        A greeting message as an artifact
    """
    greeting = simple_step(name=name)
    return greeting


def run_config_override() -> None:
    run_config = PipelineRunConfiguration(
        enable_cache=False,
        run_name="experimental_run"
    )

    simple_pipeline.with_options(**run_config)(name="Bob")


if __name__ == "__main__":
    simple_pipeline(name="Alice")
    run_config_override()
