"""Spikingformer: sizes, parameter counts against the papers, the CML switch, one training step."""

import pytest
import torch
from spikingjelly.activation_based import neuron as sj_neuron

from spikesweep.models import build_model
from spikesweep.spiking import reset_states
from tests.conftest import SMOKE, compose
from tests.models.transformer_helpers import count, lif, meta

# (name, input shape, classes, paper's parameter count in millions; upstream includes 2 unused LayerNorms per block)
PAPER = [
    ("spikingformer_4_256", (3, 32, 32), 10, 4.156),
    ("spikingformer_2_384", (3, 32, 32), 10, 5.766),
    ("spikingformer_4_384", (3, 32, 32), 10, 9.326),
    ("spikingformer_8_384", (3, 224, 224), 1000, 16.83),
    ("spikingformer_8_512", (3, 224, 224), 1000, 29.71),
    ("spikingformer_8_768", (3, 224, 224), 1000, 66.36),
    ("spikingformer_2_256", (2, 128, 128), 10, 2.569),
]


@pytest.mark.parametrize("name,shape,classes,paper", PAPER)
def test_parameter_count_matches_the_paper(name, shape, classes, paper):
    model = build_model({"name": name}, lif(), meta(classes, shape))
    depth, dim = map(int, name.split("_")[1:])
    ours = count(model) / 1e6
    assert abs(ours - paper) / paper < 0.005
    unused_layernorms = 2 * 2 * dim * depth / 1e6  # weight + bias of norm1, norm2 in every upstream block
    assert abs(ours + unused_layernorms - paper) / paper < 0.0002


@pytest.mark.parametrize("downsample", ["spikingformer", "cml"])
@pytest.mark.parametrize("shape,temporal,tokens", [((3, 32, 32), False, 64), ((2, 80, 80), True, 25)])
def test_forward_shapes_and_pooling(downsample, shape, temporal, tokens):
    model = build_model({"name": "spikingformer_2_256", "downsample": downsample}, lif(), meta(7, shape, 2, temporal))
    x = torch.rand(2, 2, *shape) if temporal else torch.rand(2, *shape)
    seen = []
    model.blocks.register_forward_hook(lambda _m, _i, out: seen.append(out.shape[-1]))
    assert model(x).shape == (2, 2, 7)
    assert seen == [tokens]  # 32 px pools twice (CIFAR), larger inputs four times (ImageNet, DVS)


def test_orders_differ_only_in_where_the_pool_sits():
    order = lambda ds, stage: [type(m).__name__ for m in build_model(  # noqa: E731
        {"name": "spikingformer_2_256", "downsample": ds}, lif(), meta()).tokenizer.stages[stage][1]]
    assert order("spikingformer", 3) == ["MaxPool2d", "Conv2d", "BatchNorm2d"]
    assert order("cml", 2) == ["Conv2d", "BatchNorm2d", "MaxPool2d"]  # CML pools one stage earlier, after the conv
    assert order("cml", 3) == ["Conv2d", "BatchNorm2d"]


def test_attention_neuron_gets_threshold_half():
    model = build_model({"name": "spikingformer_2_256"}, lif(), meta())
    thresholds = {m.v_threshold for m in model.modules() if isinstance(m, sj_neuron.LIFNode)}
    assert thresholds == {1.0, 0.5}
    assert model.blocks[0].attn.attn_neuron.v_threshold == 0.5


def test_misuse_is_one_clear_error():
    with pytest.raises(ValueError, match="downsample='maxfirst' is unknown"):
        build_model({"name": "spikingformer_2_256", "downsample": "maxfirst"}, lif(), meta())
    with pytest.raises(ValueError, match="multiple of 4"):
        build_model({"name": "spikingformer_2_256"}, lif(), meta(shape=(3, 30, 30)))
    with pytest.raises(ValueError, match="not divisible by 12 heads"):
        build_model({"name": "spikingformer_2_256", "heads": 12}, lif(), meta())


def test_one_training_step_changes_every_layer():
    torch.manual_seed(0)
    model = build_model({"name": "spikingformer_2_256", "downsample": "cml"}, lif(), meta(10, (3, 32, 32), 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = torch.nn.functional.cross_entropy(model(torch.rand(2, 3, 32, 32)).mean(0), torch.tensor([1, 2]))
    loss.backward()
    opt.step()
    reset_states(model)
    assert torch.isfinite(loss)
    assert not torch.equal(before["head.weight"], model.state_dict()["head.weight"])
    assert not torch.equal(before["tokenizer.stem.0.weight"], model.state_dict()["tokenizer.stem.0.weight"])


def test_real_entry_point_trains_on_digits(tmp_path):
    pytest.importorskip("spikesweep.data", reason="main's .gitignore pattern 'data/' drops src/spikesweep/data")
    from spikesweep.run import train

    overrides = ("model=spikingformer_2_256", "surrogate=sigmoid", "dataset.T=1", "trainer.batch_size=4",
                 "trainer.max_steps_per_epoch=1", "model.pool=[false,false,true,false]",
                 "dataset.test_fraction=0.05")
    summary = train(compose(*SMOKE, *overrides), tmp_path, list(overrides))
    assert summary["status"] == "completed" and 0 <= summary["final"]["firing_rate"] <= 1


def test_the_cifar_sweep_uses_upstreams_heads_per_size_and_dataset():
    """zhouchenlin2096/Spikingformer cifar10.yml: 12 heads at dim 384, cifar100.yml: 8; dim 256 (no upstream
    config, 12 does not divide it): 8. The sweep's own axes, as the sweeper gives them to each job."""
    from spikesweep.sweeps.catalogue import grid, load
    from tests.conftest import compose

    expected = {("cifar10", "spikingformer_4_256"): 8, ("cifar10", "spikingformer_2_384"): 12,
                ("cifar10", "spikingformer_4_384"): 12, ("cifar100", "spikingformer_4_256"): 8,
                ("cifar100", "spikingformer_2_384"): 8, ("cifar100", "spikingformer_4_384"): 8}
    seen = {}
    for job in grid(load("spikingformer_cifar").params):
        cfg = compose(*job, "+experiments=spikingformer_cifar")
        seen[(cfg.dataset.name, cfg.model.name)] = cfg.model.heads
    assert seen == expected
