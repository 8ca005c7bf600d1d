"""The real entry point (`spikesweep.run.train`) on the embedded digits, shrunk to a few steps."""

import json
import logging
import time
from pathlib import Path

import pytest
import torch
import yaml

from spikesweep import IMPORTED_AT
from spikesweep.engine.resume_policy import ResumeRefused
from spikesweep.run import RunError, train
from tests.conftest import SMOKE, compose


def _train(run_dir: Path, *overrides: str) -> dict:
    return train(compose(*SMOKE, *overrides), run_dir, list(overrides))


def test_run_directory_holds_everything(tmp_path):
    called = time.time() - IMPORTED_AT
    summary = _train(tmp_path, "trainer.epochs=2", "seed=3")
    assert summary["status"] == "completed" and summary["epochs"] == 2
    assert called < summary["first_step_from_process_s"] < time.time() - IMPORTED_AT  # from the process's start
    assert 0 < summary["first_step_s"] < summary["wall_time_s"]  # from the job's start
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["torch"] == torch.__version__.split("+")[0] and env["python"] and env["hydra-core"]
    assert f"torch=={env['torch']}" in (tmp_path / "pip-freeze.txt").read_text().splitlines()
    assert summary["split_hash"] is None  # digits: an in-memory split fixed by the config
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["final"]["test_top1"] == summary["final"]["test_top1"]
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1]
    for key in ("lr", "train_loss", "test_top1", "test_top5", "samples_per_s", "firing_rate", "energy_mj", "sops_g"):
        assert key in lines[0], key
    assert 0 < lines[0]["firing_rate"] < 1
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["seed"] == 3
    assert yaml.safe_load((tmp_path / "overrides.yaml").read_text()) == ["trainer.epochs=2", "seed=3"]
    assert "commit:" in (tmp_path / "git.txt").read_text() and "dirty:" in (tmp_path / "git.txt").read_text()
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["config"]["seed"] == 3
    assert (tmp_path / "checkpoints" / "best.pt").is_file()


def test_batch_larger_than_dataset_is_refused(tmp_path):
    with pytest.raises(RunError, match="exceeds the training set"):
        _train(tmp_path, "trainer.batch_size=5000")
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "failed"


def test_eval_only_reproduces_the_checkpoint_accuracy(tmp_path):
    trained = _train(tmp_path / "train", "trainer.epochs=2")
    best = tmp_path / "train" / "checkpoints" / "best.pt"
    evaluated = _train(tmp_path / "eval", "trainer.eval_only=true", f"ckpt={best}")
    assert evaluated["final"]["test_top1"] == pytest.approx(trained["best"]["test_top1"])


def test_checkpoint_of_another_model_is_refused(tmp_path):
    _train(tmp_path / "a", "model.channels=[8,16]")
    ckpt = tmp_path / "a" / "checkpoints" / "last.pt"
    with pytest.raises(RunError, match="does not fit this model: .*shape mismatches"):
        _train(tmp_path / "b", "trainer.eval_only=true", f"ckpt={ckpt}")


def test_truncated_checkpoint_is_refused(tmp_path):
    _train(tmp_path / "a")
    ckpt = tmp_path / "a" / "checkpoints" / "last.pt"
    bad = tmp_path / "bad.pt"
    bad.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(RunError, match="cannot load checkpoint"):
        _train(tmp_path / "b", "trainer.eval_only=true", f"ckpt={bad}")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    _train(tmp_path, "trainer.epochs=2", "trainer.max_steps_per_epoch=1")
    last = tmp_path / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["epoch"] = 0  # pretend only the first epoch finished, so the resumed run trains again
    state["config"]["optimizer"]["lr"] = 1e38  # ... and with this config (a changed one is refused)
    state["config"]["trainer"]["max_steps_per_epoch"] = 3
    torch.save(state, last)
    good = last.read_bytes()
    with pytest.raises(RunError, match="loss became (nan|inf)"):
        _train(tmp_path, "trainer.epochs=2", "trainer.max_steps_per_epoch=3", "optimizer.lr=1e38")
    assert last.read_bytes() == good
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "loss became" in summary["error"]


