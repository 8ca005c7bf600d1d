"""Synaptic operations and energy by forward hooks, in the Spikformer family's convention.

Every Conv/Linear layer is classified by what it reads:
- spikes (the output of a spiking neuron, possibly max-pooled, or any all-{0,1} tensor): each incoming
  spike event costs one accumulate per synapse, so SOPs = MACs x events / inputs, and E = E_AC x SOPs;
- real values (the raw image into the stem, membrane-like tensors): E = E_MAC x MACs.
With the papers' models only the first layer reads real values, which gives the papers' formula
E = E_MAC x FLOPs(first layer) + E_AC x SOPs(rest), with FLOPs counted as multiply-accumulates.

Integer spikes (MultiSpike: values k/Norm) count k events per element, so an integer spike costs what its
k binary spikes would. A neuron tells the value of one event through an optional `spike_unit` attribute
(a float, or a tensor broadcastable to its output, e.g. 1/Norm); without it one event is worth 1, which
is exact for binary neurons. Counts are what the model runs: a static image repeated T times pays its
first layer T times. Attention's spike-matrix products are not counted (conv/linear only).

The same hooks also give NeuroBench's hardware metrics (Yik et al. 2025, the `neurobench` package's
definitions, which tests/models/test_energy.py checks against the package on one model and batch):
- footprint: bytes of parameters and buffers of the network evaluated;
- connection sparsity: the fraction of zero weights in Linear and Conv1d/2d/3d layers (biases left out);
- activation sparsity: the fraction of zero outputs of the spiking neurons, over every time step and sample
  (ANN activations such as ReLU are not hooked);
- synaptic operations per sample, biases left out, in Linear and Conv1d/2d/3d layers: dense = every
  weight-input pair a layer multiplies, zero padding excluded (so below `dense_flops`, which counts padded
  positions too); effective = the pairs whose input and weight are both non-zero, counted as ACs when the
  layer's input is all in {-1, 0, 1} (binary spikes) and as MACs otherwise. NeuroBench's rule, so integer
  spikes (MultiSpike) count as MACs here, once per non-zero input, while `sops` counts k events for them.
"""

from collections import defaultdict
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from spikesweep.metrics.neuron_outputs import NeuronOutputs
from spikesweep.spiking import is_spiking_neuron

E_MAC_PJ = 4.6  # 45 nm, 32-bit float multiply-accumulate (Horowitz 2014), as every Spikformer-family paper
E_AC_PJ = 0.9  # 45 nm, 32-bit float accumulate


