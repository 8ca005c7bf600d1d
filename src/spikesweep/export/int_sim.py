"""The integer reference simulator: runs an FPGA package from its files alone (manifest.json and the .mem
weight memories), in numpy with integer operations only; the semantics are those of fixed_point.py."""

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from spikesweep.export.memory_files import read_mem


def load_package(root: Path) -> dict[str, Any]:
    manifest = json.loads((root / "manifest.json").read_text())
    for lay in manifest["layers"]:
        for key in ("weight", "bias"):
            if key in lay:
                mem = lay[key]
                lay[key + "_values"] = read_mem(root / mem["mem"], mem["bits"]).reshape(mem["shape"])
    return manifest


def _sat(x: np.ndarray, bits: int) -> np.ndarray:
    return np.clip(x, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: list[int], padding: list[int]) -> np.ndarray:
    n = x.shape[0]
    x = np.pad(x, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])))
    win = sliding_window_view(x, w.shape[2:], axis=(2, 3))[:, :, ::stride[0], ::stride[1]]  # N C Ho Wo kh kw
    ho, wo = win.shape[2:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, -1)
    y = cols @ w.reshape(w.shape[0], -1).T + b  # int64 matmul: exact
    return y.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)


def _pool(x: np.ndarray, k: list[int], op: str) -> np.ndarray:
    n, c, h, w = x.shape
    ho, wo = h // k[0], w // k[1]
    blocks = x[:, :, :ho * k[0], :wo * k[1]].reshape(n, c, ho, k[0], wo, k[1])
    return blocks.sum(axis=(3, 5)) if op == "sum" else blocks.max(axis=(3, 5))


def _neuron(x: np.ndarray, p: dict[str, Any], acc_bits: int) -> np.ndarray:
    v_reset, thr = np.int64(p["v_reset"]), np.int64(p["threshold"])
    v = np.full(x[:, 0].shape, v_reset if p["reset"] == "hard" else 0, dtype=np.int64)
    out = np.zeros_like(x)
    for t in range(x.shape[1]):
        xt = x[:, t]
        if p["model"] == "if":
            h = v + xt
        elif p["decay_input"]:
            h = v + (((xt - (v - v_reset)) * p["leak_mult"]) >> p["leak_shift"])
        else:
            h = v - (((v - v_reset) * p["leak_mult"]) >> p["leak_shift"]) + xt
        h = _sat(h, acc_bits)
        s = (h >= thr).astype(np.int64)
        v = np.where(s == 1, v_reset, h) if p["reset"] == "hard" else h - s * thr
        out[:, t] = s
    return out


def run(pkg: dict[str, Any], x_int: np.ndarray) -> list[np.ndarray]:
    """Integer input [B, T, ...] -> every layer's integer output [B, T, ...]."""
    acc = pkg["acc_bits"]
    x = np.asarray(x_int, dtype=np.int64)
    b, t = x.shape[:2]
    outs = []
    for lay in pkg["layers"]:
        kind, p = lay["kind"], lay["params"]
        flat = x.reshape(b * t, *x.shape[2:])
        if kind == "conv":
            y = _sat(_conv(flat, lay["weight_values"], lay["bias_values"].reshape(1, -1), p["stride"], p["padding"]), acc)
        elif kind == "linear":
            y = _sat(flat @ lay["weight_values"].T + lay["bias_values"], acc)
        elif kind in ("avgpool", "maxpool"):
            y = _pool(flat, p["kernel"], "sum" if kind == "avgpool" else "max")
        elif kind == "flatten":
            y = flat.reshape(b * t, -1)
        else:
            y = None
            x = _neuron(x, p, acc)
        if y is not None:
            x = y.reshape(b, t, *y.shape[1:])
        outs.append(x)
    return outs


def synaptic_ops(pkg: dict[str, Any], x_int: np.ndarray, outs: list[np.ndarray]) -> dict[str, int]:
    """The accumulations the package's conv and linear layers actually do on this batch (NeuroBench's effective
    synaptic operations): one per nonzero input and the weight it meets. A layer fed 0/1 spikes does ACs (an add);
    one fed multi-bit values (a direct-coded input, a sum-pooled map) does MACs."""
    ops = {"acs": 0, "macs": 0}
    inputs = [np.asarray(x_int)] + outs[:-1]
    for lay, x in zip(pkg["layers"], inputs):
        if lay["kind"] not in ("conv", "linear"):
            continue
        active = (x != 0).astype(np.int64)
        flat = active.reshape(-1, *active.shape[2:])  # [B*T, ...]
        w = lay["weight_values"]
        if lay["kind"] == "linear":
            count = int(flat.sum()) * w.shape[0]
        else:  # each output counts the active inputs of its window: a conv of the mask with ones, times C_out
            ones = np.ones((1, *w.shape[1:]), dtype=np.int64)
            p = lay["params"]
            count = int(_conv(flat, ones, np.zeros((1, 1), dtype=np.int64), p["stride"], p["padding"]).sum()) * w.shape[0]
        ops["acs" if np.isin(x, (0, 1)).all() else "macs"] += count
    return ops


def predictions(pkg: dict[str, Any], outs: list[np.ndarray]) -> np.ndarray:
    """Classes from the last layer summed over time (the engine averages the per-step outputs)."""
    return outs[-1].sum(axis=1).reshape(outs[-1].shape[0], -1).argmax(axis=1)
