"""Parallel spiking neurons (Fang et al. 2023): no reset, so all T steps are computed at once.

PSN and masked PSN need the number of time steps when built: `build_neuron` passes the dataset's T as the
core parameter `time_steps`; without it the build fails with a message saying so.
"""

from typing import Any

import torch
from spikingjelly.activation_based import neuron
from torch import nn

from spikesweep.spiking.neurons import BINARY_NORM, BOOL, at_least, between, neuron_family


def _need_t(name: str, time_steps: int | None) -> int:
    if time_steps is None:
        raise ValueError(f"neuron '{name}' needs the number of time steps: build it with time_steps=T")
    return int(time_steps)


def _threshold(module: nn.Module, v_threshold: float) -> nn.Module:
    """The learnable threshold B starts at v_threshold (spikingjelly's bias is -B, initialised to -1)."""
    with torch.no_grad():
        module.bias.fill_(-float(v_threshold))
    return module


# Core parameters: v_threshold is the initial threshold; channels is not needed (one kernel per layer,
# shared by all elements); spikes are binary.
@neuron_family("psn", norm_value=BINARY_NORM)
def build_psn(
    surrogate: Any, v_threshold: float = 1.0, time_steps: int | None = None, channels: int | None = None,
    norm_value: float | None = None,
) -> nn.Module:
    """h = W X - B over the T steps (W: T x T), s = H(h)."""
    return _threshold(neuron.PSN(T=_need_t("psn", time_steps), surrogate_function=surrogate), v_threshold)


@neuron_family("sliding_psn", k=at_least(1, integer=True), exp_init=BOOL, norm_value=BINARY_NORM)
def build_sliding_psn(
    surrogate: Any, k: int = 4, exp_init: bool = True, v_threshold: float = 1.0, time_steps: int | None = None,
    channels: int | None = None, norm_value: float | None = None,
) -> nn.Module:
    """Each step sees the last k inputs (a learnable causal kernel): works for any T, sequences included."""
    return _threshold(
        neuron.SlidingPSN(k=int(k), exp_init=exp_init, surrogate_function=surrogate, step_mode="m"), v_threshold
    )


@neuron_family("masked_psn", k=at_least(1, integer=True), lambda_init=between(0.0, 1.0), norm_value=BINARY_NORM)
def build_masked_psn(
    surrogate: Any, k: int = 2, lambda_init: float = 0.0, v_threshold: float = 1.0, time_steps: int | None = None,
    channels: int | None = None, norm_value: float | None = None,
) -> nn.Module:
    """PSN whose T x T weight is masked to a band of width k, the mask relaxed during training (lambda 0 -> 1)."""
    return _threshold(neuron.MaskedPSN(
        k=int(k), T=_need_t("masked_psn", time_steps), lambda_init=float(lambda_init),
        surrogate_function=surrogate, step_mode="m",
    ), v_threshold)
