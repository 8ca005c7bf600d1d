"""Integer-to-binary spike check: an integer spike k (value k x unit) equals k binary spikes over sub-steps.

SDT v3's MultiSpike neuron emits k/Norm with k in 0..D. On neuromorphic hardware each integer is sent as
k binary spikes over D sub-steps, and a synaptic layer accumulates them: W (k u) = sum_j W (b_j u) with
b_j = [k >= j], j = 1..D. `BinaryExpansion` recomputes every conv/linear layer that reads a neuron's
output this way (only binary tensors ever reach the weights), so comparing logits with and without it
shows that the trained network is spike-driven as claimed. Neurons declare the value of one event with
`spike_unit` (a float or a tensor broadcastable to their output; 1 when absent). The attention's
products of two spike tensors are left integer (expanding them would need D x D sub-steps).
"""

from dataclasses import dataclass

import torch
from torch import nn

from spikesweep.metrics.neuron_outputs import NeuronOutputs
from spikesweep.spiking import is_spiking_neuron, reset_states


class BinaryExpansion:
    """While attached, conv/linear layers fed by spiking neurons accumulate binary sub-steps.

    Their `forward` is replaced (not post-corrected by a hook), so the weights never see an integer.
    """

    def __init__(self, model: nn.Module) -> None:
        self._units: NeuronOutputs[torch.Tensor | float] = NeuronOutputs()
        self.expanded_layers: set[str] = set()
        self.max_substeps = 0
        self._patched: list[nn.Module] = []
        self.handles = [model.register_forward_pre_hook(lambda *_: self._units.clear())]
        for name, m in model.named_modules():
            if is_spiking_neuron(m):
                self.handles.append(m.register_forward_hook(self._neuron_hook))
            elif isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
                m.forward = self._expanded_forward(name, m)
                self._patched.append(m)

    def _neuron_hook(self, module: nn.Module, _inputs: tuple, out: torch.Tensor) -> None:
        self._units.note(out, getattr(module, "spike_unit", 1.0))

    def _expanded_forward(self, name: str, layer: nn.Module):
        original = type(layer).forward.__get__(layer)

        def forward(x: torch.Tensor) -> torch.Tensor:
            unit = self._units.get(x)
            if unit is None:
                return original(x)  # real-valued input (the stem): nothing to expand
            k = torch.round(x / unit)
            if not torch.allclose(k * unit, x, atol=1e-6, rtol=1e-5):
                raise ValueError(f"layer '{name}' reads non-integer spikes: its neuron's spike_unit is wrong")
            steps = int(k.max()) if k.numel() else 0
            self.max_substeps = max(self.max_substeps, steps)
            self.expanded_layers.add(name)
            total = _without_bias(layer, torch.zeros_like(x))
            for j in range(1, steps + 1):
                total = total + _without_bias(layer, (k >= j).to(x.dtype) * unit)
            if getattr(layer, "bias", None) is not None:
                channel_dim = 1 if isinstance(layer, nn.modules.conv._ConvNd) else total.dim() - 1
                shape = [1] * total.dim()
                shape[channel_dim] = -1
                total = total + layer.bias.reshape(shape)
            return total

        return forward

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        for layer in self._patched:
            del layer.forward


def _without_bias(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(layer, nn.Linear):
        return nn.functional.linear(x, layer.weight)
    return layer._conv_forward(x, layer.weight, None)


@dataclass
class ExpansionCheck:
    max_abs_diff: float
    max_abs_logit: float
    expanded_layers: int
    max_substeps: int
    atol: float
    rtol: float

    @property
    def match(self) -> bool:
        return self.max_abs_diff <= self.atol + self.rtol * self.max_abs_logit


def verify_expansion(
    model: nn.Module, batches: list[torch.Tensor], atol: float = 1e-4, rtol: float = 1e-4
) -> ExpansionCheck:
    """Logits with integer spikes vs. with every integer expanded into binary sub-steps, in eval mode.

    The tolerance covers float32 summation order only (the two computations are equal in exact
    arithmetic): |diff| <= atol + rtol x max |logit|.
    """
    model.eval()
    diff, peak = 0.0, 0.0
    expansion = None
    with torch.no_grad():
        for x in batches:
            reference = model(x)
            reset_states(model)
            expansion = BinaryExpansion(model)
            try:
                expanded = model(x)
            finally:
                expansion.remove()
                reset_states(model)
            diff = max(diff, float((reference - expanded).abs().max()))
            peak = max(peak, float(reference.abs().max()))
    if expansion is None:
        raise ValueError("verify-spikes needs at least one batch")
    return ExpansionCheck(diff, peak, len(expansion.expanded_layers), expansion.max_substeps, atol, rtol)
