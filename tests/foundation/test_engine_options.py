"""Engine options end to end on a few steps: EMA, Mixup/CutMix with an off-epoch, clipping, blr, compile."""

import json

import pytest

from spikesweep.engine.optim import resolve_lr
from spikesweep.run import train
from tests.conftest import SMOKE, compose


def test_blr_rule_scales_with_effective_batch():
    assert resolve_lr({"lr": 1.0, "blr": 5e-4}, effective_batch=512) == pytest.approx(1e-3)
    assert resolve_lr({"lr": 0.1, "blr": None}, effective_batch=512) == 0.1


def test_ema_mixup_clip_blr_and_warmup_run_together(tmp_path):
    overrides = [
        "trainer.epochs=2", "trainer.ema.enabled=true", "trainer.ema.decay=0.9",
        "trainer.mixup.mixup_alpha=0.8", "trainer.mixup.cutmix_alpha=1.0", "trainer.mixup.off_epoch=1",
        "trainer.label_smoothing=0.1", "trainer.grad_clip=1.0", "optimizer.blr=1e-3", "scheduler.warmup_epochs=1",
    ]
    summary = train(compose(*SMOKE, *overrides), tmp_path, overrides)
    assert summary["status"] == "completed"
    epochs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all("ema_top1" in e for e in epochs)
    # blr 1e-3 x batch 64 / 256; warmup ends after epoch 0, so epoch 0's last lr is below the peak
    assert epochs[0]["lr"] <= 1e-3 * 64 / 256


@pytest.mark.slow
def test_torch_compile_trains(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "")  # restored after the test, whatever the run sets
    # T=1: inductor's compile time grows with the unrolled time steps (T=4: 150 s on 2 cores, T=1: 40 s)
    overrides = ("trainer.compile=true", "dataset.T=1", f"paths.cache_dir={tmp_path / 'cache'}")
    summary = train(compose(*SMOKE, *overrides), tmp_path / "run", [])
    assert summary["status"] == "completed" and summary["final"]["test_loss"] > 0