#: The layers NeuroBench counts operations and connection sparsity of (its STATELESS_LAYERS).
NEUROBENCH_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def fan_out(module: nn.Module, item_shape: tuple[int, ...]) -> tuple[torch.Tensor, float]:
    """For one sample-step of input (`[in_features]` or `[C, *spatial]`): how many non-zero weights read each
    input element, and how many weight-input pairs the layer multiplies in all (zero padding excluded).

    This is what NeuroBench gets by running a copy of the layer with binarised weights (and all-ones inputs for
    the dense count), computed once per layer and input shape: the effective operations of a batch are then
    the non-zero inputs weighted by their fan-out, one pass over the input. The fan-out is the convolution's
    input gradient of an all-ones output gradient, taken with the backward operator itself rather than
    autograd, so that it also runs inside inference mode and inside a compiled evaluation.
    """
    weight = module.weight.detach()
    if isinstance(module, nn.Linear):
        return (weight != 0).sum(0).to(torch.float64), float(weight.numel())
    with torch.autocast(weight.device.type, enabled=False):
        nonzero = (weight != 0).to(torch.float64)
        ones = torch.ones((1, *item_shape), dtype=torch.float64, device=weight.device)
        dense_out = module._conv_forward(ones, torch.ones_like(nonzero), None)
        # The padding as F.pad takes it, for both integer and "same"/"valid" padding.
        pads = list(module._reversed_padding_repeated_twice)
        padded_shape = list(ones.shape)
        for dim in range(2, ones.dim()):
            before = 2 * (ones.dim() - 1 - dim)
            padded_shape[dim] += pads[before] + pads[before + 1]
        spatial = len(item_shape) - 1
        grad_padded = torch.ops.aten.convolution_backward(
            torch.ones_like(dense_out), ones.new_empty(1).expand(padded_shape),
            nonzero, None, list(module.stride), [0] * spatial, list(module.dilation), False, [0] * spatial,
            module.groups, (True, False, False))[0]
        # Back from padded positions to the inputs they copy (none for zero padding, several for reflect etc.).
        index = torch.arange(ones.numel(), dtype=torch.float64, device=weight.device).reshape(ones.shape)
        mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
        source = F.pad(index, pads, mode=mode, value=-1.0) if mode == "constant" else F.pad(index, pads, mode=mode)
        keep = source >= 0
        fan = torch.zeros(ones.numel(), dtype=torch.float64, device=weight.device)
        fan.index_add_(0, source[keep].long(), grad_padded[keep])
    return fan.reshape(item_shape), float(dense_out.sum())


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulates of one call of a conv or linear layer (all samples and time steps in `output`)."""
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    assert isinstance(module, nn.modules.conv._ConvNd)
    per_output = module.in_channels // module.groups
    for k in module.kernel_size:
        per_output *= k
    return output.numel() * per_output


@dataclass
class LayerOps:
    macs: float = 0.0  # multiply-accumulates the layer's weights see (dense count)
    sops: float = 0.0  # synaptic operations when the input is spikes
    spike_input: bool = True  # False once any call read real values
    inputs: float = 0.0
    events: float = 0.0
    dense_ops: float = 0.0  # NeuroBench's dense count (padding excluded)
    effective_macs: float = 0.0  # non-zero input x non-zero weight pairs, input not spikes
    effective_acs: float = 0.0  # the same, input spikes in {-1, 0, 1}


@dataclass
class EnergyReport:
    """Totals per sample; per-layer dictionaries keyed by module name."""

    samples: int
    mac_flops: float  # MACs of layers reading real values, per sample
    sops: float  # synaptic operations of layers reading spikes, per sample
    dense_flops: float  # all MACs as if the network were an ANN, per sample
    firing_rates: dict[str, float] = field(default_factory=dict)
    layer_sops: dict[str, float] = field(default_factory=dict)
    # NeuroBench's metrics (module docstring); the operations per sample
    footprint_bytes: int = 0
    connection_sparsity: float | None = None  # None without Linear/Conv layers
    activation_sparsity: float | None = None  # None without spiking neurons
    dense_macs: float = 0.0
    effective_macs: float = 0.0
    effective_acs: float = 0.0

    def neurobench(self) -> dict[str, float]:
        """NeuroBench's static and workload metrics, under the keys a run logs them by."""
        out = {"footprint_bytes": self.footprint_bytes, "dense_macs": self.dense_macs,
               "effective_macs": self.effective_macs, "effective_acs": self.effective_acs}
        if self.connection_sparsity is not None:
            out["connection_sparsity"] = self.connection_sparsity
        if self.activation_sparsity is not None:
            out["activation_sparsity"] = self.activation_sparsity
        return out

    @property
    def energy_mj(self) -> float:
        return (E_MAC_PJ * self.mac_flops + E_AC_PJ * self.sops) * 1e-9

    @property
    def firing_rate(self) -> float | None:
        rates = list(self.firing_rates.values())
        return sum(rates) / len(rates) if rates else None

    def summary(self) -> dict[str, float]:
        """The scalars a run logs next to its accuracy."""
        out = {"energy_mj": self.energy_mj, "sops_g": self.sops / 1e9, "mac_flops_g": self.mac_flops / 1e9}
        if self.firing_rate is not None:
            out["firing_rate_layer_mean"] = self.firing_rate
        return out


