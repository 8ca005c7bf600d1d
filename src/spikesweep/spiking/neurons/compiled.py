"""The `compile` backend: IF/LIF's loop over T as one torch.compile'd function (one fused graph per shape
family instead of T small eager kernels per layer). Same state, same maths as spikingjelly's torch
reference, checked by parity tests; hooks and state reset see an ordinary module.

Inside the compiled function the spike is H(h) + (p(h) - p(h).detach()) with p the surrogate's primitive:
exactly the step forward (the bracket is an exact zero), exactly p' backward, and no autograd.Function or
module object for the compiler to trace.
"""

import functools
from collections.abc import Callable
from typing import Any

import torch
from spikingjelly.activation_based import base


def _lif_sequence(
    x_seq: torch.Tensor, v: torch.Tensor, primitive: Callable[..., torch.Tensor], sg_params: dict[str, float],
    inv_tau: float | None, v_threshold: float, v_reset: float | None, decay_input: bool, detach_reset: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    spikes = []
    for x in x_seq:
        if inv_tau is None:  # IF: pure integration
            h = v + x
        elif decay_input:
            h = v + (x - (v if v_reset is None else v - v_reset)) * inv_tau
        else:
            h = v - (v if v_reset is None else v - v_reset) * inv_tau + x
        u = h - v_threshold
        p = primitive(u, **sg_params)
        s = (u >= 0).to(u.dtype) + (p - p.detach())
        r = s.detach() if detach_reset else s
        v = h - r * v_threshold if v_reset is None else h * (1.0 - r) + v_reset * r
        spikes.append(s)
    return torch.stack(spikes), v


@functools.cache
def _compiled_sequence() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """Made on first use: torch.compile imports dynamo and inductor (seconds), which runs on other backends
    should not wait for."""
    return torch.compile(_lif_sequence)


class CompiledLIF(base.MemoryModule):
    def __init__(
        self, surrogate: Any, tau: float | None, v_threshold: float, v_reset: float | None, decay_input: bool,
        detach_reset: bool,
    ) -> None:
        super().__init__()
        if not hasattr(surrogate, "primitive_function"):
            raise ValueError(f"the compile backend needs a surrogate with a primitive; {type(surrogate).__name__} has none")
        self.surrogate_function = surrogate
        self.inv_tau = None if tau is None else 1.0 / float(tau)
        self.v_threshold, self.v_reset = float(v_threshold), None if v_reset is None else float(v_reset)
        self.decay_input, self.detach_reset = decay_input, detach_reset
        self.step_mode = "m"
        self.register_memory("v", 0.0 if v_reset is None else float(v_reset))

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        v = self.v if isinstance(self.v, torch.Tensor) else torch.full_like(x_seq[0], self.v)
        sg = self.surrogate_function
        spikes, self.v = _compiled_sequence()(
            x_seq, v, type(sg).primitive_function, dict(sg._sg_params), self.inv_tau, self.v_threshold, self.v_reset, self.decay_input,
            self.detach_reset,
        )
        return spikes

    def extra_repr(self) -> str:
        tau = None if self.inv_tau is None else 1 / self.inv_tau
        return f"tau={tau}, v_threshold={self.v_threshold}, v_reset={self.v_reset}, backend=compile"
