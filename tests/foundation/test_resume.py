"""A run killed with SIGKILL and restarted in the same directory ends exactly where an uninterrupted one does."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARGS = ("trainer.epochs=4", "trainer.max_steps_per_epoch=6", "trainer.deterministic=true", "logger=none")
COMPARED = ("train_loss", "train_top1", "test_loss", "test_top1", "test_top5", "firing_rate", "lr")


def _command(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "spikesweep.cli", "train", *ARGS, f"hydra.run.dir={run_dir}"]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}


def _epochs(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_killed_run_resumes_to_identical_metrics(tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(_command(reference), env=_env(), check=True, capture_output=True, timeout=300)

    interrupted = tmp_path / "interrupted"
    proc = subprocess.Popen(_command(interrupted), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while len(_epochs(interrupted)) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.fail("the run finished before it could be killed; make it longer")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(_epochs(interrupted))
    assert 2 <= killed_at < 4

    resumed = subprocess.run(_command(interrupted), env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from epoch" in (interrupted / "train.log").read_text()

    ref, got = _epochs(reference), _epochs(interrupted)
    assert [e["epoch"] for e in got] == [0, 1, 2, 3]  # no duplicated or missing epochs
    for a, b in zip(ref, got):
        for key in COMPARED:
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), (a["epoch"], key)
    summary = json.loads((interrupted / "summary.json").read_text())
    assert summary["status"] == "completed"
