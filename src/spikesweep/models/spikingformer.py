"""Spikingformer (Zhou et al. 2023) and its CML tokenizer variant (Zhou et al. 2023, "improved downsampling").

Every residual branch is pre-activation: it starts with a spiking neuron and ends with BatchNorm, so the
residual stream stays real-valued and every conv/matmul inside a branch consumes spikes (no
integer-times-float multiplications). Self-attention has no softmax: (q k^T) v * 0.125 then a spiking
neuron with threshold 0.5. Sizes are named `spikingformer_<depth>_<dim>` as in the papers.

Upstream blocks also hold two LayerNorms that forward never uses; they are not built here (no dead
parameters), so our counts are 4*dim*depth below the papers' figures (see docs/models.md).
"""

from collections.abc import Callable
from typing import Any

import torch
from spikingjelly.activation_based import layer
from torch import nn

from spikesweep.models.encoding import to_time_major
from spikesweep.models.registry import register_model

NeuronFactory = Callable[..., nn.Module]
DOWNSAMPLE_ORDERS = ("spikingformer", "cml")


def _seq(*modules: nn.Module) -> nn.Module:
    """Stateless layers applied to every time step at once ([T, B, ...] folded to [T*B, ...])."""
    return layer.SeqToANNContainer(*modules)


class Tokenizer(nn.Module):
    """conv3x3+BN on the raw input, then four [neuron, conv3x3, BN] stages widening D/8 -> D.

    `pool` marks the stages that halve the resolution with max-pool 3/2. The order within a pooled stage
    is the ablation of the CML paper: 'spikingformer' pools the spikes before the conv
    (neuron -> pool -> conv -> BN); 'cml' pools the conv output (neuron -> conv -> BN -> pool), so the
    next neuron sees max-pooled membrane input rather than max-pooled spikes.
    """

    def __init__(
        self, neuron: NeuronFactory, in_channels: int, dim: int, pool: tuple[bool, ...], order: str
    ) -> None:
        super().__init__()
        if order not in DOWNSAMPLE_ORDERS:
            raise ValueError(f"model.downsample='{order}' is unknown; valid: {', '.join(DOWNSAMPLE_ORDERS)}")
        widths = [dim // 8, dim // 4, dim // 2, dim, dim]
        self.stem = _seq(nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]))
        stages: list[nn.Module] = []
        for i, pooled in enumerate(pool):
            conv = [nn.Conv2d(widths[i], widths[i + 1], 3, padding=1, bias=False), nn.BatchNorm2d(widths[i + 1])]
            maxpool = [nn.MaxPool2d(3, stride=2, padding=1)] if pooled else []
            ops = maxpool + conv if order == "spikingformer" else conv + maxpool
            stages.append(nn.Sequential(neuron(), _seq(*ops)))
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class SpikingSelfAttention(nn.Module):
    """Spiking self-attention on tokens [T, B, D, N]: spike q, k, v; (q k^T) v * scale; spike; project."""

    def __init__(self, neuron: NeuronFactory, dim: int, heads: int, scale: float, attn_threshold: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding dim {dim} is not divisible by {heads} heads")
        self.heads, self.scale = heads, scale
        self.input_neuron = neuron()
        self.q = nn.Sequential(_seq(nn.Conv1d(dim, dim, 1, bias=False), nn.BatchNorm1d(dim)), neuron())
        self.k = nn.Sequential(_seq(nn.Conv1d(dim, dim, 1, bias=False), nn.BatchNorm1d(dim)), neuron())
        self.v = nn.Sequential(_seq(nn.Conv1d(dim, dim, 1, bias=False), nn.BatchNorm1d(dim)), neuron())
        self.attn_neuron = neuron(v_threshold=attn_threshold)
        self.proj = _seq(nn.Conv1d(dim, dim, 1), nn.BatchNorm1d(dim))

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        t, b, d, n = x.shape
        return x.reshape(t, b, self.heads, d // self.heads, n).transpose(-1, -2)  # [T, B, h, N, d/h]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, d, n = x.shape
        x = self.input_neuron(x)
        q, k, v = (self._split_heads(f(x)) for f in (self.q, self.k, self.v))
        out = (q @ k.transpose(-1, -2)) @ v * self.scale  # [T, B, h, N, d/h]
        out = out.transpose(-1, -2).reshape(t, b, d, n)
        return self.proj(self.attn_neuron(out))


class MLP(nn.Module):
    """Pre-activation MLP on tokens: neuron -> 1x1 conv to ratio*D -> BN -> neuron -> 1x1 conv -> BN."""

    def __init__(self, neuron: NeuronFactory, dim: int, ratio: int) -> None:
        super().__init__()
        hidden = dim * ratio
        self.net = nn.Sequential(
            neuron(),
            _seq(nn.Conv1d(dim, hidden, 1), nn.BatchNorm1d(hidden)),
            neuron(),
            _seq(nn.Conv1d(hidden, dim, 1), nn.BatchNorm1d(dim)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Block(nn.Module):
    def __init__(
        self, neuron: NeuronFactory, dim: int, heads: int, mlp_ratio: int, scale: float, attn_threshold: float
    ) -> None:
        super().__init__()
        self.attn = SpikingSelfAttention(neuron, dim, heads, scale, attn_threshold)
        self.mlp = MLP(neuron, dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class Spikingformer(nn.Module):
    """Input [B, C, H, W] (static, repeated T times) or [B, T, C, H, W] (events) -> logits [T, B, K]."""

    def __init__(
        self,
        neuron: NeuronFactory,
        in_channels: int,
        num_classes: int,
        time_steps: int,
        temporal: bool,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: int,
        pool: tuple[bool, ...],
        downsample: str,
        scale: float,
        attn_threshold: float,
    ) -> None:
        super().__init__()
        self.time_steps, self.temporal = time_steps, temporal
        self.tokenizer = Tokenizer(neuron, in_channels, dim, pool, downsample)
        self.blocks = nn.Sequential(
            *(Block(neuron, dim, heads, mlp_ratio, scale, attn_threshold) for _ in range(depth))
        )
        self.head = nn.Linear(dim, num_classes)
        self.apply(_init_weights)

    def checkpoint_blocks(self) -> list[nn.Module]:
        """The encoder blocks, for trainer.checkpoint_activations=blocks (they hold most activations)."""
        return list(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tokenizer(to_time_major(x, self.time_steps, self.temporal))  # [T, B, D, H', W']
        x = self.blocks(x.flatten(3))  # tokens [T, B, D, N]
        return self.head(x.mean(-1))  # per-step logits; the engine averages over T


def _init_weights(m: nn.Module) -> None:
    """timm's ViT init (truncated normal 0.02 for linear layers), as the upstream models use."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _pooled_stages(input_size: int, downsample: str) -> tuple[bool, ...]:
    """CIFAR-sized inputs (<= 64 px) pool in the last two tokenizer stages (32 -> 8); larger ones (ImageNet,
    DVS 128x128) pool in all four (224 -> 14, 128 -> 8), as the upstream per-dataset models do. CML's
    CIFAR model pools after the conv of stages 2 and 3: the same resolutions, one stage earlier (its
    released code; parity-tested against it)."""
    if input_size > 64:
        return (True, True, True, True)
    return (False, True, True, False) if downsample == "cml" else (False, False, True, True)


def build_spikingformer(
    neuron: NeuronFactory,
    meta: Any,
    dim: int,
    depth: int,
    heads: int,
    mlp_ratio: int = 4,
    downsample: str = "spikingformer",
    pool: list[bool] | None = None,
    scale: float = 0.125,
    attn_threshold: float = 0.5,
) -> nn.Module:
    if len(meta.input_shape) != 3:
        raise ValueError(f"spikingformer needs image or event frames (C, H, W), the dataset gives {meta.input_shape}")
    c, h, w = meta.input_shape
    stages = tuple(pool) if pool is not None else _pooled_stages(min(h, w), downsample)
    if len(stages) != 4:
        raise ValueError(f"model.pool needs 4 entries (one per tokenizer stage), got {list(stages)}")
    factor = 2 ** sum(stages)
    if h % factor or w % factor:
        raise ValueError(f"spikingformer's tokenizer pools {h}x{w} by {factor}: the image size must be a multiple of {factor}")
    if dim % 8:
        raise ValueError(f"model.dim={dim} must be a multiple of 8 (the tokenizer widens D/8 -> D)")
    return Spikingformer(
        neuron, c, meta.num_classes, meta.time_steps, meta.temporal, dim, depth, heads, mlp_ratio, stages,
        downsample, scale, attn_threshold,
    )


def _register(depth: int, dim: int) -> None:
    @register_model(f"spikingformer_{depth}_{dim}")
    def build(neuron: NeuronFactory, meta: Any, heads: int = 8, **kwargs: Any) -> nn.Module:
        return build_spikingformer(neuron, meta, dim=dim, depth=depth, heads=heads, **kwargs)


for _depth, _dim in ((4, 256), (2, 384), (4, 384), (8, 384), (8, 512), (8, 768), (2, 256)):
    _register(_depth, _dim)
