"""A small spiking CNN: the demo network for the embedded digits set and a sanity baseline elsewhere."""

from collections.abc import Callable, Sequence
from typing import Any

import torch
from spikingjelly.activation_based import layer
from torch import nn

from spikesweep.models.encoding import to_time_major
from spikesweep.models.registry import register_model


class SmallCNN(nn.Module):
    """[conv3x3 -> BN -> neuron (-> maxpool)] per stage, then a linear readout applied at every step."""

    def __init__(
        self,
        neuron: Callable[..., nn.Module],
        in_channels: int,
        image_size: int,
        num_classes: int,
        time_steps: int,
        temporal: bool,
        channels: Sequence[int],
        pool_after: Sequence[int],
    ) -> None:
        super().__init__()
        self.time_steps, self.temporal = time_steps, temporal
        blocks: list[nn.Module] = []
        size, prev = image_size, in_channels
        for i, width in enumerate(channels):
            blocks += [
                layer.Conv2d(prev, width, 3, padding=1, bias=False, step_mode="m"),
                layer.BatchNorm2d(width, step_mode="m"),
                neuron(),
            ]
            if i in pool_after:
                blocks.append(layer.MaxPool2d(2, step_mode="m"))
                size //= 2
            prev = width
        self.features = nn.Sequential(*blocks)
        self.head = layer.Linear(prev * size * size, num_classes, step_mode="m")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(to_time_major(x, self.time_steps, self.temporal))
        return self.head(x.flatten(2))


@register_model("small_cnn")
def small_cnn(
    neuron: Callable[..., nn.Module], meta: Any, channels: Sequence[int] = (32, 64), pool_after: Sequence[int] = (1,)
) -> nn.Module:
    if len(meta.input_shape) != 3:
        raise ValueError(f"small_cnn needs image input (C, H, W), the dataset gives {meta.input_shape}")
    c, h, w = meta.input_shape
    if h != w:
        raise ValueError(f"small_cnn needs square images, the dataset gives {h}x{w}")
    return SmallCNN(neuron, c, h, meta.num_classes, meta.time_steps, meta.temporal, list(channels), list(pool_after))
