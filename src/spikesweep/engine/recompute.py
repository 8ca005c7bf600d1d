"""Activation checkpointing over model blocks (`trainer.checkpoint_activations=blocks`): a block keeps only
its input for backward and runs again to rebuild what backward needs, so activation memory grows with one
block instead of the whole network, at the price of a second forward per block.

Two kinds of block state would make the second run differ from the first, and both are put back:
- spiking neurons carry their membrane over calls: the rerun starts from the neuron states the block saw at
  entry (all T steps run inside one multi-step call, so those are all a block needs);
- BatchNorm updates its running statistics on every training call: the rerun's update is undone.
Random ops (dropout masks) repeat through torch's checkpoint, which restores the RNG state.
"""

import functools
from collections.abc import Callable
from typing import Any

import torch
from spikingjelly.activation_based import base
from torch import nn
from torch.utils.checkpoint import checkpoint

from spikesweep.protocols import HasCheckpointBlocks


def checkpointed_blocks(model: nn.Module) -> list[nn.Module]:
    """The blocks a model names in `checkpoint_blocks()`; a clear error for models that name none."""
    if not isinstance(model, HasCheckpointBlocks):
        raise ValueError(
            f"trainer.checkpoint_activations=blocks: model {type(model).__name__} does not list its blocks "
            f"(checkpoint_blocks()); use trainer.checkpoint_activations=none"
        )
    return list(model.checkpoint_blocks())


def enable_block_recompute(model: nn.Module) -> int:
    """Make every block of `model` recompute its activations in backward; returns the number of blocks.

    The block's own forward is replaced on the instance, so module names and state_dict keys stay as they
    are (checkpoints load either way) and copies (EMA, evaluation) carry the setting along.
    """
    blocks = checkpointed_blocks(model)
    for block in blocks:
        if not isinstance(block.forward, functools.partial):  # idempotent
            block.forward = functools.partial(_recomputed_forward, block, block.forward)
    return len(blocks)


def _recomputed_forward(block: nn.Module, forward: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if not (block.training and torch.is_grad_enabled()):
        return forward(*args, **kwargs)
    neurons = [m for m in block.modules() if isinstance(m, base.MemoryModule)]
    at_entry = [dict(m.named_memories()) for m in neurons]
    norms = [m for m in block.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    calls = 0

    def run(*a: Any, **k: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            return forward(*a, **k)
        for neuron, memories in zip(neurons, at_entry, strict=True):
            for name, value in memories.items():
                setattr(neuron, name, value)
        stats = [[b.clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked)] for m in norms]
        try:
            return forward(*a, **k)
        finally:
            with torch.no_grad():
                for m, (mean, var, count) in zip(norms, stats, strict=True):
                    m.running_mean.copy_(mean)
                    m.running_var.copy_(var)
                    m.num_batches_tracked.copy_(count)

    return checkpoint(run, *args, use_reentrant=False, **kwargs)
