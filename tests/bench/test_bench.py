"""Benchmarks run (quick grid) and the regression check compares ratios, not absolute times."""

import csv

import pytest

from spikesweep.bench.report import regressions
from spikesweep.bench.startup import bench_startup
from tests.conftest import run_cli


def test_quick_neuron_benchmark_writes_rows(tmp_path):
    out = run_cli("bench", "neuron", "--quick", "--backends", "torch,psn", "--csv", str(tmp_path / "n.csv"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    with (tmp_path / "n.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["backend"] for r in rows} == {"torch", "psn"} and len(rows) == 2 * 2 * 5
    assert all(float(r["speedup"]) == 1.0 for r in rows if r["backend"] == "torch")


def test_regression_check_judges_only_long_cases_and_measures_again(tmp_path):
    baseline = tmp_path / "b.csv"
    baseline.write_text('case,mode,backend,speedup\n"[4, 512]",train,psn,1000.0\n"[16, 512]",train,psn,0.001\n')
    rows = [
        {"case": "[4, 512]", "mode": "train", "backend": "torch", "speedup": 1.0, "ms": 50.0},
        {"case": "[4, 512]", "mode": "train", "backend": "psn", "speedup": 1.0, "ms": 50.0},  # far below 1000/2
        {"case": "[16, 512]", "mode": "train", "backend": "torch", "speedup": 1.0, "ms": 0.5},
        {"case": "[16, 512]", "mode": "train", "backend": "psn", "speedup": 0.0001, "ms": 0.5},  # too short
    ]
    found = regressions(rows, baseline)
    assert len(found) == 1 and found[0].startswith("[4, 512] train psn")  # re-measured, still far below


@pytest.mark.slow
def test_startup_benchmark_reports_wall_and_cpu_seconds():
    rows = bench_startup(repeats=1)
    assert [r["case"] for r in rows] == ["spikesweep list", "spikesweep train, 1 step + eval (digits)"]
    assert all(r["seconds"] > 0 and 0 < r["cpu_s"] for r in rows)
    assert rows[1]["cpu_s"] > rows[0]["cpu_s"]  # a training run does strictly more than listing
