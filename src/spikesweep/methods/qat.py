"""Quantisation-aware fine-tuning (`method=qat`): every conv/linear weight is fake-quantised in the forward
pass to what `spikesweep export --to fpga --bits W` writes (W-bit signed integers times one power of two per
layer, from the layer's largest weight), and the gradient passes straight through to the float weights.

The quantised tensor replaces the parameter only for the duration of the layer's forward (hooks), so the
state dict, the optimizer and checkpoints see the float weights; test metrics are those of the quantised
weights. A layer followed by a BatchNorm is quantised as the export sees it, folded: q(w * s) / s with s
the norm's gamma / sqrt(running_var + eps), so that after the norm (in eval) the folded weight is on the
grid. Thresholds, biases and the input are quantised by the export at finer scales and stay float here.
"""

import math
from typing import Any

import torch
from torch import nn

from spikesweep.methods import METHODS

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _following_norms(model: nn.Module) -> dict[nn.Module, nn.Module]:
    """layer -> the BatchNorm right after it in one nn.Sequential (the pairs engine.bn_fold folds)."""
    pairs = {}
    for parent in model.modules():
        if isinstance(parent, nn.Sequential):
            kids = list(parent)
            for first, second in zip(kids, kids[1:]):
                if isinstance(first, _LAYERS) and isinstance(second, _NORMS) and second.track_running_stats:
                    pairs[first] = second
    return pairs


def pow2_fake_quant(w: torch.Tensor, bits: int) -> torch.Tensor:
    """w rounded to the export's grid (value = int * 2^-frac, |int| <= 2^(bits-1) - 1), straight-through."""
    max_abs = float(w.detach().abs().max())
    frac = bits - 1 - math.ceil(math.log2(max_abs)) if max_abs > 0 else bits - 1
    lim = 2 ** (bits - 1) - 1
    q = torch.clamp(torch.round(w.detach() * 2.0**frac), -lim, lim) * 2.0**-frac
    return w + (q - w).detach()


class QuantisationAware:
    def __init__(self, bits: int) -> None:
        if not 2 <= int(bits) <= 24:
            raise ValueError(f"method=qat: bits must be 2..24, got {bits}")
        self.bits = int(bits)
        self.layers = 0

    def attach(self, model: nn.Module, device: torch.device) -> None:
        self.norms = _following_norms(model)
        for mod in model.modules():
            if isinstance(mod, _LAYERS):
                mod.register_forward_pre_hook(self._quantise)
                mod.register_forward_hook(self._restore)
                self.layers += 1
        if not self.layers:
            raise ValueError("method=qat: the model has no conv or linear layer to quantise")

    def _quantise(self, mod: nn.Module, args: Any) -> None:
        weight = mod._parameters.pop("weight")
        mod.__dict__["_qat_float"] = weight  # not setattr: a Parameter would be registered
        norm = self.norms.get(mod)
        if norm is None:
            quantised = pow2_fake_quant(weight, self.bits)
        else:
            scale = (norm.weight / torch.sqrt(norm.running_var + norm.eps)).detach()
            scale = scale.reshape(-1, *([1] * (weight.dim() - 1)))
            quantised = pow2_fake_quant(weight * scale, self.bits) / scale
        mod.__dict__["weight"] = quantised  # found before _parameters by getattr

    def _restore(self, mod: nn.Module, args: Any, out: Any) -> None:
        del mod.__dict__["weight"]
        mod._parameters["weight"] = mod.__dict__.pop("_qat_float")

    def loss(self, x: torch.Tensor, logits: torch.Tensor, loss: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return loss


@METHODS.register("qat")
def build_qat(kind: str, model_cfg: Any, neuron: Any, meta: Any, bits: int = 4) -> QuantisationAware:
    return QuantisationAware(bits)
