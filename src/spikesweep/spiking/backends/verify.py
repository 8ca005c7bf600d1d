"""Parity checks of the fused neuron backends, run once per machine and remembered.

Before `compile`, `spikingjelly` or `cupy` trains on a kind of device for the first time with a surrogate, it
is compared with the reference loop (spikingjelly's Torch LIF, autograd through it) on a small LIF layer:
the spikes must be equal, the last membrane and the input gradient within TOLERANCE. The verdict is kept in
the per-user cache (user_cache.py), keyed by the backend, the surrogate and its parameters, the device's
name and capability, the versions of torch, spikingjelly (and CuPy for `cupy`) and a hash of the
backend's source, so a later run, in any clone, pays nothing; a change to any of them checks again.

`auto` never picks a backend that failed; asking for one by name fails in one line with the measured
difference. On a CPU the first-use check runs only when asked (see `enabled`); `spikesweep doctor` checks
every backend. SPIKESWEEP_VERIFY_BACKENDS=0 turns the checks off (the test suite does; its parity tests are
the checks), =1 turns them on for CPUs too.
"""

import functools
import hashlib
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from spikesweep.spiking.backends.user_cache import read_json, user_cache_dir, write_json

FUSED = ("compile", "spikingjelly", "cupy")
ENV = "SPIKESWEEP_VERIFY_BACKENDS"
TOLERANCE = 1e-5  # float32; the CPU parity tests hold 1e-6, a GPU's reordered sums need a little more
SHAPE = (8, 4, 16)  # [T, B, N]: T = the compile backend's loop length, so its one loop is checked whole
# One LIF case that takes every term of the backward: the surrogate in the spike and in the (kept) reset.
CASE = {"tau": 2.0, "v_threshold": 1.0, "v_reset": 0.0, "decay_input": True, "detach_reset": False}

_NEURONS = Path(__file__).resolve().parent.parent / "neurons"
_SOURCES = {
    "compile": ("neurons/compiled.py", "neurons/loop_cache.py", "surrogate.py"),
    "spikingjelly": ("neurons/lif.py", "surrogate.py"),
    "cupy": ("neurons/cupy_lif.py", "surrogate.py"),
}


class BackendFailed(ValueError):
    """A backend asked for by name that failed its parity check here."""


@dataclass(frozen=True)
class Verdict:
    backend: str
    device: str
    surrogate: str
    passed: bool
    spikes_differ: int
    membrane_diff: float
    grad_diff: float
    seconds: float
    record: str  # the cache file ("" where the cache was not writable)

    @property
    def max_diff(self) -> float:
        return max(self.membrane_diff, self.grad_diff)

    def describe(self) -> str:
        return (f"{self.spikes_differ} spikes differ, max difference {self.max_diff:.3g} "
                f"(membrane {self.membrane_diff:.3g}, input gradient {self.grad_diff:.3g}; tolerance {TOLERANCE:g})")


def switched_off() -> bool:
    return os.environ.get(ENV, "").lower() in ("0", "false", "no", "off")


def enabled(device: torch.device) -> bool:
    """Whether a first use on `device` is checked. On CUDA always: no kernel of ours has run on a GPU in
    this project's tests. On a CPU only when asked (SPIKESWEEP_VERIFY_BACKENDS=1, or `spikesweep doctor`):
    the compile backend's CPU parity tests run on every CI build, and a check there compiles its own loop
    (measured: 115 s cold on a busy 2-core machine), which every fresh clone's first run would pay."""
    if switched_off():
        return False
    return device.type == "cuda" or os.environ.get(ENV, "").lower() in ("1", "true", "yes", "on")


def resolve_device(device: torch.device | str | None) -> torch.device:
    """The device a check runs on: the given one (an unnumbered CUDA device is the current one), else
    CUDA where torch sees it, else the CPU."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        if not torch.cuda.is_available():
            raise ValueError("cannot check a backend on CUDA: torch sees no CUDA device")
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def device_name(device: torch.device) -> str:
    """What decides whether compiled code is right: the GPU model and capability, or the CPU's ISA."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"{torch.cuda.get_device_name(device)} (sm_{major}{minor})"
    return f"cpu {platform.machine()} {torch.backends.cpu.get_cpu_capability()}"


