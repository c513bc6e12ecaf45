"""Seed: "Pipeline Hooks" (initialization, success and failure, cleanup), imports changed only.

The helpers the seed calls but does not show (send_notification, log_error, ...) are defined
here; they append to HOOK_LOG so the tests can see that each hook ran.
"""

from datetime import datetime

from engine import get_step_context, pipeline, step

HOOK_LOG: list[str] = []


def send_notification(message: str) -> None:
    HOOK_LOG.append(f"notify: {message}")


def log_error(exception: BaseException) -> None:
    HOOK_LOG.append(f"error: {exception}")


def alert_team(message: str) -> None:
    HOOK_LOG.append(f"alert: {message}")


def close_connections() -> None:
    HOOK_LOG.append("closed connections")


def release_resources() -> None:
    HOOK_LOG.append("released resources")


@step
def process_data() -> str:
    state = get_step_context().pipeline_state
    return f"processed after setup at {state['start_time']:%Y}"


@step
def risky_step() -> int:
    raise RuntimeError("the risky step failed")


@step
def allocate_resources() -> int:
    return 2


@step
def do_work() -> int:
    return 40


def setup_environment():
    """Run before pipeline starts."""
    print("Setting up environment...")
    return {"start_time": datetime.now()}

@pipeline(on_init=setup_environment)
def my_pipeline():
    process_data()


def on_success():
    """Called when pipeline completes successfully."""
    send_notification("Pipeline succeeded!")

def on_failure(exception: BaseException):
    """Called when pipeline fails."""
    log_error(exception)
    alert_team(f"Pipeline failed: {exception}")

@pipeline(
    on_success=on_success,
    on_failure=on_failure
)
def robust_pipeline():
    risky_step()


def cleanup():
    """Always runs at the end, even if pipeline fails."""
    close_connections()
    release_resources()

@pipeline(on_cleanup=cleanup)
def pipeline_with_cleanup():
    allocate_resources()
    do_work()


if __name__ == "__main__":
    my_pipeline()
    robust_pipeline.with_options(raise_on_failure=False)()
    pipeline_with_cleanup()
    print("\n".join(HOOK_LOG))
