"""BatchNorm folding for evaluation: in eval mode a BatchNorm after a conv or linear layer is a fixed affine
map, so it can be merged into that layer's weights and bias, which saves one pass over every activation.

spikingjelly's `fuse_conv_bn_eval_modules` finds the pairs with torch.fx, which cannot trace our models
(their forwards read tensor shapes); the pairs here are found structurally instead: a conv/linear directly
followed by a BatchNorm inside one nn.Sequential (spikingjelly's SeqToANNContainer is one), where the
layer's output can only flow into that BatchNorm. Layers and norms of other types are left as they are.
"""

import copy

from spikingjelly.activation_based import layer
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

# Exact types: a subclass may change what forward computes (e.g. a norm over other axes).
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, layer.Conv1d, layer.Conv2d, layer.Conv3d)
_LINEARS = (nn.Linear, layer.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, layer.BatchNorm1d, layer.BatchNorm2d, layer.BatchNorm3d)


def _fused(first: nn.Module, norm: nn.Module) -> nn.Module | None:
    if type(norm) not in _NORMS or not norm.track_running_stats:  # without running stats eval uses batch stats
        return None
    if type(first) in _CONVS:
        return fuse_conv_bn_eval(first, norm)
    if type(first) in _LINEARS and type(norm) in (nn.BatchNorm1d, layer.BatchNorm1d):
        if first.out_features == norm.num_features:
            return fuse_linear_bn_eval(first, norm)
    return None


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """An eval-mode copy of `model` with every foldable BatchNorm merged into the layer before it (the norm
    becomes an Identity), and how many were folded. The model itself, its weights and buffers are untouched."""
    folded = copy.deepcopy(model).eval()
    count = 0
    for parent in folded.modules():
        if not isinstance(parent, nn.Sequential):
            continue
        names = list(parent._modules)
        for first, second in zip(names, names[1:]):
            merged = _fused(parent._modules[first], parent._modules[second])
            if merged is not None:
                parent._modules[first], parent._modules[second] = merged, nn.Identity()
                count += 1
    return folded, count
