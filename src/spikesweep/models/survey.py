"""The surrogate-gradient survey's networks (fangwei123456/chinese_snn_surrogate_gradient_review).

The survey compares neurons and training paradigms on fixed, plain networks, so these models only
place neurons; which neuron runs is the `neuron` group's choice. `activation=relu` swaps every neuron for
ReLU: the ANN teacher of the distillation runs, same architecture, same parameter count. `norm` picks the
batch norm the survey compares: `bn` (statistics over T and B) or `tebn` (the same, then a learnable
scale per time step); neurons are told their layer's channels, for those with per-channel parameters.

- survey_cf10: 2 x ([conv3x3 128 (no bias) + BN + neuron] x 3 + avgpool 2), Linear -> neuron -> Linear.
- survey_scf10: the same with Conv1d/BN1d/AvgPool1d along the pixels of a column, one column per time step.
- survey_shd: 140 -> 256 -> 256 -> classes, each hidden layer Linear + BN1d + neuron + dropout, read out
  as SNN-delays does (sum over time of the softmax of a leaky membrane).

Every model lists its activation modules in `feature_layers`, in order: the points feature
distillation compares between teacher and student.
"""

from collections.abc import Callable
from typing import Any

import torch
from spikingjelly.activation_based import layer
from torch import nn

from spikesweep.models.encoding import to_time_major
from spikesweep.models.registry import register_model
from spikesweep.models.shd import check_readout
from spikesweep.models.shd import readout as shd_readout
from spikesweep.spiking.norm import build_norm, check_norm

ACTIVATIONS = ("spiking", "relu")


class _Activations:
    """Makes the neuron (or ReLU) of each layer and remembers them, in order, for `feature_layers`."""

    def __init__(self, neuron: Callable[..., nn.Module], activation: str, model: str) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"{model}: unknown activation '{activation}'; valid: {', '.join(ACTIVATIONS)}")
        self.spiking = activation == "spiking"
        self.factory = neuron
        self.made: list[nn.Module] = []

    def __call__(self, channels: int) -> nn.Module:
        self.made.append(self.factory(channels=channels) if self.spiking else nn.ReLU())
        return self.made[-1]


