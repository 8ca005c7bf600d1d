"""The survey's networks: parameter counts, one training step on tiny inputs, the ANN twin, misuse."""

import pytest
import torch
from torch import nn

from spikesweep.data.registry import DatasetMeta
from spikesweep.spiking import build_neuron, build_surrogate, reset_states
from spikesweep.spiking.norm import TEBN1d, TEBN2d
from tests.models.helpers import build, compose_recipe, params, recipe_model, train_step

CIFAR10 = DatasetMeta(num_classes=10, input_shape=(3, 32, 32), time_steps=4, temporal=False)


def test_cf10_has_the_papers_parameter_count_in_both_forms():
    assert params(build("survey_cf10", CIFAR10)) == 17_542_026
    assert params(build("survey_cf10", CIFAR10, activation="relu")) == 17_542_026


@pytest.mark.parametrize("meta", [DatasetMeta(10, (96,), 32, True), DatasetMeta(10, (3, 32, 32), 32, False)])
def test_scf10_head_reads_1024_features(meta):
    model = build("survey_scf10", meta)
    assert model.classifier[0].in_features == 1024 and params(model) == 513_418


@pytest.mark.parametrize(
    ("name", "meta", "x"),
    [
        ("survey_cf10", DatasetMeta(10, (3, 8, 8), 2, False), torch.randn(2, 3, 8, 8)),
        ("survey_scf10", DatasetMeta(10, (3, 8, 4), 4, False), torch.randn(2, 3, 8, 4)),
        ("survey_scf10", DatasetMeta(10, (24,), 3, True), torch.randn(2, 3, 24)),
        ("survey_shd", DatasetMeta(20, (140,), 5, True), torch.randn(2, 5, 140)),
    ],
)
@pytest.mark.parametrize("activation", ["spiking", "relu"])
def test_trains_one_step(name, meta, x, activation):
    torch.manual_seed(0)
    model = build(name, meta, activation=activation)
    steps = x.shape[1] if meta.temporal else meta.time_steps
    assert train_step(model, x, meta.num_classes).shape == (steps, 2, meta.num_classes)
    kinds = {type(m) for m in model.feature_layers}
    assert (kinds == {nn.ReLU}) == (activation == "relu")


def test_scf10_sees_one_column_per_step_as_seq_cifar10_lays_it_out():
    torch.manual_seed(0)
    image = torch.randn(1, 3, 8, 4)
    steps = image.permute(0, 3, 1, 2).reshape(1, 4, 24)  # seq_cifar10: step t = column t, channel-major
    from_image = build("survey_scf10", DatasetMeta(10, (3, 8, 4), 4, False)).eval()
    from_steps = build("survey_scf10", DatasetMeta(10, (24,), 4, True)).eval()
    from_steps.load_state_dict(from_image.state_dict())
    first = from_image(image)
    reset_states(from_image)
    assert torch.allclose(from_steps(steps), first, atol=1e-6)
    image[..., 1:] = 0  # later columns cannot change the first step's output
    assert torch.allclose(from_image(image)[0], first[0])


@pytest.mark.parametrize(
    ("name", "meta", "cfg", "message"),
    [
        ("survey_cf10", CIFAR10, {"activation": "tanh"}, "unknown activation 'tanh'"),
        ("survey_cf10", DatasetMeta(10, (3, 30, 30), 4, False), {}, "multiples of 4"),
        ("survey_scf10", CIFAR10, {}, "set T=32"),
        ("survey_scf10", DatasetMeta(10, (95,), 32, True), {}, "do not split into 3 channels"),
        ("survey_shd", CIFAR10, {}, "needs temporal input"),
        ("survey_cf10", CIFAR10, {"norm": "ln"}, "survey_cf10: unknown norm 'ln'; valid: bn, tebn"),
    ],
)
def test_misuse_fails_with_one_line(name, meta, cfg, message):
    with pytest.raises(ValueError, match=message):
        build(name, meta, **cfg)


@pytest.mark.parametrize(
    ("recipe", "model", "activation", "T"),
    [
        ("survey_cf10", "survey_cf10", "spiking", 4),
        ("survey_cf10_ann", "survey_cf10", "relu", 1),
        ("survey_scf10", "survey_scf10", "spiking", 32),
        ("survey_shd", "survey_shd", "spiking", None),
    ],
)
def test_recipe_composes_and_builds(recipe, model, activation, T):
    cfg = compose_recipe(recipe)
    assert cfg.model.name == model and cfg.model.activation == activation
    if T is not None:
        assert cfg.dataset.T == T
    built = recipe_model(cfg)
    if recipe.startswith("survey_cf10"):
        assert params(built) == 17_542_026


SURVEY_SHAPES = [
    ("survey_cf10", CIFAR10, TEBN2d, 6, torch.randn(2, 3, 32, 32)),
    ("survey_scf10", DatasetMeta(10, (96,), 32, True), TEBN1d, 6, torch.randn(2, 32, 96)),
    ("survey_shd", DatasetMeta(20, (140,), 7, True), TEBN1d, 2, torch.randn(2, 7, 140)),
]


@pytest.mark.parametrize(("name", "meta", "kind", "layers", "x"), SURVEY_SHAPES)
def test_norm_tebn_replaces_every_bn_runs_in_forward_and_counts_its_scales(name, meta, kind, layers, x):
    bn, tebn = build(name, meta), build(name, meta, norm="tebn")
    norms = [m for m in tebn.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == layers and all(isinstance(m, kind) for m in norms)
    assert not any(isinstance(m, (TEBN1d, TEBN2d)) for m in bn.modules())
    assert params(tebn) == params(bn) + layers * meta.time_steps
    calls = []
    for m in norms:
        m.register_forward_hook(lambda mod, inp, out: calls.append(out.shape[0]))
    tebn(x)
    assert calls == [meta.time_steps] * layers  # every TEBN ran, on all T steps


def test_tebn_scale_reaches_the_neurons():
    torch.manual_seed(0)
    model = build("survey_cf10", DatasetMeta(10, (3, 8, 8), 3, False), norm="tebn")
    seen = []
    model.feature_layers[0].register_forward_hook(lambda mod, inp, out: seen.append(out.detach()))
    x = torch.randn(4, 3, 8, 8)
    model(x)
    reset_states(model)
    with torch.no_grad():
        next(m for m in model.modules() if isinstance(m, TEBN2d)).scale[1:] = 0.0  # no input at steps 2 and 3
    model(x)
    assert seen[0][1:].sum() > 0 and seen[1][1:].sum() == 0 and torch.equal(seen[0][0], seen[1][0])


def test_recipe_takes_norm_tebn_from_the_command_line():
    cfg = compose_recipe("survey_cf10")
    assert cfg.model.norm == "bn"
    from tests.conftest import compose

    built = recipe_model(compose("recipe=survey_cf10", "model.norm=tebn"))
    assert params(built) == 17_542_026 + 6 * 4


def test_block_alif_gets_per_channel_decays_from_the_survey_models():
    neuron = build_neuron({"name": "block_alif"}, build_surrogate({"name": "atan"}))
    model = build("survey_cf10", CIFAR10, neuron=neuron)
    shapes = [tuple(m.decay.shape) for m in model.feature_layers]
    assert shapes == [(128,)] * 6 + [(2048,)]
    assert params(model) == 17_542_026 + 2 * (6 * 128 + 2048)
    relu = build("survey_cf10", CIFAR10, neuron=neuron, activation="relu")
    assert params(relu) == 17_542_026
