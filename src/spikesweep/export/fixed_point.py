"""Fixed-point form of a chain network, and the fake-quantised torch model that defines its golden traces.

Every value is an integer x meaning x * 2^-frac, with one power-of-two `frac` per layer, so a rescale is a
shift. Weights: W-bit signed, frac from the layer's largest weight. Input: W-bit signed with frac calibrated
on training data (spike codes are 0/1). A conv/linear accumulates in acc_bits (signed, saturating) at
frac = w_frac + in_frac, and its bias is stored at that scale. A neuron's membrane, threshold and v_reset
share the frac of its input; per step (>> is an arithmetic shift, sat() clips to acc_bits):
  LIF, decay_input:      h = sat(v + (((x - (v - v_reset)) * leak_mult) >> leak_shift))
  LIF, not decay_input:  h = sat(v - (((v - v_reset) * leak_mult) >> leak_shift) + x)
  IF:                    h = sat(v + x)
  spike = h >= threshold; then v = v_reset (hard) or h - threshold (soft).
leak_mult / 2^leak_shift is 1/tau: a pure shift when tau is a power of two. Spikes are 0/1 (frac 0);
sum-pooling adds log2(k*k) to frac (average pooling without a divide); max-pooling keeps it.
"""

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from spikesweep.export.chain import Chain, UnsupportedModel

NON_POW2_LEAK_SHIFT = 16


@dataclass
class QLayer:
    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    frac: int  # of this layer's output
    params: dict[str, Any] = field(default_factory=dict)  # plain numbers: stride, threshold, ...
    weight: np.ndarray | None = None  # int64
    bias: np.ndarray | None = None  # int64, at the accumulator's scale


@dataclass
class QNet:
    bits: int
    acc_bits: int
    input_bits: int
    input_frac: int
    input_shape: tuple[int, ...]
    time_steps: int
    encoding: str
    layers: list[QLayer]


def _pow2_frac(max_abs: float, bits: int) -> int:
    """The frac that puts max_abs at the top of a signed `bits`-bit range."""
    return bits - 1 - math.ceil(math.log2(max_abs)) if max_abs > 0 else bits - 1


def _q(x: np.ndarray, frac: int, bits: int) -> np.ndarray:
    lim = 2 ** (bits - 1)
    return np.clip(np.round(x * 2.0**frac), -lim + 1, lim - 1).astype(np.int64)


def _pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, tuple | list) else (v, v)


def _leak(tau: float) -> tuple[int, int]:
    k = math.log2(tau)
    if abs(k - round(k)) < 1e-9 and round(k) >= 0:
        return 1, int(round(k))
    return int(round(2**NON_POW2_LEAK_SHIFT / tau)), NON_POW2_LEAK_SHIFT


def quantise(chain: Chain, calib: torch.Tensor, bits: int, acc_bits: int | None = None) -> QNet:
    """`calib`: training samples [B, ...] (before encoding) that set the input's scale."""
    acc_bits = acc_bits or min(2 * bits + 8, 48)
    if chain.encoding == "direct":
        in_bits = bits
        in_frac = _pow2_frac(float(chain.encode(calib).abs().max()), bits)
    else:
        in_bits, in_frac = 1, 0
    frac, layers = in_frac, []
    for lay in chain.layers:
        mod, p = lay.module, {}
        q = QLayer(lay.name, lay.kind, lay.in_shape, lay.out_shape, frac)
        if lay.kind in ("conv", "linear"):
            w = mod.weight.detach().double().numpy()
            w_frac = _pow2_frac(float(np.abs(w).max()), bits)
            q.weight = _q(w, w_frac, bits)
            q.frac = frac = w_frac + frac
            b = mod.bias.detach().double().numpy() if mod.bias is not None else np.zeros(w.shape[0])
            q.bias = _q(b, frac, acc_bits)
            p["w_frac"] = w_frac
            if lay.kind == "conv":
                if not isinstance(mod.padding, tuple) or mod.groups != 1 or _pair(mod.dilation) != (1, 1):
                    raise UnsupportedModel(f"export --to fpga: conv '{lay.name}' needs numeric padding, groups 1, dilation 1")
                p.update(stride=list(_pair(mod.stride)), padding=list(_pair(mod.padding)), kernel=list(w.shape[2:]))
        elif lay.kind in ("avgpool", "maxpool"):
            k, s = _pair(mod.kernel_size), _pair(mod.stride or mod.kernel_size)
            if k != s or _pair(mod.padding) != (0, 0) or getattr(mod, "ceil_mode", False) or (
                    lay.kind == "maxpool" and _pair(mod.dilation) != (1, 1)):
                raise UnsupportedModel(f"export --to fpga: pool '{lay.name}' needs stride = kernel, no padding")
            if lay.kind == "avgpool":
                shift = math.log2(k[0] * k[1])
                if shift != int(shift) or getattr(mod, "divisor_override", None):
                    raise UnsupportedModel(f"export --to fpga: avgpool '{lay.name}' kernel {k}: the window must be a power of two")
                q.frac = frac = frac + int(shift)
            p["kernel"] = list(k)
        elif lay.kind == "neuron":
            n = lay.neuron
            mult, shift = _leak(n.tau) if n.kind == "lif" else (0, 0)
            p.update(model=n.kind, reset="soft" if n.v_reset is None else "hard", decay_input=n.decay_input,
                     tau=n.tau, threshold=int(_q(np.array(n.v_threshold), frac, acc_bits)),
                     v_reset=int(_q(np.array(n.v_reset or 0.0), frac, acc_bits)), leak_mult=mult, leak_shift=shift,
                     membrane_frac=frac)
            q.frac = frac = 0
        q.params = p
        layers.append(q)
    return QNet(bits, acc_bits, in_bits, in_frac, tuple(chain.layers[0].in_shape), chain.time_steps, chain.encoding,
                layers)


