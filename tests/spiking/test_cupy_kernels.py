"""The cupy backend's kernels, checked without a GPU: the kernel source compiled for the host with g++ must
match the torch backend (exact spikes, input gradients to 1e-6 in float32), and the same source must compile
for CUDA with NVRTC (the compiler CuPy uses). The GPU run itself is in test_backends.py (skipped here)."""

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from spikesweep.spiking import build_neuron, build_surrogate
from spikesweep.spiking.neurons.cupy_lif import NVRTC_OPTIONS, FusedSpec, KernelConfig

GXX = shutil.which("g++")


def _host_library(config: KernelConfig, where: Path) -> ctypes.CDLL:
    """The kernels as host functions. No FMA contraction and no fast-math: the GPU build forbids them too."""
    src, lib = where / f"{hash(config) & 0xFFFFFFFF:x}.cpp", where / f"{hash(config) & 0xFFFFFFFF:x}.so"
    src.write_text(config.source())
    subprocess.run([GXX, "-O2", "-ffp-contract=off", "-shared", "-fPIC", str(src), "-o", str(lib)], check=True)
    return ctypes.CDLL(str(lib))


def _c(arg):
    if isinstance(arg, torch.Tensor):
        assert arg.is_contiguous() and arg.dtype == torch.float32
        return ctypes.c_void_p(arg.data_ptr())
    return ctypes.c_longlong(int(arg)) if isinstance(arg, np.integer) else ctypes.c_float(float(arg))


def _host_run(spec: FusedSpec, where: Path, x: torch.Tensor, v0: torch.Tensor, grad_spike: torch.Tensor):
    lib = _host_library(spec.config, where)
    steps, n = x.shape[0], x[0].numel()
    spike, h, v_last = torch.empty_like(x), torch.empty_like(x), torch.empty_like(v0)
    lib.ss_lif_forward(*map(_c, (x, v0, spike, h, v_last, *spec.forward_args(steps, n))))
    grad_x, grad_v0, grad_v_last = torch.empty_like(x), torch.empty_like(v0), torch.zeros_like(v0)
    lib.ss_lif_backward(*map(_c, (grad_spike, grad_v_last, h, grad_x, grad_v0, *spec.backward_args(steps, n))))
    return spike, v_last, grad_x


# Every kernel branch: hard/soft reset, detached or not, input decay or not, IF, and the five shapes.
CASES = [
    ("lif", {}, {"name": "atan"}),
    ("lif", {"v_reset": None, "decay_input": False}, {"name": "sigmoid"}),
    ("lif", {"detach_reset": False, "tau": 3.0}, {"name": "triangle", "gamma": 0.7}),
    ("lif", {"detach_reset": False, "v_reset": None}, {"name": "rectangle", "width": 0.8}),
    ("lif", {"v_reset": -0.2, "detach_reset": False, "v_threshold": 0.6}, {"name": "trapezoid"}),
    ("lif", {}, {"name": "piecewise_quadratic", "alpha": 1.5}),
    ("if", {}, {"name": "rectangle"}),
    ("if", {"v_reset": None, "detach_reset": False}, {"name": "atan", "alpha": 3.0}),
]


@pytest.mark.skipif(GXX is None, reason="needs g++ (apt-get install g++)")
@pytest.mark.parametrize(("name", "params", "surrogate"), CASES)
def test_kernel_source_on_the_host_matches_torch(tmp_path, name, params, surrogate):
    sg = build_surrogate(surrogate)
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(12, 3, 40, generator=g) * 1.5).contiguous()
    weights = torch.randn(x.shape, generator=g)
    reference = build_neuron({"name": name, **params, "backend": "torch"}, sg)()
    xi = x.clone().requires_grad_(True)
    out = reference(xi)
    (out * weights).sum().backward()

    p = {"tau": 2.0, "v_threshold": 1.0, "v_reset": 0.0, "decay_input": True, "detach_reset": True, **params}
    spec = FusedSpec.build(sg, p["tau"] if name == "lif" else None, p["v_threshold"], p["v_reset"], p["decay_input"],
                           p["detach_reset"])
    v0 = torch.full_like(x[0], spec.v_reset)
    spike, v_last, grad_x = _host_run(spec, tmp_path, x, v0, weights)
    assert 0 < spike.sum() < spike.numel()  # some neurons fire, some do not: both branches run
    assert torch.equal(spike, out.detach())
    assert torch.equal(v_last, reference.v.detach())
    assert torch.allclose(grad_x, xi.grad, atol=1e-6, rtol=0)


def _nvrtc() -> ctypes.CDLL | None:
    try:
        import nvidia.cu13  # the CUDA 13 runtime wheels that torch installs
    except ImportError:
        return None
    found = sorted(Path(list(nvidia.cu13.__path__)[0], "lib").glob("libnvrtc.so.*"))
    return ctypes.CDLL(str(found[0])) if found else None


NVRTC = _nvrtc()


@pytest.mark.skipif(NVRTC is None, reason="NVRTC (torch's CUDA wheels) is not installed")
@pytest.mark.parametrize("config", [
    KernelConfig("sigmoid", True, True, True, True),
    KernelConfig("atan", True, False, False, False),
    KernelConfig("triangle", False, True, True, False),
    KernelConfig("rectangle", True, True, False, True),
    KernelConfig("trapezoid", False, True, False, True),
])
def test_kernel_source_compiles_for_cuda(config):
    program = ctypes.c_void_p()
    source = config.source().encode()
    assert NVRTC.nvrtcCreateProgram(ctypes.byref(program), source, b"ss_lif.cu", 0, None, None) == 0
    options = [o.encode() for o in (*NVRTC_OPTIONS, "--gpu-architecture=compute_80")]
    status = NVRTC.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*options))
    size = ctypes.c_size_t()
    NVRTC.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    NVRTC.nvrtcGetProgramLog(program, log)
    NVRTC.nvrtcDestroyProgram(ctypes.byref(program))
    assert status == 0, log.value.decode()
