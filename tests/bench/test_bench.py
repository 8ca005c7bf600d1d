"""Benchmarks run (quick grid) and the regression check compares ratios, not absolute times."""

import csv
import json

import pytest
import torch

from spikesweep.bench.neuron import (
    available_backends,
    bandwidth_pct,
    bench_neuron,
    check_backends,
    copy_bandwidth_gbs,
    min_traffic_bytes,
    plot,
)
from spikesweep.bench.report import regressions
from spikesweep.bench.startup import bench_startup
from spikesweep.cli import main
from spikesweep.sweeps import catalogue
from tests.conftest import compose, run_cli


def test_quick_neuron_benchmark_writes_rows(tmp_path):
    out = run_cli("bench", "neuron", "--quick", "--backends", "torch,psn", "--csv", str(tmp_path / "n.csv"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    with (tmp_path / "n.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["backend"] for r in rows} == {"torch", "psn"} and len(rows) == 2 * 2 * 5
    assert all(float(r["speedup"]) == 1.0 for r in rows if r["backend"] == "torch")
    assert all(float(r["bandwidth_pct"]) > 0 and float(r["copy_gbs"]) > 0 for r in rows)
    assert (tmp_path / "n.png").stat().st_size > 10_000  # the speed-up plot beside the CSV


def test_stdp_benchmark_compares_both_learners_on_the_same_spikes(tmp_path):
    assert main(["bench", "stdp", "--quick", "--csv", str(tmp_path / "s.csv")]) == 0
    with (tmp_path / "s.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["learner"] for r in rows] == ["spikingjelly STDPLearner", "BatchedSTDPLearner"] * 2
    assert all(float(r["max_rel_diff"]) < 1e-4 and float(r["ms"]) > 0 for r in rows)  # the same update


def test_every_backend_that_runs_here_is_measured_against_torch():
    on_cpu = available_backends("cpu")
    assert on_cpu == ("torch", "compile", "spikingjelly", "psn")  # cupy needs CUDA
    assert "compile" not in available_backends("cpu", quick=True)  # its warm-up alone takes seconds
    rows = bench_neuron(True, ["psn", "spikingjelly"], shapes=[(2, 64)], repeats=1, warmup=1)
    assert [r["backend"] for r in rows] == ["torch", "psn", "spikingjelly"] * 2  # the reference first, added
    assert {r["mode"] for r in rows} == {"train", "inference"} and all(r["ms"] > 0 for r in rows)


def test_bandwidth_share_counts_the_least_traffic_of_a_fused_neuron():
    # [4, 1024] float32: 4096 elements of 4 bytes; train moves 5 such tensors, inference 2
    assert min_traffic_bytes((4, 1024), train=True) == 5 * 4096 * 4 == 81920
    assert min_traffic_bytes((4, 1024), train=False) == 2 * 4096 * 4
    assert min_traffic_bytes((2, 8, 8), train=False, dtype=torch.bfloat16) == 2 * 128 * 2
    # 81920 bytes in 0.1 ms is 0.8192 GB/s: 10 % of a copy at 8.192 GB/s
    assert bandwidth_pct((4, 1024), True, ms=0.1, copy_gbs=8.192) == pytest.approx(10.0)
    assert bandwidth_pct((4, 1024), False, ms=0.1, copy_gbs=8.192) == pytest.approx(4.0)


def test_copy_bandwidth_is_measured_once_per_process():
    first = copy_bandwidth_gbs("cpu", nbytes=2**20, repeats=2)
    assert first > 0 and copy_bandwidth_gbs("cpu", nbytes=2**20, repeats=2) == first


def test_bench_rows_carry_the_bandwidth_share():
    rows = bench_neuron(True, ["psn"], shapes=[(2, 64)], repeats=1, warmup=1)
    copy_gbs = rows[0]["copy_gbs"]
    assert copy_gbs > 0 and all(r["copy_gbs"] == copy_gbs for r in rows)  # one copy measurement per process
    for r in rows:
        assert list(r)[-2:] == ["bandwidth_pct", "copy_gbs"]
        assert r["bandwidth_pct"] == pytest.approx(bandwidth_pct((2, 64), r["mode"] == "train", r["ms"], copy_gbs))


def test_bench_refuses_unknown_or_unrunnable_backends(capsys):
    with pytest.raises(ValueError, match="unknown neuron backend 'triton'; valid: torch, compile, spikingjelly, cupy, psn"):
        check_backends(["triton"], "cpu")
    if not torch.cuda.is_available():
        assert main(["bench", "neuron", "--quick", "--device", "cuda"]) == 2
        assert capsys.readouterr().err.strip() == "error: --device cuda: CUDA is not available on this machine"
        with pytest.raises(ValueError, match="backend cupy cannot run on cpu"):
            check_backends(["cupy"], "cpu")


def test_plot_draws_one_panel_per_mode_and_n(tmp_path):
    rows = [{"case": f"[{t}, {n}]", "T": t, "N": n, "mode": m, "backend": b, "ms": 1.0, "speedup": s}
            for t in (2, 4) for n in (512, 8192) for m in ("train", "inference")
            for b, s in (("torch", 1.0), ("cupy", 3.0 * t))]
    plot(rows, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_survey_speed_multirun_is_the_grid_and_one_cell_runs(tmp_path):
    sweep = catalogue.load("survey_speed")
    assert sweep.job_count == 3 * 6
    cfg = compose("+experiments=survey_speed", "bench.N=131072", "bench.T=64")
    assert cfg.job == "bench_neuron" and (cfg.bench.T, cfg.bench.N) == (64, 131072)
    out = run_cli("sweep", "survey_speed", "bench.N=512", "bench.T=4", "bench.repeats=1", "bench.warmup=1",
                  "bench.backends=[torch,psn]", f"paths.output_root={tmp_path}", "logger=none", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    (summary_path,) = tmp_path.rglob("summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "completed" and summary["case"] == "[4, 512]"
    assert set(summary["speedup"]) == {"train/psn", "inference/psn"}
    assert set(summary["bandwidth_pct"]) == {f"{m}/{b}" for m in ("train", "inference") for b in ("torch", "psn")}
    with (summary_path.parent / "neuron.csv").open() as f:
        assert [r["backend"] for r in csv.DictReader(f)] == ["torch", "psn", "torch", "psn"]
    sweep_dir = summary_path.parent.parent  # the whole grid gathered beside the jobs
    assert (sweep_dir / "neuron.csv").read_text() == (summary_path.parent / "neuron.csv").read_text()
    assert (sweep_dir / "neuron.png").stat().st_size > 10_000


def test_bench_task_without_its_node_is_refused():
    from spikesweep.config_schema import ConfigError, validate

    with pytest.raises(ConfigError, match="job=bench_neuron needs a `bench` node"):
        validate(compose("job=bench_neuron"))
    with pytest.raises(ConfigError, match="job='bench' is not one of train, bench_neuron"):
        validate(compose("job=bench"))


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


def test_packing_benchmark_runs_k_jobs_at_once_each_on_its_share_of_the_cpus(tmp_path):
    out = run_cli("bench", "packing", "--jobs", "1,2", "--csv", str(tmp_path / "p.csv"), "trainer.epochs=1",
                  "trainer.max_steps_per_epoch=3", f"paths.cache_dir={tmp_path / 'cache'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    with (tmp_path / "p.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["jobs_per_task"]) for r in rows] == [1, 2]
    assert float(rows[0]["throughput_x"]) == 1.0 and float(rows[1]["samples_per_s"]) > 0
    bad = run_cli("bench", "packing", "--jobs", "2,4", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --jobs 2,4: starts with 1 (the baseline), every K >= 1"


@pytest.mark.slow
def test_startup_benchmark_reports_wall_and_cpu_seconds():
    rows = bench_startup(repeats=1)
    assert [r["case"] for r in rows] == ["spikesweep list", "spikesweep train, 1 step + eval (digits)"]
    assert all(r["seconds"] > 0 and 0 < r["cpu_s"] for r in rows)
    assert rows[1]["cpu_s"] > rows[0]["cpu_s"]  # a training run does strictly more than listing
    assert rows[0]["first_step_s"] == "" and 0 < rows[1]["first_step_s"] < rows[1]["seconds"]


def test_model_section_runs_a_paper_model_on_the_default_neuron_against_eager_lif():
    from spikesweep.bench.model import PAPER_MODELS, bench_paper_models

    assert PAPER_MODELS == ("survey_cf10", "spikingformer_4_384", "sdtv3_s", "msresnet18")  # the four
    rows = bench_paper_models(("survey_cf10",), batch=2, steps=1, warmup=0)
    assert [(r["model"], r["neuron"], r["T"]) for r in rows] == [("survey_cf10", "eager_lif", 4), ("survey_cf10", "lif", 4)]
    assert rows[0]["speedup"] == 1.0 and all(r["samples_per_s"] > 0 and r["peak_mib"] > 0 for r in rows)


def test_data_section_measures_the_datasets_present_and_names_the_absent(tmp_path, monkeypatch):
    from spikesweep.bench.data import bench_datasets

    monkeypatch.setenv("SPIKESWEEP_DATA", str(tmp_path))  # no files: only the embedded digits are here
    rows, absent = bench_datasets(2, {"digits": "small_cnn", "cifar10": "small_cnn"})
    assert [r["dataset"] for r in rows] == ["digits"] and absent == ["cifar10"]
    assert rows[0]["loader_samples_per_s"] > 0 and rows[0]["ratio"] > 0
    assert rows[0]["num_workers"] == "auto (0)"  # a run's default, as its loader has it on a CPU: no worker
