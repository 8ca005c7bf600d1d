"""A restart in a run directory continues what its checkpoint trained, or is refused without changing anything."""

import hashlib
import json
from pathlib import Path

import pytest
import torch

from spikesweep.engine.resume_policy import ResumeRefused, changed_keys, check
from spikesweep.run import train
from tests.conftest import SMOKE, compose, run_cli

RUN = (*SMOKE, "trainer.epochs=2")


def _hashes(run_dir: Path) -> dict[str, str]:
    """Every file of the run directory but the log (a refusal appends to it) and Hydra's own .hydra/."""
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name != "train.log" and ".hydra" not in p.parts
    }


def test_refused_resume_changes_nothing_and_reaches_train_log(tmp_path):
    run_dir = tmp_path / "run"
    done = run_cli("train", *RUN, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    before, log_before = _hashes(run_dir), (run_dir / "train.log").read_text()
    assert {"config.yaml", "overrides.yaml", "summary.json", "metrics.jsonl", "checkpoints/last.pt"} <= set(before)

    refused = run_cli("train", *RUN, "optimizer=sgd", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert refused.returncode != 0
    line = f"error: cannot resume {run_dir}: the config changed what it trained (optimizer adamw -> sgd)"
    assert line in refused.stderr
    assert _hashes(run_dir) == before
    log_after = (run_dir / "train.log").read_text()
    assert log_after.startswith(log_before) and line in log_after[len(log_before):]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["final"]["test_top1"] > 0


def test_config_drift_is_refused_with_every_changed_key(tmp_path):
    train(compose(*RUN), tmp_path, [])
    before = _hashes(tmp_path)
    with pytest.raises(ResumeRefused, match=r"\(neuron.tau 2.0 -> 3.0, seed 0 -> 5\); restore them, or start a new"):
        train(compose(*RUN, "seed=5", "neuron.tau=3.0"), tmp_path, [])
    with pytest.raises(ResumeRefused, match=r"\(model small_cnn -> spiking_mlp, optimizer.lr 0.001 -> 0.01\)"):
        train(compose(*RUN, "model=spiking_mlp", "optimizer.lr=0.01"), tmp_path, [])
    with pytest.raises(ResumeRefused, match=r"trainer.epochs 2 -> 3\); .* add resume.extend=true"):
        train(compose(*RUN, "trainer.epochs=3"), tmp_path, [])
    assert _hashes(tmp_path) == before


def test_killed_run_restarted_with_another_seed_is_refused(tmp_path):
    """The issue's case: a run stopped part-way (here: preempted) restarted with a changed config."""
    summary = train(compose(*RUN), tmp_path, [], stop_requested=lambda: True)
    assert summary["status"] == "preempted"
    before = _hashes(tmp_path)
    with pytest.raises(ResumeRefused, match=r"\(seed 0 -> 5\)"):
        train(compose(*RUN, "seed=5"), tmp_path, [])
    assert _hashes(tmp_path) == before


def test_result_neutral_keys_may_change_on_resume(tmp_path):
    train(compose(*RUN), tmp_path, [])
    neutral = ("trainer.eval_batch_size=17", "trainer.num_workers=1", "trainer.fold_bn_eval=false",
               f"paths.cache_dir={tmp_path / 'cache'}", "logger=wandb", "logger.mode=disabled", "name=renamed",
               "neuron.backend=torch", "trainer.device=cpu")
    summary = train(compose(*RUN, *neutral), tmp_path, [])
    assert summary["status"] == "completed" and summary["steps_this_run"] == 0 and "extensions" not in summary


def test_extending_epochs_needs_the_switch_and_is_recorded(tmp_path):
    train(compose(*RUN), tmp_path, [])
    summary = train(compose(*SMOKE, "trainer.epochs=3", "resume.extend=true"), tmp_path, [])
    assert summary["status"] == "completed" and summary["epochs"] == 3 and summary["steps_this_run"] == 3
    [extension] = summary["extensions"]
    assert extension["epochs"] == [2, 3] and extension["after_epochs"] == 2
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["extensions"] == [extension]
    assert [json.loads(line)["epoch"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]
    # the extension stays on record across later restarts; fewer epochs are never an extension
    again = train(compose(*SMOKE, "trainer.epochs=3"), tmp_path, [])
    assert again["extensions"] == [extension]
    with pytest.raises(ResumeRefused, match=r"trainer.epochs 3 -> 2"):
        train(compose(*SMOKE, "trainer.epochs=2", "resume.extend=true"), tmp_path, [])


def test_changed_keys_lists_additions_and_removals_and_skips_neutral_ones():
    saved = {"seed": 0, "trainer": {"epochs": 2, "num_workers": 0}, "logger": {"name": "none"}, "old": 1}
    current = {"seed": 0, "trainer": {"epochs": 2, "num_workers": 4}, "logger": {"name": "wandb"}, "new": ""}
    assert changed_keys(saved, current) == {"new": ("(absent)", ""), "old": (1, "(absent)")}
    with pytest.raises(ResumeRefused, match=r"\(new \(absent\) -> '', old 1 -> \(absent\)\)"):
        check(saved, current, "x")
    assert check(None, current, "x") is None  # a checkpoint without a config: nothing to compare
