"""When compiling the `compile` backend's neuron loops pays: one loop of CHUNK steps, forward and backward,
eager against compiled, and what its compile costs, per layer size. The break-even is the number of calls
after which the compiled loop has saved its compile time; the engine's compile policy (engine/compile_policy.py)
takes its speed-up (loop_cache.LOOP_SPEEDUP) from the lowest measured here."""

import os
import statistics
import tempfile
import time
from typing import Any

import torch

from spikesweep.spiking.neurons.compiled import CHUNK, _backward_loop, _Dynamics, _forward_loop
from spikesweep.spiking.surrogate import build_surrogate, derivative_of

SIZES = (640, 8192, 131072, 1048576)  # neurons per time step: the MNIST head's batch of 64 ... a conv stage


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _one_size(n: int, repeats: int) -> dict[str, Any]:
    surrogate = build_surrogate({"name": "atan", "alpha": 2.0})
    derivative, params = derivative_of(surrogate), dict(surrogate._sg_params)
    d = _Dynamics(0.5, 1.0, 0.0, True, True)
    x, v = torch.rand(CHUNK, n) * 0.8, torch.zeros(n)
    grad_s, grad_v = torch.rand(CHUNK, n), torch.zeros(n)
    h = _forward_loop(x, v, d, True)[1]
    fwd = torch.compile(_forward_loop, fullgraph=True, dynamic=False)
    bwd = torch.compile(_backward_loop, fullgraph=True, dynamic=False)

    def eager() -> None:
        _forward_loop(x, v, d, True)
        _backward_loop(grad_s, grad_v, h, derivative, params, d)

    def compiled() -> None:
        fwd(x, v, d, True)
        bwd(grad_s, grad_v, h, derivative, params, d)

    started = time.perf_counter()
    compiled()  # the compile
    first = time.perf_counter() - started
    eager_s, compiled_s = _median_s(eager, repeats), _median_s(compiled, repeats)
    saving = eager_s - compiled_s
    return {"neurons": n, "T": CHUNK, "eager_ms": eager_s * 1e3, "compiled_ms": compiled_s * 1e3,
            "speedup": eager_s / compiled_s, "compile_s": first - compiled_s,
            "break_even_calls": round((first - compiled_s) / saving) if saving > 0 else None}


def bench_compile_payoff(sizes: tuple[int, ...] = SIZES, repeats: int = 10) -> list[dict[str, Any]]:
    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cold:  # a cold Inductor cache: the compile a new machine pays
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cold
        try:
            return [_one_size(n, repeats) for n in sizes]
        finally:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR")
            if before is not None:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = before


def bench_model_compile(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 10) -> dict[str, Any]:
    """`trainer.compile` for one model: its train step eager and compiled, the first compiled step's extra
    time (the compile), and the steps after which compiling has paid for itself."""
    from spikesweep.bench.model import time_train_steps

    eager_s = x.shape[0] / time_train_steps(model, x, y, steps, 1, None).samples_per_s
    compiled = torch.compile(model)
    first_s = x.shape[0] / time_train_steps(compiled, x, y, 1, 0, None).samples_per_s
    compiled_s = x.shape[0] / time_train_steps(compiled, x, y, steps, 0, None).samples_per_s
    saving = eager_s - compiled_s
    return {"eager_ms": eager_s * 1e3, "compiled_ms": compiled_s * 1e3, "speedup": eager_s / compiled_s,
            "compile_s": first_s - compiled_s, "break_even_steps": round((first_s - compiled_s) / saving)
            if saving > 0 else None}
