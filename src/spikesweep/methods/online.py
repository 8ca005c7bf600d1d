"""Online training through time (the survey's "OSR"/online paradigm): the network runs one time step at a
time, the loss of each step's output (cross-entropy / T) is back-propagated at once, and every neuron's
state is detached before the next step. Gradients then never cross time steps, so activation memory does
not grow with T; the price is the temporal credit BPTT would assign through the membrane.

The engine hands the whole forward/backward of a batch to `forward_backward`. A model opts in by exposing
`time_major(x) -> [T, B, ...]`, `run_steps(x_seq) -> per-step outputs` and `runs_step_by_step` (the
survey's image networks do; survey_shd's sequence-wide readout does not).
"""

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
import torch.distributed as torch_dist
from spikingjelly.activation_based import base, functional
from torch import nn

from spikesweep.methods import METHODS
from spikesweep.spiking.state import is_spiking_neuron
from spikesweep.protocols import RunsStepByStep


class OnlineTraining:
    def __init__(self, model_cfg: Any) -> None:
        self.model_name = model_cfg["name"]
        self.model: nn.Module | None = None

    def attach(self, model: nn.Module, device: torch.device) -> None:
        if not (isinstance(model, RunsStepByStep) and model.runs_step_by_step):
            raise ValueError(
                f"method=online needs a model that runs one time step at a time (survey_cf10, survey_scf10); "
                f"model '{self.model_name}' cannot"
            )
        whole_sequence = sorted({type(m).__name__ for m in model.modules()
                                 if is_spiking_neuron(m) and not isinstance(m, base.MemoryModule)})
        if whole_sequence:
            raise ValueError(f"method=online steps through time, but {', '.join(whole_sequence)} mixes all time "
                             "steps at once: choose a stateful neuron (osr, lif, if, clif, ...)")
        if torch_dist.is_available() and torch_dist.is_initialized() and torch_dist.get_world_size() > 1:
            raise ValueError("method=online runs its own backward per time step and does not support DDP; "
                             "train it in one process")
        self.model = model

    def loss(self, x: torch.Tensor, logits: torch.Tensor, loss: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return loss

    def forward_backward(
        self, x: torch.Tensor, target: torch.Tensor, criterion: Callable[..., torch.Tensor],
        autocast: Callable[[], AbstractContextManager], backward: Callable[[torch.Tensor], None],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One backward per time step; returns the T-mean logits and the summed loss, both detached."""
        assert self.model is not None, "attach() first"
        with torch.no_grad():
            x_seq = self.model.time_major(x)
        steps = len(x_seq)
        logits_sum, loss_sum = 0.0, 0.0
        for t in range(steps):
            with autocast():
                logits = self.model.run_steps(x_seq[t:t + 1]).float().mean(0)
                loss = criterion(logits, target) / steps
            backward(loss)
            functional.detach_net(self.model)  # the state carries on, its gradient does not
            logits_sum, loss_sum = logits_sum + logits.detach(), loss_sum + loss.detach()
        return logits_sum / steps, loss_sum


def build_online(kind: str, model_cfg: Any, neuron: Any, meta: Any) -> OnlineTraining:
    return OnlineTraining(model_cfg)


METHODS.register("online", build_online)
