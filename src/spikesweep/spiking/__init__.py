"""Spiking building blocks (surrogates, neurons, state reset); imports nothing else of spikesweep."""

from spikesweep.spiking.neurons import NeuronFactory, build_neuron, neuron_names
from spikesweep.spiking.state import is_spiking_neuron, reset_states
from spikesweep.spiking.surrogate import build_surrogate, surrogate_names

__all__ = [
    "NeuronFactory",
    "build_neuron",
    "build_surrogate",
    "is_spiking_neuron",
    "neuron_names",
    "reset_states",
    "surrogate_names",
]
