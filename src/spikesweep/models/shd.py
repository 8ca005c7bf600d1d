"""SHD with learnable synaptic delays (after Thvnvtos/SNN-delays, "dilated convolution with learnable spacings").

Every synapse i -> j has a weight and a real-valued delay d_ij in [0, max_delay - 1] steps. During training
the delay is a Gaussian bump over the taps (differentiable in d), whose width sigma shrinks from 12 to
0.23 over the first epochs so that delays can first move far, then settle; at evaluation each delay is
rounded to one integer tap, the form a neuromorphic chip would run. The delays learn with their own
learning rate (`optimizer_groups`), the kernel width follows the epoch (`set_epoch`): both are generic
hooks the engine calls on any model that defines them.
"""

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import layer
from torch import nn

from spikesweep.models.registry import register_model

READOUTS = ("softmax_sum", "membrane")


class DelayedLinear(nn.Module):
    """A fully connected layer whose synapses each carry a learnable delay: [T, B, C_in] -> [T, B, C_out].

    Implemented as one causal Conv1d over time whose kernel is rebuilt from (weight, delay, sigma).
    """

    def __init__(self, c_in: int, c_out: int, max_delay: int, sigma: float) -> None:
        super().__init__()
        if max_delay < 1:
            raise ValueError(f"max_delay must be >= 1 step, got {max_delay}")
        self.max_delay = max_delay
        self.weight = nn.Parameter(torch.empty(c_out, c_in))
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")  # SNN-delays' init
        self.delay = nn.Parameter(torch.rand(c_out, c_in) * (max_delay - 1))
        self.register_buffer("sigma", torch.tensor(float(sigma)))
        self.register_buffer("taps", torch.arange(max_delay, dtype=torch.float32), persistent=False)

    def kernel(self) -> torch.Tensor:
        """[C_out, C_in, max_delay], tap k holding the weight given to input delayed by k steps."""
        if self.training:
            with torch.no_grad():  # keep delays in range, as clamping after each optimizer step would
                self.delay.clamp_(0, self.max_delay - 1)
            bump = torch.exp(-0.5 * ((self.taps - self.delay.unsqueeze(-1)) / self.sigma) ** 2)
            bump = bump / (bump.sum(-1, keepdim=True) + 1e-7)
        else:
            index = self.delay.detach().clamp(0, self.max_delay - 1).round().long()
            bump = F.one_hot(index, self.max_delay).to(self.weight.dtype)
        return self.weight.unsqueeze(-1) * bump

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x.permute(1, 2, 0), (self.max_delay - 1, 0))  # [B, C, T], causal: only past inputs
        return F.conv1d(x, self.kernel().flip(-1)).permute(2, 0, 1)


class DelaySNN(nn.Module):
    """[DelayedLinear -> BN1d -> neuron -> dropout] x layers, then a DelayedLinear readout."""

    def __init__(
        self,
        neuron: Callable[..., nn.Module],
        c_in: int,
        num_classes: int,
        hidden: int,
        layers: int,
        dropout: float,
        max_delay: int,
        sigma_start: float,
        sigma_end: float,
        sigma_epochs: int,
        readout: str,
        readout_tau: float,
        position_lr: float,
    ) -> None:
        super().__init__()
        self.sigma_start, self.sigma_end, self.sigma_epochs = sigma_start, sigma_end, sigma_epochs
        self.readout, self.readout_tau, self.position_lr = readout, readout_tau, position_lr
        blocks: list[nn.Module] = []
        prev = c_in
        for _ in range(layers):
            blocks += [DelayedLinear(prev, hidden, max_delay, sigma_start), layer.BatchNorm1d(hidden, step_mode="m"),
                       neuron(), layer.Dropout(dropout, step_mode="m")]
            prev = hidden
        self.body = nn.Sequential(*blocks)
        self.out = DelayedLinear(prev, num_classes, max_delay, sigma_start)

    def delayed_layers(self) -> list[DelayedLinear]:
        return [m for m in self.modules() if isinstance(m, DelayedLinear)]

    def sigma_at(self, epoch: int) -> float:
        """Geometric decay from sigma_start to sigma_end over sigma_epochs, then constant."""
        progress = min(epoch, self.sigma_epochs) / self.sigma_epochs
        return self.sigma_start * (self.sigma_end / self.sigma_start) ** progress

    def set_epoch(self, epoch: int) -> None:
        """Engine hook, called at the start of every epoch (also after a resume)."""
        for m in self.delayed_layers():
            m.sigma.fill_(self.sigma_at(epoch))

    def optimizer_groups(self) -> list[dict[str, Any]]:
        """Engine hook: delays learn at their own rate, without weight decay; the rest as the run says."""
        return [{"params": [m.delay for m in self.delayed_layers()], "lr": self.position_lr, "weight_decay": 0.0}]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, F] -> [T, B, K]
        return readout(self.out(self.body(x.transpose(0, 1).contiguous())), self.readout, self.readout_tau)


def readout(current: torch.Tensor, mode: str, tau: float) -> torch.Tensor:
    """SNN-delays' output: a non-firing leaky membrane v <- (1 - 1/tau) v + I, read as sum_t softmax(v_t).

    The sum is returned at every step, so the engine's mean over T is that sum (and its cross-entropy the
    upstream loss). mode='membrane' returns the input currents unchanged.
    """
    if mode == "membrane":
        return current
    decay, v, probs = 1.0 - 1.0 / tau, torch.zeros_like(current[0]), torch.zeros_like(current[0])
    for step in current:
        v = decay * v + step
        probs = probs + v.softmax(-1)
    return probs.expand_as(current)


def check_readout(model: str, mode: str, tau: float) -> None:
    if mode not in READOUTS:
        raise ValueError(f"{model}: unknown readout '{mode}'; valid: {', '.join(READOUTS)}")
    if tau < 1.0:
        raise ValueError(f"{model}: readout_tau is in steps and must be >= 1, got {tau}")


@register_model("shd_delays")
def shd_delays(
    neuron: Callable[..., nn.Module],
    meta: Any,
    hidden: int = 256,
    layers: int = 2,
    dropout: float = 0.4,
    max_delay: int = 25,
    sigma_start: float = 12.0,
    sigma_end: float = 0.23,
    sigma_epochs: int = 37,
    readout: str = "softmax_sum",
    readout_tau: float = 1.005,
    position_lr: float = 0.1,
) -> nn.Module:
    if not meta.temporal or len(meta.input_shape) != 1:
        raise ValueError(f"shd_delays needs temporal input with (F,) channels per step, got {meta.input_shape}")
    check_readout("shd_delays", readout, readout_tau)
    if not (sigma_start > 0 and sigma_end > 0 and sigma_epochs >= 1):
        raise ValueError("shd_delays: sigma_start and sigma_end must be > 0 and sigma_epochs >= 1")
    return DelaySNN(neuron, meta.input_shape[0], meta.num_classes, hidden, layers, dropout, max_delay,
                    sigma_start, sigma_end, sigma_epochs, readout, readout_tau, position_lr)
