"""The MNIST networks of the STDBP project (seed 004), one per training paradigm.

- mnist_cnn: spikingjelly's ANN2SNN example, 3 x [conv3x3 32 + BN + activation + avgpool 2] -> Linear 32 -> 10.
  `activation=relu` is the ANN that `method=ann2snn` converts; `activation=spiking` is the same network with
  the run's neuron, trained directly (a baseline of equal size).
- mnist_fc: the "SNN from scratch" network, Linear 784 -> 10 (no bias) + neuron, fed a spike code of the image.
- mnist_stdp_cnn: spikingjelly's STDP + backprop example, 2 x [conv3x3 C (no bias) + neuron + maxpool 2]
  -> Linear C*7*7 -> H + neuron -> Linear H -> 10 + neuron; C=16, H=64 in spikingjelly's tutorial, C=64,
  H=576 in seed 004's script (which sizes both by its batch size). Its conv/neuron pairs are listed in
  `stdp_pairs`, the synapses `method=bp_stdp` trains by STDP instead of backprop.
"""

from collections.abc import Callable
from typing import Any

import torch
from spikingjelly.activation_based import layer
from torch import nn

from spikesweep.models.encoding import check_encoding, encode, to_time_major
from spikesweep.models.registry import register_model

ACTIVATIONS = ("relu", "spiking")
MNIST_SHAPE = (1, 28, 28)


def _check_mnist(name: str, meta: Any) -> None:
    if tuple(meta.input_shape) != MNIST_SHAPE or meta.temporal:
        raise ValueError(f"{name} is built for static 1x28x28 images, the dataset gives {tuple(meta.input_shape)}")


class MnistCNN(nn.Module):
    """ANN (ReLU) or SNN (neuron) version of spikingjelly's MNIST conversion example.

    The ReLU network is a plain `nn.Sequential` of torch modules (in `network`) so that spikingjelly's FX
    converter can trace it, fuse conv+BN and find the ReLUs; it returns [1, B, K] (one step suffices). The
    spiking one uses spikingjelly's multi-step layers, which subclass the torch ones: same state dict.
    """

    def __init__(self, activation: str, neuron: Callable[..., nn.Module], time_steps: int, num_classes: int) -> None:
        super().__init__()
        self.activation, self.time_steps = activation, time_steps
        spiking = activation == "spiking"
        mod, kw = (layer, {"step_mode": "m"}) if spiking else (nn, {})
        self.feature_layers: list[nn.Module] = []
        blocks: list[nn.Module] = []
        prev = MNIST_SHAPE[0]
        for _ in range(3):  # 28 -> 26 -> 13 -> 11 -> 5 -> 3 -> 1
            self.feature_layers.append(neuron() if spiking else nn.ReLU())
            blocks += [mod.Conv2d(prev, 32, 3, **kw), mod.BatchNorm2d(32, **kw), self.feature_layers[-1],
                       mod.AvgPool2d(2, 2, **kw)]
            prev = 32
        blocks += [mod.Flatten(**kw), mod.Linear(32, num_classes, **kw)]
        self.network = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation == "relu":
            return self.network(x).unsqueeze(0)
        return self.network(to_time_major(x, self.time_steps, False))


@register_model("mnist_cnn")
def mnist_cnn(neuron: Callable[..., nn.Module], meta: Any, activation: str = "relu") -> nn.Module:
    _check_mnist("mnist_cnn", meta)
    if activation not in ACTIVATIONS:
        raise ValueError(f"mnist_cnn: unknown activation '{activation}'; valid: {', '.join(ACTIVATIONS)}")
    return MnistCNN(activation, neuron, meta.time_steps, meta.num_classes)


class MnistFC(nn.Module):
    """One fully connected spiking layer; the output neurons' firing rates are the class scores."""

    def __init__(self, neuron: Callable[..., nn.Module], time_steps: int, num_classes: int, encoding: str) -> None:
        super().__init__()
        self.time_steps, self.encoding = time_steps, encoding
        self.fc = nn.Linear(MNIST_SHAPE[1] * MNIST_SHAPE[2], num_classes, bias=False)
        self.sn = neuron()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes = encode(x, self.encoding, self.time_steps, False)  # [T, B, 1, 28, 28]
        return self.sn(self.fc(spikes.flatten(2)))


@register_model("mnist_fc")
def mnist_fc(neuron: Callable[..., nn.Module], meta: Any, encoding: str = "poisson") -> nn.Module:
    _check_mnist("mnist_fc", meta)
    if encoding == "gac":
        raise ValueError("mnist_fc: encoding 'gac' needs a conv stem; use poisson, latency or direct")
    check_encoding(encoding, meta.temporal)
    return MnistFC(neuron, meta.time_steps, meta.num_classes, encoding)


class MnistSTDPCNN(nn.Module):
    """Conv features meant to be learnt by STDP, a two-layer spiking classifier meant to be learnt by backprop.

    Multi-step spikingjelly layers throughout: STDP needs each synapse's input as [T, B, ...], step by step.
    """

    def __init__(self, neuron: Callable[..., nn.Module], time_steps: int, num_classes: int, channels: int,
                 hidden: int) -> None:
        super().__init__()
        self.time_steps = time_steps
        convs = [layer.Conv2d(MNIST_SHAPE[0], channels, 3, padding=1, bias=False, step_mode="m"),
                 layer.Conv2d(channels, channels, 3, padding=1, bias=False, step_mode="m")]
        conv_neurons = [neuron(), neuron()]
        self.features = nn.Sequential(
            convs[0], conv_neurons[0], layer.MaxPool2d(2, 2, step_mode="m"),
            convs[1], conv_neurons[1], layer.MaxPool2d(2, 2, step_mode="m"),
            layer.Flatten(step_mode="m"),
        )
        self.classifier = nn.Sequential(
            layer.Linear(channels * 7 * 7, hidden, bias=False, step_mode="m"), neuron(),
            layer.Linear(hidden, num_classes, bias=False, step_mode="m"), neuron(),
        )
        self.stdp_pairs = list(zip(convs, conv_neurons, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(to_time_major(x, self.time_steps, False)))


@register_model("mnist_stdp_cnn")
def mnist_stdp_cnn(neuron: Callable[..., nn.Module], meta: Any, channels: int = 16, hidden: int = 64) -> nn.Module:
    _check_mnist("mnist_stdp_cnn", meta)
    if int(channels) < 1 or int(hidden) < 1:
        raise ValueError(f"mnist_stdp_cnn: channels and hidden must be >= 1 (got {channels}, {hidden})")
    return MnistSTDPCNN(neuron, meta.time_steps, meta.num_classes, int(channels), int(hidden))
