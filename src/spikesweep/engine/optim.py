"""Optimizer and learning-rate schedule from config.

The optimizers torch has (SGD with or without Nesterov momentum, Adam, AdamW) are built directly, with
timm's parameter groups and defaults; the others (LAMB, ...) come from timm's factory. Importing timm costs
about a second of every run's startup (it imports torchvision, which imports torch._dynamo), so the default
path does not: tests/foundation/test_optim.py checks both builders give what timm's factory gives.
"""

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch.optim.optimizer import _default_to_fused_or_foreach  # torch's own test of fused-kernel support

from spikesweep.engine.schedule import CosineSchedule
from spikesweep.protocols import HasOptimizerGroups

# timm's names for the optimizers torch has, with the defaults timm's registry gives them.
TORCH_OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "momentum": (torch.optim.SGD, {"nesterov": False, "momentum": 0.9}),
    "nesterov": (torch.optim.SGD, {"nesterov": True, "momentum": 0.9}),
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
}


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


def _timm_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """timm's param_groups_weight_decay, in its order: no decay (1-D, biases) first; one group without decay."""
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not weight_decay:
        return [{"params": [p for _, p in params], "weight_decay": 0.0}]
    no_decay = [p for name, p in params if p.ndim <= 1 or name.endswith(".bias")]
    decay = [p for name, p in params if not (p.ndim <= 1 or name.endswith(".bias"))]
    groups = [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]
    return [group for group in groups if group["params"]]


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    if name in TORCH_OPTIMIZERS:
        return TORCH_OPTIMIZERS[name][0]
    from timm.optim import get_optimizer_info  # only for optimizers torch lacks (module docstring)

    return get_optimizer_info(name).opt_class


def impl_flags(opt_class: type, impl: str, params: list[torch.Tensor]) -> dict[str, bool]:
    """The `foreach`/`fused` arguments for `impl`. `auto` takes fused kernels (one kernel per step for all
    parameters) where torch has them for these parameters' devices and dtypes (CUDA and CPU), else foreach."""
    accepts = set(inspect.signature(opt_class.__init__).parameters)
    if impl == "auto":
        fused, _ = _default_to_fused_or_foreach(params, differentiable=False, use_fused=True)
        impl = "fused" if fused and "fused" in accepts else "foreach"
        return {impl: True} if impl in accepts else {}
    if impl == "single":
        return {"foreach": False} if "foreach" in accepts else {}
    if impl not in accepts:
        raise ValueError(f"optimizer.impl={impl}: {opt_class.__module__}.{opt_class.__name__} has no {impl} "
                         f"implementation; use auto or single")
    return {impl: True}


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """load_state_dict, keeping this run's fused/foreach choice: the saved groups carry the flags of the run
    that wrote them, which may have run on another device or with another `impl`."""
    flags = {k: optimizer.defaults[k] for k in ("foreach", "fused") if k in optimizer.defaults}
    optimizer.load_state_dict(state)
    for group in optimizer.param_groups:
        group.update(flags)


def build_optimizer(model: torch.nn.Module, cfg: Mapping[str, Any], lr: float) -> torch.optim.Optimizer:
    """Weight decay skips 1-D parameters (norms, biases) as every recipe we reproduce does.

    timm's 'sgd' means Nesterov; the papers use plain momentum SGD, so `sgd` maps to timm's 'momentum'
    unless `nesterov: true`. `impl` picks torch's fused, foreach (multi-tensor) or single-tensor update; all
    three compute the same step, the first two with fewer kernel launches.

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
    params = [p for p in model.parameters() if p.requires_grad]
    kwargs |= impl_flags(optimizer_class(name), str(cfg.get("impl", "auto")), params)
    if isinstance(model, HasOptimizerGroups):
        groups = param_groups(model, list(model.optimizer_groups()), weight_decay)
    else:  # each group carries its decay, as timm's factory sets it
        groups, weight_decay = _timm_groups(model, weight_decay), 0.0
    if name not in TORCH_OPTIMIZERS:
        from timm.optim import create_optimizer_v2

        return create_optimizer_v2(groups, opt=name, lr=lr, weight_decay=weight_decay, **kwargs)
    opt_class, defaults = TORCH_OPTIMIZERS[name]
    if opt_class is torch.optim.SGD:  # as timm's factory: SGD takes neither
        kwargs.pop("betas", None)
        kwargs.pop("eps", None)
    return opt_class(groups, lr=lr, weight_decay=weight_decay, **(defaults | kwargs))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], epochs: int, updates_per_epoch: int
) -> CosineSchedule | None:
    """Per-iteration schedules (warmup then decay), stepped with `step_update` after every optimizer step."""
    if cfg["name"] == "none":
        return None
    cooldown = int(cfg.get("cooldown_epochs") or 0)  # the last epochs at min_lr
    return CosineSchedule(
        optimizer,
        total=(epochs - cooldown) * updates_per_epoch,  # config_schema: cooldown < epochs
        warmup=int(cfg.get("warmup_epochs", 0)) * updates_per_epoch,
        warmup_lr=float(cfg.get("warmup_lr", 1e-6)),
        min_lr=float(cfg.get("min_lr", 0.0)),
    )
