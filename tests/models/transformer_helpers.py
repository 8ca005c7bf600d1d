"""Tiny builders shared by the model tests: a neuron factory and a dataset meta without any data."""

from types import SimpleNamespace

import torch

from spikesweep.spiking import build_neuron, build_surrogate


def lif(**params):
    return build_neuron({"name": "lif", **params}, build_surrogate({"name": "sigmoid"}))


def meta(num_classes=10, shape=(3, 32, 32), time_steps=1, temporal=False):
    """Duck-types data.registry.DatasetMeta, so model tests need no dataset package."""
    return SimpleNamespace(num_classes=num_classes, input_shape=shape, time_steps=time_steps, temporal=temporal)


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def integer_spike(**overrides) -> torch.nn.Module:
    """SDT v3's MultiSpike neuron (D=4, Norm=4 unless overridden), with the straight-through surrogate."""
    return build_neuron({"name": "multispike", "D": 4}, build_surrogate({"name": "ste", "D": 4}))(**overrides)
