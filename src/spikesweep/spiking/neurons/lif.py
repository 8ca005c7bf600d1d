"""IF, LIF, PLIF and the online-training LIF (OSR) in multi-step mode, from spikingjelly 2.x.

IF and LIF have several backends (docs/neurons.md), all parity-tested against `torch`:
- `torch`: spikingjelly's Torch reference, a Python loop over T differentiated by autograd;
- `compile`: that loop as one torch.compile'd graph (compiled.py);
- `spikingjelly`: spikingjelly's own implementation, which on CUDA picks its native CUDA or Triton kernels
  (environment variable SJ_LIF_CUDA_IMPLEMENTATION) when it recognises the surrogate; on CPU it has no
  fused kernel and runs its reference loop with its own surrogate formulas (accepted, not faster);
- `cupy`: our fused CUDA kernels (cupy_lif.py);
- `auto`: the fastest of these for the device (`auto_backend`).
"""

import os
from typing import Any

import torch
from spikingjelly._ops.surrogate import _surrogate_spec
from spikingjelly.activation_based import base, neuron
from spikingjelly.activation_based import surrogate as sj
from torch import nn

from spikesweep.spiking.neurons import (
    ANY_REAL, BINARY_NORM, BOOL, Range, above, at_least, cupy_lif, neuron_family, one_of,
)
from spikesweep.spiking.neurons.compiled import CompiledLIF
from spikesweep.spiking.surrogate import Triangle

BACKENDS = ("auto", "torch", "compile", "spikingjelly", "cupy")


def _backend(name: str, backend: str, surrogate: Any) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"neuron '{name}': backend '{backend}' is not available; valid: {', '.join(BACKENDS)}")
    if backend == "auto":
        return auto_backend(surrogate)
    from spikesweep.spiking.backends import verify  # here: it builds layers of this module

    verify.require(backend, surrogate)  # a fused one that failed its parity check here: one line
    return backend


def spikingjelly_surrogate(surrogate: Any) -> Any:
    """The surrogate as spikingjelly's fused kernels know it: they recognise only their own built-in classes
    (by class and a float alpha). Our triangle is their PiecewiseQuadratic with alpha = 1/gamma (the same
    gradient, alpha - alpha^2 |x|); other shapes of ours have no counterpart and run its Torch reference."""
    if isinstance(surrogate, Triangle):
        return sj.PiecewiseQuadratic(alpha=1.0 / surrogate._sg_params["gamma"])
    return surrogate


def spikingjelly_fuses(surrogate: Any) -> bool:
    """Whether spikingjelly's CUDA kernels accept this surrogate (checked by its own recogniser)."""
    return _surrogate_spec(spikingjelly_surrogate(surrogate)) is not None


AUTO_ENV = "SPIKESWEEP_AUTO_BACKEND"


# On CUDA, spikingjelly's maintained kernels first: our cupy kernel has not yet passed its parity tests on a
# GPU (README, "Backends on a GPU"); each candidate is also checked on this machine before it is picked.
CUDA_PREFERENCE = ("spikingjelly", "cupy", "compile")


def auto_backend(surrogate: Any, device: torch.device | str | None = None) -> str:
    """`compile` on CPU; on CUDA the first of spikingjelly, cupy, compile that fuses this surrogate; in both
    cases only a backend that passed its parity check on this device (backends/verify.py), else `torch`.
    Without a device, CUDA counts if torch sees one. SPIKESWEEP_AUTO_BACKEND overrides the choice: the
    test suite sets torch, since compile's warm-up would cost every short CPU run seconds per process."""
    from spikesweep.spiking.backends import verify

    forced = os.environ.get(AUTO_ENV)
    if forced:
        if forced not in BACKENDS[1:]:
            raise ValueError(f"{AUTO_ENV}={forced!r} is not a backend; valid: {', '.join(BACKENDS[1:])}")
        return forced
    on_cuda = torch.cuda.is_available() if device is None else torch.device(device).type == "cuda"
    if on_cuda and not torch.cuda.is_available():  # a config naming CUDA on a machine without: no checks
        return "spikingjelly" if spikingjelly_fuses(surrogate) else "compile"
    for backend in CUDA_PREFERENCE if on_cuda else ("compile",):
        if verify.passes(backend, surrogate, device):
            return backend
    return "torch"


def _has_cupy_kernel(surrogate: Any) -> bool:
    try:
        cupy_lif.kernel_surrogate(surrogate)
    except ValueError:
        return False
    return True


