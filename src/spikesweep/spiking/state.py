"""Membrane state handling shared by every neuron family."""

from torch import nn
from spikingjelly.activation_based import base, functional


def reset_states(model: nn.Module) -> None:
    """Zero every neuron's membrane state; called between independent batches."""
    functional.reset_net(model)


def is_spiking_neuron(module: nn.Module) -> bool:
    """True for modules whose output is a spike train (used by firing-rate hooks)."""
    return isinstance(module, base.MemoryModule) and getattr(module, "emits_spikes", True)
