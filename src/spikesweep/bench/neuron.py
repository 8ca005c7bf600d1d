"""The survey's neuron speed experiment, in one process: a single neuron layer on input [T, N], train
(forward + backward) and inference (forward under no_grad), median of repeats after warm-up, each backend's
speed-up over the eager reference measured beside it (`torch`: spikingjelly's Torch reference loop), and
its share of the memory bandwidth that a plain tensor copy reaches in the same process (`bandwidth_pct`).

Backends: the IF/LIF backends (`torch`, `compile`, `spikingjelly`, `cupy`; docs/neurons.md) with the ATan
surrogate and a hard, detached reset, and `psn` (spikingjelly's PSN: no reset, one T x T matmul). The grid
is N in {2^9, 2^13, 2^17} x T in {2, ..., 64}, plus the model-sized case [4, 32, 128, 16, 16].
"""

import functools
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from spikesweep.spiking import build_neuron, build_surrogate, reset_states
from spikesweep.spiking.neurons import cupy_lif

FULL_N = (2**9, 2**13, 2**17)
FULL_T = (2, 4, 8, 16, 32, 64)
QUICK_N, QUICK_T = (2**9, 2**13), (4, 16)
MODEL_CASE = (4, 32, 128, 16, 16)
BACKENDS = ("torch", "compile", "spikingjelly", "cupy", "psn")
COPY_BYTES = 512 * 2**20  # far beyond a GPU's L2 and (4x) the 260 MiB L3 of the CPU this was written on
# The least memory traffic of a fused neuron, in tensors of x's size: train reads x, writes the spikes, and
# in the backward reads the output gradient and one saved state and writes the input gradient; inference
# reads x and writes the spikes.
TENSORS_MOVED = {True: 5, False: 2}


def min_traffic_bytes(shape: Sequence[int], train: bool, dtype: torch.dtype = torch.float32) -> int:
    """Bytes a fused neuron must move at least for one call on x of `shape` (TENSORS_MOVED)."""
    numel = 1
    for size in shape:
        numel *= int(size)
    return TENSORS_MOVED[train] * numel * torch.empty((), dtype=dtype).element_size()


def bandwidth_pct(shape: Sequence[int], train: bool, ms: float, copy_gbs: float, dtype: torch.dtype = torch.float32) -> float:
    """The share (%) of the copy bandwidth that moving min_traffic_bytes in `ms` milliseconds amounts to."""
    return 100 * min_traffic_bytes(shape, train, dtype) / (ms * 1e-3) / (copy_gbs * 1e9)


