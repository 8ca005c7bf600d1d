"""The `compile` backend's loops, compiled once per machine rather than once per process.

Inductor's cache (TORCHINDUCTOR_CACHE_DIR) spares a new process the code generation, not Dynamo's tracing
nor AOTAutograd: about a second per loop on a CPU, which a short run (the digits demo, a smoke test, each
job of a sweep) pays for the forward, the backward and the evaluation loop. torch's ahead-of-time
compilation (`torch.compile(...).aot_compile`, saved with `save_compiled_function`) stores the traced
and compiled loop with its guards; a later process loads it in milliseconds. Files live in
$TORCHINDUCTOR_CACHE_DIR/spikesweep_loops (run.py points that at `paths.cache_dir`); without it, or when a
saved loop's guards refuse a call, the loop is compiled as usual. Shapes stay static (one file per layer
shape): Inductor's kernels over a symbolic size ran 10-20 % slower on the CPU (BENCHMARKS.md notes).

Compiling is the one silent wait of a run's start, so each compile says so in one line, with how long the last
compiles on this machine took (compile_seconds.json beside the loops).

A loaded loop checks its tensors' metadata but not Python values it read while traced, so the file name
carries them: the loop's source and the surrogates', torch's version, every non-tensor argument's value
and each tensor's dtype, device, shape, requires_grad and inference flag. The loops read no globals.
"""

import functools
import hashlib
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)
_GUARD_FAILED = "GuardManager check failed"
_TIMES = "compile_seconds.json"  # the last compiles' durations on this machine, for the estimate
_SOURCES = tuple(Path(__file__).parent.parent / name for name in ("neurons/compiled.py", "surrogate.py"))


@functools.cache
def _jit(fn: Callable) -> Callable:
    """Made on first use: torch.compile imports Dynamo and Inductor (seconds), which runs on other
    backends should not wait for."""
    return torch.compile(fn)


def _run_jit(fn: Callable, args: tuple[Any, ...]) -> Any:
    return _jit(fn)(*args)


@functools.cache
def _source_digest() -> str:
    return hashlib.sha1(b"".join(p.read_bytes() for p in _SOURCES)).hexdigest()


def _describe(a: Any) -> Any:
    """What a saved loop's guards depend on: tensor metadata, the values of the rest."""
    if isinstance(a, torch.Tensor):
        return ("tensor", a.dtype, a.device.type, tuple(a.shape), a.requires_grad, a.is_inference())
    if callable(a):
        return (a.__module__, a.__qualname__)
    return a


def cache_file(fn: Callable, args: tuple[Any, ...], root: str) -> Path:
    key = repr((fn.__qualname__, torch.__version__, _source_digest(), [_describe(a) for a in args]))
    return Path(root) / "spikesweep_loops" / f"{fn.__name__}-{hashlib.sha1(key.encode()).hexdigest()[:20]}.bin"


def _load_or_compile(fn: Callable, args: tuple[Any, ...], path: Path) -> Callable:
    if path.exists():
        try:
            with path.open("rb") as f:
                return torch.compiler.load_compiled_function(f)
        except Exception:  # noqa: BLE001 - a stale or foreign file: compile afresh and replace it
            pass
    shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
    log.info("compiling the neuron loop %s for %s (%s; saved for later runs in %s)", fn.__name__, shapes,
             compile_estimate(path.parent), path.parent)
    started = time.perf_counter()
    compiled = torch.compile(fn, fullgraph=True, dynamic=False).aot_compile((args, {}))
    note_compile_time(path.parent, time.perf_counter() - started)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    compiled.save_compiled_function(str(partial))
    os.replace(partial, path)  # concurrent jobs of a sweep: each file appears whole or not at all
    return compiled


def _compile_times(folder: Path) -> list[float]:
    try:
        return [float(t) for t in json.loads((folder / _TIMES).read_text())]
    except (OSError, ValueError, TypeError):
        return []


def compile_estimate(folder: Path) -> str:
    times = _compile_times(folder)
    if not times:
        return "the first on this machine: seconds to a minute on a CPU"
    return f"about {statistics.median(times[-20:]):.0f} s, as the last {min(len(times), 20)} here took"


def note_compile_time(folder: Path, seconds: float) -> None:
    """Concurrent jobs may each add theirs and one may be lost: an estimate does not need them all."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{_TIMES}.{os.getpid()}.tmp"
    partial.write_text(json.dumps([*_compile_times(folder)[-49:], round(seconds, 2)]))
    os.replace(partial, folder / _TIMES)


_LOADED: dict[Path, Callable | None] = {}  # None: its guards refused a call; compiled per process instead


def run_compiled(fn: Callable, *args: Any) -> Any:
    """fn(*args) compiled: inlined into an enclosing torch.compile, else from the per-machine cache."""
    if torch.compiler.is_compiling():
        return fn(*args)
    root = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if not root:
        return _run_jit(fn, args)
    path = cache_file(fn, args, root)
    if path not in _LOADED:
        _LOADED[path] = _load_or_compile(fn, args, path)
    loop = _LOADED[path]
    if loop is not None:
        try:
            return loop(*args)
        except RuntimeError as err:
            if _GUARD_FAILED not in str(err):
                raise
            _LOADED[path] = None
    return _run_jit(fn, args)
