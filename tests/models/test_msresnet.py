"""MS-ResNet + GAC: parameter counts against the paper, every encoding trains, the ImageNet variant's init."""

import pytest
import torch

from spikesweep.data.registry import DatasetMeta
from spikesweep.models.encoding import GatedAttentionCoding, latency, poisson, to_time_major
from tests.models.helpers import build, compose_recipe, lif, params, recipe_model, train_step

CIFAR10 = DatasetMeta(num_classes=10, input_shape=(3, 32, 32), time_steps=6, temporal=False)
IMAGENET = DatasetMeta(num_classes=1000, input_shape=(3, 224, 224), time_steps=4, temporal=False)
TINY = DatasetMeta(num_classes=10, input_shape=(3, 16, 16), time_steps=2, temporal=False)


@pytest.mark.parametrize(
    ("name", "meta", "encoding", "paper"),
    [
        ("msresnet18", CIFAR10, "gac", 12.63e6),
        ("msresnet18", CIFAR10, "direct", 12.50e6),
        ("msresnet18", IMAGENET, "direct", 11.69e6),
        ("msresnet34", IMAGENET, "direct", 21.80e6),
    ],
)
def test_parameter_count_matches_the_paper(name, meta, encoding, paper):
    assert abs(params(build(name, meta, encoding=encoding)) - paper) / paper < 0.005


@pytest.mark.parametrize(("num_classes", "upstream"), [(10, 12_633_198), (100, 12_679_368)])
def test_gac_cifar_parameter_count_is_upstreams_exactly(num_classes, upstream):
    """bollossom/GAC CODE/CIFAR/models/MS_ResNet.py at ed8130a, msresnet18(num_classes) with GAC at T=6: its
    attention convs have no bias (GAU.py), so any extra tensor shows up here, where 0.5 % would hide it."""
    meta = DatasetMeta(num_classes=num_classes, input_shape=(3, 32, 32), time_steps=6, temporal=False)
    assert params(build("msresnet18", meta, encoding="gac")) == upstream


def test_gac_neuron_fires_strictly_above_threshold():
    """Upstream's ZIF fires at mem - thresh > 0: a membrane exactly at the threshold stays silent."""
    from spikesweep.spiking import build_neuron, build_surrogate

    sn = build_neuron({"name": "gac_lif"}, build_surrogate({"name": "triangle"}))()
    x = torch.tensor([[1.0, 1.0 + 1e-6, 0.5]], requires_grad=True)
    assert sn(x).tolist() == [[0.0, 1.0, 0.0]]
    sn.reset()
    sn(x).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([[1.0, 1.0 - 1e-6, 0.5]]))  # ZIF at gamma 1: 1 - |u - 1|


@pytest.mark.parametrize("name", ["atan", "sigmoid", "rectangle", "triangle", "trapezoid", "super_spike",
                                  "piecewise_quadratic", "erf", "softsign"])
def test_binary_surrogate_gradients_are_even(name):
    """GacLIF takes its spike as 1 - surrogate(threshold - u); that has the surrogate's gradient only if
    the gradient is an even function."""
    from spikesweep.spiking import build_surrogate

    half = torch.linspace(0, 3, 301)
    x = torch.cat([-half.flip(0), half]).requires_grad_()
    build_surrogate({"name": name})(x).sum().backward()
    torch.testing.assert_close(x.grad, x.grad.flip(0), atol=1e-6, rtol=0)  # sigmoid's s (1 - s) rounds
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("encoding", ["gac", "direct", "poisson", "latency"])
def test_every_encoding_trains_one_step(encoding):
    torch.manual_seed(0)
    model = build("msresnet18", TINY, encoding=encoding)
    logits = train_step(model, torch.randn(2, 3, 16, 16), TINY.num_classes)
    assert logits.shape == (TINY.time_steps, 2, TINY.num_classes)


def test_imagenet_variant_trains_and_starts_blocks_as_identities():
    torch.manual_seed(0)
    meta = DatasetMeta(num_classes=5, input_shape=(3, 64, 64), time_steps=2, temporal=False)
    model = build("msresnet34", meta, encoding="direct")  # 64 px selects the ImageNet variant
    assert model.stem[0].kernel_size == (7, 7)
    for block in model.stages:
        assert torch.all(block.conv1[1].weight == 0.5) and torch.all(block.conv2[1].weight == 0)
    assert train_step(model, torch.randn(2, 3, 64, 64), 5).shape == (2, 2, 5)


