"""The `cupy` backend: IF/LIF as two fused CUDA kernels compiled with CuPy, one thread per neuron.

The forward kernel runs all T steps of a neuron in registers and stores h (the membrane before the spike);
the backward kernel walks T backwards once (BPTT through the hard or soft reset, with or without
detach_reset) and recomputes the spikes from h, so a layer costs two launches instead of ~10 T small ones.

The recurrence is written once, in `KERNEL_SOURCE`, as plain C++ wrapped in a few macros: nvcc/NVRTC sees
CUDA kernels, a host compiler sees loops over the neurons. The tests compile it with g++ and compare it with
the torch reference on the CPU, so the arithmetic is checked on machines without a GPU; on a GPU the
parity tests compare this module with the torch backend.

Importing this file needs neither CuPy nor CUDA; building the neuron without them fails with one line.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from spikingjelly.activation_based import base
from spikingjelly.activation_based import surrogate as sj

from spikesweep.spiking.surrogate import Rectangle, Trapezoid, Triangle

# Surrogate gradient g(u), u = h - v_threshold; `a`, `b` are the surrogate's parameters (see `kernel_surrogate`).
KERNEL_SOURCE = r"""
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define SS_FN __device__ __forceinline__
#define SS_KERNEL extern "C" __global__
#define SS_FOR_EACH_NEURON(i, n) const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; if (i < n)
#else
#include <math.h>
#define SS_FN static inline
#define SS_KERNEL extern "C"
#define SS_FOR_EACH_NEURON(i, n) for (long long i = 0; i < n; ++i)
#endif

SS_FN float ss_surrogate_grad(float u, float a, float b) {
#if SG == 0   /* sigmoid, a = alpha */
    const float s = 1.0f / (1.0f + expf(-a * u));
    return (1.0f - s) * s * a;
#elif SG == 1 /* atan, a = alpha */
    const float z = 1.5707963267948966f * a * u;
    return a * 0.5f / (1.0f + z * z);
#elif SG == 2 /* rectangle, a = width */
    return fabsf(u) < a * 0.5f ? 1.0f / a : 0.0f;
#elif SG == 3 /* triangle, a = gamma */
    return fmaxf(a - fabsf(u), 0.0f) / (a * a);
#elif SG == 4 /* trapezoid, a = width, b = ramp */
    return fminf(fmaxf((a * 0.5f + b * 0.5f - fabsf(u)) / b, 0.0f), 1.0f) / a;
#else
#error "unknown SG"
#endif
}

/* h[t] from v[t-1] and x[t]; the same operations, in the same order, as spikingjelly's reference. */
SS_FN float ss_charge(float v, float x, float tau, float v_reset) {
#if LEAKY && DECAY_INPUT
    return v + (x - (v - v_reset)) / tau;
#elif LEAKY
    return v - (v - v_reset) / tau + x;
#else
    return v + x;
#endif
}

SS_KERNEL void ss_lif_forward(const float* x, const float* v_init, float* spike, float* h_seq, float* v_last,
                              long long T, long long n, float tau, float v_threshold, float v_reset) {
    SS_FOR_EACH_NEURON(i, n) {
        float v = v_init[i];
        for (long long t = 0; t < T; ++t) {
            const long long k = t * n + i;
            const float h = ss_charge(v, x[k], tau, v_reset);
            const float s = h - v_threshold >= 0.0f ? 1.0f : 0.0f;
            spike[k] = s;
            h_seq[k] = h;
#if HARD_RESET
            v = s * v_reset + (1.0f - s) * h;
#else
            v = h - s * v_threshold;
#endif
        }
        v_last[i] = v;
    }
}

