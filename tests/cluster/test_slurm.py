"""Sweeps on a real SLURM controller and node (`make slurm-up`): arrays, preemption, requeue, failures."""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slurm
SHORT = ("trainer.max_steps_per_epoch=2", "logger=none")
ON_SLURM = ("hydra/launcher=slurm", "+cluster=local_slurm")
LONG = ("trainer.epochs=4", "trainer.max_steps_per_epoch=6", "trainer.deterministic=true", "logger=none")


def _only_sweep_dir(root: Path, name: str = "train") -> Path:
    (sweep_dir,) = (root / "multirun" / name).iterdir()
    return sweep_dir


def _epochs(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _job_id(run_dir: Path) -> str:
    """The SLURM job id submitit recorded for job 0 of the sweep."""
    deadline = time.time() + 120
    while time.time() < deadline:
        folder = run_dir.parent / ".submitit"
        names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        array_task = [n for n in names if n.endswith("_0")]  # a sweep of one job is no array
        if array_task or names:
            return (array_task or names)[0]
        time.sleep(0.5)
    raise AssertionError("submitit never recorded a job id")


def _wait_for_epochs(run_dir: Path, count: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 240
    while len(_epochs(run_dir)) < count:
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        assert time.time() < deadline, "no progress on the cluster"
        time.sleep(0.3)


def _start_sweep(tmp_path: Path, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "spikesweep.cli", "train", "-m", *ON_SLURM, *LONG, "seed=0", *overrides],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[dict]:
    """The uninterrupted run, locally: a resumed cluster job must end with the same metrics."""
    root = tmp_path_factory.mktemp("reference")
    out = run_cli("train", *LONG, "seed=0", f"hydra.run.dir={root}", cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    return _epochs(root)


def _same_metrics(a: list[dict], b: list[dict]) -> None:
    assert [e["epoch"] for e in b] == [e["epoch"] for e in a], "duplicated or missing epochs"
    for x, y in zip(a, b):
        for key in ("train_loss", "test_loss", "test_top1"):
            assert y[key] == pytest.approx(x[key], rel=1e-6), (x["epoch"], key)


def test_two_point_sweep_as_a_job_array(tmp_path):
    out = run_cli("train", "-m", *ON_SLURM, "trainer.epochs=1", *SHORT, "seed=0,1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 succeeded, 0 failed" in out.stdout
    sweep_dir = _only_sweep_dir(tmp_path)
    table = run_cli("compare", str(sweep_dir), cwd=tmp_path)
    assert table.stdout.count("| completed |") == 2
    ids = {json.loads((sweep_dir / j / "summary.json").read_text())["where"]["slurm_job_id"] for j in ("0", "1")}
    assert len(ids) == 2 and None not in ids


def test_failed_job_is_reported_while_its_sibling_succeeds(tmp_path):
    out = run_cli("train", "-m", *ON_SLURM, "trainer.epochs=1", *SHORT, "trainer.batch_size=64,5000", cwd=tmp_path)
    assert out.returncode == 1
    assert "1 succeeded, 1 failed" in out.stdout and "failed: " in out.stdout


def test_impossible_request_fails_at_submission(tmp_path):
    out = run_cli("train", "-m", *ON_SLURM, "hydra.launcher.cpus_per_task=512", *SHORT, "seed=0,1", cwd=tmp_path)
    assert out.returncode == 1
    assert "Batch job submission failed: More processors requested than permitted" in out.stderr


def test_usr2_preemption_checkpoints_requeues_and_resumes(tmp_path, reference):
    proc = _start_sweep(tmp_path)
    run_dir = _only_sweep_dir_when_ready(tmp_path) / "0"
    _wait_for_epochs(run_dir, 1, proc)
    subprocess.run(["scancel", "--signal=USR2", _job_id(run_dir)], check=True)
    stdout, stderr = proc.communicate(timeout=400)
    assert proc.returncode == 0, stderr[-3000:]
    log = (run_dir / "train.log").read_text()
    saved = re.search(r"preempted: saved a mid-epoch checkpoint at epoch (\d+), step (\d+) of 6", log)
    assert saved, "no mid-epoch checkpoint on USR2"
    epoch, done = map(int, saved.groups())
    assert f"resuming from epoch {epoch}, step {done} of 6" in log
    summary = _wait_for_summary(run_dir)
    assert summary["status"] == "completed"
    assert summary["steps_this_run"] == 4 * 6 - (epoch * 6 + done), "the requeued job trained some steps again"
    _same_metrics(reference, _epochs(run_dir))


def test_scontrol_requeue_kills_restarts_and_resumes_from_last_checkpoint(tmp_path):
    # Long enough that SLURM's SIGKILL (KillWait after the SIGTERM submitit ignores) lands mid-training.
    epochs = 30
    proc = _start_sweep(tmp_path, f"trainer.epochs={epochs}", "trainer.max_steps_per_epoch=4")
    run_dir = _only_sweep_dir_when_ready(tmp_path) / "0"
    _wait_for_epochs(run_dir, 1, proc)
    subprocess.run(["scontrol", "requeue", _job_id(run_dir)], check=True)
    deadline = time.time() + 400
    while "resuming from epoch" not in (run_dir / "train.log").read_text():
        assert time.time() < deadline, "the requeued job never resumed"
        time.sleep(0.5)
    proc.communicate(timeout=400)
    resumed_at = int(re.search(r"resuming from epoch (\d+)", (run_dir / "train.log").read_text()).group(1))
    assert 1 <= resumed_at < epochs, "the job must have been killed mid-training"
    summary = _wait_for_summary(run_dir)
    assert summary["status"] == "completed"
    assert [e["epoch"] for e in _epochs(run_dir)] == list(range(epochs))


def _wait_for_summary(run_dir: Path) -> dict:
    deadline = time.time() + 120
    while True:
        path = run_dir / "summary.json"
        if path.exists() and json.loads(path.read_text())["status"] != "running":
            return json.loads(path.read_text())
        assert time.time() < deadline, "the run never finished"
        time.sleep(0.5)


def _only_sweep_dir_when_ready(tmp_path: Path) -> Path:
    deadline = time.time() + 60
    while not (tmp_path / "multirun" / "train").is_dir() or not any((tmp_path / "multirun" / "train").iterdir()):
        assert time.time() < deadline, "the sweep directory never appeared"
        time.sleep(0.2)
    return _only_sweep_dir(tmp_path)


def test_ddp_with_two_slurm_tasks_trains_and_rank0_writes_once(tmp_path):
    out = run_cli(
        "train", "-m", *ON_SLURM, "hydra.launcher.tasks_per_node=2", "hydra.launcher.cpus_per_task=1",
        "trainer.epochs=2", *SHORT, "seed=0", cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = _only_sweep_dir(tmp_path) / "0"
    assert [e["epoch"] for e in _epochs(run_dir)] == [0, 1]  # one writer: no line twice
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert "world size 2" in (run_dir / "train.log").read_text()


def test_dispatch_benchmark_submits_real_arrays(tmp_path):
    out = run_cli("bench", "dispatch", "--points", "3", "--csv", str(tmp_path / "d.csv"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    cases = [line.split(",")[0] for line in (tmp_path / "d.csv").read_text().splitlines()[1:]]
    assert cases == ["compose + validate 3 jobs", "submitit: 3-task job array",
                     "spikesweep train -m on SLURM: 3 points (start to all queued)",
                     "spikesweep train -m on SLURM: 1000 points (start to all queued)"]  # every task queued
