"""IF and LIF neurons in multi-step mode, backed by spikingjelly 2.x."""

from typing import Any

from spikingjelly.activation_based import neuron
from torch import nn


def build_lif(
    surrogate: Any,
    tau: float = 2.0,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    detach_reset: bool = True,
    backend: str = "torch",
) -> nn.Module:
    """v_reset=None selects soft reset (subtract threshold)."""
    _check_backend(backend)
    return neuron.LIFNode(
        tau=float(tau),
        decay_input=decay_input,
        v_threshold=float(v_threshold),
        v_reset=None if v_reset is None else float(v_reset),
        surrogate_function=surrogate,
        detach_reset=detach_reset,
        step_mode="m",
    )


def build_if(
    surrogate: Any,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    detach_reset: bool = True,
    backend: str = "torch",
) -> nn.Module:
    _check_backend(backend)
    return neuron.IFNode(
        v_threshold=float(v_threshold),
        v_reset=None if v_reset is None else float(v_reset),
        surrogate_function=surrogate,
        detach_reset=detach_reset,
        step_mode="m",
    )


def _check_backend(backend: str) -> None:
    if backend != "torch":
        raise ValueError(f"neuron backend '{backend}' is not available; valid: torch")
