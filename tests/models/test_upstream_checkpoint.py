"""Upstream checkpoints: parity with the upstream models' logits, and `spikesweep import-ckpt`.

The fixtures were made by running the upstream model code (zhouchenlin2096/Spikingformer `cifar10/model.py`
at 4378623, with spikingjelly 0.0.0.0.14's MultiStepLIFNode on its torch backend in place of cupy;
BICLab/Spike-Driven-Transformer-V3 `SDT_V3/Classification/Model_Base/models.py` at 00fcd1f) in eval mode
at a tiny size with random weights and random BatchNorm statistics (scaled so that every layer spikes),
on a fixed input: {"model": state dict with upstream key names, "input", "logits", "config": the size}.
Spikingformer: CIFAR 32x32, dim 32, depth 2, 4 heads, T=4; its ImageNet model.py and Spikingformer-CML's
(zhouchenlin2096/Spikingformer-CML `cifar10/model.py` at 8e51213) at depth 1. SDT v3: 32x32, widths 8, 8,
16, 16, T=1.

GAC + MS-ResNet18 (msresnet_tiny.pt): bollossom/GAC `CODE/CIFAR/models/{MS_ResNet,GAU,layers}.py` at ed8130a,
msresnet18(num_classes=10) with GAC, T=6 (fixed in upstream's __init__), blocks [3, 3, 2], its width constants
shrunk from 64/128/256/512 to 8/8/16/32 (nothing else changed), 16x16 input; its full state dict, aliases
included. The survey's cf10 CSNN (survey_cf10_tiny.pt): fangwei123456/chinese_snn_surrogate_gradient_review
`cf10/baseline.py` at 2d8a509, CIFAR10Net(channels=4) with spikingjelly 0.0.0.0.14's LIFNode on its torch
backend in place of cupy, T=4, fed as upstream's main() feeds it (the image repeated over T, output T-mean).
"""

import argparse
import re
from pathlib import Path

import pytest
import torch

from spikesweep import cli
from spikesweep.engine import checkpoint as ckpt
from spikesweep.models import build_model
from spikesweep.models.msresnet import MSResNet
from spikesweep.models.sdtv3 import build_sdtv3
from spikesweep.models.spikingformer import build_spikingformer
from spikesweep.models.upstream_checkpoint import RULES, UpstreamCheckpointError, map_state, read_upstream
from tests.conftest import compose
from spikesweep.spiking import build_neuron, build_surrogate
from tests.models.transformer_helpers import lif, meta

FIXTURES = Path(__file__).parent / "fixtures"
# Float rounding differs from upstream's run: our attention multiplies in another order, and the conv and
# matmul kernels sum in an order that depends on the CPU (AVX2 vs AVX-512, Intel vs AMD). SDT v3's integer
# spikes keep every product exact, but its BatchNorm and accumulations are float32 sums like any other:
# a difference of about 1e-7 was seen on an AMD EPYC, so both get float32 accumulation room, far below
# the 1e-3 that a wrong mapping moves the logits by (test_a_wrong_mapping_would_be_caught).
ATOL = {"spikingformer": 1e-5, "sdtv3": 1e-5, "msresnet": 1e-5, "survey_cf10": 1e-5}
# fixture -> (format, our model's settings that reproduce that upstream model)
VARIANTS = {
    "spikingformer": ("spikingformer", {"depth": 2}),  # CIFAR: pools in tokenizer stages 3, 4 (our default)
    "spikingformer_imagenet": ("spikingformer", {"depth": 1, "pool": [True] * 4}),  # proj* names, pools all four
    # Spikingformer-CML's CIFAR model: conv -> BN -> max-pool in stages 2 and 3 (our cml default)
    "spikingformer_cml": ("spikingformer", {"depth": 1, "downsample": "cml"}),
    "sdtv3": ("sdtv3", {}),
    "msresnet": ("msresnet", {}),
    "survey_cf10": ("survey_cf10", {}),
}


