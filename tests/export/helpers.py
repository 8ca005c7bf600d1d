"""Models for the export tests: the real assembly with random weights and non-trivial BatchNorm statistics."""

import torch

from spikesweep.assemble import assemble
from tests.conftest import compose


def random_model(*overrides: str, seed: int = 0):
    torch.manual_seed(seed)
    parts = assemble(compose(*overrides), with_data=False, eager=True)
    for m in parts.model.modules():
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.3)
    return parts.model.eval(), parts.meta
