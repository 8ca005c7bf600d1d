"""A wandb run killed with SIGKILL and resumed holds every epoch exactly once, read back from the real
offline files (what `wandb sync` would upload), under one run id."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO
from tests.foundation.wandb_records import steps

EPOCHS = 12
ARGS = (f"trainer.epochs={EPOCHS}", "trainer.max_steps_per_epoch=4", "logger=wandb", "logger.mode=offline")


def _epochs_done(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _offline_steps(run_dir: Path) -> list[list[int]]:
    return [steps(p) for p in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))]


def test_sigkill_then_resume_leaves_every_epoch_in_wandb_once(tmp_path):
    import os

    import wandb

    # The launcher has used wandb itself (as a notebook, a driver script or this test process may have):
    # wandb then exports WANDB_SERVICE, and a child would share the launcher's wandb-core, which keeps a
    # killed child's run id "in use" for as long as the launcher lives. Each run must own its core.
    wandb.init(mode="offline", dir=tmp_path).finish()
    assert "WANDB_SERVICE" in os.environ
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "spikesweep.cli", "train", *ARGS, f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while _epochs_done(run_dir) < 6 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    if proc.poll() is not None:
        pytest.fail("the run ended before it could be killed")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_after = _epochs_done(run_dir)
    assert 6 <= killed_after < EPOCHS
    # Resumed at once, as a requeued job may be.

    resumed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from epoch" in (run_dir / "train.log").read_text()

    wandb_id = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["wandb_id"]
    files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    # Two offline files as a rule; one when the killed process's wandb-core had not written its file yet (seen
    # under heavy load), and then the replay puts every epoch in the resumed run's file. Either way: one run id.
    assert 1 <= len(files) <= 2 and {f.name for f in files} == {f"run-{wandb_id}.wandb"}, files
    deadline = time.time() + 60  # wandb-core may still be flushing the resumed run's file
    while sorted(s for per_file in _offline_steps(run_dir) for s in per_file) != list(range(EPOCHS)):
        if time.time() > deadline:
            errors = [line for line in (run_dir / "train.log").read_text().splitlines() if " ERROR " in line]
            pytest.fail(f"offline files hold steps {_offline_steps(run_dir)}; expected 0-{EPOCHS - 1} once each; "
                        f"train.log errors: {errors}")
        time.sleep(0.5)
    per_file = _offline_steps(run_dir)
    assert all(s == sorted(s) for s in per_file)  # wandb steps only ever increase within a run's file
    assert sum(len(s) for s in per_file) == EPOCHS  # no epoch in two files
    jsonl = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in jsonl] == list(range(EPOCHS))
