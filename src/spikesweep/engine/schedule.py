"""The learning-rate schedule every recipe uses: linear warmup, then a half cosine to min_lr, per update.

The same arithmetic as timm's CosineLRScheduler with one cycle, stepped per update (tests/foundation/test_optim.py
compares the two over whole runs, value for value); written here so that a run need not import timm
(engine/optim.py). The lr is a function of the update count alone, so a resumed run recomputes it.
"""

import math
from typing import Any

import torch


class CosineSchedule:
    """`total` updates of schedule (warmup included); after them the lr stays at `min_lr` (a cooldown)."""

    def __init__(self, optimizer: torch.optim.Optimizer, total: int, warmup: int = 0, warmup_lr: float = 0.0,
                 min_lr: float = 0.0) -> None:
        if total <= 0 or min_lr < 0:
            raise ValueError(f"a cosine schedule needs updates to span and min_lr >= 0 (got {total}, {min_lr})")
        self.optimizer, self.total, self.warmup, self.warmup_lr, self.min_lr = optimizer, total, warmup, warmup_lr, min_lr
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])  # each group's peak, its own when a model sets one
        self.peaks = [group["initial_lr"] for group in optimizer.param_groups]
        self.warmup_steps = [(peak - warmup_lr) / warmup for peak in self.peaks] if warmup else []
        if warmup:  # else the first update runs at the peak itself, not at the cosine's rounding of it
            self._set(self.lrs(0))

    def lrs(self, t: int) -> list[float]:
        """Each group's lr after `t` updates."""
        if t < self.warmup:
            return [self.warmup_lr + t * step for step in self.warmup_steps]
        if t >= self.total:
            return [self.min_lr for _ in self.peaks]
        return [self.min_lr + 0.5 * (peak - self.min_lr) * (1 + math.cos(math.pi * float(t) / float(self.total)))
                for peak in self.peaks]

    def step_update(self, num_updates: int) -> None:
        self._set(self.lrs(num_updates))

    def _set(self, lrs: list[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total, "warmup": self.warmup, "warmup_lr": self.warmup_lr, "min_lr": self.min_lr,
                "peaks": self.peaks}
