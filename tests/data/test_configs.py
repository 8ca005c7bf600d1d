"""Every dataset config composes, names a registered builder and states what the issue asks of it; every
dataset feeds the general-purpose models."""

import pytest
import torch

from spikesweep.data import dataset_names
from spikesweep.data.sequential import ImageAsSequence
from spikesweep.models import build_model
from spikesweep.spiking import build_neuron, build_surrogate
from tests.conftest import REPO, compose

CONFIGS = sorted(p.stem for p in (REPO / "conf" / "dataset").glob("*.yaml"))
PRESETS = {"imagenet1k": "imagenet_subset"}  # configs that set another builder's options


def test_every_config_has_a_builder_and_every_builder_a_config():
    assert sorted(set(CONFIGS) - set(PRESETS)) == dataset_names()
    for preset, builder in PRESETS.items():
        assert compose(f"dataset={preset}").dataset.name == builder


@pytest.mark.parametrize("name", CONFIGS)
def test_config_states_classes_shape_and_time(name):
    cfg = compose(f"dataset={name}")
    assert cfg.dataset.name == PRESETS.get(name, name)
    assert cfg.dataset.num_classes >= 2 and cfg.dataset.T >= 1 and len(cfg.dataset.input_shape) in (1, 3)
    if name not in ("digits", "cifar10_dvs", "dvs128_gesture", "shd", "ssc", "gen1", "detect_events"):  # raw counts
        assert len(cfg.dataset.mean) == len(cfg.dataset.std)


def test_sequence_order_column_and_row():
    image = torch.arange(3 * 4 * 5, dtype=torch.float32).reshape(3, 4, 5)  # C=3, H=4, W=5
    by_column, _ = ImageAsSequence([(image, 0)], "column")[0]
    by_row, _ = ImageAsSequence([(image, 0)], "row")[0]
    assert by_column.shape == (5, 12) and torch.equal(by_column[2], image[:, :, 2].reshape(-1))
    assert by_row.shape == (4, 15) and torch.equal(by_row[1], image[:, 1, :].reshape(-1))


@pytest.mark.parametrize("model", ["small_cnn", "spiking_mlp"])
@pytest.mark.parametrize("name", CONFIGS)
def test_dataset_meta_fits_the_general_models(name, model):
    """Models size themselves from the dataset's meta alone (shape, classes, T, temporal)."""
    from spikesweep.data import DatasetMeta

    cfg = compose(f"dataset={name}", f"model={model}", "dataset.T=2")
    shape = tuple(cfg.dataset.input_shape)
    neuron = build_neuron(cfg.neuron, build_surrogate(cfg.surrogate))
    if model == "small_cnn" and len(shape) != 3:  # a 1-D feature dataset: refused with a clear message
        with pytest.raises(ValueError, match="small_cnn needs image input"):
            build_model(cfg.model, neuron, DatasetMeta(cfg.dataset.num_classes, shape, 2, True))
        return
    if max(shape) > 64:
        shape = shape[:1] + (16, 16) if len(shape) == 3 else shape  # keep the CPU test cheap
    temporal = cfg.dataset.temporal
    meta = DatasetMeta(cfg.dataset.num_classes, shape, 2, temporal)
    net = build_model(cfg.model, neuron, meta)
    x = torch.rand(2, 2, *shape) if temporal else torch.rand(2, *shape)
    assert net(x).shape == (2, 2, cfg.dataset.num_classes)