class SurveyNet(nn.Module):
    """Feature stack then classifier, both multi-step; `to_steps` turns a batch into [T, B, ...], `to_logits`
    (if any) turns the classifier's per-step output into the logits the engine averages."""

    def __init__(
        self,
        features: list[nn.Module],
        classifier: list[nn.Module],
        to_steps: Callable[[torch.Tensor], torch.Tensor],
        act: _Activations,
        to_logits: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(*classifier)
        self.to_steps, self.to_logits = to_steps, to_logits
        self.feature_layers = act.made

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_steps(self.time_major(x))

    def time_major(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_steps(x)

    @property
    def runs_step_by_step(self) -> bool:
        """Whether `run_steps` may be called one step at a time (online training): a readout that integrates
        over the whole sequence (SHD's) has no per-step form."""
        return self.to_logits is None

    def run_steps(self, x_seq: torch.Tensor) -> torch.Tensor:
        """Steps [t, B, ...] -> outputs [t, B, K]; neuron state carries over between calls."""
        out = self.classifier(self.features(x_seq).flatten(2))
        return out if self.to_logits is None else self.to_logits(out)


def _conv_stages(
    dims: int, c_in: int, act: _Activations, norm: str, time_steps: int, width: int = 128
) -> list[nn.Module]:
    conv, pool = (layer.Conv2d, layer.AvgPool2d) if dims == 2 else (layer.Conv1d, layer.AvgPool1d)
    out: list[nn.Module] = []
    for _ in range(2):
        for _ in range(3):
            out += [conv(c_in, width, 3, padding=1, bias=False, step_mode="m"),
                    build_norm(norm, dims, width, time_steps), act(width)]
            c_in = width
        out.append(pool(2, step_mode="m"))
    return out


@register_model("survey_cf10")
def survey_cf10(
    neuron: Callable[..., nn.Module], meta: Any, activation: str = "spiking", hidden: int = 2048, norm: str = "bn",
    channels: int = 128,
) -> nn.Module:
    """17,542,026 parameters on CIFAR10 (8192 -> 2048 -> 10 head) with BN; TEBN adds T per norm layer.
    `channels` is upstream's --channels (128); upstream's hidden width is channels * 16 at 32 px."""
    act = _Activations(neuron, activation, "survey_cf10")
    check_norm("survey_cf10", norm)
    if len(meta.input_shape) != 3:
        raise ValueError(f"survey_cf10 needs image input (C, H, W), the dataset gives {meta.input_shape}")
    c, h, w = meta.input_shape
    if h % 4 or w % 4:
        raise ValueError(f"survey_cf10 pools twice by 2: image sides must be multiples of 4, got {h}x{w}")
    features = _conv_stages(2, c, act, norm, meta.time_steps, channels)  # first: feature_layers run input to output
    head = [layer.Linear(channels * (h // 4) * (w // 4), hidden, step_mode="m"), act(hidden),
            layer.Linear(hidden, meta.num_classes, step_mode="m")]
    return SurveyNet(features, head, lambda x: to_time_major(x, meta.time_steps, meta.temporal), act)


def _columns_as_steps(x: torch.Tensor, temporal: bool, channels: int) -> torch.Tensor:
    """Temporal [B, T, C*L] -> [T, B, C, L]; a static image [B, C, H, W] -> [W, B, C, H] (column t is step t)."""
    if temporal:
        return x.transpose(0, 1).reshape(x.shape[1], x.shape[0], channels, -1)
    return x.permute(3, 0, 1, 2).contiguous()


@register_model("survey_scf10")
def survey_scf10(
    neuron: Callable[..., nn.Module],
    meta: Any,
    activation: str = "spiking",
    hidden: int = 256,
    in_channels: int = 3,
    norm: str = "bn",
) -> nn.Module:
    """Sequential CIFAR: Conv1d along the 32 pixels of a column, one column per time step (T=32).

    Takes seq_cifar10's steps (96 = 3 channels x 32 pixels, channel-major) or plain images with T = width.
    """
    act = _Activations(neuron, activation, "survey_scf10")
    check_norm("survey_scf10", norm)
    shape = meta.input_shape
    if meta.temporal and len(shape) == 1:
        if shape[0] % in_channels:
            raise ValueError(f"survey_scf10: {shape[0]} features per step do not split into {in_channels} channels")
        c, length = in_channels, shape[0] // in_channels
    elif not meta.temporal and len(shape) == 3:
        c, length, width = shape
        if width != meta.time_steps:
            raise ValueError(f"survey_scf10 runs one step per image column: set T={width}, not {meta.time_steps}")
    else:
        raise ValueError(f"survey_scf10 needs (C*L,) steps or (C, H, W) images, got {shape} (temporal={meta.temporal})")
    if length % 4:
        raise ValueError(f"survey_scf10 pools twice by 2: the per-step length must be a multiple of 4, got {length}")
    features = _conv_stages(1, c, act, norm, meta.time_steps)
    head = [layer.Linear(128 * (length // 4), hidden, step_mode="m"), act(hidden),
            layer.Linear(hidden, meta.num_classes, step_mode="m")]
    return SurveyNet(features, head, lambda x: _columns_as_steps(x, meta.temporal, c), act)


@register_model("survey_shd")
def survey_shd(
    neuron: Callable[..., nn.Module],
    meta: Any,
    activation: str = "spiking",
    hidden: int = 256,
    layers: int = 2,
    dropout: float = 0.4,
    readout: str = "softmax_sum",
    readout_tau: float = 1.005,
    norm: str = "bn",
) -> nn.Module:
    """SHD without delays: [Linear + BN1d + neuron + dropout] x 2, Linear, leaky-membrane readout.

    No biases and He-uniform weights, as the survey's SHD code (built on SNN-delays) has them.
    """
    act = _Activations(neuron, activation, "survey_shd")
    check_norm("survey_shd", norm)
    check_readout("survey_shd", readout, readout_tau)
    if not meta.temporal or len(meta.input_shape) != 1:
        raise ValueError(f"survey_shd needs temporal input with (F,) channels per step, got {meta.input_shape}")
    stack: list[nn.Module] = []
    prev = meta.input_shape[0]
    for _ in range(layers):
        stack += [layer.Linear(prev, hidden, bias=False, step_mode="m"), build_norm(norm, 1, hidden, meta.time_steps),
                  act(hidden), layer.Dropout(dropout, step_mode="m")]
        prev = hidden
    head = [layer.Linear(prev, meta.num_classes, bias=False, step_mode="m")]
    for m in [*stack, *head]:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
    return SurveyNet(stack, head, lambda x: x.transpose(0, 1).contiguous(), act,
                     lambda current: shd_readout(current, readout, readout_tau))
