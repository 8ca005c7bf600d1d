"""The report of a real demo multirun: numbers from the runs' summary.json, means over seeds, plots."""

import csv
import json
import statistics

import pytest

from spikesweep.sweeps.report import grouped, paper_value
from tests.conftest import run_cli


def test_paper_value_picks_the_most_specific_matching_cell():
    reported = {"experiment=a": 90.0, "experiment=a dataset.T=4": 91.0, "experiment=b": 80.0, "model=x": None}
    assert paper_value(["experiment=a", "dataset.T=4", "seed=0"], reported) == 91.0
    assert paper_value(["experiment=a", "dataset.T=2"], reported) == 90.0
    assert paper_value(["experiment=c"], reported) is None
    assert paper_value(["model=x"], reported) is None


def test_grouped_mean_and_std_over_seeds():
    rows = [{"cell": "s=a", "status": "completed", "final_top1": v} for v in (90.0, 92.0)]
    rows += [{"cell": "s=b", "status": "completed", "final_top1": 80.0}, {"cell": "s=b", "status": "failed", "final_top1": None}]
    by_cell = {g["cell"]: g for g in grouped(rows)}
    assert by_cell["s=a"]["mean_top1"] == 91.0 and by_cell["s=a"]["std_top1"] == pytest.approx(statistics.stdev([90, 92]))
    assert by_cell["s=b"]["runs"] == 1


def test_report_of_a_real_demo_multirun(tmp_path):
    out = run_cli("sweep", "demo", "trainer.epochs=2", "trainer.max_steps_per_epoch=2", "logger=none",
                  "surrogate=atan,sigmoid", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    rep = run_cli("report", "demo", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    (sweep_dir,) = (tmp_path / "multirun" / "demo").iterdir()
    folder = sweep_dir / "report"
    with (folder / "report.csv").open() as f:
        rows = {r["job"]: r for r in csv.DictReader(f)}
    assert len(rows) == 4
    for job, row in rows.items():
        summary = json.loads((sweep_dir / job / "summary.json").read_text())
        assert float(row["final_top1"]) == pytest.approx(summary["final"]["test_top1"])
    cells = {g["cell"]: g for g in json.loads((folder / "grouped.json").read_text())}
    atan = [json.loads((sweep_dir / j / "summary.json").read_text())["final"]["test_top1"] for j in ("0", "1")]
    assert cells["surrogate=atan"]["mean_top1"] == pytest.approx(statistics.fmean(atan))
    for png in ("accuracy_vs_epoch.png", "final_accuracy_per_cell.png", "accuracy_vs_energy.png"):
        assert (folder / png).read_bytes()[:4] == b"\x89PNG"
    assert "Mean ± std over seeds" in rep.stdout


def test_report_without_runs_says_how_to_make_them(tmp_path):
    out = run_cli("report", "demo", cwd=tmp_path)
    assert out.returncode == 2 and "run `spikesweep sweep demo`" in out.stderr
