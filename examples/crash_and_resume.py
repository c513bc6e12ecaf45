"""Kill a pipeline process mid-step with SIGKILL, then resume the run: nothing finished runs again.

    python examples/crash_and_resume.py

The script runs itself as a child process (``--child``) that executes ``etl``; while the slow
``transform`` step runs, the parent kills the child, shows the run as ``crashed`` and resumes it
with ``Client().resume_run``. ``extract`` ran once; ``transform`` runs again (a step lost with
its process is re-run: at-least-once); ``load`` runs for the first time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine import pipeline, step
from engine.client import Client

MARKS = Path(os.environ.get("CRASH_DEMO_DIR") or tempfile.mkdtemp(prefix="crash-demo-"))


def mark(name: str) -> None:
    with (MARKS / "ran.txt").open("a") as f:
        f.write(name + "\n")


@step
def extract() -> list[int]:
    mark("extract")
    return list(range(10))


@step
def transform(rows: list[int]) -> list[int]:
    mark("transform")
    if (MARKS / "slow").exists():
        (MARKS / "slow").unlink()
        time.sleep(60)  # the parent kills the process while it sleeps here
    return [r * r for r in rows]


@step
def load(rows: list[int]) -> int:
    mark("load")
    return sum(rows)


@pipeline
def etl() -> None:
    load(transform(extract()))


def main() -> None:
    os.environ["CRASH_DEMO_DIR"] = str(MARKS)
    (MARKS / "slow").touch()
    child = subprocess.Popen([sys.executable, __file__, "--child"])
    while (MARKS / "slow").exists():  # transform removes it as it starts to sleep
        time.sleep(0.05)
    child.kill()  # SIGKILL: no cleanup, no terminal event
    child.wait()

    run = Client().list_pipeline_runs(pipeline="etl", size=1)[0]
    print(f"after the kill: run {run.name} is {run.status.value}")
    resumed = Client().resume_run(run.id)
    print(f"after resume:   run {resumed.name} is {resumed.status.value}")
    print("load returned", resumed.steps["load"].output.load())
    print("steps that ran:", (MARKS / "ran.txt").read_text().split())


if __name__ == "__main__":
    if "--child" in sys.argv:
        etl()
    else:
        main()
