"""Detection through the whole run path, on the embedded detect_shapes set (real COCO-format files): the
detector learns, a run killed with SIGKILL resumes, and two gloo processes evaluate like one."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from spikesweep.assemble import assemble
from spikesweep.run import train
from tests.conftest import compose

SMALL = ("recipe=detect_demo", "logger=none", "dataset.train_images=64", "dataset.test_images=32",
         "trainer.batch_size=16", "trainer.eval_batch_size=32")


def _epochs(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_detector_learns_far_beyond_an_untrained_one(tmp_path):
    overrides = ["recipe=detect_demo", "logger=none", "dataset.train_images=512", "dataset.test_images=128",
                 "trainer.epochs=6", "optimizer.lr=4e-3", "scheduler.warmup_epochs=0",  # a short, hot schedule
                 f"paths.cache_dir={tmp_path / 'cache'}"]
    cfg = compose(*overrides)
    untrained = tmp_path / "untrained.pt"
    torch.save({"model": assemble(cfg, with_data=False).model.state_dict()}, untrained)
    before = train(compose(*overrides, "trainer.eval_only=true", f"ckpt={untrained}"), tmp_path / "eval", [])
    after = train(cfg, tmp_path / "run", overrides)
    assert after["status"] == "completed" and after["metric"] == "map50_95"
    assert before["final"]["test_map50"] < 2.0  # points: an untrained head finds next to nothing
    assert after["final"]["test_map50"] > before["final"]["test_map50"] + 10.0, after["final"]
    assert 0 < after["final"]["firing_rate"] < 1 and after["final"]["sops_g"] > 0  # energy/SOPs as for classifiers


def _command(run_dir: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "spikesweep.cli", "train", *SMALL, "trainer.epochs=4",
            f"paths.cache_dir={cache}", f"hydra.run.dir={run_dir}"]


def test_killed_detection_run_resumes_after_its_last_epoch(tmp_path):
    run_dir, env = tmp_path / "run", {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_command(run_dir, tmp_path / "cache"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while len(_epochs(run_dir)) < 2 and proc.poll() is None and time.time() < deadline:  # epoch 0's checkpoint is on disk
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(_command(run_dir, tmp_path / "cache"), env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from epoch" in (run_dir / "train.log").read_text()
    assert [e["epoch"] for e in _epochs(run_dir)] == [0, 1, 2, 3]  # none lost, none twice
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and "test_map50_95" in summary["best"]


@pytest.mark.slow
def test_two_gloo_processes_evaluate_detection_like_one(tmp_path):
    """Each rank sees half the test images; the COCO evaluation gathers both halves (in the split's order:
    AP breaks score ties by image order) and the spikes are summed over both, so these numbers equal a single
    process's on the same checkpoint."""
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "spikesweep.cli", "train", *SMALL, "trainer.epochs=2", f"paths.cache_dir={cache}",
           f"hydra.run.dir={tmp_path / 'ddp'}"]
    out = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["final"]["test_map50"] > 0
    single = train(compose(*SMALL, "trainer.eval_only=true", f"paths.cache_dir={cache}",
                           f"ckpt={tmp_path / 'ddp' / 'checkpoints' / 'last.pt'}"), tmp_path / "eval", [])
    for key in ("test_map50_95", "test_map50", "test_loss", "firing_rate", "activation_sparsity",
                "dense_macs", "effective_macs", "effective_acs", "footprint_bytes"):
        assert single["final"][key] == pytest.approx(summary["final"][key], rel=1e-5), key
