"""EMS-YOLO (Su et al., ICCV 2023; BICLab/EMS-YOLO): an EMS-ResNet backbone and a YOLOv3-tiny-style two-scale head.

The survey's COCO detector (its `coco/` folder runs upstream's `models/resnet10.yaml`, T=5). Every block is a
membrane-shortcut residual: neuron -> conv -> norm -> neuron -> conv -> norm, added to a shortcut, so the
stream between blocks carries membrane potentials and every conv reads spikes. Two "energy-efficient" shortcuts
keep the shortcut's conv on spikes too:

- EMS block 1 (`EMSBlock`): when the shape changes, max-pool to the new resolution, then neuron -> 1x1 conv
  -> norm (max-pool first: the 1x1 conv runs on the smaller map).
- EMS block 2 (`EMSConcatBlock`, EMS-Res10's stages 2-4): neuron -> 1x1 conv -> norm makes only the
  c_out - c_in missing channels; they are concatenated with the input itself and the whole max-pooled.

Head (the same for every depth): a wide block (hidden 1024) to 256 channels, then a block to 512 channels at
stride 32; a 1x1 block to 128, 2x nearest upsampling, concatenation with the stride-16 backbone features and a
block to 256 channels at stride 16. Each scale ends in a 1x1 conv with bias (no neuron: it reads membranes).

Output (the detection contract): [T, B, P, 5 + K] raw, scale by scale (stride 16 first), then anchor, row,
column; the task averages over T. Norms (`bn` | `tebn`) start as upstream's: weight 0.5, except 0.1 for each
block's last norm (a small residual branch at first), eps 1e-3 and momentum 0.03 (the YOLOv5 BN settings the
survey's nn.BatchNorm2d layers get). Objectness and class biases start at YOLOv5's priors.
"""

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from spikingjelly.activation_based import layer
from torch import nn
from torch.nn import functional as F

from spikesweep.models.encoding import to_time_major
from spikesweep.models.registry import register_model
from spikesweep.spiking.norm import build_norm, check_norm

NeuronFactory = Callable[..., nn.Module]
STRIDES = (16, 32)  # the head's two scales: stage 3 (P4) and stage 4 (P5) of the backbone
ANCHORS = ((10, 14, 23, 27, 37, 58), (81, 82, 135, 169, 344, 319))  # upstream's (w, h) pixel pairs per stride
NORM_WEIGHT, LAST_NORM_WEIGHT = 0.5, 0.1  # upstream: the threshold, and 0.2 x the threshold
BN_EPS, BN_MOMENTUM = 1e-3, 0.03
# depth -> (blocks per stage, whether stages 2-4 open with EMS block 2). Stage 1 opens with EMS block 1 at
# stride 2 in both (the 7x7 stem already halves the input and there is no max-pool). Upstream's resnet18.yaml
# ends in non-spiking SiLU convs, so there is no res18 here.
LAYOUTS: dict[int, tuple[tuple[int, ...], bool]] = {10: ((1, 1, 1, 1), True), 34: ((3, 4, 6, 3), False)}
# Channel counts at width_multiple 1 (upstream's): stem, the four stages, and the head's widths.
STEM, STAGES = 64, (64, 128, 256, 512)
NECK_HIDDEN, NECK, P5, LATERAL, P4 = 1024, 256, 512, 128, 256


class _Norms:
    """Builds the run's norm (bn | tebn) with upstream's initial weight and YOLOv5's eps and momentum."""

    def __init__(self, kind: str, time_steps: int) -> None:
        self.kind, self.time_steps = kind, time_steps

    def __call__(self, channels: int, weight: float = NORM_WEIGHT) -> nn.Module:
        norm = build_norm(self.kind, 2, channels, self.time_steps)  # both kinds are a BN (+ per-step scales)
        norm.eps, norm.momentum = BN_EPS, BN_MOMENTUM
        nn.init.constant_(norm.weight, weight)
        return norm


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Module:
    return layer.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False, step_mode="m")


def _pool(stride: int) -> nn.Module:
    return layer.MaxPool2d(stride, stride, step_mode="m") if stride > 1 else nn.Identity()


