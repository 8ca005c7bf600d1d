"""A spiking MLP: [linear -> BN -> neuron] per hidden layer and a linear readout at every step.

The general-purpose baseline for feature sequences (SHD/SSC channels, sequential CIFAR columns); image or
frame inputs are flattened per time step, so it also runs on any dataset of the registry.
"""

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from spikingjelly.activation_based import layer
from torch import nn

from spikesweep.models.encoding import to_time_major
from spikesweep.models.registry import register_model


class SpikingMLP(nn.Module):
    def __init__(
        self,
        neuron: Callable[..., nn.Module],
        in_features: int,
        num_classes: int,
        time_steps: int,
        temporal: bool,
        hidden: Sequence[int],
        dropout: float,
    ) -> None:
        super().__init__()
        self.time_steps, self.temporal = time_steps, temporal
        blocks: list[nn.Module] = []
        prev = in_features
        for width in hidden:
            blocks += [
                layer.Linear(prev, width, bias=False, step_mode="m"),
                layer.BatchNorm1d(width, step_mode="m"),
                neuron(),
            ]
            if dropout > 0:
                blocks.append(layer.Dropout(dropout, step_mode="m"))  # one mask for all steps of a sample
            prev = width
        self.features = nn.Sequential(*blocks)
        self.head = layer.Linear(prev, num_classes, step_mode="m")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_time_major(x, self.time_steps, self.temporal)
        return self.head(self.features(x.flatten(2)))


@register_model("spiking_mlp")
def spiking_mlp(
    neuron: Callable[..., nn.Module], meta: Any, hidden: Sequence[int] = (256, 256), dropout: float = 0.0
) -> nn.Module:
    return SpikingMLP(neuron, math.prod(meta.input_shape), meta.num_classes, meta.time_steps, meta.temporal,
                      list(hidden), dropout)
