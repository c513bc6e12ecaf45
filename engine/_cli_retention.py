"""``evenflow runs delete`` and ``evenflow gc``: retention as an explicit, audited operation.

Both append one ``runs.deleted`` event (who, why, which runs, which artifact versions and files)
and never edit the log; see ``engine._retention`` and ``docs/adr/0004-retention.md``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._cli_load import CliError

if TYPE_CHECKING:
    from ._retention import DeletionReport

_UNITS = ("B", "KB", "MB", "GB", "TB")


def fmt_bytes(size: int) -> str:
    """``1536`` -> ``"1.5 KB"`` (powers of 1024)."""
    value = float(size)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def report_dict(report: DeletionReport) -> dict[str, Any]:
    """The report as JSON-ready data (``--json``)."""
    return {
        "dry_run": report.dry_run,
        "runs": [{"id": r.id, "name": r.name, "status": r.status.value} for r in report.runs],
        "artifacts": report.artifacts,
        "kept_artifacts": report.kept,
        "files": report.uris,
        "bytes_freed": report.bytes_freed,
        "logs": report.logs,
        "log_bytes": report.log_bytes,
        "skipped": [{"id": r.id, "name": r.name, "status": r.status.value} for r in report.skipped],
        "seq": report.seq,
    }


def report_lines(report: DeletionReport) -> list[str]:
    """What a deletion did (or would do), for people."""
    verb = "would delete" if report.dry_run else "deleted"
    lines: list[str] = []
    if report.runs:
        names = ", ".join(r.name for r in report.runs[:5])
        more = f" and {len(report.runs) - 5} more" if len(report.runs) > 5 else ""
        lines.append(f"{verb} {_plural(len(report.runs), 'run')}: {names}{more}")
        freed = "would be freed" if report.dry_run else "freed"
        lines.append(
            f"  {_plural(len(report.artifacts), 'artifact version')},"
            f" {_plural(len(report.uris), 'file')}, {fmt_bytes(report.bytes_freed)} {freed}"
        )
        if report.logs:
            lines.append(
                f"  step logs of {_plural(len(report.logs), 'run')},"
                f" {fmt_bytes(report.log_bytes)} {freed}"
            )
        if report.kept:
            lines.append(
                f"  kept {_plural(len(report.kept), 'artifact version')}"
                " (reused by other runs or linked to model versions)"
            )
    else:
        lines.append("no runs to delete")
        if report.uris:
            lines.append(f"  removed {_plural(len(report.uris), 'leftover file')}")
        if report.logs:
            lines.append(f"  removed the leftover step logs of {_plural(len(report.logs), 'run')}")
    for run in report.skipped:
        lines.append(f"  skipped {run.name} ({run.status.value}): it has not finished")
    if report.seq is not None:
        lines.append(f"  recorded as event {report.seq} on stream 'retention'")
    return lines


def _show(report: DeletionReport, as_json: bool) -> None:
    from ._cli_common import _print_json

    if as_json:
        _print_json(report_dict(report))
    else:
        for line in report_lines(report):
            print(line, flush=True)


def runs_delete(
    ctx: typer.Context,
    runs: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN...", help="Run ids, id prefixes (8+ chars), run names, or 'latest'."
        ),
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would be deleted.")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, recorded in the audit event.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Delete finished runs and the artifacts no other run uses (an audited event)."""
    from ._cli_common import _errors, _find_run

    with _errors(ctx):
        from ._home import Home
        from ._retention import delete_runs
        from ._sync import with_engine

        ids = list(dict.fromkeys(_find_run(ref).id for ref in runs))
        why = reason or "evenflow runs delete"
        home = Home.resolve()
        if not yes and not dry_run:
            plan = with_engine(home, lambda e: delete_runs(e, ids, reason=why, dry_run=True))
            for line in report_lines(plan):
                print(line, flush=True)
            if not _at_a_terminal():
                raise CliError("not deleted: pass --yes to delete without a terminal to confirm")
            if not typer.confirm("delete?", default=False):
                print("nothing deleted", flush=True)  # the user's choice, not a failure: exit 0
                return
        report = with_engine(home, lambda e: delete_runs(e, ids, reason=why, dry_run=dry_run))
        _show(report, as_json)


def _at_a_terminal() -> bool:
    """Whether someone can answer the confirmation prompt (stdin is a terminal)."""
    return sys.stdin.isatty()


def gc_command(
    ctx: typer.Context,
    older_than: Annotated[
        float,
        typer.Option(
            "--older-than",
            metavar="DAYS",
            help="Delete finished runs created more than DAYS days ago (0: every finished run).",
            show_default=False,
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would be deleted.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Delete old finished runs and the artifacts only they used; report what was freed."""
    from ._cli_common import _errors

    with _errors(ctx):
        if older_than < 0:
            raise CliError(f"--older-than must be >= 0 days, got {older_than:g}")
        from ._home import Home
        from ._retention import collect_garbage
        from ._sync import with_engine

        home = Home.resolve()
        if not home.db.exists():
            raise CliError(f"there is nothing to collect: {home.db} does not exist")
        report = with_engine(home, lambda e: collect_garbage(e, older_than, dry_run=dry_run))
        _show(report, as_json)