def quantise_input(net: QNet, chain: Chain, x: torch.Tensor) -> np.ndarray:
    """[B, ...] samples -> the integer input sequence [B, T, ...] the package is fed."""
    x_seq = chain.encode(x).transpose(0, 1).double().numpy()
    return _q(x_seq, net.input_frac, max(net.input_bits, 2))  # 1-bit spikes: 0/1


def _sat(x: torch.Tensor, bits: int) -> torch.Tensor:
    return x.clamp(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


@torch.no_grad()
def fake_quant_run(net: QNet, x_int: np.ndarray) -> list[np.ndarray]:
    """torch's own conv/linear/pool ops on the integer weights (float64 holds these integers exactly), the
    neuron in int64: every layer's output [B, T, ...] for integer input [B, T, ...]."""
    x = torch.from_numpy(x_int).double()
    b, t = x.shape[:2]
    outs = []
    for q in net.layers:
        flat = x.reshape(b * t, *x.shape[2:])
        if q.kind == "conv":
            y = F.conv2d(flat, torch.from_numpy(q.weight).double(), torch.from_numpy(q.bias).double(),
                         stride=q.params["stride"], padding=q.params["padding"])
            x = _sat(y, net.acc_bits).reshape(b, t, *y.shape[1:])
        elif q.kind == "linear":
            y = F.linear(flat, torch.from_numpy(q.weight).double(), torch.from_numpy(q.bias).double())
            x = _sat(y, net.acc_bits).reshape(b, t, *y.shape[1:])
        elif q.kind == "avgpool":
            k = q.params["kernel"]
            y = F.avg_pool2d(flat, k, k) * (k[0] * k[1])  # a sum of at most k*k integers, exact
            x = y.round().reshape(b, t, *y.shape[1:])
        elif q.kind == "maxpool":
            y = F.max_pool2d(flat, q.params["kernel"])
            x = y.reshape(b, t, *y.shape[1:])
        elif q.kind == "flatten":
            x = x.reshape(b, t, -1)
        else:
            x = _neuron_torch(x.long(), q.params, net.acc_bits).double()
        outs.append(x.long().numpy())
    return outs


def neuron_membranes(x_int: np.ndarray, p: dict[str, Any], acc_bits: int) -> np.ndarray:
    """The membrane after each step [B, T, ...] of a neuron layer fed the integer input `x_int`."""
    return _neuron_torch(torch.from_numpy(x_int).long(), p, acc_bits, membranes=True).numpy()


def _neuron_torch(x: torch.Tensor, p: dict[str, Any], acc_bits: int, membranes: bool = False) -> torch.Tensor:
    v = torch.full_like(x[:, 0], p["v_reset"] if p["reset"] == "hard" else 0)
    spikes, vs = [], []
    for step in range(x.shape[1]):
        xt = x[:, step]
        if p["model"] == "if":
            h = v + xt
        elif p["decay_input"]:
            h = v + torch.bitwise_right_shift((xt - (v - p["v_reset"])) * p["leak_mult"], p["leak_shift"])
        else:
            h = v - torch.bitwise_right_shift((v - p["v_reset"]) * p["leak_mult"], p["leak_shift"]) + xt
        h = _sat(h, acc_bits)
        s = (h >= p["threshold"]).long()
        v = torch.where(s.bool(), torch.full_like(h, p["v_reset"]), h) if p["reset"] == "hard" else h - s * p["threshold"]
        spikes.append(s)
        vs.append(v)
    return torch.stack(vs if membranes else spikes, 1)