def test_variant_can_be_forced():
    model = build("msresnet18", TINY, variant="imagenet", encoding="direct")
    assert model.stem[0].kernel_size == (7, 7)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"encoding": "rate"}, "unknown encoding 'rate'"),
        ({"variant": "tiny"}, "unknown variant 'tiny'"),
    ],
)
def test_misuse_fails_with_one_line(cfg, message):
    with pytest.raises(ValueError, match=message):
        build("msresnet18", TINY, **cfg)


def test_spike_codes_refuse_temporal_input():
    meta = DatasetMeta(num_classes=10, input_shape=(3, 16, 16), time_steps=2, temporal=True)
    with pytest.raises(ValueError, match="needs static input"):
        build("msresnet18", meta, encoding="poisson")


def test_spike_codes_are_binary_and_latency_fires_once():
    x = torch.randn(2, 3, 4, 4)
    rate, first = poisson(x, 5), latency(x, 5)
    assert rate.shape == first.shape == (5, 2, 3, 4, 4)
    assert set(rate.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(first.sum(0) == 1)
    brightest = x.flatten(1).argmax(1)
    assert torch.all(first[0].flatten(1)[torch.arange(2), brightest] == 1)  # brightest input fires first
    assert torch.equal(to_time_major(x, 3, False)[2], x)


def test_gac_passes_only_where_the_encoder_spiked():
    torch.manual_seed(0)
    gac = GatedAttentionCoding(channels=4, time_steps=2, neuron=lif())
    x = torch.randn(2, 2, 4, 6, 6)
    out = gac(x)
    silent = x[0] / 2 < 1.0  # first step of a fresh LIF (tau 2, decay_input): v = x / 2
    assert out.shape == x.shape and torch.all(out[0][silent] == 0) and out[0][~silent].abs().sum() > 0
    with pytest.raises(ValueError, match="built for"):
        gac(torch.randn(3, 2, 4, 6, 6))


def test_per_epoch_cutmix_draw_is_one_choice_per_epoch_and_reproducible():
    from spikesweep.tasks.classification import build_mixup, mixup_active

    upstream = {"prob": 0.5, "off_epoch": None, "per_epoch": True}
    draws = [mixup_active(upstream, epoch, seed=0) for epoch in range(200)]
    assert draws == [mixup_active(upstream, epoch, seed=0) for epoch in range(200)]  # same after a resume
    assert 60 < sum(draws) < 140
    assert mixup_active({"prob": 0.5, "off_epoch": None, "per_epoch": False}, 0, 0)  # per batch: timm draws
    assert not mixup_active({**upstream, "off_epoch": 3}, 5, 0)
    trainer = {"label_smoothing": 0.0, "mixup": {"mixup_alpha": 0.0, "cutmix_alpha": 1.0, "prob": 0.5,
                                                 "switch_prob": 0.5, "mode": "batch", **upstream}}
    assert build_mixup(trainer["mixup"], trainer["label_smoothing"], 10).mix_prob == 1.0  # an active epoch mixes every batch


@pytest.mark.parametrize(
    ("recipe", "depth", "variant"),
    [
        ("gac_msresnet18_cifar10", 18, "cifar"),
        ("gac_msresnet18_cifar100", 18, "cifar"),
        ("gac_msresnet18_imagenet", 18, "imagenet"),
        ("gac_msresnet34_imagenet", 34, "imagenet"),
    ],
)
def test_recipe_composes_and_builds(recipe, depth, variant):
    cfg = compose_recipe(recipe)
    assert cfg.model.name == f"msresnet{depth}" and cfg.model.variant == variant and cfg.model.encoding == "gac"
    assert cfg.optimizer.lr == 0.1 and cfg.trainer.epochs == 250 and cfg.trainer.mixup.cutmix_alpha == 1.0
    assert cfg.trainer.mixup.per_epoch is False
    model = recipe_model(cfg)
    assert model.gac is not None and model.gac.time_steps == cfg.dataset.T


def test_named_multiruns_cover_the_papers_tables():
    from spikesweep.sweeps import catalogue

    assert catalogue.load("gac_cifar").job_count == 12  # x encoding in {gac, direct}
    assert catalogue.load("gac_imagenet").job_count == 4


def test_the_entry_point_trains_gac_msresnet_on_the_embedded_digits(tmp_path):
    from spikesweep.run import train
    from tests.conftest import SMOKE, compose

    overrides = (*SMOKE, "model=msresnet18", "model.encoding=gac", "dataset.T=2", "trainer.max_steps_per_epoch=1",
                 "trainer.batch_size=4", "optimizer=sgd")
    summary = train(compose(*overrides), tmp_path, list(overrides))
    assert summary["status"] == "completed" and summary["params"] > 12e6
