"""Which tensors a layer reads are a spiking neuron's output, found by memory address within one forward.

Hooks see a neuron's output and, later, a layer's input, possibly a view of it (flatten, reshape). The address
alone is not enough: once an output is freed, the allocator may hand its memory to the next tensor, real
values and not spikes, and what a layer counts would then depend on where the allocator put its input (a CI
flake: two identical runs, different SOPs). So each entry also holds the output's storage, weakly: alive, it is
the same memory; dead, the address means nothing.
"""

import weakref
from typing import Generic, TypeVar

import torch

V = TypeVar("V")


class NeuronOutputs(Generic[V]):
    """What a hook noted about each neuron output of the current forward; `clear()` before each forward."""

    def __init__(self) -> None:
        self._notes: dict[int, tuple[weakref.ref, V]] = {}

    def clear(self) -> None:
        self._notes.clear()

    def note(self, output: torch.Tensor, value: V) -> None:
        self._notes[output.data_ptr()] = (weakref.ref(output.untyped_storage()), value)

    def get(self, x: torch.Tensor) -> V | None:
        """The value noted for the live neuron output that `x` is or views, else None."""
        storage, value = self._notes.get(x.data_ptr(), (None, None))
        return value if storage is not None and storage() is x.untyped_storage() else None
