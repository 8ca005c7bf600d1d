"""Train-step throughput and memory of a model: as configured (optionally compiled) vs. the same
architecture built from spikingjelly's eager multi-step LIFNode, the reference every paper's code used.

A profiled run splits the step's time into neurons, convolutions/linear layers and the rest, which says
where a faster neuron backend can still gain and where it cannot."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from spikingjelly.activation_based import neuron as sj_neuron
from spikingjelly.activation_based import surrogate as sj_surrogate
from torch import nn
from torch.autograd.profiler import record_function
from torch.autograd.profiler_util import FunctionEvent
from torch.profiler import ProfilerActivity, profile

from spikesweep.engine.recompute import enable_block_recompute
from spikesweep.models import build_model
from spikesweep.spiking import is_spiking_neuron, reset_states
from spikesweep.spiking.neurons.lif import ReferenceSurrogate


CATEGORIES = ("neuron", "conv_linear", "other")
LABEL = "spikesweep::"  # profiler range names: LABEL + category


@dataclass
class StepStats:
    samples_per_s: float
    peak_mib: float  # CUDA: peak allocated; CPU: peak of what torch's allocator holds during one step
    shares: dict[str, float] = field(default_factory=dict)  # % of self time per category (CATEGORIES)


def eager_lif_factory(**overrides: Any) -> nn.Module:
    """spikingjelly's LIFNode on its Torch reference loop (on CUDA too: the wrapped surrogate keeps its fused
    kernels out), Spikingformer's settings; overrides as our lif takes them."""
    params = {"tau": 2.0, "v_threshold": 1.0, "detach_reset": True} | overrides
    return sj_neuron.LIFNode(
        tau=float(params["tau"]), v_threshold=float(params["v_threshold"]), detach_reset=params["detach_reset"],
        surrogate_function=ReferenceSurrogate(sj_surrogate.Sigmoid(alpha=4.0)), step_mode="m",
    )


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: torch.dtype | None) -> Callable[[], None]:
    """Forward, loss on the T-mean logits, backward, SGD step, state reset: what the engine does per batch."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    autocast = (lambda: torch.autocast(x.device.type, dtype=amp)) if amp else nullcontext

    def step() -> None:
        with autocast():
            loss = nn.functional.cross_entropy(model(x).float().mean(0), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        reset_states(model)

    return step


def _category(module: nn.Module) -> str | None:
    if is_spiking_neuron(module):
        return "neuron"
    if isinstance(module, nn.modules.conv._ConvNd | nn.Linear):
        return "conv_linear"
    return None


@contextmanager
def _labelled(model: nn.Module) -> Iterator[None]:
    """Every neuron and conv/linear call runs inside a profiler range named after its category, so each op
    of the forward pass can be traced to the module kind that issued it."""
    open_ranges: list[record_function] = []

    def enter(label: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            open_ranges.append(record_function(f"{LABEL}{label}"))
            open_ranges[-1].__enter__()
        return hook

    def leave(*_: Any) -> None:
        open_ranges.pop().__exit__(None, None, None)

    handles = []
    for module in model.modules():
        label = _category(module)
        if label is not None:
            handles += [module.register_forward_pre_hook(enter(label)), module.register_forward_hook(leave)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()



def time_split(events: list[FunctionEvent], on_device: bool) -> dict[str, float]:
    """Percent of self time (device time on GPU) per category. A forward op belongs to the labelled module
    range it ran in; a backward op to the forward op that recorded its autograd node (same sequence number),
    so a neuron's surrogate gradient counts as neuron time. Everything else (norms, pooling, attention's
    matmuls, loss, optimizer) is `other`."""
    forward_category: dict[tuple[int, int], str] = {}
    category: dict[int, str] = {}

    def own(event: FunctionEvent) -> str:
        if event.id in category:
            return category[event.id]
        if event.name.startswith(LABEL):
            found = event.name[len(LABEL):]
        elif event.name.startswith("autograd::engine::evaluate_function") and event.sequence_nr >= 0:
            found = forward_category.get((event.fwd_thread, event.sequence_nr), "other")
        else:
            found = own(event.cpu_parent) if event.cpu_parent is not None else "other"
        category[event.id] = found
        return found

    totals = dict.fromkeys(CATEGORIES, 0.0)
    for event in sorted(events, key=lambda e: e.time_range.start):  # forward ops before their backward
        found = own(event)
        if event.sequence_nr >= 0 and not event.name.startswith("autograd::"):
            forward_category.setdefault((event.thread, event.sequence_nr), found)
        totals[found] += event.self_device_time_total if on_device else event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {k: 100 * v / whole for k, v in totals.items()}


def _peak_cpu_mib(events: list[FunctionEvent]) -> float:
    """Highest running total of the allocations and frees the profiler saw: what one step adds to memory
    on top of the model (activations, gradients, temporaries)."""
    held = peak = 0
    for event in sorted(events, key=lambda e: e.time_range.start):
        held += event.self_cpu_memory_usage
        peak = max(peak, held)
    return peak / 2**20


def time_shares(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, amp: torch.dtype | None) -> dict[str, float]:
    """Self-time shares (neuron / conv_linear / other) over `steps` profiled train steps after one warm-up."""
    step = _train_step(model, x, y, amp)
    model.train()
    step()
    on_device = x.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_device else [])
    with _labelled(model), profile(activities=activities) as prof:
        for _ in range(steps):
            step()
    return time_split(list(prof.events()), on_device)


def time_train_steps(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, warmup: int, amp: torch.dtype | None
) -> StepStats:
    """Samples/s of the engine's train step and the peak memory of a step."""
    device = x.device
    step = _train_step(model, x, y, amp)
    model.train()
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
        peak = _peak_cpu_mib(list(prof.events()))
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
    checkpoint_activations: bool = False,
) -> dict[str, StepStats]:
    """`ours`: the configured neuron (compiled if asked); `eager_lif`: spikingjelly's LIFNode, not compiled.
    The time split is profiled on the eager model (profiler ranges inside a compiled graph would split it)."""
    shape = (batch, meta.time_steps, *meta.input_shape) if meta.temporal else (batch, *meta.input_shape)
    x = torch.rand(shape, device=device)
    y = torch.randint(0, meta.num_classes, (batch,), device=device)
    results = {}
    for label, factory, compiled in (("eager_lif", eager_lif_factory, False), ("ours", neuron, compile_model)):
        torch.manual_seed(0)
        model = build_model(model_cfg, factory, meta).to(device)
        if checkpoint_activations:
            enable_block_recompute(model)
        runner = torch.compile(model) if compiled else model
        results[label] = time_train_steps(runner, x, y, steps, warmup + (2 if compiled else 0), amp)
        results[label].shares = time_shares(model, x, y, min(steps, 3), amp)
    return results