class ReferenceSurrogate(nn.Module):
    """Hands spikingjelly a surrogate it does not recognise, so that its node runs the Torch reference loop
    (its documented path for Python surrogate callables) instead of dispatching to fused kernels."""

    def __init__(self, surrogate: nn.Module) -> None:
        super().__init__()
        self.surrogate = surrogate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.surrogate(x)


def _reset(v_reset: float | None) -> float | None:
    return None if v_reset is None else float(v_reset)


# Core parameters: time_steps and channels need no honouring (elementwise, any T); spikes are binary.
V_RESET = Range(optional=True)  # null: soft reset
BINARY = {"norm_value": BINARY_NORM, "detach_reset": BOOL}


@neuron_family("lif", tau=at_least(1.0), decay_input=BOOL, v_reset=V_RESET, backend=one_of(*BACKENDS), **BINARY)
def build_lif(
    surrogate: Any,
    tau: float = 2.0,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    detach_reset: bool = True,
    backend: str = "auto",
    time_steps: int | None = None,
    channels: int | None = None,
    norm_value: float | None = None,
) -> nn.Module:
    """v_reset=None selects soft reset (subtract the threshold)."""
    backend = _backend("lif", backend, surrogate)
    if backend == "compile":
        return CompiledLIF(surrogate, tau, v_threshold, _reset(v_reset), decay_input, detach_reset)
    if backend == "cupy":
        return cupy_lif.CupyLIF(surrogate, tau, v_threshold, _reset(v_reset), decay_input, detach_reset)
    sg = spikingjelly_surrogate(surrogate) if backend == "spikingjelly" else ReferenceSurrogate(surrogate)
    return neuron.LIFNode(
        tau=float(tau), decay_input=decay_input, v_threshold=float(v_threshold), v_reset=_reset(v_reset),
        surrogate_function=sg, detach_reset=detach_reset, step_mode="m",
    )


@neuron_family("if", v_reset=V_RESET, backend=one_of(*BACKENDS), **BINARY)
def build_if(
    surrogate: Any, v_threshold: float = 1.0, v_reset: float | None = 0.0, detach_reset: bool = True,
    backend: str = "auto", time_steps: int | None = None, channels: int | None = None,
    norm_value: float | None = None,
) -> nn.Module:
    backend = _backend("if", backend, surrogate)
    if backend == "compile":
        return CompiledLIF(surrogate, None, v_threshold, _reset(v_reset), True, detach_reset)
    if backend == "cupy":
        return cupy_lif.CupyLIF(surrogate, None, v_threshold, _reset(v_reset), True, detach_reset)
    sg = spikingjelly_surrogate(surrogate) if backend == "spikingjelly" else ReferenceSurrogate(surrogate)
    return neuron.IFNode(
        v_threshold=float(v_threshold), v_reset=_reset(v_reset), surrogate_function=sg,
        detach_reset=detach_reset, step_mode="m",
    )


@neuron_family("plif", tau=above(1.0), decay_input=BOOL, v_reset=V_RESET, **BINARY)
def build_plif(
    surrogate: Any,
    tau: float = 2.0,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    detach_reset: bool = True,
    time_steps: int | None = None,
    channels: int | None = None,
    norm_value: float | None = None,
) -> nn.Module:
    """LIF with a learnable time constant per layer (Fang et al. 2021); `tau` is its initial value."""
    return neuron.ParametricLIFNode(
        init_tau=float(tau), decay_input=decay_input, v_threshold=float(v_threshold), v_reset=_reset(v_reset),
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


@neuron_family("osr", tau=above(1.0), decay_input=BOOL, v_reset=ANY_REAL, norm_value=BINARY_NORM)
def build_osr(
    surrogate: Any, tau: float = 2.0, decay_input: bool = True, v_threshold: float = 1.0, v_reset: float = 0.0,
    time_steps: int | None = None, channels: int | None = None, norm_value: float | None = None,
) -> nn.Module:
    return OnlineLIF(surrogate, tau, decay_input, v_threshold, v_reset)


@neuron_family("clif", tau=at_least(1.0), norm_value=BINARY_NORM)
def build_clif(
    surrogate: Any, tau: float = 2.0, v_threshold: float = 1.0, time_steps: int | None = None,
    channels: int | None = None, norm_value: float | None = None,
) -> nn.Module:
    """Complementary LIF (Huang et al. 2024): a second potential m gates the decay and the soft reset:
    h = (1 - 1/tau) v + x; s = H(h - th); m = m sigmoid(h / tau) + s; v = h - s (th + sigmoid(m))."""
    return neuron.ComplementaryLIFNode(
        tau=float(tau), v_threshold=float(v_threshold), surrogate_function=surrogate, step_mode="m"
    )
