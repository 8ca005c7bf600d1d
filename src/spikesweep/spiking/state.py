"""Membrane state handling shared by every neuron family."""

from torch import nn
from spikingjelly.activation_based import functional


def reset_states(model: nn.Module) -> None:
    """Zero every neuron's membrane state; called between independent batches."""
    functional.reset_net(model)


def is_spiking_neuron(module: nn.Module) -> bool:
    """True for modules whose output is a spike train (firing-rate and energy hooks): every neuron, ours or
    spikingjelly's, carries a surrogate function; stateless ones (PSN) are not MemoryModules."""
    return hasattr(module, "surrogate_function")
