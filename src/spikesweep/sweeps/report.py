"""The report of a multirun, from its run directories alone: one row per job beside the paper's number,
means and standard deviations over seeds, and plots.

Paper numbers come from the named multirun's `sweep.reported` block, keyed by the overrides of the cell
they belong to ("experiment=x dataset.T=4"); a job gets the number whose overrides it all carries.
"""

import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from spikesweep.sweeps import sweep_record
from spikesweep.sweeps.compare import collect
from spikesweep.tracking.jsonl import read_metrics


def paper_value(overrides: list[str], reported: dict[str, float | None]) -> float | None:
    """The reported number of the most specific cell whose overrides this job all has."""
    best, best_len = None, -1
    for cell, value in reported.items():
        keys = cell.split()
        if value is not None and all(k in overrides for k in keys) and len(keys) > best_len:
            best, best_len = float(value), len(keys)
    return best


def _axes(overrides: list[str]) -> str:
    return " ".join(o for o in overrides if not o.startswith("seed="))


def build_rows(sweep_dir: Path, reported: dict[str, float | None]) -> list[dict[str, Any]]:
    rows = []
    for row in collect(sweep_dir):
        overrides = yaml_overrides(sweep_dir / row["job"])
        paper = paper_value(overrides, reported)
        final = row["final_top1"]
        rows.append(row | {
            "paper_top1": paper,
            "delta": None if paper is None or final is None else final - paper,
            "cell": _axes(row["overrides"].split()),
        })
    return rows


def yaml_overrides(run_dir: Path) -> list[str]:
    import yaml

    path = run_dir / "overrides.yaml"
    return list(yaml.safe_load(path.read_text()) or []) if path.exists() else []


def grouped(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation of the final top-1 over the seeds of each cell."""
    cells: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row["status"] == "completed" and row["final_top1"] is not None:
            cells[row["cell"]].append(row["final_top1"])
    return [
        {"cell": cell or "(all)", "runs": len(v), "mean_top1": statistics.fmean(v),
         "std_top1": statistics.stdev(v) if len(v) > 1 else 0.0}
        for cell, v in cells.items()
    ]


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows])


JOB_COLUMNS = ["job", "overrides", "status", "final_top1", "best_top1", "paper_top1", "delta", "firing_rate",
               "energy_mj", "wall_time_s"]


def plot(sweep_dir: Path, rows: list[dict[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for row in rows:
        epochs = read_metrics(sweep_dir / row["job"] / "metrics.jsonl")
        if epochs:
            ax.plot([e["epoch"] for e in epochs], [e["test_top1"] for e in epochs], label=row["overrides"] or row["job"])
    ax.set_xlabel("epoch"), ax.set_ylabel("test top-1 (%)"), ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout(), fig.savefig(out / "accuracy_vs_epoch.png", dpi=90), plt.close(fig)
    made.append(out / "accuracy_vs_epoch.png")

    cells = grouped(rows)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(range(len(cells)), [c["mean_top1"] for c in cells], yerr=[c["std_top1"] for c in cells], capsize=3)
    ax.set_xticks(range(len(cells)), [c["cell"] for c in cells], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("final top-1 (%), mean ± std over seeds")
    fig.tight_layout(), fig.savefig(out / "final_accuracy_per_cell.png", dpi=90), plt.close(fig)
    made.append(out / "final_accuracy_per_cell.png")

    energy = [(r["energy_mj"], r["final_top1"], r["overrides"]) for r in rows if r.get("energy_mj") is not None]
    if energy:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter([e for e, _, _ in energy], [a for _, a, _ in energy])
        ax.set_xlabel("energy per sample (mJ)"), ax.set_ylabel("final top-1 (%)"), ax.grid(alpha=0.3)
        fig.tight_layout(), fig.savefig(out / "accuracy_vs_energy.png", dpi=90), plt.close(fig)
        made.append(out / "accuracy_vs_energy.png")
    return made


def report(sweep_dir: Path, reported: dict[str, float | None]) -> tuple[str, Path]:
    """Write report.md, report.csv and the plots into sweep_dir/report/; return the markdown and that folder."""
    rows = build_rows(sweep_dir, reported)
    if not rows:
        raise FileNotFoundError(f"no runs (summary.json files) under {sweep_dir}")
    out = sweep_dir / "report"
    out.mkdir(exist_ok=True)
    with (out / "report.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=JOB_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (out / "grouped.json").write_text(json.dumps(grouped(rows), indent=2))
    pngs = plot(sweep_dir, rows, out)
    markdown = "\n\n".join([
        f"# {sweep_dir}",
        _table(rows, JOB_COLUMNS),
        "## Mean ± std over seeds",
        _table(grouped(rows), ["cell", "runs", "mean_top1", "std_top1"]),
        "\n".join(f"![{p.stem}]({p.name})" for p in pngs),
    ])
    (out / "report.md").write_text(markdown + "\n")
    return markdown, out


def newest_sweep_dir(root: Path, name: str) -> Path:
    return sweep_record.newest(root, name)
