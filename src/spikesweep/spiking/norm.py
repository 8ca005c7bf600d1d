"""Batch norms for multi-step [T, B, C, ...] tensors, by name, so a model can offer the survey's BN/TEBN choice.

- `bn`: statistics over T and B together (spikingjelly's multi-step BN: T folded into the batch).
- `tebn`: Temporal Effective BN (Duan et al. 2022): the same shared statistics, then a learnable scale per
  time step (initialised to 1), so each step can weigh its normalised input differently.
  spikingjelly's `TemporalEffectiveBatchNorm{1,2}d`, with a check that the input has the T it was built for.
"""

import torch
from spikingjelly.activation_based import layer
from torch import nn

NORMS = ("bn", "tebn")


class _StepsChecked:
    """TEBN's per-step scales fit one T; another length would broadcast wrongly or fail deep inside torch."""

    scale: nn.Parameter

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if x_seq.shape[0] != self.scale.numel():
            raise ValueError(
                f"TEBN was built for T={self.scale.numel()} steps but got {x_seq.shape[0]} (input {tuple(x_seq.shape)})"
            )
        return super().forward(x_seq)  # type: ignore[misc]


class TEBN1d(_StepsChecked, layer.TemporalEffectiveBatchNorm1d):
    """TEBN over [T, B, C] or [T, B, C, L]."""


class TEBN2d(_StepsChecked, layer.TemporalEffectiveBatchNorm2d):
    """TEBN over [T, B, C, H, W]."""


def check_norm(owner: str, kind: str) -> None:
    if kind not in NORMS:
        raise ValueError(f"{owner}: unknown norm '{kind}'; valid: {', '.join(NORMS)}")


def build_norm(kind: str, dims: int, channels: int, time_steps: int) -> nn.Module:
    """A multi-step norm over `channels` for 1-d ([T, B, C(, L)]) or 2-d ([T, B, C, H, W]) features."""
    check_norm("norm", kind)
    if dims not in (1, 2):
        raise ValueError(f"norm: dims must be 1 or 2, got {dims}")
    if kind == "bn":
        bn = layer.BatchNorm1d if dims == 1 else layer.BatchNorm2d
        return bn(channels, step_mode="m")
    if time_steps < 1:
        raise ValueError(f"norm 'tebn' needs the number of time steps (>= 1), got {time_steps}")
    tebn = TEBN1d if dims == 1 else TEBN2d
    return tebn(int(time_steps), channels)
