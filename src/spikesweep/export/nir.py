"""A chain network as a NIR graph (Neuromorphic Intermediate Representation, `nir` 1.0).

NIR neurons are continuous-time: LIF is tau dv/dt = (v_leak - v) + r I, IF is dv/dt = r I. Our neurons are
spikingjelly's discrete ones, one Euler step of dt per time step:
  LIF, decay_input:      v <- v + (x - (v - v_reset)) / tau_steps  ->  tau = tau_steps * dt, r = 1
  LIF, not decay_input:  v <- v - (v - v_reset) / tau_steps + x    ->  tau = tau_steps * dt, r = tau_steps
  IF:                    v <- v + x                               ->  r = 1
v_leak is v_reset (spikingjelly leaks towards it), 0 with soft reset; a spike is v >= v_threshold, then v
becomes v_reset (hard) or v - v_threshold (soft: NIR has no field for it, so the node's metadata says
reset=subtract). dt is stated in the graph's metadata; its default 1e-4 s is the step snntorch's importer
assumes. BN is folded into the conv/linear before it. NIR has no max-pool node: over spikes (0/1), a max-pool
is "any spike in the window", written as SumPool2d -> Threshold(0.5) (exact for binary input; snntorch
imports neither node, so such graphs are checked by NIR's own type inference only). A max-pool over
non-binary values is refused.
"""

from pathlib import Path

import nir
import numpy as np

from spikesweep.export.chain import Chain, Layer, UnsupportedModel

DEFAULT_DT = 1e-4


def _arr(x) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float32)


def _pair(v) -> np.ndarray:
    return np.array(v if isinstance(v, tuple | list) else (v, v), dtype=np.int64)


def _node(lay: Layer, dt: float) -> nir.NIRNode:
    mod = lay.module
    if lay.kind == "conv":
        if not isinstance(mod.padding, tuple):
            raise UnsupportedModel(f"export --to nir: conv '{lay.name}' has padding '{mod.padding}'; NIR needs numbers")
        bias = _arr(mod.bias) if mod.bias is not None else np.zeros(mod.out_channels, np.float32)
        return nir.Conv2d(input_shape=tuple(lay.in_shape[1:]), weight=_arr(mod.weight), stride=mod.stride,
                          padding=mod.padding, dilation=mod.dilation, groups=mod.groups, bias=bias)
    if lay.kind == "linear":
        if mod.bias is None:
            return nir.Linear(weight=_arr(mod.weight))
        return nir.Affine(weight=_arr(mod.weight), bias=_arr(mod.bias))
    if lay.kind == "avgpool":
        return nir.AvgPool2d(kernel_size=_pair(mod.kernel_size), stride=_pair(mod.stride or mod.kernel_size),
                             padding=_pair(mod.padding))
    if lay.kind == "flatten":
        return nir.Flatten(input_type={"input": np.array(lay.in_shape)}, start_dim=0, end_dim=-1)
    if lay.kind == "neuron":
        p, shape = lay.neuron, lay.out_shape
        full = lambda v: np.full(shape, v, dtype=np.float32)  # noqa: E731
        meta = {"reset": "subtract" if p.v_reset is None else "hard", "dt": dt}
        v_reset = None if p.v_reset is None else full(p.v_reset)
        if p.kind == "if":
            return nir.IF(r=full(1.0), v_threshold=full(p.v_threshold), v_reset=v_reset, metadata=meta)
        r = 1.0 if p.decay_input else p.tau
        return nir.LIF(tau=full(p.tau * dt), r=full(r), v_leak=full(p.v_leak), v_threshold=full(p.v_threshold),
                       v_reset=v_reset, metadata=meta)
    raise UnsupportedModel(f"export --to nir: layer '{lay.name}' ({type(mod).__name__}) over non-spike input has "
                           "no NIR 1.0 form; export this network --to fpga")


def _spikes_into(chain: Chain, i: int) -> bool:
    k = i - 1
    while k >= 0 and chain.layers[k].kind in ("flatten", "maxpool"):
        k -= 1
    return k >= 0 and chain.layers[k].kind == "neuron" or k < 0 and chain.encoding in ("poisson", "latency")


def _spike_maxpool(lay: Layer) -> tuple[nir.NIRNode, nir.NIRNode]:
    k, s = _pair(lay.module.kernel_size), _pair(lay.module.stride or lay.module.kernel_size)
    if tuple(_pair(lay.module.padding)) != (0, 0):
        raise UnsupportedModel(f"export --to nir: maxpool '{lay.name}' with padding has no NIR form")
    meta = {"spikesweep": "max-pool over spikes = any spike in the window"}
    return (nir.SumPool2d(kernel_size=k, stride=s, padding=np.zeros(2, np.int64), metadata=meta),
            nir.Threshold(threshold=np.full(lay.out_shape, 0.5, np.float32), metadata=meta))


def to_nir(chain: Chain, dt: float = DEFAULT_DT) -> nir.NIRGraph:
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type=np.array(chain.layers[0].in_shape))}
    names = ["input"]
    for i, lay in enumerate(chain.layers):
        name = f"{i}_{lay.kind}"
        if lay.kind == "maxpool" and _spikes_into(chain, i):
            nodes[name + "_sum"], nodes[name + "_any"] = _spike_maxpool(lay)
            names += [name + "_sum", name + "_any"]
            continue
        nodes[name] = _node(lay, dt)
        names.append(name)
    nodes["output"] = nir.Output(output_type=np.array(chain.layers[-1].out_shape))
    names.append("output")
    metadata = {"producer": "spikesweep", "dt": dt, "time_steps": chain.time_steps, "encoding": chain.encoding,
                "batchnorm": "folded", "layers": [lay.name for lay in chain.layers]}
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])), metadata=metadata)


def write_nir(chain: Chain, path: Path, dt: float = DEFAULT_DT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(path, to_nir(chain, dt))
    return path
