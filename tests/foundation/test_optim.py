"""Our optimizer and schedule builders against timm's factories, which they replace on the default path
(engine/optim.py: importing timm costs a second of startup): the same groups, hyperparameters and lrs."""

import os
import subprocess
import sys

import pytest
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from torch import nn

from spikesweep.engine.optim import build_optimizer, build_scheduler, impl_flags, optimizer_class, param_groups


class _Grouped(nn.Sequential):
    """A model with a group of its own (as learnable delays have): lr and decay of its own."""

    def optimizer_groups(self):
        return [{"params": [self[0].weight], "lr": 0.5, "weight_decay": 0.0}]


def _net(grouped: bool = False) -> nn.Module:
    torch.manual_seed(0)
    layers = (nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 36, 3))
    return _Grouped(*layers) if grouped else nn.Sequential(*layers)


def _timm_optimizer(model: nn.Module, cfg: dict, lr: float) -> torch.optim.Optimizer:
    """What build_optimizer built through timm's factory for every optimizer, before."""
    name = {"sgd": "nesterov" if cfg.get("nesterov") else "momentum"}.get(cfg["name"], cfg["name"])
    kwargs = dict(cfg.get("kwargs") or {})
    if cfg.get("momentum") is not None:
        kwargs["momentum"] = cfg["momentum"]
    if cfg.get("betas") is not None:
        kwargs["betas"] = tuple(cfg["betas"])
    kwargs |= impl_flags(optimizer_class(name), cfg.get("impl", "auto"), list(model.parameters()))
    wd = cfg.get("weight_decay", 0.0)
    if hasattr(model, "optimizer_groups"):
        return create_optimizer_v2(param_groups(model, model.optimizer_groups(), wd), opt=name, lr=lr,
                                   weight_decay=wd, **kwargs)
    return create_optimizer_v2(model, opt=name, lr=lr, weight_decay=wd, filter_bias_and_bn=True, **kwargs)


CONFIGS = [
    {"name": "sgd", "momentum": 0.9, "weight_decay": 5e-4},
    {"name": "sgd", "nesterov": True, "weight_decay": 0.0, "kwargs": {"eps": 1e-8}},
    {"name": "adam", "weight_decay": 0.0},
    {"name": "adamw", "weight_decay": 0.05, "betas": [0.9, 0.99], "impl": "foreach"},
    {"name": "adamw", "weight_decay": 0.0, "impl": "single"},
    {"name": "lamb", "weight_decay": 0.05},
]


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c['name']}-wd{c['weight_decay']}")
def test_optimizer_is_the_one_timms_factory_builds(cfg, grouped):
    ours, timms = build_optimizer(_net(grouped), cfg, lr=0.01), _timm_optimizer(_net(grouped), cfg, lr=0.01)
    assert type(ours) is type(timms)
    assert ours.state_dict()["param_groups"] == timms.state_dict()["param_groups"]  # order, members, settings


@pytest.mark.parametrize("warmup_epochs,min_lr,cooldown_epochs", [(0, 0.0, 0), (1, 1e-5, 0), (2, 0.0, 1), (0, 1e-4, 2)])
def test_schedule_is_timms_cosine_at_every_update(warmup_epochs, min_lr, cooldown_epochs):
    """With a cooldown, trainer.epochs includes it, as timm's num_epochs does not."""
    epochs, per_epoch = 6, 7
    cfg = {"name": "cosine", "warmup_epochs": warmup_epochs, "warmup_lr": 1e-6, "min_lr": min_lr,
           "cooldown_epochs": cooldown_epochs}
    ours_opt, timm_opt = (build_optimizer(_net(True), {"name": "adamw", "weight_decay": 0.05}, lr=3e-3) for _ in "ab")
    ours = build_scheduler(ours_opt, cfg, epochs, per_epoch)
    timms, _ = create_scheduler_v2(timm_opt, sched="cosine", num_epochs=epochs - cooldown_epochs,
                                   warmup_epochs=warmup_epochs, warmup_lr=1e-6, min_lr=min_lr,
                                   cooldown_epochs=cooldown_epochs, step_on_epochs=False, updates_per_epoch=per_epoch)
    for update in range(epochs * per_epoch + 1):
        if update:
            ours.step_update(update)
            timms.step_update(update)
        assert [g["lr"] for g in ours_opt.param_groups] == [g["lr"] for g in timm_opt.param_groups], update
    assert [g["lr"] for g in ours_opt.param_groups] == [min_lr] * 3


PROBE = """
import runpy, sys
sys.argv = ["spikesweep", "train", "trainer.epochs=1", "trainer.max_steps_per_epoch=1", "logger=none"]
try:
    runpy.run_module("spikesweep.cli", run_name="__main__")
except SystemExit as done:
    assert not done.code, done.code
print("imported:", "timm" in sys.modules, "torchvision" in sys.modules)
"""


def test_a_default_run_imports_neither_timm_nor_torchvision(tmp_path):
    """The point of building these here: about a second of every run's startup."""
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "imported: False False", done.stdout[-2000:]