def _residual(
    c_in: int, hidden: int, c_out: int, kernel: int, stride: int, neuron: NeuronFactory, norm: _Norms
) -> nn.Sequential:
    return nn.Sequential(
        neuron(channels=c_in), _conv(c_in, hidden, kernel, stride), norm(hidden),
        neuron(channels=hidden), _conv(hidden, c_out, kernel), norm(c_out, LAST_NORM_WEIGHT),
    )


class EMSBlock(nn.Module):
    """EMS block 1: residual + (identity, or max-pool -> neuron -> 1x1 conv -> norm when the shape changes)."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, neuron: NeuronFactory, norm: _Norms,
        hidden: int | None = None,
    ) -> None:
        super().__init__()
        self.residual = _residual(c_in, hidden or c_out, c_out, kernel, stride, neuron, norm)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(_pool(stride), neuron(channels=c_in), _conv(c_in, c_out, 1), norm(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class EMSConcatBlock(nn.Module):
    """EMS block 2: residual + max-pool(concat(neuron -> 1x1 conv -> norm to c_out - c_in channels, input))."""

    def __init__(self, c_in: int, c_out: int, stride: int, neuron: NeuronFactory, norm: _Norms) -> None:
        super().__init__()
        if c_out <= c_in:
            raise ValueError(f"EMS concat block widens its input: {c_in} -> {c_out} channels")
        self.residual = _residual(c_in, c_out, c_out, 3, stride, neuron, norm)
        self.extra = nn.Sequential(neuron(channels=c_in), _conv(c_in, c_out - c_in, 1), norm(c_out - c_in))
        self.pool = _pool(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.pool(torch.cat((self.extra(x), x), dim=2))


def _width(channels: int, multiple: float) -> int:
    """Upstream's width scaling: channels x multiple, rounded up to a multiple of 8."""
    return max(8, math.ceil(channels * multiple / 8) * 8)


