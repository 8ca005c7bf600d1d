"""Per-layer firing rates collected by forward hooks on every spiking neuron."""

from collections import defaultdict

import torch
from torch import nn

from spikesweep.spiking import is_spiking_neuron


class FiringRateMonitor:
    """Accumulates mean spike output per neuron layer while active; off by default (hooks cost time)."""

    def __init__(self, model: nn.Module) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.handles = [
            m.register_forward_hook(self._hook(name)) for name, m in model.named_modules() if is_spiking_neuron(m)
        ]

    def _hook(self, name: str):
        def record(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            self.sums[name] += float(output.detach().float().sum())
            self.counts[name] += output.numel()

        return record

    def rates(self) -> dict[str, float]:
        return {name: self.sums[name] / self.counts[name] for name in self.sums if self.counts[name]}

    def mean_rate(self) -> float | None:
        total = sum(self.counts.values())
        return sum(self.sums.values()) / total if total else None

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
