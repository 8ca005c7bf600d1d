"""Parallel spiking neurons (Fang et al. 2023): no reset, so all T steps are computed at once.

They need the number of time steps when built: models pass `time_steps=T` (from the dataset) as an
override; without it the build fails with a message saying so.
"""

from typing import Any

from spikingjelly.activation_based import neuron
from torch import nn


def _need_t(name: str, time_steps: int | None) -> int:
    if time_steps is None:
        raise ValueError(f"neuron '{name}' needs the number of time steps: build it with time_steps=T")
    return int(time_steps)


def build_psn(surrogate: Any, time_steps: int | None = None) -> nn.Module:
    """h = W X + b over the T steps (W: T x T), s = H(h)."""
    return neuron.PSN(T=_need_t("psn", time_steps), surrogate_function=surrogate)


def build_sliding_psn(surrogate: Any, k: int = 4, exp_init: bool = True) -> nn.Module:
    """Each step sees the last k inputs (a learnable causal kernel): works for any T, sequences included."""
    return neuron.SlidingPSN(k=int(k), exp_init=exp_init, surrogate_function=surrogate, step_mode="m")


def build_masked_psn(surrogate: Any, k: int = 2, time_steps: int | None = None, lambda_init: float = 0.0) -> nn.Module:
    """PSN whose T x T weight is masked to a band of width k, the mask relaxed during training."""
    return neuron.MaskedPSN(
        k=int(k), T=_need_t("masked_psn", time_steps), lambda_init=float(lambda_init),
        surrogate_function=surrogate, step_mode="m",
    )
