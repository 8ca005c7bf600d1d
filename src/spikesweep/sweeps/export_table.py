"""The bit-width table of an export sweep (job=export_fpga, experiments/stdbp_fpga_bits.yaml): one row per
width with the float and the quantised accuracy, the memories' size and the synaptic operations per sample,
and one plot of accuracy and memory against the width. Read from the run directories alone."""

import json
from pathlib import Path
from typing import Any

from spikesweep import tables

COLUMNS = ["bits", "acc_bits", "float_top1", "quantised_top1", "drop", "memory_kB", "synops_per_sample",
           "eval_samples"]


def gather(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every completed export job under sweep_dir, narrowest width first."""
    rows = []
    for path in sweep_dir.rglob("summary.json"):
        export = json.loads(path.read_text()).get("export")
        if export:
            rows.append({k: export.get(k) for k in COLUMNS} | {"drop": export["float_top1"] - export["quantised_top1"]})
    return sorted(rows, key=lambda r: r["bits"])


def plot(rows: list[dict[str, Any]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bits = [r["bits"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(bits, [r["float_top1"] for r in rows], "o--", label="float")
    ax.plot(bits, [r["quantised_top1"] for r in rows], "o-", label="fixed point (integer simulator)")
    ax.set_xlabel("weight bits"), ax.set_ylabel("test top-1 (%)"), ax.set_xticks(bits), ax.grid(alpha=0.3)
    memory = ax.twinx()
    memory.bar(bits, [r["memory_kB"] for r in rows], width=0.6, alpha=0.25, color="grey", label="memory")
    memory.set_ylabel("weight + bias memory (kB)")
    ax.set_zorder(memory.get_zorder() + 1), ax.patch.set_visible(False)  # the lines over the bars
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout(), fig.savefig(out, dpi=90), plt.close(fig)
    return out


def write(sweep_dir: Path, out_dir: Path) -> tuple[str, Path] | None:
    """fpga_bits.csv and fpga_bits.png in out_dir; returns the markdown table and the plot, None without
    export jobs."""
    rows = gather(sweep_dir)
    if not rows:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    tables.write_csv(rows, out_dir / "fpga_bits.csv", COLUMNS)
    return tables.markdown(rows, COLUMNS, tables.result), plot(rows, out_dir / "fpga_bits.png")
