"""SFOD: upstream's parameter counts, the SSD output layout, every neuron trains in the tiny size."""

import re
from pathlib import Path

import pytest
import torch
import yaml

from spikesweep.data.registry import DatasetMeta
from spikesweep.spiking import build_neuron, build_surrogate, reset_states
from tests.models.helpers import build, neuron_configs, params

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: torch's thread pool costs more than it saves

REPO = Path(__file__).resolve().parents[2]
GEN1 = DatasetMeta(num_classes=2, input_shape=(4, 240, 304), time_steps=5, temporal=True)
EVENTS = DatasetMeta(num_classes=2, input_shape=(4, 64, 64), time_steps=2, temporal=True)
SIGMOID = build_surrogate({"name": "sigmoid"})




@pytest.mark.parametrize(
    ("name", "norm", "upstream"),
    [("sfod_densenet121_16", "bn", 5_016_744), ("sfod_densenet121_16", "tebn", 5_017_374),
     ("sfod_densenet121_24", "bn", 8_195_576), ("sfod_densenet121_24", "tebn", 8_196_206)],
)
def test_parameter_count_is_upstreams(name, norm, upstream):
    """The survey's SFOD/models DetectionBackbone (fusion off, extras 640/320/320) + SSDHead for 2 classes,
    built on the meta device with a parameter-free neuron, less the DenseNet classifier detection never runs
    (2,048 / 3,072 parameters with bn, +5 with tebn); tebn adds T=5 scales to each of 127 norms."""
    with torch.device("meta"):
        assert params(build(name, GEN1, norm=norm)) == upstream


def test_plif_adds_one_parameter_per_neuron_layer():
    plif = build_neuron({"name": "plif"}, SIGMOID, GEN1.time_steps)
    with torch.device("meta"):
        assert params(build("sfod_densenet121_16", GEN1, plif)) == 5_016_744 + 1 + 2 * 58 + 3 + 2 * 3


def test_gen1_maps_and_priors_are_upstreams():
    """240x304 events: maps 30x38, 15x19, 7x9, 4x5, 2x3, 1x2 with 4, 6, 6, 6, 4, 4 priors each."""
    with torch.device("meta"):
        model = build("sfod_densenet121_16", GEN1)
        maps = model.feature_maps(torch.empty(1, 5, 4, 240, 304))
        out = model(torch.empty(1, 5, 4, 240, 304))
    assert [tuple(m.shape[-2:]) for m in maps] == [(30, 38), (15, 19), (7, 9), (4, 5), (2, 3), (1, 2)]
    assert [m.shape[2] for m in maps] == [64, 128, 512, 640, 320, 320]
    assert out.shape == (1, 1, 30 * 38 * 4 + 15 * 19 * 6 + 7 * 9 * 6 + 4 * 5 * 6 + 2 * 3 * 4 + 1 * 2 * 4, 6)


def test_output_rows_are_map_row_column_prior():
    """[1, B, P, 4 + K]: row (y, x, a) of a map holds its box conv's channels 4a..4a+3, then its class conv's
    channels Ka..Ka+K-1, the head reading each map's T-mean."""
    model = build("sfod_tiny", EVENTS)
    heads = []
    for branch in (*model.head.boxes, *model.head.classes):
        branch.register_forward_hook(lambda _m, _i, out: heads.append(out))
    out = model(torch.rand(2, 2, 4, 64, 64))
    assert out.shape == (1, 2, 390, 6)
    boxes, classes = heads[0::2], heads[1::2]  # the head runs map by map: boxes, then classes
    start = 0
    for box, cls, a in zip(boxes, classes, (4, 6, 6, 6, 4, 4)):
        _, _, h, w = box.shape
        for y, x, p in [(0, 0, 0), (0, w - 1, 1), (h - 1, 0, a - 1)]:
            row = start + (y * w + x) * a + p
            torch.testing.assert_close(out[0, :, row, :4], box[:, 4 * p:4 * p + 4, y, x])
            torch.testing.assert_close(out[0, :, row, 4:], cls[:, 2 * p:2 * p + 2, y, x])
        start += h * w * a
    assert start == 390


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"aspect_ratios": [[2]]}, "6 detection maps need 6 aspect-ratio lists"),
        ({"halvings": [["up"]] * 6}, "the maps' halvings are"),
        ({"min_ratio": 0.9}, "0 < min_ratio < max_ratio"),
        ({"norm": "layer"}, "unknown norm"),
        ({"meta": DatasetMeta(num_classes=2, input_shape=(4, 28, 64), time_steps=2, temporal=True)}, "at least 29 px"),
    ],
)
def test_a_config_the_model_cannot_honour_is_refused_in_one_line(cfg, message):
    cfg = dict(cfg)
    meta = cfg.pop("meta", EVENTS)
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        build("sfod_tiny", meta, **cfg)
    assert "\n" not in str(err.value)




@pytest.mark.parametrize(("config", "norm"), [*((c, "bn") for c in neuron_configs()), ("plif", "tebn")])
def test_every_neuron_config_trains_in_the_tiny_detector(config, norm):
    torch.manual_seed(0)
    neuron = build_neuron(yaml.safe_load((REPO / "conf" / "neuron" / f"{config}.yaml").read_text()), SIGMOID, 2)
    model = build("sfod_tiny", EVENTS, neuron, norm=norm)
    out = model((torch.rand(2, 2, 4, 64, 64) < 0.3).float())
    loss = out.square().mean()
    loss.backward()
    reset_states(model)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads)
    assert model.stem[0][2].weight.grad.abs().sum() > 0, "no gradient reaches the stem"


@pytest.mark.parametrize("model", ["sfod_densenet121_24", "sfod_densenet121_16", "sfod_tiny"])
def test_config_brings_plif_and_the_prior_geometry(model):
    from tests.conftest import compose

    cfg = compose(f"model={model}")
    assert (cfg.neuron.name, cfg.surrogate.name, cfg.surrogate.alpha) == ("plif", "sigmoid", 4.0)
    assert [len(r) for r in cfg.model.aspect_ratios] == [1, 2, 2, 2, 1, 1] and cfg.model.max_ratio == 0.8


def _recipe_values(cfg) -> tuple:
    return (cfg.model.name, cfg.neuron.name, cfg.task.name, cfg.optimizer.name, cfg.optimizer.lr,
            cfg.optimizer.weight_decay, cfg.scheduler.name, cfg.scheduler.min_lr, cfg.trainer.epochs,
            cfg.trainer.batch_size, cfg.trainer.grad_clip, cfg.dataset.T, cfg.task.min_box_diagonal, cfg.task.min_box_side)


SFOD_GEN1 = ("sfod_densenet121_16", "plif", "ssd_detection", "adamw", 1e-3, 1e-4, "cosine", 1e-5, 50, 16, 1.0, 5, 30, 20)


def test_recipe_has_the_surveys_values():
    """Composed with its own gen1 dataset (skipped, naming it, while gen1 is on another branch)."""
    from tests.models.helpers import compose_recipe

    assert _recipe_values(compose_recipe("sfod_gen1")) == SFOD_GEN1


def test_recipe_composes_on_another_event_set():
    """The recipe's values hold whatever dataset the command line gives it."""
    from tests.conftest import compose

    cfg = compose("recipe=sfod_gen1", "dataset=cifar10_dvs")
    assert _recipe_values(cfg) == SFOD_GEN1 and cfg.task.halvings[0] == ["up", "up", "down"]
