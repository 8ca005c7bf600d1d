"""Benchmarks run (quick grid) and the regression check compares ratios, not absolute times."""

import csv

from spikesweep.bench.report import regressions
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


def test_dispatch_benchmark_without_slurm_times_composition_only(tmp_path):
    env = {"SLURM_CONF": ""}  # no cluster: the SLURM cases are left out, not failed
    out = run_cli("bench", "dispatch", "--points", "3", "--csv", str(tmp_path / "d.csv"), cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    with (tmp_path / "d.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["case"] for r in rows] == ["compose + validate 3 jobs"] and float(rows[0]["seconds"]) > 0


def test_dispatch_benchmark_refuses_an_empty_sweep(tmp_path):
    out = run_cli("bench", "dispatch", "--points", "0", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.strip() == "error: --points must be at least 1, got 0"
