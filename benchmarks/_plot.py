"""``python -m benchmarks --plot FILE.png``: the per-step overhead on a log scale.

Left: each step workload of the suite, evenflow against the plain-sqlite3 floor measured in the
same run, with the issue's per-step targets marked. Right (when ``--peers FILE`` gives the
output of ``python -m benchmarks.peers --json``): evenflow, Prefect and Dagster on the peers'
workloads, measured in one run of their own. matplotlib is an optional dependency (the
``bench`` extra) and is imported only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STEP_WORKLOADS = (
    "W1_async",
    "W1_sync",
    "W2_async",
    "W2_sync",
    "W2_full",
    "W4_cached",
    "W5_dynamic",
)
TARGETS_US = {"W2_async": 60, "W2_sync": 150, "W4_cached": 40}
PEER_WORKLOADS = ("W1", "W2", "W4")
COLOURS = {"evenflow": "#1f77b4", "floor": "#9e9e9e", "prefect": "#ff7f0e", "dagster": "#2ca02c"}


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise SystemExit(
            "--plot needs matplotlib: pip install -e '.[bench]' (or pip install matplotlib)"
        ) from exc
    return plt


def _bars(ax: Any, labels: list[str], series: dict[str, list[float | None]]) -> None:
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(labels))]
        shown = [(x, v) for x, v in zip(xs, values, strict=True) if v]
        if not shown:
            continue
        bars = ax.bar(
            [x for x, _ in shown], [v for _, v in shown], width,
            label=name, color=COLOURS.get(name),
        )  # fmt: skip
        ax.bar_label(bars, labels=[_fmt(v) for _, v in shown], fontsize=6, padding=1)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.yaxis.set_minor_formatter(_null_formatter())
    ax.set_ylabel("µs per step (log scale)")
    ax.grid(axis="y", which="both", alpha=0.25)
    ax.legend(fontsize=8)


def _null_formatter() -> Any:
    from matplotlib.ticker import NullFormatter

    return NullFormatter()


def _fmt(us: float) -> str:
    return f"{us / 1e3:.1f} ms" if us >= 1000 else f"{us:.0f}"


def plot(result: dict[str, Any], path: Path, *, peers: dict[str, Any] | None = None) -> None:
    """Draw ``result`` (and ``peers``) into ``path`` (PNG)."""
    plt = _pyplot()
    rows = {
        name: rec
        for name, rec in result["workloads"].items()
        if name in STEP_WORKLOADS and "error" not in rec and rec.get("per_unit")
    }
    fig, axes = plt.subplots(
        1, 2 if peers else 1, figsize=(12 if peers else 7, 4.5), squeeze=False,
        gridspec_kw={"width_ratios": [7, 4] if peers else [1]},
    )  # fmt: skip
    ax = axes[0][0]
    labels = list(rows)
    _bars(
        ax,
        [f"{n}\n{rows[n]['size']}" for n in labels],
        {
            "evenflow": [rows[n]["per_unit"] for n in labels],
            "floor": [rows[n].get("floor") for n in labels],
        },
    )
    for j, name in enumerate(labels):
        if name in TARGETS_US:
            ax.hlines(TARGETS_US[name], j - 0.45, j + 0.45, colors="red", linewidth=1)
    ax.set_title("evenflow vs plain sqlite3 (red: target)", fontsize=10)
    if peers:
        ax2 = axes[0][1]
        engines = peers["engines"]
        series = {
            engine: [
                entry.get("workloads", {}).get(w, {}).get("per_step_us") for w in PEER_WORKLOADS
            ]
            for engine, entry in engines.items()
        }
        sizes = {"W1": f"chain {peers['chain']}", "W2": f"fan {peers['fan']}", "W4": "W1 cached"}
        _bars(ax2, [f"{w}\n{sizes[w]}" for w in PEER_WORKLOADS], series)
        versions = ", ".join(
            f"{e} {entry['version']}" for e, entry in engines.items() if "version" in entry
        )
        ax2.set_title(f"peers, same sync steps, one run\n{versions}", fontsize=9)
    env = result["environment"]
    fig.suptitle(
        f"evenflow per-step overhead, {env['date']}, {env['machine']} {env['cpus']} cores, "
        f"Python {env['python']}, SQLite {env['sqlite']}"
        + (" (quick sizes)" if result.get("quick") else ""),
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