def test_wandb_offline_run_holds_the_logged_metrics(tmp_path):
    from tests.foundation.wandb_records import history

    summary = train(compose("trainer.epochs=2", "trainer.max_steps_per_epoch=3", "logger=wandb"), tmp_path, [])
    run_files = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 1
    deadline = time.time() + 60  # wandb's service process may still be flushing the file under load
    while len(rows := history(run_files[0])) < 2 and time.time() < deadline:
        time.sleep(0.5)
    assert [json.loads(r["test_top1"]) for r in rows] == pytest.approx(
        [json.loads(line)["test_top1"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    )
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert run_files[0].name == f"run-{state['wandb_id']}.wandb"
    assert summary["status"] == "completed"


def test_resume_with_another_optimizer_is_refused(tmp_path):
    _train(tmp_path, "trainer.epochs=2", "trainer.max_steps_per_epoch=1")
    last = tmp_path / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["epoch"] = 0
    torch.save(state, last)
    with pytest.raises(ResumeRefused, match=r"\(optimizer adamw -> sgd\); restore them"):
        _train(tmp_path, "trainer.epochs=2", "trainer.max_steps_per_epoch=1", "optimizer=sgd")


def test_held_out_split_selects_the_best_epoch_and_keeps_the_test_set_choice_apart(tmp_path):
    summary = _train(tmp_path, "trainer.epochs=3", "trainer.val_fraction=0.25")
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all("val_top1" in line and "val_loss" in line for line in lines)
    chosen = max(lines, key=lambda line: line["val_top1"])
    best = summary["best"]
    assert best["selected_by"] == "val_top1" and best["epoch"] == chosen["epoch"]
    assert best["test_top1"] == pytest.approx(chosen["test_top1"]), "the test score of the epoch chosen on val"
    assert best["test_top1_on_test"] == pytest.approx(max(line["test_top1"] for line in lines))


def test_held_out_split_is_fixed_disjoint_and_complete():
    from spikesweep.engine.data_loading import hold_out

    data = list(range(100))
    train_part, val_part = hold_out(data, 0.2)
    again, val_again = hold_out(data, 0.2)
    assert len(val_part) == 20 and list(val_part) == list(val_again) and list(train_part) == list(again)
    assert sorted([*train_part, *val_part]) == data
    assert hold_out(data, 0.0) == (data, None)
    with pytest.raises(ValueError, match="leaves no validation"):
        hold_out(data[:1], 0.2)


@pytest.mark.slow
def test_default_backend_on_cpu_trains_like_the_eager_reference(tmp_path, monkeypatch, caplog):
    """Users get `backend: auto` = compile (the suite forces torch for speed): same run, same numbers, and
    the compiled loops' Inductor cache goes to paths.cache_dir, not /tmp. This machine's record says a compile
    takes a millisecond, so that compiling pays even in this short run (engine/compile_policy.py)."""
    eager = _train(tmp_path / "eager", "trainer.epochs=2")
    monkeypatch.delenv("SPIKESWEEP_AUTO_BACKEND")  # auto picks compile on CPU (tests/spiking/test_backends.py)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/tmp/elsewhere")  # the config wins; restored after the test
    loops = tmp_path / "cache" / "inductor" / "spikesweep_loops"
    loops.mkdir(parents=True)
    (loops / "compile_seconds.json").write_text("[0.001]")
    with caplog.at_level(logging.INFO, logger="spikesweep"):
        compiled = _train(tmp_path / "auto", "trainer.epochs=2", f"paths.cache_dir={tmp_path / 'cache'}")
    for key in ("train_loss", "test_loss", "test_top1", "firing_rate"):
        assert compiled["final"][key] == pytest.approx(eager["final"][key], rel=1e-4, abs=1e-4), key
    assert "compiling the neuron loops pays here: 4 loop(s)" in caplog.text
    assert any((tmp_path / "cache" / "inductor").rglob("*.py"))  # the generated kernels
    assert any((tmp_path / "cache" / "inductor" / "spikesweep_loops").glob("*.bin"))  # the loops, traced
