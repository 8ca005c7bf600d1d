"""Input encodings: how a sample becomes a [T, B, ...] tensor.

`to_time_major` is the direct encoding every model uses. `encode` adds the two classic spike codes
(Poisson rate, single-spike latency) for static images; `GatedAttentionCoding` is the learnable GAC
front end, applied by a model after its stem (it needs the stem's channels, so it is a layer, not a
function of the raw input).
"""

from collections.abc import Callable

import torch
from torch import nn

ENCODINGS = ("direct", "gac", "poisson", "latency")


def to_time_major(x: torch.Tensor, time_steps: int, temporal: bool) -> torch.Tensor:
    """Direct encoding for static inputs (repeat T times); event inputs [B, T, ...] become [T, B, ...]."""
    if temporal:
        return x.transpose(0, 1).contiguous()
    return x.unsqueeze(0).expand(time_steps, *x.shape).contiguous()


def check_encoding(encoding: str, temporal: bool) -> None:
    """Fail at build time on an unknown name, or a spike code asked of an input that already has a time axis."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding '{encoding}'; valid: {', '.join(ENCODINGS)}")
    if temporal and encoding in ("poisson", "latency"):
        raise ValueError(f"encoding '{encoding}' needs static input; this dataset is already temporal")


def _intensity(x: torch.Tensor) -> torch.Tensor:
    """Per-sample min-max scaling to [0, 1]: spike codes need intensities whatever the dataset's normalisation."""
    flat = x.flatten(1)
    low = flat.min(1, keepdim=True).values
    span = (flat.max(1, keepdim=True).values - low).clamp_min(1e-12)
    return ((flat - low) / span).view_as(x)


def poisson(x: torch.Tensor, time_steps: int) -> torch.Tensor:
    """Rate code: each step, each input fires with probability equal to its intensity."""
    p = _intensity(x)
    return (torch.rand(time_steps, *x.shape, device=x.device) < p).to(x.dtype)


def latency(x: torch.Tensor, time_steps: int) -> torch.Tensor:
    """Time-to-first-spike code: one spike per input at step round((1 - p) * (T - 1)), brightest first."""
    fire_at = torch.round((1.0 - _intensity(x)) * (time_steps - 1)).long()
    steps = torch.arange(time_steps, device=x.device).view(time_steps, *([1] * x.dim()))
    return (steps == fire_at.unsqueeze(0)).to(x.dtype)


def encode(x: torch.Tensor, encoding: str, time_steps: int, temporal: bool) -> torch.Tensor:
    """[B, ...] static or [B, T, ...] temporal input -> [T, B, ...]; GAC's input is the direct encoding."""
    if encoding == "poisson":
        return poisson(x, time_steps)
    if encoding == "latency":
        return latency(x, time_steps)
    return to_time_major(x, time_steps, temporal)


class TemporalAttention(nn.Module):
    """GAC's TA: which time steps matter, from avg- and max-pooled summaries through one shared MLP over T."""

    def __init__(self, time_steps: int) -> None:
        super().__init__()
        hidden = max(1, time_steps // 2)
        self.mlp = nn.Sequential(
            nn.Conv3d(time_steps, hidden, 1, bias=False), nn.ReLU(), nn.Conv3d(hidden, time_steps, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [T, B, C, H, W] -> [T, B, 1, 1, 1]
        x = x.transpose(0, 1)  # T becomes the channel axis of Conv3d
        avg = x.mean(dim=(2, 3, 4), keepdim=True)
        peak = x.amax(dim=(2, 3, 4), keepdim=True)
        return (self.mlp(avg) + self.mlp(peak)).transpose(0, 1)


class SpatialChannelAttention(nn.Module):
    """GAC's SCA: a per-step conv -> ReLU -> conv map of the same shape as the features."""

    def __init__(self, channels: int, kernel_size: int = 4) -> None:
        super().__init__()
        before, after = (kernel_size - 1) // 2, kernel_size // 2  # 'same' size for even kernels too
        pad = (before, after, before, after)
        self.body = nn.Sequential(
            nn.ZeroPad2d(pad),
            nn.Conv2d(channels, channels, kernel_size, bias=False),  # upstream GAU.py: bias=False
            nn.ReLU(),
            nn.ZeroPad2d(pad),
            nn.Conv2d(channels, channels, kernel_size, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, B, C, H, W], steps folded into the batch
        t, b = x.shape[:2]
        return self.body(x.flatten(0, 1)).view(t, b, *x.shape[2:])


class GatedAttentionCoding(nn.Module):
    """GAC: spikes of the stem output, gated by sigmoid(TA * SCA) computed from that same output.

    The result is real-valued; the next layer's neuron turns it back into spikes.
    """

    def __init__(self, channels: int, time_steps: int, neuron: Callable[..., nn.Module], kernel_size: int = 4) -> None:
        super().__init__()
        self.spike = neuron()
        self.ta = TemporalAttention(time_steps)
        self.sca = SpatialChannelAttention(channels, kernel_size)
        self.time_steps = time_steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: stem output [T, B, C, H, W]
        if x.dim() != 5 or x.shape[0] != self.time_steps:
            raise ValueError(f"GAC was built for [T={self.time_steps}, B, C, H, W] input, got {tuple(x.shape)}")
        return torch.sigmoid(self.ta(x) * self.sca(x)) * self.spike(x)
