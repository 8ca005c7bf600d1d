"""The report of a multirun, from its run directories alone: one row per job beside the paper's number,
means and standard deviations over seeds, and plots.

Paper numbers come from the named multirun's `sweep.reported` block, keyed by the overrides of the cell
they belong to ("recipe=x dataset.T=4"); a job gets the number whose overrides it all carries.
"""

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from spikesweep import tables
from spikesweep.sweeps import export_table, sweep_record
from spikesweep.sweeps.compare import collect, metric_of
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
        final = row[f"final_{row['metric']}"]
        rows.append(row | {
            f"paper_{row['metric']}": paper,
            "delta": None if paper is None or final is None else final - paper,
            "cell": _axes(row["overrides"].split()),
        })
    return rows


def yaml_overrides(run_dir: Path) -> list[str]:
    import yaml

    path = run_dir / "overrides.yaml"
    return list(yaml.safe_load(path.read_text()) or []) if path.exists() else []


def grouped(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation of the final metric (top-1, mAP) over the seeds of each cell, and the cell's
    paper number."""
    m = metric_of(rows)
    cells: dict[str, list[float]] = defaultdict(list)
    paper: dict[str, float] = {}
    for row in rows:
        if row["status"] == "completed" and row[f"final_{m}"] is not None:
            cells[row["cell"]].append(row[f"final_{m}"])
        if row.get(f"paper_{m}") is not None:
            paper.setdefault(row["cell"], row[f"paper_{m}"])
    return [
        {"cell": cell or "(all)", "runs": len(v), "metric": m, f"mean_{m}": statistics.fmean(v),
         f"std_{m}": statistics.stdev(v) if len(v) > 1 else 0.0, f"paper_{m}": paper.get(cell)}
        for cell, v in cells.items()
    ]


#: A cell is reproduced when its mean is within max(this many points, 2 std over seeds) of the paper's number.
DEFAULT_TOLERANCE = 0.5
VERDICTS = ("reproduced", "below", "above")


def verdicts(cells: list[dict[str, Any]], points: float = DEFAULT_TOLERANCE) -> list[dict[str, Any]]:
    """Each cell with a paper number marked reproduced, below or above, with the tolerance it was given."""
    out = []
    for cell in cells:
        m = cell["metric"]
        if cell.get(f"paper_{m}") is None:
            out.append(cell | {"tolerance": None, "verdict": None})
            continue
        tolerance = max(points, 2 * cell[f"std_{m}"])
        gap = cell[f"mean_{m}"] - cell[f"paper_{m}"]
        verdict = "reproduced" if abs(gap) <= tolerance else ("below" if gap < 0 else "above")
        out.append(cell | {"tolerance": tolerance, "verdict": verdict})
    return out


def verdict_line(cells: list[dict[str, Any]], points: float = DEFAULT_TOLERANCE) -> str:
    judged = [c for c in cells if c.get("verdict")]
    counts = ", ".join(f"{sum(c['verdict'] == v for c in judged)} {v}" for v in VERDICTS)
    unjudged = len(cells) - len(judged)
    rest = f"; {unjudged} cell(s) without a reported number" if unjudged else ""
    return f"{counts} (tolerance: the larger of {points:g} points and 2 std over seeds){rest}"


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Energies shown in the unit that suits them (mJ, uJ or nJ), every other value by `tables.result`."""
    if "energy_mj" not in columns:
        return tables.markdown(rows, columns, tables.result)
    unit, factor = tables.energy_unit([r.get("energy_mj") for r in rows])
    shown = [r | {f"energy_{unit}": None if r.get("energy_mj") is None else r["energy_mj"] * factor} for r in rows]
    return tables.markdown(shown, [f"energy_{unit}" if c == "energy_mj" else c for c in columns], tables.result)


def job_columns(m: str) -> list[str]:
    return ["job", "overrides", "status", f"final_{m}", f"best_{m}", f"paper_{m}", "delta", "firing_rate", "energy_mj",
            "activation_sparsity", "effective_acs_m", "wall_time_s"]


#: How each task metric is named in titles; every one is a percentage.
METRIC_NAMES = {"top1": "top-1", "map50_95": "mAP50-95", "map50": "mAP50"}


def plot(sweep_dir: Path, rows: list[dict[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    m = metric_of(rows)
    label = f"{METRIC_NAMES.get(m, m)} (%)"
    fig, ax = plt.subplots(figsize=(7, 4))
    for row in rows:
        epochs = read_metrics(sweep_dir / row["job"] / "metrics.jsonl")
        if epochs:
            ax.plot([e["epoch"] + 1 for e in epochs], [e[f"test_{m}"] for e in epochs],  # epoch 1 first, as logged
                    label=row["overrides"] or row["job"])
    ax.set_xlabel("epoch"), ax.set_ylabel(f"test {label}"), ax.grid(alpha=0.3)
    if ax.lines:  # runs without metrics.jsonl draw nothing, and an empty legend warns
        ax.legend(fontsize=6)
    fig.tight_layout(), fig.savefig(out / "accuracy_vs_epoch.png", dpi=90), plt.close(fig)
    made.append(out / "accuracy_vs_epoch.png")

    cells = grouped(rows)
    fig, ax = plt.subplots(figsize=(7, 4))
    means, stds = [c[f"mean_{m}"] for c in cells], [c[f"std_{m}"] for c in cells]
    ax.bar(range(len(cells)), means, yerr=stds, capsize=3)
    if cells:  # zoomed to where the cells differ: on 0-100 every bar looks the same and the error bars vanish
        low, high = min(m - s for m, s in zip(means, stds)), max(m + s for m, s in zip(means, stds))
        margin = max(0.5, 0.15 * (high - low))
        ax.set_ylim(max(0.0, low - margin), min(100.0, high + margin))
    ax.set_xticks(range(len(cells)), [c["cell"] for c in cells], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(f"final {label}, mean ± std over seeds")
    fig.tight_layout(), fig.savefig(out / "final_accuracy_per_cell.png", dpi=90), plt.close(fig)
    made.append(out / "final_accuracy_per_cell.png")

    energy = [r for r in rows if r.get("energy_mj") is not None and r.get(f"final_{m}") is not None]
    if energy:
        unit, factor = tables.energy_unit([r["energy_mj"] for r in energy])
        fig, ax = plt.subplots(figsize=(6, 4))
        for cell in dict.fromkeys(r["cell"] for r in energy):  # one colour and legend entry per cell
            mine = [r for r in energy if r["cell"] == cell]
            ax.scatter([r["energy_mj"] * factor for r in mine], [r[f"final_{m}"] for r in mine], label=cell or "(all)")
        ax.set_xlabel(f"energy per sample ({unit})"), ax.set_ylabel(f"final {label}"), ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
        fig.tight_layout(), fig.savefig(out / "accuracy_vs_energy.png", dpi=90), plt.close(fig)
        made.append(out / "accuracy_vs_energy.png")
    return made


def report(sweep_dir: Path, reported: dict[str, float | None],
           tolerance: float = DEFAULT_TOLERANCE) -> tuple[str, Path, list[dict[str, Any]]]:
    """Write report.md, report.csv and the plots into sweep_dir/report/; return the markdown, that folder and
    the cells with their verdicts."""
    rows = build_rows(sweep_dir, reported)
    if not rows:
        raise FileNotFoundError(f"no runs (summary.json files) under {sweep_dir}")
    out = sweep_dir / "report"
    out.mkdir(exist_ok=True)
    m = metric_of(rows)
    tables.write_csv(rows, out / "report.csv", job_columns(m))
    cells = verdicts(grouped(rows), tolerance)
    (out / "grouped.json").write_text(json.dumps(cells, indent=2))
    pngs = plot(sweep_dir, rows, out)
    widths = export_table.write(sweep_dir, out)  # an export sweep: its bit-width table leads
    markdown = "\n\n".join([
        f"# {sweep_dir}",
        *(["## Fixed-point export per bit width", widths[0], f"![{widths[1].stem}]({widths[1].name})",
           "## Jobs"] if widths else []),
        _table(rows, job_columns(m)),
        "## Mean ± std over seeds",
        _table(cells, ["cell", "runs", f"mean_{m}", f"std_{m}", f"paper_{m}", "tolerance", "verdict"]),
        verdict_line(cells, tolerance),
        "\n".join(f"![{p.stem}]({p.name})" for p in pngs),
    ])
    (out / "report.md").write_text(markdown + "\n")
    return markdown, out, cells


def newest_sweep_dir(root: Path, name: str) -> Path:
    return sweep_record.newest(root, name)