def tiny_model(fmt: str, **cfg) -> torch.nn.Module:
    """Our model at the fixtures' size, with the neuron upstream used (LIF tau 2 / MultiSpike D=4)."""
    if fmt == "spikingformer":
        return build_spikingformer(lif(), meta(10, (3, 32, 32), 4), **{"dim": 32, "depth": 2, "heads": 4, **cfg})
    if fmt == "msresnet":  # GAC's CIFAR neuron: u = 0.5 u (1 - s) + x, fires above 1, ZIF (triangle) surrogate
        gac_lif = build_neuron({"name": "gac_lif"}, build_surrogate({"name": "triangle"}))
        return MSResNet(gac_lif, "cifar", (3, 3, 2), (8, 16, 32), 3, 10, 6, False, "gac", stem_channels=8)
    if fmt == "survey_cf10":  # LIF tau 2, hard reset, detached, ATan
        return build_model({"name": "survey_cf10", "channels": 4, "hidden": 64}, lif(), meta(10, (3, 32, 32), 4))
    multispike = build_neuron({"name": "multispike", "D": 4}, build_surrogate({"name": "ste", "D": 4}))
    return build_sdtv3(multispike, meta(10, (3, 32, 32), 1), dims=[8, 8, 16, 16], head_neuron={"norm_value": 1.0}, **cfg)


def fixture(name: str) -> dict:
    return torch.load(FIXTURES / f"{name}_tiny.pt", weights_only=True)


@pytest.mark.parametrize("name", VARIANTS)
def test_imported_weights_reproduce_upstream_logits(name):
    fmt, cfg = VARIANTS[name]
    data = fixture(name)
    model = tiny_model(fmt, **cfg)
    model.load_state_dict(map_state(fmt, data["model"], model, name))
    model.eval()
    with torch.no_grad():
        logits = model(data["input"]).mean(0)  # upstream's head sees the T-mean: linear, so the same
    assert data["logits"].abs().max() > 0.5  # not a degenerate fixture
    torch.testing.assert_close(logits, data["logits"], atol=ATOL[fmt], rtol=0)


def test_a_wrong_mapping_would_be_caught():
    """Swapping q and k of one block (same shapes) changes the logits: the parity test has power."""
    data = fixture("spikingformer")
    state = dict(data["model"])
    state["block.0.attn.q_conv.weight"], state["block.0.attn.k_conv.weight"] = (
        state["block.0.attn.k_conv.weight"], state["block.0.attn.q_conv.weight"])
    model = tiny_model("spikingformer")
    model.load_state_dict(map_state("spikingformer", state, model, "tiny"))
    with torch.no_grad():
        assert not torch.allclose(model.eval()(data["input"]).mean(0), data["logits"], atol=1e-3)


@pytest.mark.parametrize("layout", ["model", "state_dict", "bare"])
def test_reads_both_checkpoint_layouts_and_strips_data_parallel(tmp_path, layout):
    weights = {f"module.{k}": v for k, v in fixture("sdtv3")["model"].items()}
    saved = weights if layout == "bare" else {layout: weights, "epoch": 7, "args": argparse.Namespace(lr=5e-4)}
    torch.save(saved, tmp_path / "ckpt.pth")
    state = read_upstream(tmp_path / "ckpt.pth")
    assert state.keys() == fixture("sdtv3")["model"].keys()


def test_neuron_buffers_come_from_our_config():
    model = tiny_model("sdtv3")
    state = map_state("sdtv3", fixture("sdtv3")["model"], model, "tiny")
    assert state["head_spike.norm_fixed"] == 1.0 and state["stage3.1.attn.q.1.norm_fixed"] == 4.0


def test_model_layers_upstream_lacks_are_refused():
    model = tiny_model("sdtv3", pos_embed="learned")
    with pytest.raises(UpstreamCheckpointError, match=r"1 key\(s\) of tiny have no counterpart.*'stage3.1.table'"):
        map_state("sdtv3", fixture("sdtv3")["model"], model, "tiny")


def test_code_in_a_checkpoint_is_refused(tmp_path):
    torch.save({"model": {"head.weight": torch.zeros(1)}, "path": Path("x")}, tmp_path / "ckpt.pth")
    with pytest.raises(UpstreamCheckpointError, match="cannot load checkpoint .*Weights only load failed"):
        read_upstream(tmp_path / "ckpt.pth")


# --- the CLI, on a full-size model and the real entry point (digits: embedded, no download) ---------------
DIGITS = ["dataset=digits", "model.pool=[false,false,true,false]", "model.heads=8"]  # 8x8 pools once; no recipe


