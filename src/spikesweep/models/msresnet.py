"""MS-ResNet (membrane-shortcut ResNet) with optional Gated Attention Coding, after GAC (bollossom/GAC).

Every block is BN(conv(neuron(BN(conv(neuron(x)))))) + shortcut(x): the residual stream carries membrane
potentials (real values), so the addition never produces non-binary spikes. Two variants:

- cifar: 3x3 stride-1 stem, three stages (msresnet18: [3, 3, 2] blocks, widths 128/256/512), default init.
- imagenet: 7x7 stride-2 stem + 3x3 max-pool, four stages of a torchvision ResNet (widths 64..512),
  every BN weight initialised to 0.5 and each block's second BN to zero, so blocks start as identities.

GAC's CIFAR and ImageNet neurons differ (RECIPES.md section 2); the model takes whichever neuron the run
configures, so the recipe chooses it.
"""

from collections.abc import Callable, Sequence
from typing import Any

import torch
from spikingjelly.activation_based import layer
from torch import nn

from spikesweep.models.encoding import GatedAttentionCoding, check_encoding, encode
from spikesweep.models.registry import register_model

# (blocks per stage, widths) per depth and variant. cifar-18 is GAC's; cifar-34 is ours (upstream has no
# CIFAR-34): the torchvision layout with the CIFAR stem and no max-pool.
LAYOUTS: dict[tuple[str, int], tuple[tuple[int, ...], tuple[int, ...]]] = {
    ("cifar", 18): ((3, 3, 2), (128, 256, 512)),
    ("cifar", 34): ((3, 4, 6, 3), (64, 128, 256, 512)),
    ("imagenet", 18): ((2, 2, 2, 2), (64, 128, 256, 512)),
    ("imagenet", 34): ((3, 4, 6, 3), (64, 128, 256, 512)),
}
VARIANTS = ("auto", "cifar", "imagenet")
STEM_CHANNELS = 64


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        layer.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False, step_mode="m"),
        layer.BatchNorm2d(c_out, step_mode="m"),
    )


class MSBlock(nn.Module):
    """Membrane-shortcut basic block; the projection shortcut acts on the real-valued input."""

    def __init__(self, c_in: int, c_out: int, stride: int, neuron: Callable[..., nn.Module]) -> None:
        super().__init__()
        self.sn1, self.conv1 = neuron(), _conv_bn(c_in, c_out, 3, stride)
        self.sn2, self.conv2 = neuron(), _conv_bn(c_out, c_out, 3, 1)
        self.shortcut = _conv_bn(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.sn2(self.conv1(self.sn1(x)))) + self.shortcut(x)


class MSResNet(nn.Module):
    """[B, C, H, W] (or [B, T, C, H, W]) -> logits [T, B, K]; a linear readout at every step."""

    def __init__(
        self,
        neuron: Callable[..., nn.Module],
        variant: str,
        blocks: Sequence[int],
        widths: Sequence[int],
        in_channels: int,
        num_classes: int,
        time_steps: int,
        temporal: bool,
        encoding: str,
        stem_channels: int = STEM_CHANNELS,
    ) -> None:
        super().__init__()
        self.time_steps, self.temporal, self.encoding = time_steps, temporal, encoding
        self.blocks = tuple(blocks)  # per stage: upstream checkpoints number their blocks within a stage
        if variant == "imagenet":
            stem = [*_conv_bn(in_channels, stem_channels, 7, 2), layer.MaxPool2d(3, 2, 1, step_mode="m")]
        else:
            stem = [*_conv_bn(in_channels, stem_channels, 3, 1)]
        self.stem = nn.Sequential(*stem)
        self.gac = GatedAttentionCoding(stem_channels, time_steps, neuron) if encoding == "gac" else None
        stages: list[nn.Module] = []
        prev = stem_channels
        for i, (count, width) in enumerate(zip(blocks, widths, strict=True)):
            stride = 1 if i == 0 else 2
            for j in range(count):
                stages.append(MSBlock(prev, width, stride if j == 0 else 1, neuron))
                prev = width
        self.stages = nn.Sequential(*stages)
        self.head_spike = neuron()
        self.pool = layer.AdaptiveAvgPool2d(1, step_mode="m")
        self.fc = layer.Linear(prev, num_classes, step_mode="m")
        if variant == "imagenet":
            self._imagenet_init()

    def _imagenet_init(self) -> None:
        """GAC's ImageNet init: He-normal convs, BN weights 0.5, every block's last BN zero (identity start)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 0.5)
                nn.init.zeros_(m.bias)
        for block in self.stages:
            nn.init.zeros_(block.conv2[1].weight)

    def checkpoint_blocks(self) -> list[nn.Module]:
        """The residual blocks, for trainer.checkpoint_activations=blocks."""
        return list(self.stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(encode(x, self.encoding, self.time_steps, self.temporal))
        if self.gac is not None:
            x = self.gac(x)
        x = self.pool(self.head_spike(self.stages(x)))
        return self.fc(x.flatten(2))


def _build(depth: int, neuron: Callable[..., nn.Module], meta: Any, variant: str, encoding: str) -> MSResNet:
    if variant not in VARIANTS:
        raise ValueError(f"msresnet{depth}: unknown variant '{variant}'; valid: {', '.join(VARIANTS)}")
    if len(meta.input_shape) != 3:
        raise ValueError(f"msresnet{depth} needs image input (C, H, W), the dataset gives {meta.input_shape}")
    check_encoding(encoding, meta.temporal)
    c, h, w = meta.input_shape
    if variant == "auto":  # ImageNet-sized inputs get the strided stem; CIFAR/MNIST-sized keep full resolution
        variant = "imagenet" if min(h, w) >= 64 else "cifar"
    blocks, widths = LAYOUTS[(variant, depth)]
    return MSResNet(neuron, variant, blocks, widths, c, meta.num_classes, meta.time_steps, meta.temporal, encoding)


@register_model("msresnet18")
def msresnet18(neuron: Callable[..., nn.Module], meta: Any, variant: str = "auto", encoding: str = "gac") -> nn.Module:
    return _build(18, neuron, meta, variant, encoding)


@register_model("msresnet34")
def msresnet34(neuron: Callable[..., nn.Module], meta: Any, variant: str = "auto", encoding: str = "gac") -> nn.Module:
    return _build(34, neuron, meta, variant, encoding)
