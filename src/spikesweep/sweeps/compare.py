"""Tables of every run in a multirun (or any) directory, from the run directories alone: no wandb needed."""

import json
from pathlib import Path
from typing import Any

import yaml

from spikesweep import tables

def metric_of(rows: list[dict[str, Any]]) -> str:
    """The task metric the runs are judged by (`top1`, `map50_95`); one per table."""
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    if len(metrics) > 1:
        raise ValueError(f"these runs are judged by different metrics ({', '.join(metrics)}): compare them apart")
    return metrics[0] if metrics else "top1"


def columns(metric: str) -> list[str]:
    return ["job", "overrides", "status", f"final_{metric}", f"best_{metric}", "epochs", "firing_rate", "energy_mj",
            "activation_sparsity", "effective_acs_m", "wall_time_s"]


def collect(root: Path) -> list[dict[str, Any]]:
    """One row per run directory (a directory holding summary.json) under root, in job order."""
    rows = []
    for summary_path in sorted(root.rglob("summary.json"), key=_job_order):
        run_dir = summary_path.parent
        summary = json.loads(summary_path.read_text())
        overrides_path = run_dir / "overrides.yaml"
        overrides = yaml.safe_load(overrides_path.read_text()) if overrides_path.exists() else []
        final, best = summary.get("final") or {}, summary.get("best") or {}
        metric = summary.get("metric", "top1")  # the task's; runs from before tasks named it are classification
        rows.append(
            {
                "job": _job(run_dir, root),
                "overrides": [o for o in overrides if not o.startswith("+experiments=")],
                "status": summary.get("status", "unknown"),
                "metric": metric,
                f"final_{metric}": final.get(f"test_{metric}"),
                f"best_{metric}": best.get(f"test_{metric}"),
                "epochs": summary.get("epochs"),
                "firing_rate": final.get("firing_rate"),
                "energy_mj": final.get("energy_mj"),
                "activation_sparsity": final.get("activation_sparsity"),  # NeuroBench's, docs/hardware_metrics.md
                "effective_acs_m": None if final.get("effective_acs") is None else final["effective_acs"] / 1e6,
                "wall_time_s": summary.get("wall_time_s"),
            }
        )
    return _keep_varying(rows)


def _keep_varying(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Show only the overrides that tell the jobs apart (the sweep axes); all of them for a single run."""
    if len(rows) > 1:
        shared = set.intersection(*(set(r["overrides"]) for r in rows))
    else:
        shared = set()
    return [r | {"overrides": " ".join(o for o in r["overrides"] if o not in shared)} for r in rows]


def _job_order(path: Path) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in path.parent.parts)


def to_markdown(rows: list[dict[str, Any]]) -> str:
    return tables.markdown(rows, columns(metric_of(rows)), tables.result)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    tables.write_csv(rows, path, columns(metric_of(rows)))


#: env.json keys that differ between machines without changing results.
NOT_COMPARED = ("executable", "platform", "earlier")


def _provenance(run_dir: Path) -> dict[str, Any]:
    """What produced a run beyond its config: env.json's versions, pip-freeze.txt's packages, the split hash."""
    out: dict[str, Any] = {}
    env_path, freeze_path = run_dir / "env.json", run_dir / "pip-freeze.txt"
    if env_path.exists():
        out |= {k: v for k, v in json.loads(env_path.read_text()).items() if k not in NOT_COMPARED}
    if freeze_path.exists():
        for line in freeze_path.read_text().splitlines():
            name, _, version = line.partition("==")
            out.setdefault(f"package {name.lower()}", version)
    summary = json.loads((run_dir / "summary.json").read_text())
    if summary.get("split_hash"):
        out[f"split_hash of {summary.get('dataset')}"] = summary["split_hash"]
    return out


def provenance_differences(root: Path) -> list[str]:
    """One line per version, package or split hash that differs between the runs under root (runs without
    env.json, from before it existed, are left out): their numbers were not produced alike."""
    runs = {_job(p.parent, root): _provenance(p.parent) for p in sorted(root.rglob("summary.json"), key=_job_order)}
    runs = {job: prov for job, prov in runs.items() if prov}
    lines = []
    for key in sorted({k for prov in runs.values() for k in prov}):
        groups: dict[str, list[str]] = {}
        for job, prov in runs.items():
            groups.setdefault(str(prov.get(key, "(none)")), []).append(job)
        if len(groups) > 1:
            lines.append(f"{key} differs: " + "; ".join(f"{v} (job {', '.join(j)})" for v, j in groups.items()))
    return lines


def _job(run_dir: Path, root: Path) -> str:
    return str(run_dir.relative_to(root)) if run_dir != root else "."


def compare(root: Path) -> tuple[str, list[dict[str, Any]]]:
    """Markdown table of the runs under root, then what differs in how they were produced; writes
    root/compare.csv beside them."""
    if not root.is_dir():
        raise FileNotFoundError(f"no such directory: {root}")
    rows = collect(root)
    if not rows:
        raise FileNotFoundError(f"no runs (summary.json files) under {root}")
    write_csv(rows, root / "compare.csv")
    differences = provenance_differences(root)
    if differences:
        flagged = "\n".join(f"- {line}" for line in differences)
        return f"{to_markdown(rows)}\n\nwarning: these runs were not produced alike:\n{flagged}", rows
    return to_markdown(rows), rows