SS_KERNEL void ss_lif_backward(const float* grad_spike, const float* grad_v_last, const float* h_seq,
                               float* grad_x, float* grad_v_init, long long T, long long n, float tau,
                               float v_threshold, float v_reset, float a, float b) {
    SS_FOR_EACH_NEURON(i, n) {
        float grad_v = grad_v_last[i];  /* dL/dv[t] carried back from step t + 1 */
        for (long long t = T - 1; t >= 0; --t) {
            const long long k = t * n + i;
            const float h = h_seq[k];
            const float u = h - v_threshold;
            const float sg = ss_surrogate_grad(u, a, b);
#if HARD_RESET
            float dv_dh = u >= 0.0f ? 0.0f : 1.0f;
#if !DETACH_RESET
            dv_dh += (v_reset - h) * sg;
#endif
#else
            float dv_dh = 1.0f;
#if !DETACH_RESET
            dv_dh -= v_threshold * sg;
#endif
#endif
            const float grad_h = grad_spike[k] * sg + grad_v * dv_dh;
#if LEAKY && DECAY_INPUT
            grad_x[k] = grad_h / tau;
#else
            grad_x[k] = grad_h;
#endif
#if LEAKY
            grad_v = grad_h - grad_h / tau;
#else
            grad_v = grad_h;
#endif
        }
        grad_v_init[i] = grad_v;
    }
}
"""

SURROGATE_IDS = {"sigmoid": 0, "atan": 1, "rectangle": 2, "triangle": 3, "trapezoid": 4}


def kernel_surrogate(surrogate: Any) -> tuple[str, float, float]:
    """(kernel shape, a, b) for a surrogate object; spikingjelly's PiecewiseQuadratic(alpha) is our
    triangle with gamma = 1/alpha (the same gradient, alpha - alpha^2 |x|)."""
    if isinstance(surrogate, (sj.Sigmoid, sj.ATan, sj.PiecewiseQuadratic)) and getattr(surrogate, "spiking", True):
        alpha = float(surrogate.alpha)
        if isinstance(surrogate, sj.PiecewiseQuadratic):
            return "triangle", 1.0 / alpha, 0.0
        return ("sigmoid" if isinstance(surrogate, sj.Sigmoid) else "atan"), alpha, 0.0
    if isinstance(surrogate, Rectangle):
        return "rectangle", surrogate._sg_params["width"], 0.0
    if isinstance(surrogate, Triangle):
        return "triangle", surrogate._sg_params["gamma"], 0.0
    if isinstance(surrogate, Trapezoid):
        return "trapezoid", surrogate._sg_params["width"], surrogate._sg_params["ramp"]
    raise ValueError(
        f"the cupy backend has no kernel for surrogate {type(surrogate).__name__}; "
        "valid: sigmoid, atan, piecewise_quadratic, rectangle, triangle, trapezoid"
    )


@dataclass(frozen=True)
class KernelConfig:
    """Everything the kernels are specialised on at compile time (the rest are launch arguments)."""

    surrogate: str
    leaky: bool
    decay_input: bool
    hard_reset: bool
    detach_reset: bool

    def source(self) -> str:
        flags = {"SG": SURROGATE_IDS[self.surrogate], "LEAKY": self.leaky, "DECAY_INPUT": self.decay_input,
                 "HARD_RESET": self.hard_reset, "DETACH_RESET": self.detach_reset}
        return "".join(f"#define {k} {int(v)}\n" for k, v in flags.items()) + KERNEL_SOURCE


@dataclass(frozen=True)
class FusedSpec:
    """One neuron layer's kernels and launch arguments (the scalars typed as the kernels declare them)."""

    config: KernelConfig
    tau: float
    v_threshold: float
    v_reset: float
    a: float
    b: float

    @classmethod
    def build(cls, surrogate: Any, tau: float | None, v_threshold: float, v_reset: float | None, decay_input: bool,
              detach_reset: bool) -> "FusedSpec":
        shape, a, b = kernel_surrogate(surrogate)
        config = KernelConfig(shape, tau is not None, bool(decay_input), v_reset is not None, bool(detach_reset))
        return cls(config, 1.0 if tau is None else float(tau), float(v_threshold),
                   0.0 if v_reset is None else float(v_reset), a, b)

    def forward_args(self, steps: int, n: int) -> tuple:
        return np.int64(steps), np.int64(n), np.float32(self.tau), np.float32(self.v_threshold), np.float32(self.v_reset)

    def backward_args(self, steps: int, n: int) -> tuple:
        return (*self.forward_args(steps, n), np.float32(self.a), np.float32(self.b))


# Contracting a*b+c into one FMA would round differently from the reference's separate operations and can
# flip a spike that sits on the threshold; the kernels must match it bit for bit forward.
NVRTC_OPTIONS = ("--fmad=false", "--std=c++14")


def _cupy() -> Any:
    """CuPy, imported on first use: the backend is optional (`pip install 'spikesweep[cupy]'`) and importing
    it costs every process that never selects it."""
    import cupy

    return cupy


def unavailable_reason() -> str | None:
    """Why the cupy backend cannot run here, or None."""
    if not torch.cuda.is_available():
        return "no CUDA device is available"
    try:
        cupy = _cupy()
    except ImportError:
        return "CuPy is not installed (pip install 'spikesweep[cupy]')"
    if not cupy.cuda.is_available():
        return "CuPy sees no CUDA device (does its CUDA build, e.g. cupy-cuda13x, match torch's?)"
    return None