def upstream_state(model: torch.nn.Module, fmt: str = "spikingformer") -> dict[str, torch.Tensor]:
    """`model`'s weights under upstream names: the fixture's key list (which upstream's code produced, the
    same names at every size) sent through the rules, each key given our tensor in upstream's layout."""
    own = model.state_dict()
    rules = [(re.compile(r.pattern), r) for r in RULES[fmt](model)]
    upstream = fixture(fmt)["model"]
    out = {}
    for key in (k for k in upstream if not re.match(r"block\.\d+\.norm", k)):
        rule, match = next((r, m) for p, r in rules if (m := p.fullmatch(key)))
        tensor = own[match.expand(rule.target)]
        out[key] = tensor.reshape(*tensor.shape[:2], *upstream[key].shape[2:]) if rule.reshape else tensor.clone()
    return out


@pytest.fixture(scope="module")
def source_model() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = compose(*DIGITS, "model=spikingformer_2_256")
    model = build_model(cfg.model, lif(), meta(10, (1, 8, 8), 4))
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith(("running_mean", "running_var")):
                t.copy_(torch.rand_like(t) + 0.5)
    return model


def write_upstream(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """As timm's CheckpointSaver writes it (upstream Spikingformer's train.py): DDP prefix, options beside."""
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 409,
                "args": argparse.Namespace(model="Spikingformer")}, path)
    return path


def test_cli_writes_a_checkpoint_the_evaluation_run_loads(tmp_path, source_model, capsys):
    from spikesweep.run import train

    src = write_upstream(tmp_path / "model_best.pth.tar", upstream_state(source_model))
    assert cli.main(["import-ckpt", "--from", "spikingformer", str(src), *DIGITS, "-o", str(tmp_path / "ours.pt")]) == 0
    printed = capsys.readouterr().out
    assert "model=spikingformer_2_256" in printed and "trainer.eval_only=true" in printed  # the size was inferred
    written = ckpt.load(tmp_path / "ours.pt")
    for key, tensor in source_model.state_dict().items():
        assert torch.equal(written["model"][key], tensor), key
    assert written["config"]["model"]["name"] == "spikingformer_2_256" and written["imported"]["from"] == "spikingformer"

    overrides = ["model=spikingformer_2_256", *DIGITS, "trainer.eval_only=true", f"ckpt={tmp_path / 'ours.pt'}",
                 "logger=none", "dataset.test_fraction=0.05"]
    summary = train(compose(*overrides), tmp_path / "run", overrides)
    assert summary["status"] == "completed" and summary["eval_only"] and 0 <= summary["final"]["test_top1"] <= 100


@pytest.mark.parametrize("name,written", [("checkpoint-199.pth", "checkpoint-199"), ("model_best.pth.tar", "model_best"),
                                          ("sf_4_384.v1.ckpt", "sf_4_384.v1")])
def test_default_output_sits_beside_the_input(tmp_path, source_model, name, written):
    src = write_upstream(tmp_path / name, upstream_state(source_model))
    assert cli.main(["import-ckpt", "--from", "spikingformer", str(src), *DIGITS]) == 0
    assert [p.name for p in tmp_path.glob("*.spikesweep.pt")] == [f"{written}.spikesweep.pt"]


def test_cli_infers_the_sdtv3_size_and_uses_the_integer_neuron(tmp_path, capsys):
    cfg = compose("dataset=cifar10", "model=sdtv3_t", "neuron=multispike", "surrogate=ste")
    model = build_model(cfg.model, build_neuron(cfg.neuron, build_surrogate(cfg.surrogate)), meta(10, (3, 32, 32)))
    torch.save({"model": upstream_state(model, "sdtv3")}, tmp_path / "checkpoint-199.pth")
    assert cli.main(["import-ckpt", "--from", "sdtv3", str(tmp_path / "checkpoint-199.pth"), "dataset=cifar10"]) == 0
    written = ckpt.load(tmp_path / "checkpoint-199.spikesweep.pt")
    assert written["config"]["model"]["name"] == "sdtv3_t" and written["config"]["neuron"]["name"] == "multispike"
    for key, tensor in model.state_dict().items():
        assert torch.equal(written["model"][key], tensor), key
    assert "neuron=multispike surrogate=ste model=sdtv3_t dataset=cifar10 trainer.eval_only=true" in capsys.readouterr().out


def _edit(state: dict, edit: str) -> dict:
    state = dict(state)
    if edit == "extra":
        state["block.0.attn.gate_conv.weight"] = torch.zeros(1)
    elif edit == "deeper":
        state |= {k.replace("block.1.", "block.2."): v for k, v in state.items() if k.startswith("block.1.")}
    elif edit == "missing":
        del state["head.bias"]
    elif edit == "classes":
        state["head.weight"], state["head.bias"] = torch.zeros(100, 256), torch.zeros(100)
    return state


