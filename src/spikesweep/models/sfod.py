"""SFOD's detector as the surrogate-gradient survey runs it on Gen1 (seed 002, SFOD/; Fan et al., CVPR 2024,
built on Cordone et al. 2022): a spiking DenseNet-121 and an SSD head on six feature maps.

Backbone: a DenseNet-BC whose every unit is norm -> conv -> neuron, so every conv after the stem reads
spikes. Stem: zero-pad 1, norm, 3x3 stride-2 conv, neuron, 3x3 stride-2 max-pool. Four dense blocks of
(6, 12, 24, 16) layers (norm -> 1x1 conv to 4g -> neuron -> norm -> 3x3 conv to g -> neuron, each layer
reading the concatenation of everything before it in the block), with a transition (norm -> 1x1 conv to half
the channels -> neuron -> 2x2 max-pool) between blocks; the first conv is 2g wide. Detection maps: after
transitions 1 and 2, after block 4, and three extra layers on top of it (each a 1x1 block to a narrower width
and a 3x3 stride-2 block to 640, 320, 320 channels). Extras and head zero-pad before their norm, as upstream.

Head (SSD, as upstream with `fusion` off, the survey's runs): each map's spike rate (mean over T), then per
map zero-pad 1 -> BatchNorm2d -> 3x3 conv without bias, one for class logits and one for box offsets. The
head reads the rates, not each step, so its output has a time axis of 1. SFOD's own fusion neck (upsampled
maps concatenated before the head) is not built: the survey's reported runs leave it off.

Output: ONE tensor [1, B, P, 4 + K]: map by map (finest first), then row, column, prior; the last dim is
(dx, dy, dw, dh) (SSD offsets from the prior, with weights 10, 10, 5, 5 as torchvision's BoxCoder) then K
class logits, one sigmoid each (focal loss; no background column). P = sum of H_m * W_m * A_m with
A_m = 2 + 2 * len(aspect_ratios[m]) priors per location (scale s_m, scale sqrt(s_m s_m+1), and w:h of r and
1:r for each ratio r). The task (tasks/ssd_detection.py) builds the same priors from this model's config.
"""

from collections.abc import Callable, Sequence
from typing import Any

import torch
from spikingjelly.activation_based import layer
from torch import nn

from spikesweep.models.encoding import to_time_major
from spikesweep.models.registry import register_model
from spikesweep.spiking.norm import build_norm, check_norm

NeuronFactory = Callable[..., nn.Module]
BLOCKS_121 = (6, 12, 24, 16)
EXTRAS = (640, 320, 320)  # upstream's default `extras` channels
BOTTLENECK = 4  # a dense layer's 1x1 conv widens to BOTTLENECK x growth
ASPECT_RATIOS = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))  # upstream's, one tuple per detection map
MIN_RATIO, MAX_RATIO = 0.05, 0.80  # prior scales as fractions of the input side, first to last map
# How each detection map's grid follows from the previous one (the input for the first): stride-2 halvings,
# "up" for a padded 3x3 conv or pool (ceil), "down" for a 2x2 pool (floor). The task builds the priors from this.
HALVINGS = (("up", "up", "down"), ("down",), ("down",), ("up",), ("up",), ("up",))


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.Module:
    return layer.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False, step_mode="m")


def _unit(c_in: int, c_out: int, kernel: int, neuron: NeuronFactory, norm: str, time_steps: int,
          stride: int = 1, pad_first: int = 0) -> nn.Sequential:
    """norm -> conv -> neuron; `pad_first` zero-pads before the norm (upstream's extras and stem), else a
    3x3 conv pads its own (normalised) input."""
    pad: list[nn.Module] = [nn.ConstantPad2d(pad_first, 0.0)] if pad_first else []
    padding = 0 if pad_first else kernel // 2
    return nn.Sequential(*pad, build_norm(norm, 2, c_in, time_steps),
                         _conv(c_in, c_out, kernel, stride, padding), neuron(channels=c_out))


