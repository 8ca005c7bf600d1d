"""Spike-Driven Transformer V3, the "Efficient Spiking Transformer" (Yao et al. 2025), sizes t/s/m/l.

A 4-stage hybrid: two convolutional stages of SepConv + conv-MLP blocks, then two stages of
spike-driven linear attention. Every conv, matmul and linear layer reads the output of a spiking neuron
(with `neuron=multispike`, integers 0..D scaled by 1/Norm) except the stem, which reads the raw image; the
residual stream between blocks is real-valued BatchNorm output. Only BatchNorm, no LayerNorm.

Per-layer neuron variants come from the neuron factory's overrides: the spike before the classifier
uses the `head_neuron` overrides (upstream: MultiSpike with Norm=1, i.e. integer counts, not fractions).
The defaults of `build_sdtv3` are those of conf/model/sdtv3_*.yaml (tests/models/test_sdtv3.py checks it).
"""

from collections.abc import Callable, Mapping
from typing import Any

import torch
from spikingjelly.activation_based import layer
from torch import nn

from spikesweep.models.encoding import to_time_major
from spikesweep.models.registry import register_model

NeuronFactory = Callable[..., nn.Module]
POS_EMBEDS = ("none", "learned", "sincos", "conv")
SIZES = {
    "t": (24, 48, 96, 128),
    "s": (32, 64, 128, 192),
    "m": (48, 96, 192, 240),
    "l": (64, 128, 256, 360),
}


def _seq(*modules: nn.Module) -> nn.Module:
    """Stateless layers applied to every time step at once ([T, B, ...] folded to [T*B, ...])."""
    return layer.SeqToANNContainer(*modules)


def _conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, bias: bool = False) -> nn.Module:
    return _seq(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=bias), nn.BatchNorm2d(cout))


class Downsample(nn.Module):
    """[neuron ->] kxk strided conv (with bias) -> BN. The stem reads the raw image, so it has no neuron."""

    def __init__(self, neuron: NeuronFactory | None, cin: int, cout: int, k: int, stride: int) -> None:
        super().__init__()
        self.spike = neuron(channels=cin) if neuron is not None else nn.Identity()
        self.conv = _conv_bn(cin, cout, k, stride, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.spike(x))


