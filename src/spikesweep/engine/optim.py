"""Optimizer and learning-rate schedule from config, through timm's factories."""

from collections.abc import Mapping
from typing import Any

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.scheduler.scheduler import Scheduler


def resolve_lr(cfg: Mapping[str, Any], effective_batch: int) -> float:
    """The 'blr' rule of MAE-style recipes: lr = blr * effective_batch / 256, when blr is set."""
    if cfg.get("blr") is not None:
        return float(cfg["blr"]) * effective_batch / 256
    return float(cfg["lr"])


def param_groups(model: torch.nn.Module, own: list[dict[str, Any]], weight_decay: float) -> list[dict[str, Any]]:
    """The model's own groups, then the rest split as timm's filter_bias_and_bn does (1-D and biases: no decay)."""
    taken = {id(p) for group in own for p in group["params"]}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad and id(p) not in taken:
            (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    rest = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [group for group in rest if group["params"]] + own


def build_optimizer(model: torch.nn.Module, cfg: Mapping[str, Any], lr: float) -> torch.optim.Optimizer:
    """Weight decay skips 1-D parameters (norms, biases) as every recipe we reproduce does.

    timm's 'sgd' means Nesterov; the papers use plain momentum SGD, so `sgd` maps to timm's 'momentum'
    unless `nesterov: true`.

    A model whose parameters need their own learning rate or weight decay (e.g. learnable delays) defines
    `optimizer_groups()` returning dicts {"params": [...], "lr": ..., "weight_decay": ...}; the schedule then
    scales every group alike, each relative to its own starting lr.
    """
    name = cfg["name"]
    if name == "sgd":
        name = "nesterov" if cfg.get("nesterov") else "momentum"
    kwargs: dict[str, Any] = dict(cfg.get("kwargs") or {})
    if cfg.get("momentum") is not None:
        kwargs["momentum"] = float(cfg["momentum"])
    if cfg.get("betas") is not None:
        kwargs["betas"] = tuple(cfg["betas"])
    weight_decay = float(cfg.get("weight_decay", 0.0))
    if not hasattr(model, "optimizer_groups"):
        return create_optimizer_v2(model, opt=name, lr=lr, weight_decay=weight_decay, filter_bias_and_bn=True, **kwargs)
    groups = param_groups(model, list(model.optimizer_groups()), weight_decay)
    return create_optimizer_v2(groups, opt=name, lr=lr, weight_decay=weight_decay, **kwargs)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], epochs: int, updates_per_epoch: int
) -> Scheduler | None:
    """Per-iteration schedules (warmup then decay), stepped with `step_update` after every optimizer step."""
    if cfg["name"] == "none":
        return None
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=cfg["name"],
        num_epochs=epochs,
        warmup_epochs=int(cfg.get("warmup_epochs", 0)),
        warmup_lr=float(cfg.get("warmup_lr", 1e-6)),
        min_lr=float(cfg.get("min_lr", 0.0)),
        cooldown_epochs=int(cfg.get("cooldown_epochs", 0)),
        step_on_epochs=False,
        updates_per_epoch=updates_per_epoch,
    )
    return scheduler
