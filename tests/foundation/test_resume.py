"""A run killed with SIGKILL and restarted in the same directory ends exactly where an uninterrupted one does."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ARGS = ("trainer.epochs=4", "trainer.max_steps_per_epoch=6", "trainer.deterministic=true", "logger=none")
COMPARED = ("train_loss", "train_top1", "test_loss", "test_top1", "test_top5", "firing_rate", "lr")


def _command(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "spikesweep.cli", "train", *ARGS, f"hydra.run.dir={run_dir}"]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}


def _epochs(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[dict]:
    """The uninterrupted run every interrupted one must match."""
    run_dir = tmp_path_factory.mktemp("reference")
    subprocess.run(_command(run_dir), env=_env(), check=True, capture_output=True, timeout=300)
    return _epochs(run_dir)


def _same_metrics(ref: list[dict], got: list[dict]) -> None:
    assert [e["epoch"] for e in got] == [0, 1, 2, 3]  # no duplicated or missing epochs
    for a, b in zip(ref, got):
        for key in COMPARED:
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), (a["epoch"], key)


def test_killed_run_resumes_to_identical_metrics(tmp_path, reference):
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

    _same_metrics(reference, _epochs(interrupted))
    summary = json.loads((interrupted / "summary.json").read_text())
    assert summary["status"] == "completed"


def test_preemption_signal_saves_mid_epoch_and_the_rerun_skips_the_steps_done(tmp_path, reference):
    """SIGUSR2 (submitit's preemption signal): checkpoint after the step in progress, exit 75; the rerun
    continues from that step, trains only the steps left and ends exactly where an uninterrupted run does."""
    run_dir = tmp_path / "preempted"
    proc = subprocess.Popen(_command(run_dir), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not _epochs(run_dir) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be preempted"
    proc.send_signal(signal.SIGUSR2)
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 75, stderr[-2000:]

    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    epoch, done = state["epoch"], state["step_in_epoch"]
    assert 1 <= epoch < 4 and 1 <= done <= 6, (epoch, done)  # mid-epoch: after epoch 0, before the end
    assert state["data_order"]["seed"] == 0 and state["train_partial"]["seen"] == done * 64
    assert [e["epoch"] for e in _epochs(run_dir)] == list(range(epoch))
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "preempted"

    resumed = subprocess.run(_command(run_dir), env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming from epoch {epoch}, step {done} of 6" in (run_dir / "train.log").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["steps_this_run"] == 4 * 6 - (epoch * 6 + done)  # no step trained twice
    _same_metrics(reference, _epochs(run_dir))


def test_mid_epoch_resume_with_another_data_order_is_refused(tmp_path):
    from spikesweep.engine.checkpoint import CheckpointError
    from spikesweep.engine.engine import _check_data_order
    from spikesweep.engine.resume_policy import ResumeRefused
    from spikesweep.run import train
    from tests.conftest import compose

    args = ("trainer.epochs=1", "trainer.max_steps_per_epoch=3", "logger=none")
    summary = train(compose(*args), tmp_path, [], stop_requested=lambda: True)
    assert summary["status"] == "preempted" and summary["steps_this_run"] == 1
    with pytest.raises(ResumeRefused, match=r"cannot resume .*: the config changed what it trained \(seed 0 -> 1\)"):
        train(compose(*args, "seed=1"), tmp_path, [])
    # what the config does not hold: the number of processes the batches were split over
    saved = {"seed": 0, "world_size": 2, "batch_size": 64}
    with pytest.raises(CheckpointError, match=r"its batches were drawn with another world_size 2 -> 1; restore"):
        _check_data_order(saved, saved | {"world_size": 1}, tmp_path / "last.pt")


def test_unknown_preemption_signal_name_is_one_clear_line(monkeypatch):
    from spikesweep.engine.preemption import preemption_signal

    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "USR3")
    with pytest.raises(ValueError, match="SUBMITIT_PREEMPT_SIGNAL=USR3 is not a signal name"):
        preemption_signal()
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "USR1")
    assert preemption_signal() == signal.SIGUSR1


def test_train_loader_keeps_shuffle_order_and_skips_batches_without_loading_them():
    from torch.utils.data import DataLoader, TensorDataset

    from spikesweep.engine.distributed import DistInfo
    from spikesweep.engine.data_loading import make_loaders

    class Counted(TensorDataset):
        loads = 0

        def __getitem__(self, i):
            Counted.loads += 1
            return super().__getitem__(i)

    data = Counted(torch.arange(100))
    cfg = {"batch_size": 8, "num_workers": 0, "eval_batch_size": 8, "dist_eval": False}
    loader, _ = make_loaders(data, data, cfg, DistInfo(), 3, torch.device("cpu"))
    plain = DataLoader(data, batch_size=8, shuffle=True, generator=torch.Generator(), drop_last=True)
    for epoch_seed in (11, 12):  # what DataLoader(shuffle=True) gave before: results of old runs still hold
        loader.generator.manual_seed(epoch_seed)
        plain.generator.manual_seed(epoch_seed)
        assert [b[0].tolist() for b in loader] == [b[0].tolist() for b in plain]
    loader.generator.manual_seed(11)
    full = [b[0].tolist() for b in loader]
    loader.generator.manual_seed(11)
    loader.batch_sampler.skip_next_pass(5)
    Counted.loads = 0
    assert [b[0].tolist() for b in loader] == full[5:] and Counted.loads == 8 * (12 - 5)
    assert len(loader) == 12  # the skip is for one pass only and never shortens the loader
    assert len([b for b in loader]) == 12