@pytest.mark.parametrize("fmt,edit,extra,message", [
    ("sdt", None, [], "--from 'sdt' is unknown; valid: spikingformer, sdtv3"),
    ("spikingformer", "absent", [], "checkpoint not found: "),
    ("spikingformer", "extra", [], "1 upstream key(s) do not map onto spikingformer_2_256 (e.g. 'block.0.attn.gate_conv.weight'); "
                                    "is this a spikingformer checkpoint?"),
    ("spikingformer", "deeper", ["model=spikingformer_2_256"], "upstream key 'block.2."),
    ("spikingformer", "missing", [], "1 key(s) of spikingformer_2_256 have no counterpart in the checkpoint (e.g. 'head.bias')"),
    ("spikingformer", "classes", [], "shape mismatch at 'head.weight' (ours 'head.weight'): checkpoint [100, 256], "
                                      "spikingformer_2_256 [10, 256]"),
    ("sdtv3", None, [], "cannot tell the model size: is this a sdtv3 checkpoint? Pass model=NAME"),
    ("sdtv3", None, ["model=spikingformer_2_256"], "--from sdtv3 needs a sdtv3_* model, got model=spikingformer_2_256"),
    ("spikingformer", "no dataset", [], "pass dataset=NAME (or recipe=NAME)"),
    ("spikingformer", None, ["--strict"], "unknown option '--strict'; import-ckpt takes --from, -o and Hydra overrides"),
    ("spikingformer", None, ["model.dim=128"], "unknown key 'model.dim'"),
    ("spikingformer", "not a checkpoint", [], "cannot load checkpoint "),
])
def test_cli_errors_are_one_line(tmp_path, source_model, capsys, fmt, edit, extra, message):
    src = tmp_path / "upstream.pth"
    if edit == "not a checkpoint":
        src.write_text("not a pickle")
    elif edit != "absent":
        write_upstream(src, _edit(upstream_state(source_model), edit))
    dataset = [] if edit == "no dataset" else DIGITS
    assert_one_line_error(capsys, ["--from", fmt, str(src), *dataset, *extra], message)


@pytest.mark.parametrize("fmt,payload,args,message", [
    ("sdtv3", lambda: [1, 2], "dataset=cifar10", "holds a list, not a dict of weights"),
    ("sdtv3", lambda: {"epoch": 3, "args": argparse.Namespace(lr=1.0)}, "dataset=cifar10",
     "has no weights: expected a state dict, or a dict with one under model or state_dict (top-level keys: epoch, args)"),
    ("spikingformer", lambda: fixture("spikingformer"), "dataset=cifar10 model.heads=4",
     "no registered model fits the checkpoint (spikingformer_2_32); pass model=NAME"),
    ("sdtv3", lambda: fixture("sdtv3"), "dataset=cifar10", "no registered model fits the checkpoint (sdtv3 with widths [8, 8, 16, 16])"),
    ("spikingformer", lambda: fixture("spikingformer"), "dataset=cifar10",  # heads: 12 here, 8 on CIFAR100
     "a spikingformer checkpoint does not record model.heads, which changes the logits: pass recipe=spikingformer_cifar10"),
    ("spikingformer", lambda: fixture("spikingformer"), "dataset=digits",
     "does not record model.heads, which changes the logits: pass model.heads=N (no spikingformer recipe for dataset=digits)"),
    ("sdtv3", lambda: fixture("sdtv3"), "recipe=sdtv3_s_cifar10",  # the recipe's model, sdtv3_s
     "shape mismatch at 'downsample1_1.encode_conv.weight' (ours 'stage1.0.conv.0.weight'): checkpoint [4, 3, 7, 7], sdtv3_s [16, 3, 7, 7]"),
])
def test_cli_errors_on_the_file_contents(tmp_path, capsys, fmt, payload, args, message):
    torch.save(payload(), tmp_path / "upstream.pth")
    assert_one_line_error(capsys, ["--from", fmt, str(tmp_path / "upstream.pth"), *args.split()], message)


def assert_one_line_error(capsys, args: list[str], message: str) -> None:
    assert cli.main(["import-ckpt", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not list(Path(args[2]).parent.glob("*.spikesweep.pt"))
