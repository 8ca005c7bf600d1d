"""A trained network as the flat chain of layers that hardware and NIR need, or a one-line refusal.

The supported networks (small_cnn, spiking_mlp, the STDBP MNIST nets, survey_cf10) are chains: their
leaf modules, in the order they are registered, are the order data flows through them. That is checked,
not assumed: `extract` runs the chain beside the model and refuses it unless their outputs agree.
BatchNorm is folded into the conv/linear before it (engine.bn_fold); a flatten that a model does in its
forward (`x.flatten(2)` before a head) becomes an explicit Flatten layer.
"""

from dataclasses import dataclass, field
from typing import Any

import torch
from spikingjelly.activation_based import functional, neuron
from torch import nn

from spikesweep.engine.bn_fold import fold_batchnorm
from spikesweep.models.encoding import encode

SUPPORTED = "Conv2d, Linear, AvgPool2d, MaxPool2d, Flatten, BatchNorm (folded), IF, LIF, PLIF"


class UnsupportedModel(ValueError):
    """The network has a layer outside the export's scope; the message names the first one."""


@dataclass
class NeuronParams:
    kind: str  # "if" | "lif" (PLIF is a LIF with its learnt tau)
    v_threshold: float
    v_reset: float | None  # None: soft reset (subtract the threshold)
    tau: float | None = None  # LIF only
    decay_input: bool = True

    @property
    def decay(self) -> float:
        """The fraction of the gap to v_leak closed per step (1/tau); 0 for IF."""
        return 0.0 if self.tau is None else 1.0 / self.tau

    @property
    def v_leak(self) -> float:
        """spikingjelly's LIF leaks towards v_reset, or 0 with soft reset."""
        return 0.0 if self.v_reset is None else self.v_reset


