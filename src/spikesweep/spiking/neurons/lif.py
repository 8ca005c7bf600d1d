"""IF, LIF, PLIF and the online-training LIF (OSR) in multi-step mode, from spikingjelly 2.x."""

from typing import Any

import torch
from spikingjelly.activation_based import base, neuron
from torch import nn

from spikesweep.spiking.neurons.compiled import CompiledLIF


BACKENDS = ("torch", "compile")


def _backend(name: str, backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"neuron '{name}': backend '{backend}' is not available; valid: {', '.join(BACKENDS)}")
    return backend


def _reset(v_reset: float | None) -> float | None:
    return None if v_reset is None else float(v_reset)


def build_lif(
    surrogate: Any,
    tau: float = 2.0,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    detach_reset: bool = True,
    backend: str = "torch",
) -> nn.Module:
    """v_reset=None selects soft reset (subtract the threshold). backend: torch (spikingjelly's eager
    reference) or compile (the T-loop as one torch.compile'd function)."""
    if _backend("lif", backend) == "compile":
        return CompiledLIF(surrogate, tau, v_threshold, _reset(v_reset), decay_input, detach_reset)
    return neuron.LIFNode(
        tau=float(tau), decay_input=decay_input, v_threshold=float(v_threshold), v_reset=_reset(v_reset),
        surrogate_function=surrogate, detach_reset=detach_reset, step_mode="m",
    )


def build_if(
    surrogate: Any, v_threshold: float = 1.0, v_reset: float | None = 0.0, detach_reset: bool = True,
    backend: str = "torch",
) -> nn.Module:
    if _backend("if", backend) == "compile":
        return CompiledLIF(surrogate, None, v_threshold, _reset(v_reset), True, detach_reset)
    return neuron.IFNode(
        v_threshold=float(v_threshold), v_reset=_reset(v_reset), surrogate_function=surrogate,
        detach_reset=detach_reset, step_mode="m",
    )


def build_plif(
    surrogate: Any,
    init_tau: float = 2.0,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    detach_reset: bool = True,
) -> nn.Module:
    """LIF with a learnable time constant per layer (Fang et al. 2021)."""
    return neuron.ParametricLIFNode(
        init_tau=float(init_tau), decay_input=decay_input, v_threshold=float(v_threshold), v_reset=_reset(v_reset),
        surrogate_function=surrogate, detach_reset=detach_reset, step_mode="m",
    )


class OnlineLIF(base.MemoryModule):
    """LIF whose membrane is detached before it carries over to the next step, so the gradient of step t
    reaches only step t's input (online training: memory does not grow with T). Hard reset, detached."""

    def __init__(self, surrogate: Any, tau: float, decay_input: bool, v_threshold: float, v_reset: float) -> None:
        super().__init__()
        if tau <= 1:
            raise ValueError(f"neuron 'osr': tau must be > 1, got {tau}")
        self.surrogate_function = surrogate
        self.tau, self.decay_input, self.v_threshold, self.v_reset = float(tau), decay_input, float(v_threshold), float(v_reset)
        self.step_mode = "m"
        self.register_memory("v", float(v_reset))

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        v = self.v.detach() if isinstance(self.v, torch.Tensor) else torch.full_like(x_seq[0], self.v)
        spikes = []
        for x in x_seq:
            v = v.detach()
            leak = v - self.v_reset
            h = v + (x - leak) / self.tau if self.decay_input else v - leak / self.tau + x
            s = self.surrogate_function(h - self.v_threshold)
            v = h * (1 - s.detach()) + self.v_reset * s.detach()
            spikes.append(s)
        self.v = v.detach()
        return torch.stack(spikes)


def build_osr(
    surrogate: Any, tau: float = 2.0, decay_input: bool = True, v_threshold: float = 1.0, v_reset: float = 0.0
) -> nn.Module:
    return OnlineLIF(surrogate, tau, decay_input, v_threshold, v_reset)


def build_clif(surrogate: Any, tau: float = 2.0, v_threshold: float = 1.0) -> nn.Module:
    """Complementary LIF (Huang et al. 2024): a second potential m gates the decay and the soft reset:
    h = (1 - 1/tau) v + x; s = H(h - th); m = m sigmoid(h / tau) + s; v = h - s (th + sigmoid(m))."""
    return neuron.ComplementaryLIFNode(
        tau=float(tau), v_threshold=float(v_threshold), surrogate_function=surrogate, step_mode="m"
    )
