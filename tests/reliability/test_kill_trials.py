"""SIGKILL at random moments (mid-step, mid-evaluation, mid-checkpoint): every restart resumes from a
complete checkpoint and ends with the metrics of an uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

TRIALS = 12
ARGS = ("trainer.epochs=3", "trainer.max_steps_per_epoch=2", "trainer.deterministic=true", "logger=none")
COMPARED = ("train_loss", "test_loss", "test_top1", "firing_rate")


def _cmd(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "spikesweep.cli", "train", *ARGS, f"hydra.run.dir={run_dir}"]


def _final(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_random_kills_never_lose_or_corrupt_anything(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    t0 = time.time()
    subprocess.run(_cmd(reference), env=env, check=True, capture_output=True, timeout=300)
    duration = time.time() - t0
    expected = _final(reference)
    rng = random.Random(1234)
    for trial in range(TRIALS):
        run_dir = tmp_path / f"trial{trial}"
        proc = subprocess.Popen(_cmd(run_dir), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(0.3, duration))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        last = run_dir / "checkpoints" / "last.pt"
        if last.exists():  # whatever moment the kill hit, the checkpoint on disk is whole
            torch.load(last, weights_only=True)
        out = subprocess.run(_cmd(run_dir), env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, (trial, out.stderr[-2000:])
        lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [e["epoch"] for e in lines] == list(range(3)), trial
        got = _final(run_dir)
        for key in COMPARED:
            assert got[key] == pytest.approx(expected[key], rel=1e-6), (trial, key)