@functools.cache
def copy_bandwidth_gbs(device: str = "cpu", nbytes: int = COPY_BYTES, repeats: int = 10) -> float:
    """GB/s of `dst.copy_(src)` on a buffer far larger than the caches, counting its read and its write
    (STREAM's copy), median of `repeats` after warm-up; measured once per process and device."""
    src = torch.ones(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    ms = _median_ms(lambda: dst.copy_(src), repeats, 2, device)
    return 2 * nbytes / (ms * 1e-3) / 1e9


def available_backends(device: str = "cpu", quick: bool = False) -> tuple[str, ...]:
    """Every backend that runs on `device`; --quick leaves out compile (its warm-up alone takes seconds)."""
    names = ["torch", "spikingjelly", "psn"] if quick else ["torch", "compile", "spikingjelly", "psn"]
    if torch.device(device).type == "cuda" and cupy_lif.unavailable_reason() is None:
        names.insert(-1, "cupy")
    return tuple(names)


def check_backends(backends: Sequence[str], device: str) -> tuple[str, ...]:
    """The reference first (every speed-up is against it), each backend known and able to run here."""
    for b in backends:
        if b not in BACKENDS:
            raise ValueError(f"unknown neuron backend '{b}'; valid: {', '.join(BACKENDS)}")
    if "cupy" in backends and (torch.device(device).type != "cuda" or cupy_lif.unavailable_reason()):
        raise ValueError(f"backend cupy cannot run on {device}: {cupy_lif.unavailable_reason() or 'it needs CUDA'}")
    return ("torch", *[b for b in backends if b != "torch"])


def _make(backend: str, time_steps: int, device: str) -> nn.Module:
    surrogate = build_surrogate({"name": "atan"})
    if backend == "psn":
        return build_neuron({"name": "psn"}, surrogate, time_steps)().to(device)
    return build_neuron({"name": "lif", "backend": backend}, surrogate, device=device)().to(device)


def _median_ms(fn: Callable[[], None], repeats: int, warmup: int, device: str) -> float:
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        started = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def time_case(backend: str, shape: tuple[int, ...], train: bool, repeats: int, warmup: int, device: str = "cpu") -> float:
    neuron = _make(backend, shape[0], device)
    x = torch.randn(shape, device=device) * 1.5
    # Train as inside a network: the next layer hands back a dense gradient of the spikes, and x's gradient
    # flows on to the previous layer rather than into x.grad. (`.sum().backward()` added a copy of sum's
    # stride-0 gradient and an accumulation to every backend's time, 40 % of the compiled one's.)
    grad_spikes = torch.randn(shape, device=device) if train else None
    if train:
        x.requires_grad_(True)

    def run() -> None:
        if train:
            torch.autograd.grad(neuron(x), x, grad_spikes)
        else:
            with torch.no_grad():
                neuron(x)
        reset_states(neuron)

    return _median_ms(run, repeats, warmup, device)


def grid_shapes(quick: bool) -> list[tuple[int, ...]]:
    ns, ts = (QUICK_N, QUICK_T) if quick else (FULL_N, FULL_T)
    return [(t, n) for n in ns for t in ts] + [MODEL_CASE]


def bench_neuron(
    quick: bool, backends: Sequence[str] | None = None, device: str = "cpu",
    shapes: Sequence[tuple[int, ...]] | None = None, repeats: int | None = None, warmup: int = 3,
) -> list[dict]:
    """Rows: case, T, N, mode, backend, ms, speedup (reference ms / backend ms), bandwidth_pct (of copy_gbs,
    this process's copy bandwidth, for the least traffic of a fused neuron), copy_gbs."""
    backends = check_backends(backends or available_backends(device, quick), device)
    repeats = repeats or (3 if quick else 10)
    rows = []
    for shape in shapes or grid_shapes(quick):
        for train in (True, False):
            reference = None
            for backend in backends:
                ms = time_case(backend, shape, train, repeats, warmup, device)
                reference = reference or ms
                rows.append({
                    "case": str(list(shape)), "T": shape[0], "N": int(torch.tensor(shape[1:]).prod()),
                    "mode": "train" if train else "inference", "backend": backend, "ms": ms,
                    "speedup": reference / ms,
                })
    # After the cases: freeing the copy's large buffers changes how the allocator serves the next ones (glibc
    # raises its mmap threshold), which sped the torch reference up 3x and halved the committed speed-ups.
    copy_gbs = copy_bandwidth_gbs(device)
    for row in rows:
        shape = json.loads(row["case"])
        row |= {"bandwidth_pct": bandwidth_pct(shape, row["mode"] == "train", row["ms"], copy_gbs), "copy_gbs": copy_gbs}
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """Speed-up over the torch loop against T, one panel per mode and N, one line per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = [r for r in rows if r["case"] == str([r["T"], r["N"]])]
    ns, modes = sorted({r["N"] for r in grid}), ["train", "inference"]
    backends = [b for b in dict.fromkeys(r["backend"] for r in grid) if b != "torch"]
    fig, axes = plt.subplots(len(modes), len(ns), figsize=(4 * len(ns), 6.5), squeeze=False, sharex=True)
    for i, mode in enumerate(modes):
        for j, n in enumerate(ns):
            ax = axes[i][j]
            for b in backends:
                cell = sorted((r["T"], r["speedup"]) for r in grid if (r["N"], r["mode"], r["backend"]) == (n, mode, b))
                ax.plot([t for t, _ in cell], [s for _, s in cell], marker="o", label=b)
            ax.axhline(1.0, color="grey", lw=0.8, ls="--")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{mode}, N = {n}")
            ax.set_xlabel("T")
            ax.set_ylabel("speed-up over torch")
    axes[0][0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_cell(bench: dict, run_dir: Path) -> dict:
    """One job of the `survey_speed` multirun (`job: bench_neuron`): the grid cell [bench.T, bench.N], every
    requested backend against the torch loop in this process. Writes neuron.csv; returns the summary."""
    from spikesweep.tables import write_csv

    device = bench.get("device", "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"bench.device={device}: CUDA is not available on this machine")
    backends = bench.get("backends")
    shape = (int(bench["T"]), int(bench["N"]))
    rows = bench_neuron(False, list(backends) if backends else None, device, [shape],
                        int(bench.get("repeats", 10)), int(bench.get("warmup", 3)))
    run_dir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, run_dir / "neuron.csv")
    speedups = {f"{r['mode']}/{r['backend']}": r["speedup"] for r in rows if r["backend"] != "torch"}
    return {"status": "completed", "task": "bench_neuron", "device": device, "case": str(list(shape)),
            "torch_ms": {r["mode"]: r["ms"] for r in rows if r["backend"] == "torch"}, "speedup": speedups,
            "bandwidth_pct": {f"{r['mode']}/{r['backend']}": r["bandwidth_pct"] for r in rows},
            "copy_gbs": rows[0]["copy_gbs"]}


def gather_cells(sweep_dir: Path) -> list[dict]:
    """The rows of every `survey_speed` job under a multirun directory, typed as bench_neuron returns them."""
    import csv

    rows = []
    for path in sorted(sweep_dir.glob("*/neuron.csv"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0):
        with path.open() as f:
            rows += [r | {"T": int(r["T"]), "N": int(r["N"])}
                     | {k: float(r[k]) for k in ("ms", "speedup", "bandwidth_pct", "copy_gbs") if k in r}
                     for r in csv.DictReader(f)]
    return rows
