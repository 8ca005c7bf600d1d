"""SDT v3's MultiSpike neuron: integer-valued spikes s = round(clamp(x / v_threshold, 0, D)) / Norm, stateless
per step (v_threshold = 1 upstream: the input worth one spike).

Learnable options (seed 000's ablations; upstream ships none of them for classification):
- `norm`: `fixed` (Norm = D, so values {0, 1/D, ..., 1}), `learnable_layer` (one Norm per layer) or
  `learnable_channel` (one Norm per channel: dimension 2 of the [T, B, C, ...] input). Norm is parametrised as softplus(rho) + 1e-3 so it stays
  positive; its gradient flows through the division (d s / d Norm = -q / Norm^2).
- `clip`: `fixed` (the input is clipped at the integer D) or `learnable`: the input is first clipped at a learnable bound
  D_eff = softplus(delta) + 1 (init D), then quantised; the gradient with respect to D_eff is the
  straight-through rule of a clamp, 1 where x > D_eff (the input was cut by the bound) and 0 elsewhere:
  the PACT rule for learnable clipping levels. D (the configured D, the hardware's largest spike
  count) stays the ceiling: learning can shrink the used range below D, never widen it past D.
`spike_unit` (1/Norm) tells energy counting and spike expansion what one binary event is worth.
"""

from typing import Any

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import base
from torch import nn

from spikesweep.spiking.neurons import above, at_least, neuron_family, one_of
from spikesweep.spiking.surrogate import Staircase


def _inverse_softplus(y: float) -> float:
    return float(torch.log(torch.expm1(torch.tensor(y))))


class _ClampToLearnable(torch.autograd.Function):
    """min(x, bound) with PACT's gradients: d/dx = 1 below the bound, d/dbound = 1 above it."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, bound)
        return torch.minimum(x, bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, bound = ctx.saved_tensors
        above = x > bound
        return grad * (~above), (grad * above).sum().reshape(bound.shape)


NORMS = ("fixed", "learnable_layer", "learnable_channel")
CLIPS = ("fixed", "learnable")


# Core parameters: any T (stateless); channels sizes norm=learnable_channel; norm_value is Norm.
@neuron_family("multispike", integer_spikes=True, D=at_least(1, integer=True), norm=one_of(*NORMS), clip=one_of(*CLIPS),
               norm_value=above(1e-3, optional=True))  # a learnable Norm is softplus(rho) + 1e-3
class MultiSpike(base.MemoryModule):
    def __init__(
        self,
        surrogate: Any,
        D: int = 4,
        norm: str = "fixed",
        clip: str = "fixed",
        norm_value: float | None = None,
        channels: int | None = None,
        v_threshold: float = 1.0,
        time_steps: int | None = None,
    ) -> None:
        super().__init__()
        if int(D) < 1:
            raise ValueError(f"neuron 'multispike': D must be >= 1, got {D}")
        if getattr(surrogate, "integer", False) and surrogate.D != int(D):
            raise ValueError(f"neuron 'multispike': D={D} but the surrogate quantises to {surrogate.D}; set surrogate.D={D}")
        if clip not in CLIPS:
            raise ValueError(f"neuron 'multispike': clip must be fixed or learnable, got {clip}")
        if norm not in NORMS:
            raise ValueError(f"neuron 'multispike': norm must be fixed, learnable_layer or learnable_channel, got {norm}")
        if norm == "learnable_channel" and not channels:
            raise ValueError("neuron 'multispike': norm=learnable_channel needs the layer's channels (override channels=C)")
        # A binary surrogate (atan, trapezoid, ...) acts at each of the D rounding thresholds.
        self.surrogate_function = surrogate if getattr(surrogate, "integer", False) else Staircase(surrogate, D)
        self.D, self.norm_mode, self.v_threshold = int(D), norm, float(v_threshold)
        init = float(norm_value if norm_value is not None else D)
        if norm == "fixed":
            self.register_buffer("norm_fixed", torch.tensor(init))
        else:
            shape = (int(channels),) if norm == "learnable_channel" else ()
            self.norm_rho = nn.Parameter(torch.full(shape, _inverse_softplus(init - 1e-3)))
        self.max_delta = nn.Parameter(torch.tensor(_inverse_softplus(self.D - 1.0))) if clip == "learnable" else None
        self.step_mode = "m"
        self._ndim = 3

    @property
    def norm(self) -> torch.Tensor:
        return self.norm_fixed if self.norm_mode == "fixed" else F.softplus(self.norm_rho) + 1e-3

    def _broadcast(self, norm: torch.Tensor) -> torch.Tensor:
        """A per-channel Norm shaped to divide [T, B, C, ...]."""
        return norm.reshape(1, 1, -1, *([1] * (self._ndim - 3))) if norm.ndim else norm

    @property
    def spike_unit(self) -> torch.Tensor:
        """The value of one binary event (1/Norm), broadcastable to the last output."""
        return self._broadcast(1.0 / self.norm.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._ndim = x.ndim
        if self.v_threshold != 1.0:
            x = x / self.v_threshold
        if self.max_delta is not None:
            x = _ClampToLearnable.apply(x, F.softplus(self.max_delta) + 1.0)
        q = self.surrogate_function(x)  # round(clamp(x, 0, D)) forward, the chosen surrogate backward
        return q / self._broadcast(self.norm)

    def extra_repr(self) -> str:
        return f"D={self.D}, norm={self.norm_mode}, clip={'fixed' if self.max_delta is None else 'learnable'}, v_threshold={self.v_threshold}"