def surrogate_name(surrogate: Any) -> str:
    params = getattr(surrogate, "_sg_params", None) or {"alpha": getattr(surrogate, "alpha", None)}
    return f"{type(surrogate).__name__}({', '.join(f'{k}={v:g}' for k, v in sorted(params.items()) if v is not None)})"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"


@functools.cache
def _source_digest(backend: str) -> str:
    return hashlib.sha256(b"".join((_NEURONS.parent / p).read_bytes() for p in _SOURCES[backend])).hexdigest()[:16]


def _key(backend: str, surrogate: Any, device: torch.device) -> dict[str, Any]:
    versions = {"torch": torch.__version__, "spikingjelly": _version("spikingjelly")}
    if backend == "cupy":
        from spikesweep.spiking.neurons import cupy_lif

        versions["cupy"] = cupy_lif._cupy().__version__
    return {"backend": backend, "surrogate": f"{type(surrogate).__module__}.{surrogate_name(surrogate)}",
            "device": device_name(device), "versions": versions, "source": _source_digest(backend),
            "case": CASE, "shape": SHAPE}


def record_path(backend: str, surrogate: Any, device: torch.device) -> Path:
    digest = hashlib.sha256(repr(sorted(_key(backend, surrogate, device).items())).encode()).hexdigest()[:20]
    return user_cache_dir() / "backends" / f"{backend}-{digest}.json"


def unavailable_reason(backend: str, surrogate: Any, device: torch.device) -> str | None:
    """Why `backend` cannot run this surrogate on `device` at all (then there is nothing to check)."""
    from spikesweep.spiking.neurons import cupy_lif
    from spikesweep.spiking.neurons.lif import _has_cupy_kernel, spikingjelly_fuses
    from spikesweep.spiking.surrogate import derivative_of

    if backend == "compile" and derivative_of(surrogate) is None:
        return f"no closed-form derivative for {type(surrogate).__name__}"
    if backend == "spikingjelly" and device.type == "cuda" and not spikingjelly_fuses(surrogate):
        return f"its CUDA kernels do not know {type(surrogate).__name__} (it would run its reference loop)"
    if backend == "cupy":
        reason = cupy_lif.unavailable_reason()
        if reason is None and device.type != "cuda":
            reason = "it runs on CUDA only"
        if reason is None and not _has_cupy_kernel(surrogate):
            reason = f"no kernel for {type(surrogate).__name__}"
        return reason
    return None


def build_layer(backend: str, surrogate: Any, **case: Any) -> torch.nn.Module:
    """A LIF layer of `backend` ('torch' = the reference), built from the classes, not the registry's
    builders (which ask this module first)."""
    from spikingjelly.activation_based import neuron

    from spikesweep.spiking.neurons import cupy_lif
    from spikesweep.spiking.neurons.compiled import CompiledLIF
    from spikesweep.spiking.neurons.lif import ReferenceSurrogate, spikingjelly_surrogate

    args = (case["tau"], case["v_threshold"], case["v_reset"], case["decay_input"], case["detach_reset"])
    if backend == "compile":
        return CompiledLIF(surrogate, *args)
    if backend == "cupy":
        return cupy_lif.CupyLIF(surrogate, *args)
    sg = spikingjelly_surrogate(surrogate) if backend == "spikingjelly" else ReferenceSurrogate(surrogate)
    return neuron.LIFNode(tau=case["tau"], decay_input=case["decay_input"], v_threshold=case["v_threshold"],
                          v_reset=case["v_reset"], surrogate_function=sg, detach_reset=case["detach_reset"],
                          step_mode="m")


