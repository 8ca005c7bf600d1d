"""The LIF of Gated Attention Coding / MS-ResNet: multiplicative decay and a hard reset by (1 - s)."""

from typing import Any

import torch
from spikingjelly.activation_based import base
from torch import nn

from spikesweep.spiking.neurons import BINARY_NORM, BOOL, between, neuron_family


class GacLIF(base.MemoryModule):
    """u_t = decay * u_{t-1} * (1 - s_{t-1}) + x_t;  s_t = H(u_t - threshold) with H(0) = 0 (strictly above).

    Our surrogates' forward is x >= 0, so the spike is taken as 1 - surrogate(threshold - u):
    the same value as upstream's (u - threshold > 0), and the same gradient for every binary surrogate,
    whose derivatives are all even functions.

    The CIFAR code keeps the reset in the graph (gradients flow through 1 - s); the ImageNet code detaches
    it. Input [T, B, ...], output spikes of the same shape.
    """

    def __init__(self, surrogate: Any, decay: float = 0.5, threshold: float = 1.0, detach_reset: bool = False) -> None:
        super().__init__()
        if not 0 <= decay <= 1:
            raise ValueError(f"neuron 'gac_lif': decay must be in [0, 1], got {decay}")
        self.surrogate_function = surrogate
        self.decay, self.threshold, self.detach_reset = float(decay), float(threshold), detach_reset
        self.step_mode = "m"
        self.register_memory("v", 0.0)
        self.register_memory("s", 0.0)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        u, s = self.v, self.s  # floats after a reset, tensors when a sequence continues
        spikes = []
        for x in x_seq:
            keep = 1 - (s.detach() if self.detach_reset and isinstance(s, torch.Tensor) else s)
            u = self.decay * u * keep + x
            s = 1 - self.surrogate_function(self.threshold - u)  # fires at u > threshold, as upstream's ZIF
            spikes.append(s)
        self.v, self.s = u, s
        return torch.stack(spikes)

    def extra_repr(self) -> str:
        return f"decay={self.decay}, threshold={self.threshold}, detach_reset={self.detach_reset}"


@neuron_family("gac_lif", decay=between(0.0, 1.0), detach_reset=BOOL, norm_value=BINARY_NORM)
def build_gac_lif(
    surrogate: Any, decay: float = 0.5, v_threshold: float = 1.0, detach_reset: bool = False,
    time_steps: int | None = None, channels: int | None = None, norm_value: float | None = None,
) -> nn.Module:
    """Core parameters: v_threshold is the firing threshold; elementwise (any T, any layout); binary spikes."""
    return GacLIF(surrogate, decay, v_threshold, detach_reset)
