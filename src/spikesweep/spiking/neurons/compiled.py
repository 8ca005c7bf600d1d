"""The `compile` backend: IF/LIF over T with a hand-written BPTT, each direction torch.compile'd loops of CHUNK steps.

Autograd through a compiled T-loop (the first version of this backend) gained nothing in training on CPU:
Inductor's generated backward re-reads every per-step intermediate. Here the forward loop keeps only h
(the membrane before the spike; the backward recomputes the spike from it), and the backward is one more
loop over T per element:

    dL/dh_t     = dL/ds_t sg(h_t - th) + dL/dv_t dv_t/dh_t
    dL/dx_t     = dL/dh_t (1/tau with decay_input, else 1)
    dL/dv_{t-1} = dL/dh_t (1 - 1/tau; 1 for IF)

with dv_t/dh_t = 1 - s_t (hard reset, detached), 1 - s_t + (v_reset - h_t) sg (hard, attached), 1 (soft,
detached), 1 - th sg (soft, attached). sg is the surrogate's closed-form derivative (`derivative_of`), fused
into the loop; a forward-mode derivative of the primitive (torch.func.jvp) would do too, but Dynamo
specialises it to one tensor size, i.e. one compiled backward per layer shape. Same state and maths as
spikingjelly's torch reference, checked by parity tests.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from spikingjelly.activation_based import base

from spikesweep.spiking.neurons.loop_cache import run_compiled
from spikesweep.spiking.surrogate import derivative_of


class _Dynamics(NamedTuple):
    inv_tau: float | None  # None: IF
    v_threshold: float
    v_reset: float | None  # None: soft reset
    decay_input: bool
    detach_reset: bool


def _forward_loop(
    x_seq: torch.Tensor, v: torch.Tensor, d: _Dynamics, keep_membranes: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Spikes, the membranes h (kept for the backward only: inference does not write them) and the last v."""
    spikes, membranes = [], []
    for x in x_seq:
        leak = v if d.v_reset is None else v - d.v_reset
        if d.inv_tau is None:
            h = v + x
        elif d.decay_input:
            h = v + (x - leak) * d.inv_tau
        else:
            h = v - leak * d.inv_tau + x
        s = (h >= d.v_threshold).to(x.dtype)
        v = h - s * d.v_threshold if d.v_reset is None else h * (1.0 - s) + d.v_reset * s
        spikes.append(s)
        membranes.append(h)
    return torch.stack(spikes), torch.stack(membranes) if keep_membranes else None, v


def _backward_loop(
    grad_s: torch.Tensor, grad_v: torch.Tensor, h_seq: torch.Tensor,
    derivative: Callable[..., torch.Tensor], sg_params: dict[str, float], d: _Dynamics,
) -> tuple[torch.Tensor, torch.Tensor]:
    grads_x = []
    for t in range(len(h_seq) - 1, -1, -1):
        h = h_seq[t]
        s = (h >= d.v_threshold).to(h.dtype)  # the forward's spike, bit for bit: cheaper than reading it back
        sg = derivative(h - d.v_threshold, **sg_params)
        if d.v_reset is None:
            dv_dh = 1.0 if d.detach_reset else 1.0 - d.v_threshold * sg
        else:
            dv_dh = 1.0 - s if d.detach_reset else 1.0 - s + (d.v_reset - h) * sg
        grad_h = grad_s[t] * sg + grad_v * dv_dh
        grads_x.append(grad_h * d.inv_tau if d.inv_tau is not None and d.decay_input else grad_h)
        grad_v = grad_h if d.inv_tau is None else grad_h * (1.0 - d.inv_tau)
    return torch.stack(grads_x[::-1]), grad_v


CHUNK = 8


def _chunks(steps: int) -> list[slice]:
    """Consecutive runs of CHUNK steps (the last one shorter), each one compiled loop. Inductor's time to
    compile an unrolled loop grows with its length (about 2 s per step on a CPU), so an unchunked T=64 layer
    cost minutes before its first step; a loop of CHUNK steps keeps the fusion that makes the backend fast
    (BENCHMARKS.md notes) and at most two loops per layer shape, whatever T is."""
    return [slice(start, min(start + CHUNK, steps)) for start in range(0, steps, CHUNK)]


