"""The survey's neuron speed experiment, in one process: a single neuron layer on input [T, N], train
(forward + backward) and inference (forward under no_grad), median of repeats after warm-up, each backend's
speed-up over the eager reference (spikingjelly's multi-step LIFNode, torch backend).

Backends measured: `torch` (the reference), `compile` (our torch.compile'd T-loop), `psn` (spikingjelly's
PSN: no reset, one T x T matmul). Also the model-sized case [4, 32, 128, 16, 16].
"""

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from spikesweep.spiking import build_neuron, build_surrogate, reset_states

FULL_N = (2**9, 2**13, 2**17)
FULL_T = (2, 4, 8, 16, 32, 64)


def _make(backend: str, time_steps: int) -> nn.Module:
    surrogate = build_surrogate({"name": "atan"})
    if backend == "psn":
        return build_neuron({"name": "psn"}, surrogate, time_steps)()
    return build_neuron({"name": "lif", "backend": backend}, surrogate)()


def _median_ms(fn: Callable[[], None], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def time_case(backend: str, shape: tuple[int, ...], train: bool, repeats: int, warmup: int) -> float:
    neuron = _make(backend, shape[0])
    x = torch.randn(shape) * 1.5
    if train:
        x.requires_grad_(True)

    def run() -> None:
        if train:
            neuron(x).sum().backward()
        else:
            with torch.no_grad():
                neuron(x)
        reset_states(neuron)

    return _median_ms(run, repeats, warmup)


def bench_neuron(quick: bool, backends: tuple[str, ...] = ("torch", "compile", "psn")) -> list[dict]:
    """Rows: case, T, N, mode, backend, ms, speedup (reference ms / backend ms)."""
    ns, ts, repeats = ((2**9, 2**13), (4, 16), 3) if quick else (FULL_N, FULL_T, 10)
    cases = [(t, n) for n in ns for t in ts]
    rows = []
    shapes = [((t, n), f"[{t}, {n}]") for t, n in cases] + [((4, 32, 128, 16, 16), "[4, 32, 128, 16, 16]")]
    for shape, label in shapes:
        for train in (True, False):
            reference = None
            for backend in backends:
                ms = time_case(backend, shape, train, repeats, warmup=3)
                reference = ms if backend == "torch" else reference
                rows.append({
                    "case": label, "T": shape[0], "N": int(torch.tensor(shape[1:]).prod()),
                    "mode": "train" if train else "inference", "backend": backend, "ms": ms,
                    "speedup": reference / ms,
                })
    return rows
