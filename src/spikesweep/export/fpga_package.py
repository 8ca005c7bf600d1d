"""The fixed-point package a hardware designer receives:

  manifest.json    every layer's kind, shapes, bit widths, power-of-two scales (frac), neuron parameters
                   (integer threshold, v_reset, leak as multiply + shift), reset mode and memory bits
  params.vh        the same numbers as Verilog localparams
  memories/        L<i>_weight.mem / .coe (W-bit) and L<i>_bias.mem / .coe (acc_bits), row-major [out, in, kh, kw]
  hdl/             a reference Verilog FC IF/LIF layer and a testbench on one layer's golden spikes (verilog.py)
  golden/          input.npy (integer input [N, T, ...]), L<i>_<kind>.npy (every layer's integer output),
                   labels.npy: from the fake-quantised torch model (fixed_point.fake_quant_run)
"""

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from spikesweep.export.fixed_point import QNet, fake_quant_run
from spikesweep.export.memory_files import write_coe, write_mem
from spikesweep.export.verilog import write_hdl

FORMAT = "spikesweep-fpga/1"


def _memory(root: Path, stem: str, values: np.ndarray, bits: int) -> dict[str, Any]:
    (root / "memories").mkdir(parents=True, exist_ok=True)
    write_mem(root / "memories" / f"{stem}.mem", values, bits)
    write_coe(root / "memories" / f"{stem}.coe", values, bits)
    return {"mem": f"memories/{stem}.mem", "coe": f"memories/{stem}.coe", "shape": list(values.shape), "bits": bits,
            "words": int(values.size), "memory_bits": int(values.size) * bits}


def manifest(net: QNet, root: Path) -> dict[str, Any]:
    layers = []
    for i, q in enumerate(net.layers):
        entry: dict[str, Any] = {"index": i, "name": q.name, "kind": q.kind, "in_shape": list(q.in_shape),
                                 "out_shape": list(q.out_shape), "frac": q.frac, "params": q.params}
        if q.weight is not None:
            entry["weight"] = _memory(root, f"L{i}_weight", q.weight, net.bits)
            entry["bias"] = _memory(root, f"L{i}_bias", q.bias, net.acc_bits)
        layers.append(entry)
    total = sum(lay[k]["memory_bits"] for lay in layers for k in ("weight", "bias") if k in lay)
    return {
        "format": FORMAT, "bits": net.bits, "acc_bits": net.acc_bits, "time_steps": net.time_steps,
        "input": {"shape": list(net.input_shape), "bits": net.input_bits, "frac": net.input_frac,
                  "signed": net.input_bits > 1, "encoding": net.encoding},
        "semantics": "value = integer * 2^-frac; see spikesweep/export/fixed_point.py for the per-step equations",
        "layers": layers, "memory_bits": total, "memory_kB": round(total / 8 / 1024, 3),
    }


def params_vh(man: dict[str, Any]) -> str:
    lines = ["// spikesweep export: fixed-point parameters (generated; see manifest.json)",
             f"localparam integer T_STEPS = {man['time_steps']};", f"localparam integer W_BITS = {man['bits']};",
             f"localparam integer ACC_BITS = {man['acc_bits']};", f"localparam integer IN_BITS = {man['input']['bits']};",
             f"localparam integer IN_FRAC = {man['input']['frac']};", f"localparam integer N_LAYERS = {len(man['layers'])};"]
    for lay in man["layers"]:
        pre = f"L{lay['index']}_"
        lines.append(f"// layer {lay['index']}: {lay['kind']} '{lay['name']}' {lay['in_shape']} -> {lay['out_shape']}")
        lines.append(f"localparam integer {pre}IN_SIZE = {math.prod(lay['in_shape'])};")
        lines.append(f"localparam integer {pre}OUT_SIZE = {math.prod(lay['out_shape'])};")
        lines.append(f"localparam integer {pre}FRAC = {lay['frac']};")
        p = lay["params"]
        if lay["kind"] == "neuron":
            lines += [f"localparam integer {pre}THRESHOLD = {p['threshold']};",
                      f"localparam integer {pre}V_RESET = {p['v_reset']};",
                      f"localparam integer {pre}SOFT_RESET = {int(p['reset'] == 'soft')};",
                      f"localparam integer {pre}LEAKY = {int(p['model'] == 'lif')};",
                      f"localparam integer {pre}DECAY_INPUT = {int(bool(p['decay_input']))};",
                      f"localparam integer {pre}LEAK_MULT = {p['leak_mult']};",
                      f"localparam integer {pre}LEAK_SHIFT = {p['leak_shift']};"]
        if "weight" in lay:
            lines.append(f"localparam integer {pre}WEIGHT_WORDS = {lay['weight']['words']};")
            lines.append(f"localparam {pre}WEIGHT_FILE = \"{lay['weight']['mem']}\";")
            lines.append(f"localparam {pre}BIAS_FILE = \"{lay['bias']['mem']}\";")
        if lay["kind"] in ("avgpool", "maxpool"):
            lines.append(f"localparam integer {pre}POOL = {p['kernel'][0]};")
    return "\n".join(lines) + "\n"


def write_package(net: QNet, root: Path, golden_x: np.ndarray, golden_y: np.ndarray) -> dict[str, Any]:
    """Write the package under `root`; golden traces for the integer inputs `golden_x` [N, T, ...]."""
    root.mkdir(parents=True, exist_ok=True)
    man = manifest(net, root)
    outs = fake_quant_run(net, golden_x)
    (root / "golden").mkdir(exist_ok=True)
    np.save(root / "golden" / "input.npy", golden_x)
    np.save(root / "golden" / "labels.npy", np.asarray(golden_y))
    files = []
    for i, (q, out) in enumerate(zip(net.layers, outs)):
        files.append(f"golden/L{i}_{q.kind}.npy")
        np.save(root / files[-1], out)
    man["golden"] = {"samples": int(golden_x.shape[0]), "input": "golden/input.npy", "labels": "golden/labels.npy",
                     "layers": files, "source": "fake-quantised torch model (torch ops on the integer weights)"}
    hdl = write_hdl(root, man)
    if hdl is not None:
        man["hdl"] = hdl
    (root / "manifest.json").write_text(json.dumps(man, indent=1) + "\n")
    (root / "params.vh").write_text(params_vh(man))
    return man
