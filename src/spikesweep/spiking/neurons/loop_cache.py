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

A training run may first ask whether compiling pays (`hold_compiles`, from the engine's compile policy): until
it decides (`decide_compiles`), a loop that is not saved runs eagerly, timed, and the run compiles only if
that time, times the speed-up and the steps to come, exceeds what the compiles cost. A saved loop is always
loaded: it costs milliseconds.

A loaded loop checks its tensors' metadata but not Python values it read while traced, so the file name
carries them: the loop's source and the surrogates', torch's version, every non-tensor argument's value
and each tensor's dtype, device, shape, requires_grad and inference flag. The loops read no globals.
"""

import functools
import hashlib
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
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


@functools.cache
def _processor() -> str:
    """The CPU's model and instruction set: the per-user cache may be shared by the nodes of a cluster, and
    Inductor's CPU code is built for the vector instructions of the machine that compiled it."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    wanted = [ln for ln in lines if ln.startswith(("model name", "flags", "Features"))][:2]
    return hashlib.sha1(repr((platform.machine(), wanted)).encode()).hexdigest()[:12]


def _device_kind(args: tuple[Any, ...]) -> Any:
    cuda = next((a.device for a in args if isinstance(a, torch.Tensor) and a.is_cuda), None)
    return _processor() if cuda is None else torch.cuda.get_device_capability(cuda)


def cache_file(fn: Callable, args: tuple[Any, ...], root: str) -> Path:
    key = repr((fn.__qualname__, torch.__version__, _source_digest(), _device_kind(args),
                [_describe(a) for a in args]))
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


def compile_times(folder: Path, name: str = _TIMES) -> list[float]:
    """The last compile durations recorded on this machine in folder/name (a loop's, or a whole model's)."""
    try:
        return [float(t) for t in json.loads((folder / name).read_text())]
    except (OSError, ValueError, TypeError):
        return []


def compile_estimate(folder: Path) -> str:
    times = compile_times(folder)
    if not times:
        return "the first on this machine: seconds to a minute on a CPU"
    return f"about {statistics.median(times[-20:]):.0f} s, as the last {min(len(times), 20)} here took"


def note_compile_time(folder: Path, seconds: float, name: str = _TIMES) -> None:
    """Concurrent jobs may each add theirs and one may be lost: an estimate does not need them all."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{name}.{os.getpid()}.tmp"
    partial.write_text(json.dumps([*compile_times(folder, name)[-49:], round(seconds, 2)]))
    os.replace(partial, folder / name)


_LOADED: dict[Path, Callable | None] = {}  # None: its guards refused a call; compiled per process instead

#: How much faster a compiled loop runs than the same loop eager, forward and backward together: below the
#: lowest of `spikesweep bench compile` on a quiet 2-core CPU (5.9x to 13.5x; BENCHMARKS.md notes).
LOOP_SPEEDUP = 4.0
#: A loop's compile time before this machine has a record (compile_seconds.json): 13 to 21 s per loop there.
DEFAULT_COMPILE_S = 15.0


class _Held:
    """The loops a run has met while compiling waits for its decision, and their eager time."""

    def __init__(self) -> None:
        self.eager_s = 0.0
        self.loops: set[Path] = set()
        self.compile: bool | None = None  # None: undecided


_HELD: _Held | None = None


def hold_compiles() -> None:
    """From now on, loops that are not saved run eagerly and are timed until `decide_compiles`."""
    global _HELD
    _HELD = _Held()


def release_compiles() -> None:
    """The run is over: later loops in this process (an export, a benchmark) compile as usual."""
    global _HELD
    _HELD = None


@dataclass(frozen=True)
class CompileDecision:
    compile: bool
    loops: int  # not saved, met in the timed steps
    eager_s: float  # their time in those steps
    saved_s: float  # what compiling them would save over the steps to come
    cost_s: float  # what compiling them would cost

    def line(self, steps_left: int) -> str:
        why = (f"{self.loops} loop(s), about {self.cost_s:.0f} s to compile, against about {self.saved_s:.0f} s "
               f"saved over the {steps_left} steps to come ({self.eager_s * 1e3:.0f} ms of eager loops per step, "
               f"{LOOP_SPEEDUP:g}x faster compiled)")
        return f"compiling the neuron loops pays here: {why}" if self.compile else f"the neuron loops stay eager: {why}"


def compiling_pays(eager_s_per_step: float, loops: int, steps_left: int, compile_s: float,
                   speedup: float = LOOP_SPEEDUP) -> CompileDecision:
    saved = eager_s_per_step * (1 - 1 / speedup) * steps_left
    cost = loops * compile_s
    return CompileDecision(loops > 0 and saved > cost, loops, eager_s_per_step, saved, cost)


def decide_compiles(steps_timed: int, steps_left: int) -> CompileDecision | None:
    """Decide for the rest of the run from the loops met in the `steps_timed` steps since `hold_compiles`;
    None when nothing was held (no loop of the compile backend ran, or all were saved)."""
    held = _HELD
    if held is None or held.compile is not None:
        return None
    root = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    times = compile_times(Path(root) / "spikesweep_loops") if root else []
    compile_s = statistics.median(times[-20:]) if times else DEFAULT_COMPILE_S
    decision = compiling_pays(held.eager_s / max(steps_timed, 1), len(held.loops), steps_left, compile_s)
    held.compile = decision.compile
    return decision if held.loops else None


def _eager(fn: Callable, args: tuple[Any, ...], path: Path, held: _Held) -> Any:
    if held.compile is False:
        return fn(*args)
    cuda = any(isinstance(a, torch.Tensor) and a.is_cuda for a in args)
    started = time.perf_counter()
    out = fn(*args)
    if cuda:
        torch.cuda.synchronize()
    held.eager_s += time.perf_counter() - started
    held.loops.add(path)
    return out


def run_compiled(fn: Callable, *args: Any) -> Any:
    """fn(*args) compiled: inlined into an enclosing torch.compile, else from the per-machine cache (or eager,
    while a run decides whether compiling pays, and after it decided it does not)."""
    if torch.compiler.is_compiling():
        return fn(*args)
    root = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if not root:
        return _run_jit(fn, args)
    path = cache_file(fn, args, root)
    if path not in _LOADED and _HELD is not None and _HELD.compile is not True and not path.exists():
        return _eager(fn, args, path, _HELD)
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