@dataclass
class Layer:
    name: str
    kind: str  # conv | linear | avgpool | maxpool | flatten | neuron
    module: nn.Module | None
    in_shape: tuple[int, ...] = ()  # one sample, one step
    out_shape: tuple[int, ...] = ()
    neuron: NeuronParams | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Chain:
    layers: list[Layer]
    time_steps: int
    encoding: str  # direct | poisson | latency: how a [B, ...] sample becomes the chain's [T, B, ...] input
    temporal: bool

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return encode(x, self.encoding, self.time_steps, self.temporal)

    @torch.no_grad()
    def run(self, x_seq: torch.Tensor, keep: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """[T, B, ...] through the float chain; with keep, every layer's output."""
        outs = []
        for lay in self.layers:
            if lay.kind == "flatten":
                x_seq = x_seq.flatten(2)
            else:
                x_seq = lay.module(x_seq)
            outs.append(x_seq)
        for lay in self.layers:
            if lay.kind == "neuron":
                functional.reset_net(lay.module)
        return outs if keep else x_seq


_NEURONS = (neuron.IFNode, neuron.LIFNode, neuron.ParametricLIFNode)
_SKIP = (nn.Identity, nn.Dropout)


def _neuron_params(mod: nn.Module) -> NeuronParams:
    v_reset = None if mod.v_reset is None else float(mod.v_reset)
    if isinstance(mod, neuron.ParametricLIFNode):
        tau = float(1.0 / mod.w.detach().sigmoid())
        return NeuronParams("lif", float(mod.v_threshold), v_reset, tau, bool(mod.decay_input))
    if isinstance(mod, neuron.LIFNode):
        return NeuronParams("lif", float(mod.v_threshold), v_reset, float(mod.tau), bool(mod.decay_input))
    return NeuronParams("if", float(mod.v_threshold), v_reset)


def _kind(mod: nn.Module) -> str | None:
    if isinstance(mod, _NEURONS):
        return "neuron"
    if isinstance(mod, nn.Conv2d):
        return "conv"
    if isinstance(mod, nn.Linear):
        return "linear"
    if isinstance(mod, nn.AvgPool2d):
        return "avgpool"
    if isinstance(mod, nn.MaxPool2d):
        return "maxpool"
    if isinstance(mod, nn.Flatten):
        return "flatten"
    return None


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers in registration order: supported modules whole (a neuron's surrogate is part of it), plain
    containers opened; any other module (a residual block, an attention, a PSN) is a layer of its own, which
    `extract` then refuses by name."""
    out: list[tuple[str, nn.Module]] = []
    taken: list[str] = []
    for name, mod in model.named_modules():
        if not name or any(name.startswith(t + ".") for t in taken):
            continue
        if isinstance(mod, nn.Sequential | nn.ModuleList):
            continue
        out.append((name, mod))
        taken.append(name)
    return out


def extract(model: nn.Module, meta: Any, sample: torch.Tensor | None = None) -> Chain:
    """The folded chain of `model` (a copy; the model is untouched), or UnsupportedModel naming the first
    layer out of scope. `sample` ([B, ...] inputs) checks that the chain computes what the model does."""
    folded, _ = fold_batchnorm(model)
    layers: list[Layer] = []
    for name, mod in _leaves(folded):
        if isinstance(mod, _SKIP):
            continue
        kind = _kind(mod)
        if kind is None:
            hint = " (a BatchNorm that does not follow a conv/linear cannot be folded)" if "Norm" in type(mod).__name__ else ""
            raise UnsupportedModel(f"export: unsupported layer '{name}' ({type(mod).__name__}){hint}; supported: {SUPPORTED}")
        if kind == "neuron" and getattr(mod, "step_mode", "m") != "m":
            raise UnsupportedModel(f"export: neuron '{name}' is in single-step mode; export needs multi-step neurons")
        layers.append(Layer(name, kind, mod, neuron=_neuron_params(mod) if kind == "neuron" else None))
    if not layers:
        raise UnsupportedModel(f"export: {type(model).__name__} has no layers in scope; supported: {SUPPORTED}")
    chain = Chain(_with_shapes(layers, tuple(meta.input_shape)), int(meta.time_steps),
                  str(getattr(model, "encoding", "direct")), bool(meta.temporal))
    if sample is not None:
        _check_equivalent(model, chain, sample)
    return chain


def _with_shapes(layers: list[Layer], input_shape: tuple[int, ...]) -> list[Layer]:
    """Fill in each layer's shapes by running one zero sample; add the flatten a forward does implicitly."""
    out: list[Layer] = []
    x = torch.zeros(1, 1, *input_shape)
    for lay in layers:
        if lay.kind == "linear" and x.dim() > 3:
            flat = Layer(f"{lay.name}.flatten_in", "flatten", None, tuple(x.shape[2:]))
            x = x.flatten(2)
            flat.out_shape = tuple(x.shape[2:])
            out.append(flat)
        if lay.kind in ("conv", "avgpool", "maxpool") and x.dim() != 5:
            raise UnsupportedModel(f"export: layer '{lay.name}' ({type(lay.module).__name__}) needs [C, H, W] input, "
                                   f"gets {tuple(x.shape[2:])}")
        lay.in_shape = tuple(x.shape[2:])
        with torch.no_grad():
            x = x.flatten(2) if lay.kind == "flatten" else lay.module(x)
        lay.out_shape = tuple(x.shape[2:])
        out.append(lay)
    for lay in out:
        if lay.kind == "neuron":
            functional.reset_net(lay.module)
    return out


def _check_equivalent(model: nn.Module, chain: Chain, sample: torch.Tensor) -> None:
    model.eval()
    functional.reset_net(model)
    with torch.no_grad():
        torch.manual_seed(0)
        want = model(sample)
        functional.reset_net(model)
        torch.manual_seed(0)
        got = chain.run(chain.encode(sample))
    if want.shape != got.shape or not torch.allclose(want, got, atol=1e-4, rtol=1e-4):
        raise UnsupportedModel(f"export: {type(model).__name__} is not a plain chain of its layers (its forward does "
                               "more than run them in order); supported: sequential networks of " + SUPPORTED)
