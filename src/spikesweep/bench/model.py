"""Train-step throughput and memory of a model: as configured (optionally compiled) vs. the same
architecture built from spikingjelly's eager multi-step LIFNode, the reference every paper's code used."""

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from spikingjelly.activation_based import neuron as sj_neuron
from spikingjelly.activation_based import surrogate as sj_surrogate
from torch import nn

from spikesweep.models import build_model
from spikesweep.spiking import reset_states
from spikesweep.spiking.neurons.lif import ReferenceSurrogate


@dataclass
class StepStats:
    samples_per_s: float
    peak_mib: float  # CUDA: peak allocated; CPU: bytes autograd saves for backward in one step


def eager_lif_factory(**overrides: Any) -> nn.Module:
    """spikingjelly's LIFNode on its Torch reference loop (on CUDA too: the wrapped surrogate keeps its fused
    kernels out), Spikingformer's settings; overrides as our lif takes them."""
    params = {"tau": 2.0, "v_threshold": 1.0, "detach_reset": True} | overrides
    return sj_neuron.LIFNode(
        tau=float(params["tau"]), v_threshold=float(params["v_threshold"]), detach_reset=params["detach_reset"],
        surrogate_function=ReferenceSurrogate(sj_surrogate.Sigmoid(alpha=4.0)), step_mode="m",
    )


def time_train_steps(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, warmup: int, amp: torch.dtype | None
) -> StepStats:
    """Forward, loss on the T-mean logits, backward, SGD step, state reset: what the engine does per batch."""
    device = x.device
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    autocast = (lambda: torch.autocast(device.type, dtype=amp)) if amp else nullcontext
    saved: dict[int, int] = {}

    def keep(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    def step(record: bool) -> None:
        hooks = torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t) if record else nullcontext()
        with autocast(), hooks:
            loss = nn.functional.cross_entropy(model(x).float().mean(0), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        reset_states(model)

    model.train()
    for _ in range(warmup):
        step(False)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step(False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        step(True)
        peak = sum(saved.values()) / 2**20
    return StepStats(steps * x.shape[0] / elapsed, peak)


def bench_model(
    model_cfg: dict[str, Any],
    neuron: Callable[..., nn.Module],
    meta: Any,
    batch: int,
    steps: int,
    warmup: int,
    compile_model: bool,
    device: torch.device,
    amp: torch.dtype | None,
) -> dict[str, StepStats]:
    """`ours`: the configured neuron (compiled if asked); `eager_lif`: spikingjelly's LIFNode, not compiled."""
    shape = (batch, meta.time_steps, *meta.input_shape) if meta.temporal else (batch, *meta.input_shape)
    x = torch.rand(shape, device=device)
    y = torch.randint(0, meta.num_classes, (batch,), device=device)
    results = {}
    for label, factory, compiled in (("eager_lif", eager_lif_factory, False), ("ours", neuron, compile_model)):
        torch.manual_seed(0)
        model = build_model(model_cfg, factory, meta).to(device)
        runner = torch.compile(model) if compiled else model
        results[label] = time_train_steps(runner, x, y, steps, warmup + (2 if compiled else 0), amp)
    return results