def _run(backend: str, surrogate: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(*SHAPE, generator=g) * 1.5).to(device).requires_grad_(True)
    weights = torch.linspace(0.5, 1.5, x.numel(), device=device).reshape(x.shape)
    layer = build_layer(backend, surrogate, **CASE).to(device)
    spikes = layer(x)
    # The last membrane enters the loss too, so its gradient path (the next call's) is checked.
    ((spikes * weights).sum() + (layer.v * weights[0]).sum()).backward()
    return spikes.detach(), layer.v.detach(), x.grad


def run_check(backend: str, surrogate: Any, device: torch.device) -> dict[str, Any]:
    """Compare `backend` with the reference on `device`: the measurements, not yet a verdict."""
    start = time.perf_counter()
    ref_s, ref_v, ref_g = _run("torch", surrogate, device)
    s, v, g = _run(backend, surrogate, device)
    return {"spikes_differ": int((s != ref_s).sum()), "membrane_diff": float((v - ref_v).abs().max()),
            "grad_diff": float((g - ref_g).abs().max()), "seconds": round(time.perf_counter() - start, 3)}


_MEMO: dict[Path, Verdict] = {}


def verdict(backend: str, surrogate: Any, device: torch.device | str | None = None) -> Verdict:
    """This machine's verdict on `backend` for `surrogate` on `device`: remembered in this process, else
    read from the per-user cache, else measured now (printing one line, since a compile can take a while)
    and recorded."""
    device = resolve_device(device)
    path = record_path(backend, surrogate, device)
    if path in _MEMO:
        return _MEMO[path]
    stored = read_json(path)
    fields = set(Verdict.__dataclass_fields__)
    if stored is None or not fields <= set(stored):
        name = device_name(device)
        print(f"spikesweep: checking the {backend} neuron backend against the torch reference on {name} for "
              f"{surrogate_name(surrogate)}, once per machine"
              + (" (it compiles a loop: up to a minute on a CPU)" if backend == "compile" else ""),
              file=sys.stderr, flush=True)
        measured = run_check(backend, surrogate, device)
        passed = (measured["spikes_differ"] == 0 and measured["membrane_diff"] <= TOLERANCE
                  and measured["grad_diff"] <= TOLERANCE)
        stored = {"backend": backend, "device": name, "surrogate": surrogate_name(surrogate), "passed": passed,
                  **measured, "record": str(path)}
        if not write_json(path, {**stored, "key": _key(backend, surrogate, device),
                                 "checked_at": time.strftime("%Y-%m-%dT%H:%M:%S")}):
            stored["record"] = ""
    result = Verdict(**{k: stored[k] for k in fields})
    _MEMO[path] = result
    return result


def passes(backend: str, surrogate: Any, device: torch.device | str | None = None) -> bool:
    """Whether `auto` may pick `backend` here: it can run, and it passed (or checks are off)."""
    if backend == "torch":
        return True
    device = resolve_device(device)
    if unavailable_reason(backend, surrogate, device) is not None:
        return False
    return not enabled(device) or verdict(backend, surrogate, device).passed


def require(backend: str, surrogate: Any, device: torch.device | str | None = None) -> None:
    """For a backend asked for by name: fail in one line if it failed its check here. One that cannot run
    at all is left to its builder, whose error says why."""
    if backend not in FUSED:
        return
    device = resolve_device(device)
    if not enabled(device):
        return
    if unavailable_reason(backend, surrogate, device) is not None:
        return
    v = verdict(backend, surrogate, device)
    if not v.passed:
        raise BackendFailed(
            f"backend '{backend}' failed its parity check against torch on {v.device} for {v.surrogate}: "
            f"{v.describe()}; use backend auto or torch (record: {v.record or 'not written'})")


def forget() -> None:
    """Drop this process's memory of verdicts (the cache files stay)."""
    _MEMO.clear()


def as_dict(v: Verdict) -> dict[str, Any]:
    return {**asdict(v), "max_diff": v.max_diff}