class DenseLayer(nn.Module):
    """Bottleneck (1x1 to 4g) then 3x3 to g new channels, appended to its input."""

    def __init__(self, c_in: int, growth: int, neuron: NeuronFactory, norm: str, time_steps: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_unit(c_in, BOTTLENECK * growth, 1, neuron, norm, time_steps),
                                  _unit(BOTTLENECK * growth, growth, 3, neuron, norm, time_steps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.body(x)), dim=2)


def _transition(c_in: int, c_out: int, neuron: NeuronFactory, norm: str, time_steps: int) -> nn.Sequential:
    return nn.Sequential(_unit(c_in, c_out, 1, neuron, norm, time_steps), layer.MaxPool2d(2, 2, step_mode="m"))


class SSDHead(nn.Module):
    """Per map: zero-pad 1 -> BatchNorm2d -> 3x3 conv (no bias), on [B, C, H, W] spike rates."""

    def __init__(self, channels: Sequence[int], priors: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self.num_classes, self.priors = num_classes, tuple(priors)

        def branch(c: int, out: int) -> nn.Sequential:
            return nn.Sequential(nn.ConstantPad2d(1, 0.0), nn.BatchNorm2d(c), nn.Conv2d(c, out, 3, bias=False))

        self.boxes = nn.ModuleList(branch(c, 4 * a) for c, a in zip(channels, priors, strict=True))
        self.classes = nn.ModuleList(branch(c, num_classes * a) for c, a in zip(channels, priors, strict=True))

    def forward(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """[B, P, 4 + K], map, row, column, prior."""
        rows = []
        for x, a, box, cls in zip(maps, self.priors, self.boxes, self.classes, strict=True):
            rows.append(torch.cat((_per_prior(box(x), a), _per_prior(cls(x), a)), dim=-1))
        return torch.cat(rows, dim=1)


def _per_prior(y: torch.Tensor, priors: int) -> torch.Tensor:
    """[B, A * C, H, W] (channel a * C + c) -> [B, H * W * A, C]."""
    b, _, h, w = y.shape
    return y.view(b, priors, -1, h, w).permute(0, 3, 4, 1, 2).reshape(b, h * w * priors, -1)


class SFOD(nn.Module):
    """[B, T, C, H, W] events (or [B, C, H, W] repeated over T) -> [1, B, P, 4 + K] (module docstring)."""

    def __init__(
        self, neuron: NeuronFactory, in_channels: int, num_classes: int, time_steps: int, temporal: bool,
        growth: int, blocks: Sequence[int], extras: Sequence[int], aspect_ratios: Sequence[Sequence[float]],
        norm: str = "bn",
    ) -> None:
        super().__init__()
        self.time_steps, self.temporal = time_steps, temporal
        t = time_steps
        width = 2 * growth
        self.stem = nn.Sequential(_unit(in_channels, width, 3, neuron, norm, t, stride=2, pad_first=1),
                                  layer.MaxPool2d(3, 2, 1, step_mode="m"))
        stages, channels = [], []
        for i, count in enumerate(blocks):
            stage: list[nn.Module] = []
            for _ in range(count):
                stage.append(DenseLayer(width, growth, neuron, norm, t))
                width += growth
            if i < len(blocks) - 1:
                stage.append(_transition(width, width // 2, neuron, norm, t))
                width //= 2
            stages.append(nn.Sequential(*stage))
            if i != len(blocks) - 2:  # maps after transitions 1, 2 and block 4 (not after transition 3)
                channels.append(width)
        self.stages = nn.ModuleList(stages)
        extra_layers = []
        for i, c_out in enumerate(extras):
            hidden = width // (4 if i == 1 else 2)  # upstream narrows the second extra by 4, the others by 2
            extra_layers.append(nn.Sequential(_unit(width, hidden, 1, neuron, norm, t),
                                              _unit(hidden, c_out, 3, neuron, norm, t, stride=2, pad_first=1)))
            width = c_out
            channels.append(c_out)
        self.extras = nn.ModuleList(extra_layers)
        self.head = SSDHead(channels, [2 + 2 * len(r) for r in aspect_ratios], num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """Upstream's: Kaiming-normal convs (fan in), norms at weight 1, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The six detection maps as [T, B, C, H, W] spikes."""
        x = self.stem(to_time_major(x, self.time_steps, self.temporal))
        maps = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i != len(self.stages) - 2:
                maps.append(x)
        for extra in self.extras:
            x = extra(x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head([m.mean(0) for m in self.feature_maps(x)]).unsqueeze(0)


def _build(
    name: str, neuron: NeuronFactory, meta: Any, growth: int, blocks: Sequence[int], extras: Sequence[int],
    aspect_ratios: Sequence[Sequence[float]], min_ratio: float, max_ratio: float,
    halvings: Sequence[Sequence[str]], norm: str,
) -> SFOD:
    check_norm(name, norm)
    if len(meta.input_shape) != 3:
        raise ValueError(f"{name} needs image-shaped input (C, H, W), the dataset gives {meta.input_shape}")
    if min((side + 3) // 4 // 8 for side in meta.input_shape[1:]) < 1:  # the third map: ceil(/4), then three floor(/2)
        raise ValueError(f"{name} downsamples by 32 before its third map: input sides must be at least 29 px, "
                         f"got {meta.input_shape[1]}x{meta.input_shape[2]}")
    if len(aspect_ratios) != len(HALVINGS):
        raise ValueError(f"{name}: {len(HALVINGS)} detection maps need {len(HALVINGS)} aspect-ratio lists, "
                         f"got {len(aspect_ratios)}")
    if [list(h) for h in halvings] != [list(h) for h in HALVINGS]:
        raise ValueError(f"{name}: the maps' halvings are {[list(h) for h in HALVINGS]}, the config says "
                         f"{[list(h) for h in halvings]}")
    if not 0 < min_ratio < max_ratio <= 1:
        raise ValueError(f"{name}: prior scales need 0 < min_ratio < max_ratio <= 1, got {min_ratio}, {max_ratio}")
    return SFOD(neuron, meta.input_shape[0], meta.num_classes, meta.time_steps, meta.temporal, growth,
                blocks, extras, aspect_ratios, norm)


@register_model("sfod_densenet121_24")
def sfod_densenet121_24(
    neuron: NeuronFactory, meta: Any, aspect_ratios: Sequence[Sequence[float]] = ASPECT_RATIOS,
    min_ratio: float = MIN_RATIO, max_ratio: float = MAX_RATIO, halvings: Sequence[Sequence[str]] = HALVINGS,
    norm: str = "bn",
) -> nn.Module:
    """DenseNet-121, growth 24 (SFOD's own): 8,195,576 parameters for Gen1's 2 classes with BN and LIF."""
    return _build("sfod_densenet121_24", neuron, meta, 24, BLOCKS_121, EXTRAS, aspect_ratios, min_ratio, max_ratio,
                  halvings, norm)


@register_model("sfod_densenet121_16")
def sfod_densenet121_16(
    neuron: NeuronFactory, meta: Any, aspect_ratios: Sequence[Sequence[float]] = ASPECT_RATIOS,
    min_ratio: float = MIN_RATIO, max_ratio: float = MAX_RATIO, halvings: Sequence[Sequence[str]] = HALVINGS,
    norm: str = "bn",
) -> nn.Module:
    """DenseNet-121, growth 16 (the survey's): 5,016,744 parameters for Gen1's 2 classes with BN and LIF."""
    return _build("sfod_densenet121_16", neuron, meta, 16, BLOCKS_121, EXTRAS, aspect_ratios, min_ratio, max_ratio,
                  halvings, norm)


@register_model("sfod_tiny")
def sfod_tiny(
    neuron: NeuronFactory, meta: Any, aspect_ratios: Sequence[Sequence[float]] = ASPECT_RATIOS,
    min_ratio: float = MIN_RATIO, max_ratio: float = MAX_RATIO, halvings: Sequence[Sequence[str]] = HALVINGS,
    norm: str = "bn",
) -> nn.Module:
    """Growth 8, two layers per block, 32-channel extras: a detector that trains on a CPU (64x64 events)."""
    return _build("sfod_tiny", neuron, meta, 8, (2, 2, 2, 2), (32, 32, 32), aspect_ratios, min_ratio, max_ratio,
                  halvings, norm)
