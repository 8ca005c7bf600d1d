"""Block adaptive LIF (Taylor et al. 2023, "Addressing the speed-accuracy simulation trade-off for adaptive
spiking neurons"), as the surrogate-gradient survey compares it.

An adaptive LIF with an absolute refractory period of `latency` steps can fire at most once in any window
of `latency + 1` steps. So within such a block no spike can act on a later step of the same block: the
membrane of the whole block is one matrix product (no reset needed), and only the first threshold
crossing counts. The recurrence runs over blocks, T / (latency + 1) iterations instead of T.

The definition the block algorithm reproduces exactly (docs/neurons.md), per step t:
    x'[t] = 0 while refractory (for `latency` steps after a spike), else x[t]
    v[t]  = d v[t-1] + x'[t]           ((1 - d) x'[t] with decay_input, as spikingjelly's LIF)
    s[t]  = H(v[t] - th - beta a[t-1]), 0 with no gradient while refractory
    v[t] <- 0 after a spike;  a[t] = p a[t-1] + s[t]  (reset and adaptation use the detached spike)
with d = 1 - 1/tau and p = 1 - 1/tau_adapt, learnable per channel (or per layer) and clamped to
[0, 0.999] as upstream does.
"""

from typing import Any

import torch
from spikingjelly.activation_based import base
from torch import nn

from spikesweep.spiking.neurons import BINARY_NORM, BOOL, at_least, between, neuron_family

MAX_DECAY = 0.999  # upstream's clamp: a decay of 1 would let the membrane and the adaptation never forget


def _decay(name: str, key: str, tau: float) -> float:
    if not 1.0 < tau <= 1.0 / (1.0 - MAX_DECAY):
        raise ValueError(f"neuron 'block_alif': {key} must be in (1, {1.0 / (1.0 - MAX_DECAY):g}], got {tau}")
    return 1.0 - 1.0 / float(tau)


def _powers(decay: torch.Tensor, n: int) -> torch.Tensor:
    """[decay^0, ..., decay^n] along a new first axis; a cumulative product keeps the gradient finite at 0."""
    ones = torch.ones_like(decay).expand(1, *decay.shape)
    return torch.cat([ones, decay.expand(n, *decay.shape)]).cumprod(0)


