"""EMS-YOLO: upstream's parameter counts, the detection contract's output layout, every neuron trains in it."""

import math
import re
from pathlib import Path

import pytest
import torch
import yaml
from torch.nn import functional as F

from spikesweep.data.registry import DatasetMeta
from spikesweep.models.ems_yolo import EMSConcatBlock, _Norms
from spikesweep.spiking import build_neuron, build_surrogate, reset_states
from tests.models.helpers import build, neuron_configs, params

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: torch's thread pool costs more than it saves

REPO = Path(__file__).resolve().parents[2]
COCO = DatasetMeta(num_classes=80, input_shape=(3, 640, 640), time_steps=5, temporal=False)
SHAPES = DatasetMeta(num_classes=3, input_shape=(3, 64, 64), time_steps=2, temporal=False)
PAPER_NEURON = {"name": "gac_lif", "decay": 0.25, "v_threshold": 0.5, "detach_reset": True}
RECT = build_surrogate({"name": "rectangle"})


def _ems(**cfg):
    return build("ems_yolo_tiny", SHAPES, build_neuron(PAPER_NEURON, RECT, SHAPES.time_steps), **cfg)




@pytest.mark.parametrize(
    ("name", "norm", "upstream"),
    [("ems_yolo_res10", "bn", 17_561_662), ("ems_yolo_res10", "tebn", 17_561_787), ("ems_yolo_res34", "bn", 34_027_454)],
)
def test_parameter_count_is_upstreams(name, norm, upstream):
    """Upstream's parse_model (the survey's coco/models/yolo.py and common.py) on BICLab/EMS-YOLO's
    models/resnet10.yaml / resnet34.yaml with nc=80 counts these; tebn adds T=5 scales to each of 25 norms."""
    with torch.device("meta"):  # shapes only: no 17M-weight initialisation
        assert params(build(name, COCO, norm=norm)) == upstream


def test_output_is_one_raw_tensor_scale_anchor_row_column():
    """[T, B, P, 5 + K], P = 3 * 4 * 4 + 3 * 2 * 2 on 64 px; row p of a scale is its conv's (anchor, y, x)."""
    model = _ems()
    heads = []
    for conv in model.detect:
        conv.register_forward_hook(lambda _m, _i, out: heads.append(out))
    out = model(torch.rand(2, *SHAPES.input_shape))
    assert out.shape == (2, 2, 3 * 16 + 3 * 4, 8)
    start = 0
    for head in heads:  # [T, B, A * (5 + K), H, W]
        _, _, _, h, w = head.shape
        for a, y, x in [(0, 0, 0), (1, 0, 1), (2, h - 1, w - 2)]:
            row = start + (a * h + y) * w + x
            torch.testing.assert_close(out[:, :, row], head[:, :, a * 8:(a + 1) * 8, y, x])
        start += 3 * h * w
    assert start == out.shape[2]


def test_event_input_keeps_its_time_axis():
    meta = DatasetMeta(num_classes=2, input_shape=(2, 32, 64), time_steps=3, temporal=True)
    model = build("ems_yolo_tiny", meta, build_neuron(PAPER_NEURON, RECT, 3))
    assert model(torch.rand(2, 3, 2, 32, 64)).shape == (3, 2, 3 * 2 * 4 + 3 * 1 * 2, 7)


@pytest.mark.parametrize(
    ("cfg", "meta", "message"),
    [
        ({"strides": [8, 16]}, SHAPES, "strides are [16, 32]"),
        ({"anchors": [[10, 14, 23]]}, SHAPES, "anchors must be 2 lists"),
        ({"norm": "layer"}, SHAPES, "unknown norm"),
        ({}, DatasetMeta(num_classes=3, input_shape=(3, 48, 48), time_steps=2, temporal=False), "multiples of it"),
    ],
)
def test_a_config_the_head_cannot_honour_is_refused_in_one_line(cfg, meta, message):
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        build("ems_yolo_tiny", meta, **cfg)
    assert "\n" not in str(err.value)


def test_anchors_per_scale_follow_the_config():
    model = _ems(anchors=[[8, 8, 16, 16], [32, 32]])
    assert model(torch.rand(1, *SHAPES.input_shape)).shape == (2, 1, 2 * 16 + 1 * 4, 8)


def test_concat_shortcut_widens_and_pools():
    """EMS block 2: c_out - c_in new channels next to the input itself, max-pooled with the residual's stride."""
    block = EMSConcatBlock(8, 24, 2, build_neuron(PAPER_NEURON, RECT, 2), _Norms("bn", 2))
    assert block.extra[1].out_channels == 16
    assert block(torch.rand(2, 1, 8, 8, 8)).shape == (2, 1, 24, 4, 4)


def test_upstream_init_norm_weights_and_detect_priors():
    model = _ems()
    last = model.stages[0][0].residual[-1]
    assert (last.weight == 0.1).all() and (model.stem[1].weight == 0.5).all() and last.eps == 1e-3
    head = model.detect[0]  # stride 16 on 64 px: 16 cells; PyTorch's default bias lies within 1/sqrt(fan_in)
    bias, bound = head.bias.view(3, 8), 1 / math.sqrt(head.in_channels)
    assert ((bias[:, 4] - math.log(8 / 16)).abs() <= bound).all()
    assert ((bias[:, 5:] - math.log(0.6 / (3 - 0.99999))).abs() <= bound).all()




@pytest.mark.parametrize(("config", "norm"), [*((c, "bn") for c in neuron_configs()), ("gac_lif_imagenet", "tebn")])
def test_every_neuron_config_trains_in_the_tiny_detector(config, norm):
    torch.manual_seed(0)
    neuron = build_neuron(yaml.safe_load((REPO / "conf" / "neuron" / f"{config}.yaml").read_text()), RECT, 2)
    model = build("ems_yolo_tiny", SHAPES, neuron, norm=norm)
    out = model(torch.rand(2, *SHAPES.input_shape) * 2)
    loss = F.binary_cross_entropy_with_logits(out.mean(0), torch.zeros_like(out[0]))  # "no objects" targets
    loss.backward()
    reset_states(model)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads)
    assert model.stem[0].weight.grad.abs().sum() > 0, "no gradient reaches the stem"


@pytest.mark.parametrize("model", ["ems_yolo_res10", "ems_yolo_res34", "ems_yolo_tiny"])
def test_config_brings_the_papers_neuron_and_the_heads_geometry(model):
    from tests.conftest import compose

    cfg = compose(f"model={model}")
    assert (cfg.neuron.name, cfg.neuron.decay, cfg.neuron.v_threshold, cfg.surrogate.name) == (
        "gac_lif", 0.25, 0.5, "rectangle")
    assert list(cfg.model.strides) == [16, 32] and [len(a) for a in cfg.model.anchors] == [6, 6]
