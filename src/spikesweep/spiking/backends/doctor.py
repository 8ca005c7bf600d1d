"""`spikesweep doctor`: every neuron backend on this machine, verified / failed / unavailable, and its speed.

Each fused backend's verdict comes from verify.py (checked now where the per-user cache has none); its
speed is one LIF train step (forward and backward) on a standard shape, the median of a few after a
warm-up. The compile backend's loops are saved in the per-user cache, so only the first run compiles.
"""

import os
import statistics
import time
from typing import Any

import torch

from spikesweep.spiking.backends import verify
from spikesweep.spiking.backends.user_cache import user_cache_dir

BACKENDS = ("torch", "compile", "spikingjelly", "cupy")
SHAPE = (4, 32, 128, 16, 16)  # [T, B, C, H, W]: BENCHMARKS.md's neuron shape, on a GPU
CPU_SHAPE = (4, 8, 128, 16, 16)  # a quarter of it: the reference loops take seconds on the full one
LAYER = {"tau": 2.0, "v_threshold": 1.0, "v_reset": 0.0, "decay_input": True, "detach_reset": True}


def devices() -> list[torch.device]:
    found = [torch.device("cpu")]
    if torch.cuda.is_available():
        found.append(torch.device("cuda", torch.cuda.current_device()))
    return found


def step_ms(backend: str, surrogate: Any, device: torch.device, shape: tuple[int, ...], repeats: int = 3) -> float:
    """Median milliseconds of one forward + backward of a LIF layer on `shape`, after one warm-up."""
    layer = verify.build_layer(backend, surrogate, **LAYER).to(device)
    x = torch.randn(*shape, device=device).mul_(1.5).requires_grad_(True)
    grad = torch.ones(shape, device=device)
    times = []
    for i in range(repeats + 1):
        layer.reset()
        x.grad = None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        layer(x).backward(grad)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def diagnose(surrogate: Any, backends: tuple[str, ...] = BACKENDS, shape: tuple[int, ...] | None = None,
             repeats: int = 3) -> list[dict[str, Any]]:
    """One row per device and backend: status (reference / verified / failed / unavailable), detail, ms on
    `shape` (default SHAPE on a GPU, CPU_SHAPE on the CPU)."""
    # Compiled loops saved per user, as run.py saves them per project: a second doctor compiles nothing.
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(user_cache_dir() / "inductor"))
    rows = []
    for device in devices():
        for backend in backends:
            timed = shape or (SHAPE if device.type == "cuda" else CPU_SHAPE)
            row = {"device": verify.device_name(device), "backend": backend, "ms": None, "shape": timed}
            reason = None if backend == "torch" else verify.unavailable_reason(backend, surrogate, device)
            if backend == "torch":
                row |= {"status": "reference", "detail": "spikingjelly's Torch loop, autograd through it"}
            elif reason is not None:
                row |= {"status": "unavailable", "detail": reason}
            elif verify.switched_off():
                row |= {"status": "unchecked", "detail": f"{verify.ENV}=0"}
            else:
                v = verify.verdict(backend, surrogate, device)
                row |= {"status": "verified" if v.passed else "failed", "detail": v.describe()}
            if reason is None:
                row["ms"] = step_ms(backend, surrogate, device, timed, repeats)
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    reference = {r["device"]: r["ms"] for r in rows if r["backend"] == "torch"}
    head = f"{'device':<28} {'backend':<13} {'status':<12} {'LIF train step (shape)':<28} detail"
    lines = [head, "-" * len(head)]
    for r in rows:
        speed = "-" if r["ms"] is None else f"{r['ms']:9.2f} ms ({reference[r['device']] / r['ms']:.2f}x torch)"
        lines.append(f"{r['device']:<28} {r['backend']:<13} {r['status']:<12} {speed:<28} {r['detail']}")
    lines.append("shapes timed: " + "; ".join(sorted({f"{r['device']} {'x'.join(map(str, r['shape']))}" for r in rows})))
    return "\n".join(lines)


def header() -> str:
    cupy = "none"
    try:
        import cupy as cp

        cupy = cp.__version__
    except Exception:  # noqa: BLE001 - absent, or a build for another CUDA: shown as none
        pass
    return (f"spikesweep doctor: torch {torch.__version__}, spikingjelly {verify._version('spikingjelly')}, "
            f"cupy {cupy}; verdicts in {user_cache_dir() / 'backends'}")