def model_rows(
    results: dict[str, StepStats], model: str, neuron: str, time_steps: int, batch: int, device: str, recompute: bool
) -> list[dict[str, Any]]:
    """One CSV/table row per variant: throughput, memory (total and per sample), speed-up, time split."""
    base = results["eager_lif"].samples_per_s
    return [
        {
            "model": model, "neuron": neuron if label == "ours" else "eager_lif", "T": time_steps, "batch": batch,
            "device": device, "recompute": recompute, "samples_per_s": round(stats.samples_per_s, 2),
            "peak_mib": round(stats.peak_mib, 1), "mib_per_sample": round(stats.peak_mib / batch, 2),
            "speedup": round(stats.samples_per_s / base, 2),
            **{f"{k}_pct": round(v, 1) for k, v in stats.shares.items()},
        }
        for label, stats in results.items()
    ]


# The report's section 2: the papers' CIFAR-sized models at T=4, 32x32, each on the project's default neuron
PAPER_MODELS = ("survey_cf10", "spikingformer_4_384", "sdtv3_s", "msresnet18")


def bench_paper_models(
    models: tuple[str, ...] = PAPER_MODELS, batch: int = 8, steps: int = 3, warmup: int = 1
) -> list[dict[str, Any]]:
    """Each model (PAPER_MODELS by default) as a user gets it (`neuron: lif`, `backend: auto`, float32, no whole-model
    compile) against the same architecture on spikingjelly's eager LIFNode. The shapes come from the
    dataset config: no data files are read."""
    from spikesweep.assemble import assemble
    from spikesweep.compose import compose_config

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows: list[dict[str, Any]] = []
    for name in models:
        cfg = compose_config([f"model={name}", "dataset=cifar10", "dataset.T=4"])
        parts = assemble(cfg, device.type, with_data=False)
        meta, neuron = parts.meta, parts.neuron
        results = bench_model(dict(cfg.model), neuron, meta, batch, steps, warmup, False, device, None)
        rows += model_rows(results, name, cfg.neuron.name, meta.time_steps, batch, device.type, False)
    return rows
