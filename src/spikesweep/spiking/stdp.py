"""spikingjelly's STDP rule with the multi-step update computed over all T at once.

spikingjelly's `STDPLearner` in step mode 'm' calls its single-step rule once per time step, and for a
convolution that rule loops over the kernel's positions: T x kH x kW small products per synapse. The rule
is linear in the spikes for fixed weights, so the sum over time, batch and positions of
`trace_post * pre_spike` (and of `trace_pre * post_spike`) is one weight-gradient correlation over the
[T*B, ...] stack (`torch.nn.grad.conv2d_weight`, a matmul for Linear). Only the two traces need a loop
over T, of elementwise ops. Same update as spikingjelly's learner (tested to float32 rounding);
`spikesweep bench stdp` measures the speed-up.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from spikingjelly.activation_based.learning import STDPLearner
from torch import nn


def traces(spikes: torch.Tensor, tau: float, initial: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every step's trace of [T, ...] spikes (Euler decay 1 - 1/tau, updated before use), and the last one.
    Written in place into one copy of the spikes: a fresh tensor per step costs more in page faults than in
    arithmetic on a CPU."""
    out = spikes.clone()
    previous = initial
    for t in range(spikes.shape[0]):
        if previous is not None:
            out[t].add_(previous - previous / tau)
        previous = out[t]
    return out, out[-1]


def correlation(synapse: nn.Module, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    """sum over time, batch and positions of post[o] * pre[i] at every weight's place, for [T, B, ...] inputs
    (`pre` already padded as the synapse pads)."""
    pre, post = pre.flatten(0, 1), post.flatten(0, 1)
    if isinstance(synapse, nn.Linear):
        return post.flatten(0, -2).T @ pre.flatten(0, -2)
    weight_grad = torch.nn.grad.conv2d_weight if isinstance(synapse, nn.Conv2d) else torch.nn.grad.conv1d_weight
    return weight_grad(pre, synapse.weight.shape, post, stride=synapse.stride)


def _padded(synapse: nn.Module, pre: torch.Tensor) -> torch.Tensor:
    padding = getattr(synapse, "_reversed_padding_repeated_twice", None)
    if not padding or not any(padding):
        return pre
    mode = "constant" if synapse.padding_mode == "zeros" else synapse.padding_mode
    return F.pad(pre.flatten(0, 1), padding, mode=mode).unflatten(0, pre.shape[:2])


class BatchedSTDPLearner(STDPLearner):
    """spikingjelly's STDPLearner (same constructor, monitors, reset and enable/disable) whose multi-step
    `step` sums the rule over all recorded steps in two correlations instead of a loop over T."""

    def __init__(self, synapse: nn.Module, sn: nn.Module, tau_pre: float, tau_post: float,
                 f_pre: Callable[[torch.Tensor], torch.Tensor] = lambda w: w,
                 f_post: Callable[[torch.Tensor], torch.Tensor] = lambda w: w) -> None:
        super().__init__("m", synapse, sn, tau_pre, tau_post, f_pre=f_pre, f_post=f_post)

    @torch.no_grad()
    def step(self, on_grad: bool = True, scale: float = 1.0) -> torch.Tensor | None:
        """As STDPLearner.step: -delta_w added to weight.grad (on_grad) or returned; traces carry over."""
        pre_records, post_records = self.in_spike_monitor.records, self.out_spike_monitor.records
        if len(pre_records) != len(post_records):
            raise RuntimeError(f"STDP: {len(pre_records)} recorded inputs but {len(post_records)} outputs")
        if not pre_records:
            return None
        pre = _padded(self.synapse, torch.cat(pre_records))
        post = torch.cat(post_records)
        trace_pre, self.trace_pre = traces(pre, self.tau_pre, self.trace_pre)
        trace_post, self.trace_post = traces(post, self.tau_post, self.trace_post)
        weight = self.synapse.weight.detach()
        delta_w = (self.f_post(weight) * correlation(self.synapse, trace_pre, post)
                   - self.f_pre(weight) * correlation(self.synapse, pre, trace_post)) * scale
        self.in_spike_monitor.clear_recorded_data()
        self.out_spike_monitor.clear_recorded_data()
        if not on_grad:
            return delta_w
        grad = self.synapse.weight.grad
        self.synapse.weight.grad = -delta_w if grad is None else grad - delta_w
        return None
