"""Tiny builders shared by the model tests: a neuron factory and a dataset meta without any data."""

from types import SimpleNamespace

import torch
from spikingjelly.activation_based import base

from spikesweep.spiking import build_neuron, build_surrogate


def lif(**params):
    return build_neuron({"name": "lif", **params}, build_surrogate({"name": "sigmoid"}))


def meta(num_classes=10, shape=(3, 32, 32), time_steps=1, temporal=False):
    """Duck-types data.registry.DatasetMeta, so model tests need no dataset package."""
    return SimpleNamespace(num_classes=num_classes, input_shape=shape, time_steps=time_steps, temporal=temporal)


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


class IntegerSpike(base.MemoryModule):
    """Stand-in for an integer neuron in tests: round(clamp(x, 0, D)) / norm, one event worth 1/norm."""

    def __init__(self, max_value: int = 4, norm: float = 4.0) -> None:
        super().__init__()
        self.max_value, self.spike_unit = max_value, 1.0 / norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0, self.max_value).round() * self.spike_unit


def integer_spike(**overrides) -> IntegerSpike:
    return IntegerSpike(**overrides)