def _joined(parts: list[torch.Tensor]) -> torch.Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _forward(
    x_seq: torch.Tensor, v: torch.Tensor, d: _Dynamics, keep_membranes: bool
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """Spikes joined over T (the layer's output), and each chunk's membranes as its loop wrote them: only the
    backward reads them, chunk by chunk, so joining them would copy them once more (at T=64 the joins took
    more time than the loops; BENCHMARKS.md notes)."""
    spikes, membranes = [], []
    for steps in _chunks(len(x_seq)):
        s, h, v = run_compiled(_forward_loop, x_seq[steps], v, d, keep_membranes)
        spikes.append(s)
        if keep_membranes:
            membranes.append(h)
    return _joined(spikes), membranes, v


def _backward(
    grad_s: torch.Tensor, grad_v: torch.Tensor, h_chunks: tuple[torch.Tensor, ...], surrogate: Any, d: _Dynamics,
) -> tuple[torch.Tensor, torch.Tensor]:
    derivative, sg_params = derivative_of(surrogate), dict(surrogate._sg_params)
    grads_x = []
    for steps, h in zip(reversed(_chunks(len(grad_s))), reversed(h_chunks), strict=True):
        grad_x, grad_v = run_compiled(_backward_loop, grad_s[steps], grad_v, h, derivative, sg_params, d)
        grads_x.append(grad_x)
    return _joined(grads_x[::-1]), grad_v


class _LIFFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_seq: torch.Tensor, v: torch.Tensor, surrogate: Any, d: _Dynamics):
        spikes, h_chunks, v_out = _forward(x_seq, v, d, keep_membranes=True)
        ctx.save_for_backward(*h_chunks)  # the spikes are (h >= threshold): recomputed, not saved and read back
        ctx.surrogate, ctx.dynamics = surrogate, d
        return spikes, v_out

    @staticmethod
    def backward(ctx, grad_s: torch.Tensor | None, grad_v: torch.Tensor | None):
        h_chunks = ctx.saved_tensors
        d = ctx.dynamics
        steps = sum(len(h) for h in h_chunks)
        grad_s = h_chunks[0].new_zeros((steps, *h_chunks[0].shape[1:])) if grad_s is None else grad_s
        # The last v's gradient is nearly always none (a network's loss reads the spikes): a zero scalar the
        # loop broadcasts spares writing and reading a zero membrane.
        grad_v = h_chunks[0].new_zeros(()) if grad_v is None else grad_v
        grad_x, grad_v0 = _backward(grad_s.contiguous(), grad_v, h_chunks, ctx.surrogate, d)
        return grad_x, grad_v0 if ctx.needs_input_grad[1] else None, None, None


class CompiledLIF(base.MemoryModule):
    def __init__(
        self, surrogate: Any, tau: float | None, v_threshold: float, v_reset: float | None, decay_input: bool,
        detach_reset: bool,
    ) -> None:
        super().__init__()
        if derivative_of(surrogate) is None:
            raise ValueError(f"the compile backend needs a binary surrogate with a closed-form derivative; "
                             f"{type(surrogate).__name__} has none")
        self.surrogate_function = surrogate
        self.dynamics = _Dynamics(
            None if tau is None else 1.0 / float(tau), float(v_threshold), None if v_reset is None else float(v_reset),
            decay_input, detach_reset,
        )
        self.step_mode = "m"
        self.register_memory("v", 0.0 if v_reset is None else float(v_reset))

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        # A state not yet set is one value, a scalar the loop broadcasts: no membrane of initial values to
        # write and read (BENCHMARKS.md notes: the traffic a fused neuron cannot avoid).
        v = self.v.reshape(-1) if isinstance(self.v, torch.Tensor) else x_seq.new_full((), self.v)
        x = x_seq.reshape(len(x_seq), -1)  # [T, N]: elementwise, so the layout is free
        if torch.is_grad_enabled() and (x.requires_grad or v.requires_grad):
            spikes, v = _LIFFunction.apply(x, v, self.surrogate_function, self.dynamics)
        else:  # inference: nothing to keep for a backward
            spikes, _, v = _forward(x, v, self.dynamics, keep_membranes=False)
        self.v = v.view(x_seq.shape[1:])
        return spikes.view(x_seq.shape)

    def extra_repr(self) -> str:
        d = self.dynamics
        tau = None if d.inv_tau is None else 1 / d.inv_tau
        return f"tau={tau}, v_threshold={d.v_threshold}, v_reset={d.v_reset}, backend=compile"