class SepConv(nn.Module):
    """Spiking separable conv (MobileNetV2-style inverted bottleneck): each of the three convs reads spikes."""

    def __init__(self, neuron: NeuronFactory, dim: int, kernel: int, expand: int = 2) -> None:
        super().__init__()
        mid = dim * expand
        self.net = nn.Sequential(
            neuron(channels=dim), _conv_bn(dim, mid),
            neuron(channels=mid), _conv_bn(mid, mid, kernel, groups=mid),
            neuron(channels=mid), _conv_bn(mid, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvBlock(nn.Module):
    """x + SepConv7x7(x), then x + [neuron -> conv3x3 to ratio*C -> BN -> neuron -> conv3x3 to C -> BN]."""

    def __init__(self, neuron: NeuronFactory, dim: int, mlp_ratio: int) -> None:
        super().__init__()
        self.sepconv = SepConv(neuron, dim, 7)
        hidden = dim * mlp_ratio
        self.mlp = nn.Sequential(
            neuron(channels=dim), _conv_bn(dim, hidden, 3), neuron(channels=hidden), _conv_bn(hidden, dim, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.sepconv(x)
        return x + self.mlp(x)


class LinearAttention(nn.Module):
    """Spike-driven attention without softmax on [T, B, C, H, W].

    q, k: 1x1 conv + BN then spike; v widened `v_ratio` x. Computed as q (k^T v) (linear in the token
    count, equal to (q k^T) v), scaled by 2 / sqrt(head dim), spiked, projected back to C (1x1 conv + BN).
    """

    def __init__(self, neuron: NeuronFactory, dim: int, heads: int, v_ratio: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.scale = 2 * (dim // heads) ** -0.5
        vdim = dim * v_ratio
        self.input_spike = neuron(channels=dim)
        self.q = nn.Sequential(_conv_bn(dim, dim), neuron(channels=dim))
        self.k = nn.Sequential(_conv_bn(dim, dim), neuron(channels=dim))
        self.v = nn.Sequential(_conv_bn(dim, vdim), neuron(channels=vdim))
        self.attn_spike = neuron(channels=vdim)
        self.proj = _conv_bn(vdim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        t, b, c = x.shape[:3]
        return x.reshape(t, b, self.heads, c // self.heads, -1).transpose(-1, -2)  # [T, B, h, N, c/h]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, _, h, w = x.shape
        x = self.input_spike(x)
        q, k, v = self._heads(self.q(x)), self._heads(self.k(x)), self._heads(self.v(x))
        out = q @ (k.transpose(-1, -2) @ v) * self.scale  # [T, B, heads, N, vdim/heads]
        out = out.transpose(-1, -2).reshape(t, b, -1, h, w)
        return self.proj(self.attn_spike(out))


class TokenMLP(nn.Module):
    """neuron -> 1x1 conv (bias) to ratio*C -> BN -> neuron -> 1x1 conv (bias) to C -> BN."""

    def __init__(self, neuron: NeuronFactory, dim: int, ratio: int) -> None:
        super().__init__()
        hidden = dim * ratio
        self.net = nn.Sequential(
            neuron(channels=dim), _conv_bn(dim, hidden, bias=True),
            neuron(channels=hidden), _conv_bn(hidden, dim, bias=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TransformerBlock(nn.Module):
    """x + SepConv3x3(x), x + attention(x), x + MLP(x)."""

    def __init__(self, neuron: NeuronFactory, dim: int, heads: int, mlp_ratio: int, v_ratio: int) -> None:
        super().__init__()
        self.sepconv = SepConv(neuron, dim, 3)
        self.attn = LinearAttention(neuron, dim, heads, v_ratio)
        self.mlp = TokenMLP(neuron, dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.sepconv(x)
        x = x + self.attn(x)
        return x + self.mlp(x)


def sincos_2d(dim: int, h: int, w: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position code [dim, h, w] (MAE convention: half the channels per axis)."""
    if dim % 4:
        raise ValueError(f"model.pos_embed=sincos needs a stage-3 width divisible by 4, got {dim}")
    freqs = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    parts = []
    for pos in (ys, xs):
        angle = pos[None] * freqs[:, None, None]
        parts += [angle.sin(), angle.cos()]
    return torch.cat(parts).float()


class PositionEmbedding(nn.Module):
    """Added once to the residual stream where the transformer stages start (seed 000's ablation; none upstream).

    learned: a [C, H, W] parameter (trunc-normal 0.02); sincos: fixed 2-D sine-cosine; conv: x + BN(depthwise
    3x3 conv(spike(x))), a conditional position code that stays spike-driven and works at any resolution.
    """

    def __init__(self, kind: str, neuron: NeuronFactory, dim: int, h: int, w: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "learned":
            self.table = nn.Parameter(nn.init.trunc_normal_(torch.zeros(dim, h, w), std=0.02))
        elif kind == "sincos":
            self.register_buffer("table", sincos_2d(dim, h, w), persistent=False)
        elif kind == "conv":
            self.conv = nn.Sequential(neuron(channels=dim), _conv_bn(dim, dim, 3, groups=dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "conv":
            return x + self.conv(x)
        return x + self.table


class SDTv3(nn.Module):
    """Input [B, C, H, W] (static, repeated T times) or [B, T, C, H, W] (events) -> logits [T, B, K]."""

    def __init__(
        self,
        neuron: NeuronFactory,
        in_channels: int,
        image_size: tuple[int, int],
        num_classes: int,
        time_steps: int,
        temporal: bool,
        dims: tuple[int, int, int, int],
        heads: int,
        mlp_ratio: int,
        v_ratio: int,
        depths: tuple[int, int, int, int],
        pos_embed: str,
        head_neuron: Mapping[str, Any],
    ) -> None:
        super().__init__()
        self.time_steps, self.temporal = time_steps, temporal
        c0, c1, c2, c3 = dims
        d1, d2, d3, d4 = depths
        self.stage1 = nn.Sequential(
            Downsample(None, in_channels, c0 // 2, 7, 2),
            *(ConvBlock(neuron, c0 // 2, mlp_ratio) for _ in range(d1)),
            Downsample(neuron, c0 // 2, c0, 3, 2),
            *(ConvBlock(neuron, c0, mlp_ratio) for _ in range(d1)),
        )
        self.stage2 = nn.Sequential(
            Downsample(neuron, c0, c1, 3, 2), *(ConvBlock(neuron, c1, mlp_ratio) for _ in range(d2))
        )
        h, w = image_size[0] // 16, image_size[1] // 16
        self.stage3 = nn.Sequential(
            Downsample(neuron, c1, c2, 3, 2),
            *([PositionEmbedding(pos_embed, neuron, c2, h, w)] if pos_embed != "none" else []),
            *(TransformerBlock(neuron, c2, heads, mlp_ratio, v_ratio) for _ in range(d3)),
        )
        self.stage4 = nn.Sequential(
            Downsample(neuron, c2, c3, 3, 1),
            *(TransformerBlock(neuron, c3, heads, mlp_ratio, v_ratio) for _ in range(d4)),
        )
        self.head_spike = neuron(channels=c3, **head_neuron)
        self.head = nn.Linear(c3, num_classes)

    def checkpoint_blocks(self) -> list[nn.Module]:
        """Every downsample, conv and transformer block of the four stages (trainer.checkpoint_activations)."""
        return [*self.stage1, *self.stage2, *self.stage3, *self.stage4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_time_major(x, self.time_steps, self.temporal)
        x = self.stage4(self.stage3(self.stage2(self.stage1(x))))
        return self.head(self.head_spike(x.mean((-2, -1))))  # per-step logits; the engine averages over T


HEAD_NEURON = {"norm_value": 1.0}  # upstream's head spike counts integers (MultiSpike Norm = 1)


def build_sdtv3(
    neuron: NeuronFactory,
    meta: Any,
    dims: list[int],
    heads: int = 8,
    mlp_ratio: int = 4,
    v_ratio: int = 4,
    depths: list[int] | None = None,
    pos_embed: str = "none",
    head_neuron: Mapping[str, Any] | None = None,
) -> nn.Module:
    """`head_neuron` None: upstream's head spike, integer counts (norm_value 1, as the configs say)."""
    if len(meta.input_shape) != 3:
        raise ValueError(f"sdtv3 needs image or event frames (C, H, W), the dataset gives {meta.input_shape}")
    c, h, w = meta.input_shape
    if h % 16 or w % 16:
        raise ValueError(f"sdtv3 downsamples by 16: the image size {h}x{w} must be a multiple of 16")
    if pos_embed not in POS_EMBEDS:
        raise ValueError(f"model.pos_embed='{pos_embed}' is unknown; valid: {', '.join(POS_EMBEDS)}")
    if len(dims) != 4:
        raise ValueError(f"model.dims needs 4 stage widths, got {list(dims)}")
    stage_depths = tuple(depths) if depths is not None else (1, 2, 6, 2)
    if len(stage_depths) != 4:
        raise ValueError(f"model.depths needs 4 entries, got {list(stage_depths)}")
    return SDTv3(
        neuron, c, (h, w), meta.num_classes, meta.time_steps, meta.temporal, tuple(dims), heads, mlp_ratio,
        v_ratio, stage_depths, pos_embed, dict(HEAD_NEURON if head_neuron is None else head_neuron),
    )


def _register(size: str, dims: tuple[int, int, int, int]) -> None:
    @register_model(f"sdtv3_{size}")
    def build(neuron: NeuronFactory, meta: Any, **kwargs: Any) -> nn.Module:
        return build_sdtv3(neuron, meta, dims=list(dims), **kwargs)


for _size, _dims in SIZES.items():
    _register(_size, _dims)