class EnergyMonitor:
    """Hooks every spiking neuron (firing rate, event unit) and every conv/linear layer (MACs, SOPs).

    Use around evaluation forwards only: the hooks read every activation. `remove()` detaches them.
    """

    def __init__(self, model: nn.Module) -> None:
        self.samples = 0
        self.ops: dict[str, LayerOps] = defaultdict(LayerOps)
        self.spike_sums: dict[str, float] = defaultdict(float)
        self.spike_counts: dict[str, int] = defaultdict(int)
        self.nonzero: dict[str, int] = defaultdict(int)  # neuron outputs that are not zero
        self._fan_outs: dict[tuple[str, tuple[int, ...]], tuple[torch.Tensor, float]] = {}
        self.footprint_bytes = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
        weights = [m.weight for m in model.modules() if isinstance(m, NEUROBENCH_LAYERS)]
        total = sum(w.numel() for w in weights)
        self.connection_sparsity = sum(int((w == 0).sum()) for w in weights) / total if total else None
        self._events: NeuronOutputs[float] = NeuronOutputs()  # each neuron output's event count
        self.handles = [model.register_forward_pre_hook(self._count_samples)]
        for name, m in model.named_modules():
            if is_spiking_neuron(m):
                self.handles.append(m.register_forward_hook(self._neuron_hook(name)))
            elif isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
                self.handles.append(m.register_forward_hook(self._synapse_hook(name)))

    def _count_samples(self, _model: nn.Module, inputs: tuple) -> None:
        self.samples += inputs[0].shape[0]  # models take [B, ...] and fold time inside
        self._events.clear()

    def _neuron_hook(self, name: str):
        def record(module: nn.Module, _inputs: tuple, out: torch.Tensor) -> None:
            out = out.detach()
            self.spike_sums[name] += float(out.float().sum())
            self.spike_counts[name] += out.numel()
            self.nonzero[name] += int(torch.count_nonzero(out))
            unit = getattr(module, "spike_unit", 1.0)
            self._events.note(out, float((out.float() / unit).sum()))

        return record

    def _synapse_hook(self, name: str):
        def record(m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            x = inputs[0].detach()
            ops = self.ops[name]
            macs = layer_macs(m, out)
            ops.macs += macs
            if isinstance(m, NEUROBENCH_LAYERS):
                self._count_neurobench(name, m, x, ops)
            events = self._events.get(x)
            if events is None and bool(((x == 0) | (x == 1)).all()):
                events = float(x.float().sum())  # binary spikes that went through a max-pool
            if events is None:
                ops.spike_input = False
                return
            ops.inputs += x.numel()
            ops.events += events
            ops.sops += macs * events / x.numel()

        return record

    def _count_neurobench(self, name: str, m: nn.Module, x: torch.Tensor, ops: LayerOps) -> None:
        item = tuple(x.shape[x.dim() - (m.weight.dim() - 1):])  # one sample-step; leading dims fold B (and T)
        if (name, item) not in self._fan_outs:
            self._fan_outs[(name, item)] = fan_out(m, item)
        fan, dense = self._fan_outs[(name, item)]
        rows = x.numel() // fan.numel()
        ops.dense_ops += rows * dense
        hits = (x != 0).reshape(rows, *item).sum(0)  # per input element, how many rows it is non-zero in
        effective = float((hits.to(torch.float64) * fan).sum())
        if bool(((x == 0) | (x.abs() == 1)).all()):
            ops.effective_acs += effective
        else:
            ops.effective_macs += effective

    def report(self) -> EnergyReport:
        n = max(self.samples, 1)
        mac = sum(o.macs for o in self.ops.values() if not o.spike_input)
        sops = {k: o.sops / n for k, o in self.ops.items() if o.spike_input}
        rates = {k: self.spike_sums[k] / self.spike_counts[k] for k in self.spike_sums if self.spike_counts[k]}
        counted = sum(self.spike_counts.values())
        return EnergyReport(
            samples=self.samples,
            mac_flops=mac / n,
            sops=sum(sops.values()),
            dense_flops=sum(o.macs for o in self.ops.values()) / n,
            firing_rates=rates,
            layer_sops=sops,
            footprint_bytes=self.footprint_bytes,
            connection_sparsity=self.connection_sparsity,
            activation_sparsity=1 - sum(self.nonzero.values()) / counted if counted else None,
            dense_macs=sum(o.dense_ops for o in self.ops.values()) / n,
            effective_macs=sum(o.effective_macs for o in self.ops.values()) / n,
            effective_acs=sum(o.effective_acs for o in self.ops.values()) / n,
        )

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def profile(model: nn.Module, input_shape: tuple[int, ...], time_steps: int, temporal: bool, batch: int = 2) -> dict[str, float]:
    """Parameters, FLOPs, SOPs, energy and training memory per sample of a freshly built model.

    One forward in train mode (BatchNorm on batch statistics, so the firing is that of a first training
    step rather than of untrained running statistics) on uniform random input; memory per sample is the
    bytes autograd saves for backward (the activation memory of a training step), divided by the batch.
    """
    from spikesweep.spiking import reset_states

    shape = (batch, time_steps, *input_shape) if temporal else (batch, *input_shape)
    x = torch.rand(shape)
    saved: dict[int, int] = {}

    def keep(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    monitor = EnergyMonitor(model)
    model.train()
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        model(x)
    reset_states(model)
    monitor.remove()
    report = monitor.report()
    return {
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "dense_gflops": report.dense_flops / 1e9,
        "mac_gflops": report.mac_flops / 1e9,
        "sops_g": report.sops / 1e9,
        "energy_mj": report.energy_mj,
        "firing_rate": report.firing_rate or 0.0,
        "activation_mib_per_sample": sum(saved.values()) / batch / 2**20,
        "param_mib": sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20,
    }
