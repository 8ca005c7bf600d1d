"""Upstream checkpoints (Spikingformer, SDT v3; GAC MS-ResNet and the survey's cf10 net) as our state dicts.

Our modules are organised differently from the upstream ones (time-step containers, one Sequential per
residual branch), so the parameter names differ while the tensors are the same. Each format is a table of
regular expressions from an upstream key to ours; `map_state` applies it and refuses anything that does not
fit exactly (an unmapped key, a key our model lacks, a shape), so a checkpoint either loads whole or not at
all. The tables are documented in docs/models.md.
"""

import argparse
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from spikingjelly.activation_based import base
from torch import nn

FORMATS = ("spikingformer", "sdtv3")
# Where upstream training scripts keep the weights in their checkpoint dicts, most specific first.
WEIGHT_KEYS = ("model", "state_dict")


class UpstreamCheckpointError(ValueError):
    """A checkpoint that cannot become our model's weights; the message is one line naming the key."""


@dataclass(frozen=True)
class Rule:
    pattern: str  # an upstream key, as a regular expression matched in full
    target: str | None  # our key (with \1-style groups); None: dropped, upstream's forward never reads it
    reshape: bool = False  # a 1x1 conv stored as Conv1d on one side and Conv2d on the other


def read_upstream(path: Path) -> dict[str, torch.Tensor]:
    """The weights of an upstream checkpoint file, with DataParallel's 'module.' prefix removed.

    Loaded with weights_only=True: tensors and plain containers only, never code. Upstream training
    scripts also store their argparse.Namespace of options beside the weights, which is data, so it is
    allowed; anything else that is not plain data is refused.
    """
    if not path.is_file():
        raise UpstreamCheckpointError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError or EOFError for bad files
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UpstreamCheckpointError(f"cannot load checkpoint {path}: {reason}") from err
    if not isinstance(raw, Mapping):
        raise UpstreamCheckpointError(f"{path} holds a {type(raw).__name__}, not a dict of weights")
    weights = next((raw[k] for k in WEIGHT_KEYS if isinstance(raw.get(k), Mapping)), raw)
    tensors = {k: v for k, v in weights.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise UpstreamCheckpointError(
            f"{path} has no weights: expected a state dict, or a dict with one under {' or '.join(WEIGHT_KEYS)} "
            f"(top-level keys: {', '.join(map(str, list(raw)[:6]))})"
        )
    return {k.removeprefix("module."): v for k, v in tensors.items()}


def _layer_index(container: nn.Module, kind: type[nn.Module]) -> int:
    return next(i for i, m in enumerate(container) if isinstance(m, kind))


def _conv_bn(conv: str, bn: str, ours: str, reshape: bool = False) -> list[Rule]:
    """An upstream conv and its BatchNorm (two attributes), which we hold as [conv, BN] in one Sequential."""
    return [Rule(rf"{conv}\.(?P<p>weight|bias)", rf"{ours}.0.\g<p>", reshape), Rule(rf"{bn}\.(?P<p>\w+)", rf"{ours}.1.\g<p>")]


def spikingformer_rules(model: nn.Module) -> list[Rule]:
    """zhouchenlin2096/Spikingformer `vit_snn`: CIFAR names its tokenizer convs block0..block4, the
    ImageNet and DVS models proj, proj1..proj4. Where a tokenizer stage's conv and BN sit in our Sequential
    depends on model.pool and model.downsample, so it is read from the model."""
    rules = _conv_bn(r"patch_embed\.(?:block0|proj)_conv", r"patch_embed\.(?:block0|proj)_bn", "tokenizer.stem")
    for i, stage in enumerate(model.tokenizer.stages, start=1):
        conv, bn = _layer_index(stage[1], nn.Conv2d), _layer_index(stage[1], nn.BatchNorm2d)
        rules += [
            Rule(rf"patch_embed\.(?:block{i}|proj{i})_conv\.weight", f"tokenizer.stages.{i - 1}.1.{conv}.weight"),
            Rule(rf"patch_embed\.(?:block{i}|proj{i})_bn\.(\w+)", rf"tokenizer.stages.{i - 1}.1.{bn}.\1"),
        ]
    block = r"block\.(\d+)"
    return [
        *rules,
        *_conv_bn(rf"{block}\.attn\.([qkv])_conv", rf"{block}\.attn\.([qkv])_bn", r"blocks.\1.attn.\2.0"),
        *_conv_bn(rf"{block}\.attn\.proj_conv", rf"{block}\.attn\.proj_bn", r"blocks.\1.attn.proj"),
        # upstream's MLP convs are Conv2d 1x1 on [T*B, C, H, W], ours Conv1d on tokens
        *_conv_bn(rf"{block}\.mlp\.mlp1_conv", rf"{block}\.mlp\.mlp1_bn", r"blocks.\1.mlp.net.1", reshape=True),
        *_conv_bn(rf"{block}\.mlp\.mlp2_conv", rf"{block}\.mlp\.mlp2_bn", r"blocks.\1.mlp.net.3", reshape=True),
        Rule(rf"{block}\.norm[12]\.(weight|bias)", None),  # LayerNorms upstream builds but never calls
        Rule(r"head\.(weight|bias)", r"head.\1"),
    ]


def _sdtv3_block_rules(upstream: str, ours: str, sepconv: str, transformer: bool) -> list[Rule]:
    """One upstream block (MS_ConvBlock_spike_SepConv or MS_Block_Spike_SepConv) onto ours."""
    rules = [  # upstream's SepConv_Spike holds each conv and BN as a Sequential already
        Rule(rf"{upstream}\.{sepconv}\.{name}\.([01])\.(\w+)", rf"{ours}.sepconv.net.{i}.\1.\2")
        for name, i in (("pwconv1", 1), ("dwconv", 3), ("pwconv2", 5))
    ]
    if not transformer:
        return [*rules, *_conv_bn(rf"{upstream}\.conv1", rf"{upstream}\.bn1", f"{ours}.mlp.1"),
                *_conv_bn(rf"{upstream}\.conv2", rf"{upstream}\.bn2", f"{ours}.mlp.3")]
    return [
        *rules,
        Rule(rf"{upstream}\.attn\.([qkv])_conv\.([01])\.(\w+)", rf"{ours}.attn.\1.0.\2.\3"),
        Rule(rf"{upstream}\.attn\.proj_conv\.([01])\.(\w+)", rf"{ours}.attn.proj.\1.\2"),
        # upstream's MLP convs are Conv1d on [B, C, N], ours Conv2d 1x1
        *_conv_bn(rf"{upstream}\.mlp\.fc1_conv", rf"{upstream}\.mlp\.fc1_bn", f"{ours}.mlp.net.1", reshape=True),
        *_conv_bn(rf"{upstream}\.mlp\.fc2_conv", rf"{upstream}\.mlp\.fc2_bn", f"{ours}.mlp.net.3", reshape=True),
    ]


def sdtv3_rules(model: nn.Module) -> list[Rule]:
    """BICLab/Spike-Driven-Transformer-V3 `Spiking_vit_MetaFormer_Spike_SepConv` (Model_Base). Upstream's
    layout is fixed: one ConvBlock in each of ConvBlock1_1, 1_2, 2_1, 2_2, then 6 + 2 transformer blocks,
    which is our default model.depths=[1, 2, 6, 2]. A position embedding of ours (none upstream) shifts the
    stage-3 blocks by one; its own parameters then have no upstream counterpart."""
    from spikesweep.models.sdtv3 import PositionEmbedding

    first = 2 if isinstance(model.stage3[1], PositionEmbedding) else 1
    stages = {"downsample1_1": "stage1.0", "downsample1_2": "stage1.2", "downsample2": "stage2.0",
              "downsample3": "stage3.0", "downsample4": "stage4.0"}
    rules = [r for up, ours in stages.items() for r in _conv_bn(rf"{up}\.encode_conv", rf"{up}\.encode_bn", f"{ours}.conv")]
    for upstream, ours in (("ConvBlock1_1.0", "stage1.1"), ("ConvBlock1_2.0", "stage1.3"),
                           ("ConvBlock2_1.0", "stage2.1"), ("ConvBlock2_2.0", "stage2.2")):
        rules += _sdtv3_block_rules(re.escape(upstream), ours, "Conv", transformer=False)
    for stage, blocks in ((3, 6), (4, 2)):
        offset = first if stage == 3 else 1
        for n in range(blocks):
            rules += _sdtv3_block_rules(rf"block{stage}\.{n}", f"stage{stage}.{n + offset}", "conv", transformer=True)
    return rules + [Rule(r"head\.(weight|bias)", r"head.\1")]


def msresnet_rules(model: nn.Module) -> list[Rule]:
    """bollossom/GAC `CODE/CIFAR/models/MS_ResNet.py` (ResNet with BasicBlock_MS and GAC). Upstream registers
    each conv and BN twice (as conv1/bn1 and inside the tdLayer conv1_s) and each BN's inner BatchNorm2d
    twice (bn and seqbn.module): the copies are the same tensors, so only the first name is read. Its blocks
    are numbered within a stage (layer1.0, layer2.0, ...), ours across stages."""
    starts = [sum(model.blocks[:i]) for i in range(len(model.blocks))]
    rules = [Rule(r"(?:.+\.)?(?:conv[12]_s|fc1_s)\..+|.+\.seqbn\..+", None),  # the aliases
             Rule(r"conv1\.weight", "stem.0.weight"), Rule(r"bn1\.bn\.(\w+)", r"stem.1.\1"),
             Rule(r"encoding\.TA\.sharedMLP\.([02])\.weight", r"gac.ta.mlp.\1.weight"),
             Rule(r"encoding\.SCA\.sharedMLP\.0\.weight", "gac.sca.body.1.weight"),
             Rule(r"encoding\.SCA\.sharedMLP\.2\.weight", "gac.sca.body.4.weight"),
             Rule(r"fc1\.(weight|bias)", r"fc.\1")]
    for stage, start in enumerate(starts, start=1):
        for n in range(model.blocks[stage - 1]):
            up, ours = rf"layer{stage}\.{n}", f"stages.{start + n}"
            rules += [Rule(rf"{up}\.conv([12])\.weight", rf"{ours}.conv\1.0.weight"),
                      Rule(rf"{up}\.bn([12])\.bn\.(\w+)", rf"{ours}.conv\1.1.\2"),
                      Rule(rf"{up}\.downsample\.layer\.module\.weight", f"{ours}.shortcut.0.weight"),
                      Rule(rf"{up}\.downsample\.bn\.bn\.(\w+)", rf"{ours}.shortcut.1.\1")]
    return rules


def survey_cf10_rules(model: nn.Module) -> list[Rule]:
    """chinese_snn_surrogate_gradient_review `cf10/` CIFAR10Net: the same layer order as ours, our feature
    stack named features, its head classifier without upstream's leading Flatten."""
    return [Rule(r"conv\.(\d+)\.(\w+)", r"features.\1.\2"), Rule(r"fc\.1\.(weight|bias)", r"classifier.0.\1"),
            Rule(r"fc\.3\.(weight|bias)", r"classifier.2.\1")]


RULES: dict[str, Callable[[nn.Module], list[Rule]]] = {
    "spikingformer": spikingformer_rules, "sdtv3": sdtv3_rules, "msresnet": msresnet_rules, "survey_cf10": survey_cf10_rules,
}


def _neuron_buffers(model: nn.Module) -> set[str]:
    """Keys of neuron buffers (e.g. MultiSpike's fixed Norm): set by our neuron config, absent upstream,
    whose neurons keep nothing in their state dicts."""
    keys = set()
    for name, module in model.named_modules():
        if isinstance(module, base.MemoryModule):
            keys |= {f"{name}.{b}" if name else b for b, _ in module.named_buffers(recurse=False)}
    return keys


def _fit_shape(tensor: torch.Tensor, shape: torch.Size, reshape: bool) -> torch.Tensor | None:
    if tensor.shape == shape:
        return tensor
    if reshape and _without_trailing_ones(tensor.shape) == _without_trailing_ones(shape):
        return tensor.reshape(shape)
    return None


def _without_trailing_ones(shape: torch.Size) -> tuple[int, ...]:
    dims = list(shape)
    while dims and dims[-1] == 1:
        dims.pop()
    return tuple(dims)


def map_state(fmt: str, upstream: Mapping[str, torch.Tensor], model: nn.Module, model_name: str) -> dict[str, torch.Tensor]:
    """Our model's complete state dict from an upstream one; one-line UpstreamCheckpointError otherwise."""
    if fmt not in RULES:
        raise UpstreamCheckpointError(f"--from '{fmt}' is unknown; valid: {', '.join(FORMATS)}")
    rules = [(re.compile(r.pattern), r) for r in RULES[fmt](model)]
    own = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    unmapped = []
    for key, tensor in upstream.items():
        rule, match = next(((r, m) for p, r in rules if (m := p.fullmatch(key))), (None, None))
        if rule is None:
            unmapped.append(key)
            continue
        if rule.target is None:
            continue
        target = match.expand(rule.target)
        if target not in own:
            raise UpstreamCheckpointError(
                f"upstream key '{key}' maps to '{target}', which {model_name} does not have: the checkpoint's "
                "depth or layout differs from this model"
            )
        fitted = _fit_shape(tensor, own[target].shape, rule.reshape)
        if fitted is None:
            raise UpstreamCheckpointError(
                f"shape mismatch at '{key}' (ours '{target}'): checkpoint {list(tensor.shape)}, "
                f"{model_name} {list(own[target].shape)}"
            )
        mapped[target] = fitted.to(own[target].dtype)
    if unmapped:
        raise UpstreamCheckpointError(
            f"{len(unmapped)} upstream key(s) do not map onto {model_name} (e.g. '{unmapped[0]}'); "
            f"is this a {fmt} checkpoint?"
        )
    neuron = _neuron_buffers(model)
    missing = [k for k in own if k not in mapped and k not in neuron]
    if missing:
        raise UpstreamCheckpointError(
            f"{len(missing)} key(s) of {model_name} have no counterpart in the checkpoint (e.g. '{missing[0]}'): "
            "the model has layers or learnable neuron parameters upstream does not"
        )
    return {k: mapped.get(k, own[k]) for k in own}


def _spikingformer_size(upstream: Mapping[str, torch.Tensor]) -> str | None:
    blocks = {int(m.group(1)) for k in upstream if (m := re.match(r"block\.(\d+)\.", k))}
    if not blocks or "head.weight" not in upstream:
        return None
    return f"spikingformer_{max(blocks) + 1}_{upstream['head.weight'].shape[1]}"


def _sdtv3_size(upstream: Mapping[str, torch.Tensor]) -> str | None:
    from spikesweep.models.sdtv3 import SIZES

    keys = [f"downsample{s}.encode_conv.weight" for s in ("1_2", "2", "3", "4")]
    if not all(k in upstream for k in keys):
        return None
    widths = tuple(upstream[k].shape[0] for k in keys)
    return next((f"sdtv3_{size}" for size, dims in SIZES.items() if dims == widths), f"sdtv3 with widths {list(widths)}")


# Settings that change a model's logits but no weight's shape, so a checkpoint cannot tell them: the recipe
# for the checkpoint's dataset sets them (Spikingformer: 12 heads on CIFAR10, 8 elsewhere).
UNSEEN = {"spikingformer": "model.heads"}
RECIPE_FOR = {"spikingformer": {"cifar10": "spikingformer_cifar10", "cifar100": "spikingformer_cifar100",
                                "cifar10_dvs": "spikingformer_cifar10_dvs", "dvs128_gesture": "spikingformer_dvs128",
                                "imagenet_subset": "spikingformer_imagenet", "imagenet1k": "spikingformer_imagenet"}}


def require_recipe(fmt: str, overrides: list[str]) -> None:
    """Refuse to guess what the weights do not record: without recipe= (or the key itself), say which."""
    key = UNSEEN.get(fmt)
    given = {o.split("=", 1)[0].lstrip("+~"): o.split("=", 1)[-1] for o in overrides}
    if key is None or "recipe" in given or key in given:
        return
    recipe = RECIPE_FOR[fmt].get(given.get("dataset", ""))
    fix = f"pass recipe={recipe}" if recipe else f"pass {key}=N (no {fmt} recipe for dataset={given.get('dataset')})"
    raise UpstreamCheckpointError(f"a {fmt} checkpoint does not record {key}, which changes the logits: {fix}")


def infer_model_name(fmt: str, upstream: Mapping[str, torch.Tensor]) -> str:
    """Our registered size with the checkpoint's widths and depth, read from its tensors' shapes."""
    from spikesweep.models.registry import model_names

    name = {"spikingformer": _spikingformer_size, "sdtv3": _sdtv3_size}[fmt](upstream)
    if name is None:
        raise UpstreamCheckpointError(f"cannot tell the model size: is this a {fmt} checkpoint? Pass model=NAME")
    if name not in model_names():
        raise UpstreamCheckpointError(f"no registered model fits the checkpoint ({name}); pass model=NAME")
    return name
