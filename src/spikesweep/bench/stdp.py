"""The STDP weight update of bp_stdp's conv layers: spikingjelly's STDPLearner (a loop over T and the
kernel's positions) against spikesweep's BatchedSTDPLearner (two correlations over the whole [T*B] stack),
on the same recorded spikes, in one process. Shapes are those of `mnist_stdp_cnn` at the recipe's T=100."""

import statistics
import time
from collections.abc import Callable

import torch
from spikingjelly.activation_based import layer
from spikingjelly.activation_based.learning import STDPLearner
from torch import nn

from spikesweep.spiking.stdp import BatchedSTDPLearner

# (case, in channels, out channels, side) of mnist_stdp_cnn's two 3x3 convs
CONVS = (("conv1 1->16 @28x28", 1, 16, 28), ("conv2 16->16 @14x14", 16, 16, 14))


def _time_step(make: Callable[[nn.Module, nn.Module], STDPLearner], conv: nn.Module, pre: torch.Tensor,
               post: torch.Tensor, repeats: int) -> tuple[float, torch.Tensor]:
    """Median ms of one learner.step over the recorded (pre, post), and its update."""
    sink = nn.Identity()
    learner = make(conv, sink)
    times, update = [], torch.empty(0)
    for _ in range(repeats + 1):
        learner.reset()
        learner.in_spike_monitor.records.append(pre)
        learner.out_spike_monitor.records.append(post)
        started = time.perf_counter()
        update = learner.step(on_grad=False)
        times.append(time.perf_counter() - started)
    learner.close()
    return 1000 * statistics.median(times[1:]), update


def bench_stdp(quick: bool = False) -> list[dict[str, float | str]]:
    """One row per conv and learner; `speedup` is against spikingjelly's learner on the same spikes."""
    steps, batch, repeats = (20, 8, 3) if quick else (100, 64, 3)
    bound = lambda w: w.clamp(-1.0, 1.0)  # noqa: E731 - the recipe's weight bound
    learners = {
        "spikingjelly STDPLearner": lambda conv, sn: STDPLearner("m", conv, sn, 2.0, 100.0, f_pre=bound, f_post=bound),
        "BatchedSTDPLearner": lambda conv, sn: BatchedSTDPLearner(conv, sn, 2.0, 100.0, f_pre=bound, f_post=bound),
    }
    generator = torch.Generator().manual_seed(0)
    rows: list[dict[str, float | str]] = []
    for case, c_in, c_out, side in CONVS:
        conv = layer.Conv2d(c_in, c_out, 3, padding=1, bias=False, step_mode="m")
        pre = (torch.rand(steps, batch, c_in, side, side, generator=generator) < 0.2).float()
        post = (torch.rand(steps, batch, c_out, side, side, generator=generator) < 0.2).float()
        timed = {name: _time_step(make, conv, pre, post, repeats) for name, make in learners.items()}
        (reference_ms, reference), (_, batched) = timed.values()
        error = float((batched - reference).abs().max() / reference.abs().max())
        for name, (ms, _) in timed.items():
            rows.append({"case": f"{case}, T={steps}, batch {batch}", "learner": name, "ms": ms,
                         "speedup": reference_ms / ms, "max_rel_diff": error})
    return rows
