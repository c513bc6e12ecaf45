"""``evenflow runs resume`` and ``evenflow runs cancel``: recovery through the log.

``resume`` drives a crashed run to its end in this process (finished steps are reused, steps
lost with the dead process run again); ``cancel`` stops a run whichever process owns it.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ._cli_load import CliError

_RUN = typer.Argument(metavar="RUN", help="A run id, id prefix (8+ chars), run name, or 'latest'.")


def resume_command(
    ctx: typer.Context,
    run: Annotated[str, _RUN],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the finished run as one JSON object.")
    ] = False,
) -> None:
    """Resume a run whose process died; exits 1 if the resumed run fails."""
    from ._cli_common import EXIT_FAILED, _console, _errors, _find_run, _print_json

    with _errors(ctx):
        from ._cli_render import run_details, run_dict
        from .client import Client

        found = _find_run(run)
        view = Client().resume_run(found.id)
        if as_json:
            _print_json(run_dict(view))
        else:
            _console().print(run_details(view))
        if view.status.is_failed:
            raise CliError(f"run {view.name!r} {view.status.value}: {view.error}", EXIT_FAILED)


def cancel_command(
    ctx: typer.Context,
    run: Annotated[str, _RUN],
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            metavar="SECONDS",
            help="How long to wait for the owner to cancel (0: no wait).",
        ),
    ] = 10.0,
) -> None:
    """Cancel a run, whichever process runs it (the owner cancels within a second)."""
    from ._cli_common import _errors, _find_run

    with _errors(ctx):
        from .client import Client
        from .enums import ExecutionStatus

        found = _find_run(run)
        client = Client()
        outcome = client.cancel_run(found.id)
        if outcome == "cancelled":
            print(f"run {found.name!r} cancelled (no process was running it)", flush=True)
            return
        deadline = time.monotonic() + max(0.0, wait)
        while time.monotonic() < deadline:
            if client.get_pipeline_run(found.id).status == ExecutionStatus.CANCELLED:
                print(f"run {found.name!r} cancelled", flush=True)
                return
            time.sleep(0.1)
        print(
            f"cancel requested for run {found.name!r}; its owner has not confirmed yet", flush=True
        )