class EMSYolo(nn.Module):
    """[B, C, H, W] (repeated over T) or [B, T, C, H, W] -> raw head outputs [T, B, P, 5 + K]."""

    def __init__(
        self,
        neuron: NeuronFactory,
        depth: int,
        in_channels: int,
        image_size: tuple[int, int],
        num_classes: int,
        anchors_per_scale: Sequence[int],
        time_steps: int,
        temporal: bool,
        norm: str = "bn",
        width_multiple: float = 1.0,
    ) -> None:
        super().__init__()
        self.time_steps, self.temporal, self.num_classes = time_steps, temporal, num_classes
        self.anchors_per_scale = tuple(anchors_per_scale)
        norms = _Norms(norm, time_steps)

        def w(channels: int) -> int:
            return _width(channels, width_multiple)

        blocks, concat = LAYOUTS[depth]
        self.stem = nn.Sequential(_conv(in_channels, w(STEM), 7, 2), norms(w(STEM)))
        stages: list[nn.Sequential] = []
        prev = w(STEM)
        for i, (count, width) in enumerate(zip(blocks, map(w, STAGES), strict=True)):
            first: nn.Module = (EMSConcatBlock(prev, width, 2, neuron, norms) if concat and i > 0
                                else EMSBlock(prev, width, 3, 2, neuron, norms))
            rest = [EMSBlock(width, width, 3, 1, neuron, norms) for _ in range(count - 1)]
            stages.append(nn.Sequential(first, *rest))
            prev = width
        self.stages = nn.ModuleList(stages)
        self.neck = EMSBlock(prev, w(NECK), 3, 1, neuron, norms, hidden=w(NECK_HIDDEN))
        self.p5 = EMSBlock(w(NECK), w(P5), 3, 1, neuron, norms)
        self.lateral = EMSBlock(w(NECK), w(LATERAL), 1, 1, neuron, norms)
        self.p4 = EMSBlock(w(LATERAL) + w(STAGES[2]), w(P4), 3, 1, neuron, norms)
        outputs = 5 + num_classes
        self.detect = nn.ModuleList(
            layer.Conv2d(c, a * outputs, 1, step_mode="m")
            for c, a in zip((w(P4), w(P5)), self.anchors_per_scale, strict=True)
        )
        self._init_detect_biases(image_size)

    def _init_detect_biases(self, image_size: tuple[int, int]) -> None:
        """YOLOv5's priors: about 8 objects per image (upstream assumes 640 px; we use the input's size) and
        classes near 0.6 / K, so the first steps are not swamped by the many empty cells."""
        h, w = image_size
        for conv, stride, anchors in zip(self.detect, STRIDES, self.anchors_per_scale, strict=True):
            bias = conv.bias.detach().view(anchors, -1)
            bias[:, 4] += math.log(8 / ((h / stride) * (w / stride)))
            bias[:, 5:] += math.log(0.6 / (self.num_classes - 0.99999))

    def checkpoint_blocks(self) -> list[nn.Module]:
        """The residual blocks, for trainer.checkpoint_activations=blocks."""
        return [*(b for stage in self.stages for b in stage), self.neck, self.p5, self.lateral, self.p4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(to_time_major(x, self.time_steps, self.temporal))
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        neck = self.neck(features[-1])
        lateral = self.lateral(neck)
        t, b = lateral.shape[:2]
        up = F.interpolate(lateral.flatten(0, 1), scale_factor=2.0, mode="nearest")
        p4 = self.p4(torch.cat((up.view(t, b, *up.shape[1:]), features[2]), dim=2))
        return torch.cat([self._flatten(conv(f), a) for conv, f, a in
                          zip(self.detect, (p4, self.p5(neck)), self.anchors_per_scale, strict=True)], dim=2)

    def _flatten(self, y: torch.Tensor, anchors: int) -> torch.Tensor:
        """[T, B, A * (5 + K), H, W] -> [T, B, A * H * W, 5 + K], anchor-major then row then column."""
        t, b, _, h, w = y.shape
        return y.view(t, b, anchors, 5 + self.num_classes, h, w).permute(0, 1, 2, 4, 5, 3).reshape(t, b, -1, 5 + self.num_classes)


def _build(
    name: str, depth: int, neuron: NeuronFactory, meta: Any, strides: Sequence[int], anchors: Sequence[Sequence[float]],
    norm: str, width_multiple: float = 1.0,
) -> EMSYolo:
    check_norm(name, norm)
    if tuple(strides) != STRIDES:
        raise ValueError(f"{name}: the head's strides are {list(STRIDES)}, the config says {list(strides)}")
    if len(anchors) != len(STRIDES) or any(len(a) < 2 or len(a) % 2 for a in anchors):
        raise ValueError(f"{name}: anchors must be {len(STRIDES)} lists of (w, h) pairs, one per stride, got {anchors}")
    if len(meta.input_shape) != 3:
        raise ValueError(f"{name} needs image input (C, H, W), the dataset gives {meta.input_shape}")
    c, h, w = meta.input_shape
    if h % STRIDES[-1] or w % STRIDES[-1]:
        raise ValueError(f"{name} downsamples by {STRIDES[-1]}: image sides must be multiples of it, got {h}x{w}")
    return EMSYolo(neuron, depth, c, (h, w), meta.num_classes, [len(a) // 2 for a in anchors], meta.time_steps,
                   meta.temporal, norm, width_multiple)


@register_model("ems_yolo_res10")
def ems_yolo_res10(
    neuron: NeuronFactory, meta: Any, strides: Sequence[int] = STRIDES, anchors: Sequence[Sequence[float]] = ANCHORS,
    norm: str = "bn",
) -> nn.Module:
    """EMS-Res10 (the survey's): 17,561,662 parameters for COCO's 80 classes with BN."""
    return _build("ems_yolo_res10", 10, neuron, meta, strides, anchors, norm)


@register_model("ems_yolo_res34")
def ems_yolo_res34(
    neuron: NeuronFactory, meta: Any, strides: Sequence[int] = STRIDES, anchors: Sequence[Sequence[float]] = ANCHORS,
    norm: str = "bn",
) -> nn.Module:
    """EMS-Res34 (upstream's released checkpoint): 34,027,454 parameters for COCO's 80 classes with BN."""
    return _build("ems_yolo_res34", 34, neuron, meta, strides, anchors, norm)


@register_model("ems_yolo_tiny")
def ems_yolo_tiny(
    neuron: NeuronFactory, meta: Any, strides: Sequence[int] = STRIDES, anchors: Sequence[Sequence[float]] = ANCHORS,
    norm: str = "bn", width_multiple: float = 0.125,
) -> nn.Module:
    """EMS-Res10 at 1/8 width (every layer, the 1024-wide neck included): a detector that trains on a CPU."""
    return _build("ems_yolo_tiny", 10, neuron, meta, strides, anchors, norm, width_multiple)