class BlockALIF(base.MemoryModule):
    """Adaptive LIF simulated block by block; state (membrane, adaptation, refractory steps left) carries
    over between calls like any spikingjelly neuron, so a sequence may be fed in pieces."""

    def __init__(
        self,
        surrogate: Any,
        tau: float,
        tau_adapt: float,
        beta: float,
        latency: int,
        v_threshold: float,
        decay_input: bool,
        learnable: bool,
        channels: int | None,
        step_mode: str = "m",
    ) -> None:
        super().__init__()
        if int(latency) != latency or latency < 0:
            raise ValueError(f"neuron 'block_alif': latency must be an integer >= 0, got {latency}")
        if beta < 0 or v_threshold <= 0:
            raise ValueError(
                f"neuron 'block_alif': needs beta >= 0 and v_threshold > 0 (a refractory neuron must stay "
                f"silent), got beta={beta}, v_threshold={v_threshold}"
            )
        self.surrogate_function = surrogate
        self.latency, self.beta, self.v_threshold = int(latency), float(beta), float(v_threshold)
        self.decay_input, self.channels, self.step_mode = decay_input, channels, step_mode
        size = (channels or 1,)
        for key, tau_value, attr in (("tau", tau, "decay"), ("tau_adapt", tau_adapt, "adapt_decay")):
            value = torch.full(size, _decay("block_alif", key, tau_value))
            if learnable:
                setattr(self, attr, nn.Parameter(value))
            else:
                self.register_buffer(attr, value)
        self.register_memory("v", 0.0)
        self.register_memory("a", 0.0)
        self.register_memory("refractory", 0)

    def extra_repr(self) -> str:
        return (f"latency={self.latency}, beta={self.beta}, v_threshold={self.v_threshold}, "
                f"decay_input={self.decay_input}, channels={self.channels}, step_mode={self.step_mode}")

    def _grouped(self, x_seq: torch.Tensor) -> torch.Tensor:
        """[T, B, ...] -> [T, B, C, rest]: the parameters' channel axis (dim 2), or one group per layer."""
        t, b = x_seq.shape[:2]
        if self.channels is None:
            return x_seq.reshape(t, b, 1, -1)
        if x_seq.dim() < 3 or x_seq.shape[2] != self.channels:
            raise ValueError(
                f"neuron 'block_alif' was built for {self.channels} channels (dim 2 of [T, B, C, ...]), "
                f"got input {tuple(x_seq.shape)}"
            )
        return x_seq.reshape(t, b, self.channels, -1)

    def _state(self, name: str, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        value = getattr(self, name)
        if isinstance(value, torch.Tensor):
            return value
        return torch.full_like(like, value, dtype=dtype or like.dtype)

    def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.multi_step_forward(x.unsqueeze(0)).squeeze(0)

    def multi_step_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        x = self._grouped(x_seq)
        n = self.latency + 1
        d = self.decay.clamp(0.0, MAX_DECAY).view(-1, 1)  # [C, 1]
        p = self.adapt_decay.clamp(0.0, MAX_DECAY).view(-1, 1)
        d_pow, p_pow = _powers(d, n), _powers(p, n)  # [n + 1, C, 1]
        lag = torch.arange(n, device=x.device)
        lag = lag.view(-1, 1) - lag.view(1, -1)  # lag[j, i] = j - i
        # kernel[j, i] = d^(j - i) for i <= j: the membrane of step j from the inputs of the block
        kernel = torch.where((lag >= 0).view(n, n, 1), d_pow[lag.clamp(min=0), :, 0], torch.zeros((), device=x.device))
        v = self._state("v", x[0])
        a = self._state("a", x[0])
        left = self._state("refractory", x[0], torch.long)
        spikes = []
        for start in range(0, x.shape[0], n):
            xb = x[start:start + n]
            m = xb.shape[0]  # the last block may be shorter
            step = torch.arange(m, device=x.device).view(m, 1, 1, 1)
            blocked = step < left  # refractory steps carried over from the previous block
            xb = xb.masked_fill(blocked, 0.0)
            if self.decay_input:
                xb = xb * (1.0 - d)
            h = torch.einsum("jic,ibcs->jbcs", kernel[:m, :m].to(xb.dtype), xb) + d_pow[1:m + 1].unsqueeze(1) * v
            threshold = self.v_threshold + self.beta * a * p_pow[:m].unsqueeze(1)  # th + beta a[t-1]
            raw = self.surrogate_function(h - threshold)
            earlier = raw.detach().cumsum(0) - raw.detach()
            s = raw * ((earlier == 0) & ~blocked)  # only the first crossing; refractory steps are silent
            fired = s.detach().sum(0)
            at = (s.detach() * step).sum(0)  # index of the spike in the block (0 if none)
            v = h[-1] * (1.0 - fired)
            a = a * p_pow[m] + (s.detach() * p_pow[:m].flip(0).unsqueeze(1)).sum(0)
            left = torch.where(fired > 0, self.latency - (m - 1 - at).long(), (left - m).clamp(min=0))
            spikes.append(s)
        self.v, self.a, self.refractory = v, a, left
        return torch.cat(spikes).reshape(x_seq.shape)


TAU_RANGE = between(1.0, 1.0 / (1.0 - MAX_DECAY), low_open=True)  # decays in (0, MAX_DECAY]


@neuron_family("block_alif", tau=TAU_RANGE, tau_adapt=TAU_RANGE, beta=at_least(0.0), latency=at_least(0, integer=True),
               decay_input=BOOL, learnable=BOOL, norm_value=BINARY_NORM)
def build_block_alif(
    surrogate: Any,
    tau: float = 100.0,
    tau_adapt: float = 100.0,
    beta: float = 1.0,
    latency: int = 1,
    v_threshold: float = 1.0,
    decay_input: bool = False,
    learnable: bool = True,
    channels: int | None = None,
    time_steps: int | None = None,
    norm_value: float | None = None,
) -> nn.Module:
    """Defaults are the survey's: decays 0.99 for membrane and adaptation, both learnable; adaptation
    strength 1 (upstream's 1.8 clamped to 1, a bound its gradient never leaves); latency 1 (blocks of 2).
    `channels` (passed by models that know it) gives per-channel decays instead of one per layer; any T."""
    return BlockALIF(surrogate, tau, tau_adapt, beta, latency, v_threshold, decay_input, learnable, channels)
