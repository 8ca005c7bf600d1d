"""Operating a sweep: sweep.json, `status`, `--max-failures` and `--resume` (local launcher)."""

import fcntl
import json
import subprocess
import sys

from spikesweep.bench.sweep_ops import make_sweep
from spikesweep.sweeps import resume, status, sweep_record
from tests.conftest import REPO, SMOKE, run_cli

TINY = (*SMOKE, "trainer.max_steps_per_epoch=2", "model.channels=[4,8]", "surrogate=sigmoid")


def _in_process(args: list[str], cwd) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter, reporting whether it imported torch or Hydra."""
    code = ("import sys; from spikesweep.cli import main; rc = main(sys.argv[1:]); "
            "print('heavy:', sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'hydra'})); sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_status_table_and_json_from_small_files_without_torch(tmp_path):
    sweep_dir = make_sweep(tmp_path, 10)
    (sweep_dir / "9").rename(tmp_path / "not-started")  # job 9 has no directory yet: queued
    with open(sweep_dir / "4" / ".lock", "w") as held:  # job 4 holds its lock, as a training job does
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        out = _in_process(["status", str(sweep_dir), "--json"], tmp_path)
        table = _in_process(["status", str(sweep_dir)], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip().endswith("heavy: []") and table.stdout.rstrip().endswith("heavy: []")
    report = json.loads(out.stdout[: out.stdout.rindex("heavy:")])
    states = {j["job"]: j["state"] for j in report["jobs"]}
    assert states[0] == "completed" and states[2] == "failed" and states[3] == "preempted"
    assert states[4] == "running" and states[9] == "queued"
    assert report["counts"] == {"queued": 1, "running": 1, "preempted": 2, "failed": 2, "pruned": 0,
                                "completed": 4}
    assert report["jobs"][2]["error"] == "synthetic failure" and report["jobs"][0]["epoch"] == 20
    assert "| 2 | seed=2 | failed | 20/20 | 50.00 | 50.00 | 0:01:40 | synthetic failure |" in table.stdout
    assert "10 jobs: 1 queued, 1 running, 2 preempted, 2 failed, 4 completed" in table.stdout


def test_status_of_a_job_killed_without_summary_or_checkpoint_is_failed(tmp_path):
    run_dir = tmp_path / "0"
    run_dir.mkdir()
    row = status.job_row(run_dir, 0, [], 3, set())
    assert row["state"] == "failed" and "without writing summary.json" in row["error"]
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"")
    assert status.job_row(run_dir, 0, [], 3, set())["state"] == "preempted"


def test_bench_status_is_under_a_second(tmp_path):
    out = run_cli("bench", "status", "--jobs", "50", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "| status (table of every job) | 50 |" in out.stdout


def test_a_changed_grid_is_described_in_one_line():
    old = {"axes": {"seed": ["0", "1"]}, "fixed": ["+experiments=demo", "trainer.epochs=1"]}
    axes, fixed = sweep_record.split_arguments(["+experiments=demo", "seed=0,1,2", "trainer.epochs=2"], {"seed": "0,1"})
    assert sweep_record.difference(old, axes, fixed) == (
        "axis seed 0,1 -> 0,1,2; fixed override(s) dropped: trainer.epochs=1; fixed override(s) added: trainer.epochs=2")
    assert sweep_record.split_arguments(["model.channels=[4,8]", "a=1,2"], {})[1] == ["model.channels=[4,8]"]


def test_max_failures_then_resume_runs_only_what_did_not_complete(tmp_path):
    sweep_dir = tmp_path / "sweep"
    first = run_cli("sweep", "demo", "seed=-1,0,1", *TINY, "--max-failures", "1", f"hydra.sweep.dir={sweep_dir}",
                    cwd=tmp_path)
    assert first.returncode == 1, first.stdout[-2000:] + first.stderr[-2000:]
    assert "1 job(s) failed (--max-failures 1): 2 job(s) not launched" in first.stdout + first.stderr
    record = json.loads((sweep_dir / "sweep.json").read_text())
    assert record["name"] == "demo" and record["job_count"] == 3 and record["launcher"] == "local"
    assert record["axes"] == {"seed": ["-1", "0", "1"]} and "surrogate=sigmoid" in record["fixed"]
    assert [j["overrides"] for j in record["jobs"]] == [["seed=-1"], ["seed=0"], ["seed=1"]]
    assert len(record["git"]["commit"]) == 40 and record["jobs"][0]["epochs"] == 1
    assert [r["state"] for r in status.collect(sweep_dir)] == ["failed", "queued", "queued"]

    changed = _in_process(["sweep", "demo", "--resume", str(sweep_dir), "seed=0,1"], tmp_path)
    assert changed.returncode == 2 and "heavy: []" in changed.stdout
    line = changed.stderr.strip()
    assert line.count("\n") == 0, line
    assert line.startswith(f"error: refusing to resume {sweep_dir}: the sweep changed (axis seed -1,0,1 -> 0,1; "
                           "axis surrogate (none) -> sigmoid,atan,piecewise_quadratic; fixed override(s) dropped: ")

    again = run_cli("sweep", "demo", "--resume", str(sweep_dir), cwd=tmp_path)
    assert again.returncode == 1, again.stdout[-2000:] + again.stderr[-2000:]  # job 0 fails again
    assert f"resuming 3 of 3 jobs of {sweep_dir} (2 queued, 1 failed); 0 completed skipped" in again.stdout
    assert [r["state"] for r in status.collect(sweep_dir)] == ["failed", "completed", "completed"]
    assert json.loads((sweep_dir / "sweep.json").read_text())["resumes"][0]["jobs"] == [0, 1, 2]

    # the failed job fixed by hand: nothing is left to run, and deciding that imports neither Hydra nor torch
    (sweep_dir / "0" / "summary.json").write_text(json.dumps({"status": "completed"}))
    done = _in_process(["sweep", "demo", "--resume", str(sweep_dir)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"resuming 0 of 3 jobs of {sweep_dir} (none); 3 completed skipped" in done.stdout
    assert "heavy: []" in done.stdout
    assert resume.plan(sweep_dir, "failed").run == []


def test_multirun_readme_is_tracked_and_its_contents_ignored():
    ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "multirun/demo/x/sweep.json"])
    kept = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "multirun/README.md"])
    assert ignored.returncode == 0 and kept.returncode == 1


def _fake_run(run_dir, overrides: list[str], top1: float) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (run_dir / "summary.json").write_text(json.dumps({"status": "completed", "final": {"test_top1": top1},
                                                      "best": {"test_top1": top1}, "epochs": 1}))


def test_report_marks_each_cell_and_check_fails_on_one_below(tmp_path):
    sweep_dir = tmp_path / "multirun" / "spikingformer_cifar" / "2026-01-01_00-00-00-000000"
    cells = [("spikingformer_4_256", "spikingformer_cifar10", [94.5, 95.0]),  # 94.77: reproduced (2 std = 0.71)
             ("spikingformer_4_256", "spikingformer_cifar100", [70.0, 71.0]),  # 77.43: below
             ("spikingformer_2_384", "spikingformer_cifar10", [97.0])]  # 95.22: above
    job = 0
    for model, experiment, values in cells:
        for seed, value in enumerate(values):
            _fake_run(sweep_dir / str(job), [f"model={model}", f"recipe={experiment}", f"seed={seed}"], value)
            job += 1
    by_name = run_cli("report", "spikingformer_cifar", cwd=tmp_path)
    assert by_name.returncode == 0, by_name.stderr
    assert "1 reproduced, 1 below, 1 above (tolerance: the larger of 0.5 points and 2 std over seeds)" in by_name.stdout
    assert "| model=spikingformer_4_256 recipe=spikingformer_cifar100 | 2 | 70.50 | 0.71 | 77.43 | 1.41 | below |" \
        in by_name.stdout
    checked = run_cli("report", str(sweep_dir), "--check", cwd=tmp_path)  # a directory: its name from sweep.json
    assert checked.returncode == 2 and "no sweep.json" in checked.stderr
    (sweep_dir / "sweep.json").write_text(json.dumps({"name": "spikingformer_cifar"}))
    checked = run_cli("report", str(sweep_dir), "--check", cwd=tmp_path)
    assert checked.returncode == 1
    assert checked.stderr.strip() == ("error: 1 cell(s) below the reported number: "
                                      "model=spikingformer_4_256 recipe=spikingformer_cifar100")
    compared = run_cli("compare", "spikingformer_cifar", cwd=tmp_path)
    assert compared.returncode == 0 and (sweep_dir / "compare.csv").is_file()
