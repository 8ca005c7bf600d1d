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


def test_regression_check_flags_only_ratios_that_halved(tmp_path):
    baseline = tmp_path / "b.csv"
    baseline.write_text("case,mode,backend,speedup\nA,train,psn,4.0\nB,train,psn,4.0\n")
    rows = [{"case": "A", "mode": "train", "backend": "psn", "speedup": 1.9, "ms": 5.0},
            {"case": "B", "mode": "train", "backend": "psn", "speedup": 2.1, "ms": 5.0},
            {"case": "B", "mode": "train", "backend": "psn", "speedup": 0.5, "ms": 0.2},  # too short to judge
            {"case": "C", "mode": "train", "backend": "psn", "speedup": 0.1, "ms": 5.0}]
    found = regressions(rows, baseline)
    assert len(found) == 1 and found[0].startswith("A train psn")