def require_cupy() -> None:
    reason = unavailable_reason()
    if reason is not None:
        raise ValueError(f"backend 'cupy' needs CuPy and a CUDA GPU: {reason}; use backend torch, compile or auto")


_modules: dict[tuple[KernelConfig, int], Any] = {}


def _kernels(config: KernelConfig, device: torch.device) -> Any:
    key = (config, device.index)
    if key not in _modules:
        cupy = _cupy()
        with cupy.cuda.Device(device.index):
            _modules[key] = cupy.RawModule(code=config.source(), options=NVRTC_OPTIONS)
    return _modules[key]


def _launch(module: Any, name: str, device: torch.device, n: int, *args: Any) -> None:
    threads, cupy = 256, _cupy()
    with cupy.cuda.Device(device.index), cupy.cuda.ExternalStream(torch.cuda.current_stream(device).cuda_stream):
        module.get_function(name)(((n + threads - 1) // threads,), (threads,), args)


def _ptr(t: torch.Tensor) -> np.uint64:
    """A device pointer as CuPy passes it by value: an 8-byte scalar, the size of the kernels' float*."""
    return np.uint64(t.data_ptr())


class _FusedLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_seq: torch.Tensor, v_init: torch.Tensor, spec: FusedSpec) -> tuple[torch.Tensor, torch.Tensor]:
        x = x_seq.detach().float().contiguous()
        v0 = v_init.detach().float().contiguous()
        steps, n = x.shape[0], x[0].numel()
        spike, h_seq, v_last = torch.empty_like(x), torch.empty_like(x), torch.empty_like(v0)
        _launch(_kernels(spec.config, x.device), "ss_lif_forward", x.device, n, _ptr(x), _ptr(v0), _ptr(spike),
                _ptr(h_seq), _ptr(v_last), *spec.forward_args(steps, n))
        ctx.save_for_backward(h_seq)
        ctx.spec, ctx.x_dtype, ctx.v_dtype = spec, x_seq.dtype, v_init.dtype
        return spike.to(x_seq.dtype), v_last

    @staticmethod
    def backward(ctx, grad_spike: torch.Tensor, grad_v_last: torch.Tensor):
        (h_seq,) = ctx.saved_tensors
        steps, n = h_seq.shape[0], h_seq[0].numel()
        gs, gv = grad_spike.float().contiguous(), grad_v_last.float().contiguous()
        grad_x, grad_v0 = torch.empty_like(h_seq), torch.empty_like(h_seq[0])
        _launch(_kernels(ctx.spec.config, h_seq.device), "ss_lif_backward", h_seq.device, n, _ptr(gs), _ptr(gv),
                _ptr(h_seq), _ptr(grad_x), _ptr(grad_v0), *ctx.spec.backward_args(steps, n))
        return grad_x.to(ctx.x_dtype), grad_v0.to(ctx.v_dtype), None


class CupyLIF(base.MemoryModule):
    """IF (tau None) or LIF in multi-step mode; state `v` carries over between calls until reset, like
    spikingjelly's nodes, and a gradient reaches the previous call's graph through it."""

    def __init__(
        self, surrogate: Any, tau: float | None, v_threshold: float, v_reset: float | None, decay_input: bool,
        detach_reset: bool,
    ) -> None:
        super().__init__()
        require_cupy()
        self.spec = FusedSpec.build(surrogate, tau, v_threshold, v_reset, decay_input, detach_reset)
        self.surrogate_function = surrogate
        self.step_mode = "m"
        self.register_memory("v", 0.0 if v_reset is None else float(v_reset))
        _eager_under_compile(type(self))

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if x_seq.device.type != "cuda":
            raise ValueError(f"backend 'cupy' runs on CUDA tensors, got input on {x_seq.device}; use backend auto")
        v = self.v if isinstance(self.v, torch.Tensor) else torch.full_like(x_seq[0], self.v, dtype=torch.float32)
        spikes, self.v = _FusedLIF.apply(x_seq, v, self.spec)
        return spikes

    def extra_repr(self) -> str:
        spec = self.spec
        return (f"leaky={spec.config.leaky}, tau={spec.tau}, v_threshold={spec.v_threshold}, hard_reset="
                f"{spec.config.hard_reset}, surrogate={spec.config.surrogate}, backend=cupy")


def _eager_under_compile(cls: type) -> None:
    """A compiled model calls the kernels as they are (Dynamo cannot trace CuPy). Applied to the class on
    first construction, not as a decorator, so that importing this module does not import the compiler."""
    if not getattr(cls.forward, "_eager_under_compile", False):
        cls.forward = torch.compiler.disable(cls.forward)
        cls.forward._eager_under_compile = True
