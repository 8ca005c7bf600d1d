"""SDT v3: parameter counts against the paper, CIFAR resolution, position-encoding ablation, one training step."""

import pytest
import torch

from spikesweep.models import build_model
from spikesweep.spiking import reset_states
from tests.models.transformer_helpers import count, lif, meta

PAPER = {"sdtv3_t": 2.70, "sdtv3_s": 5.106, "sdtv3_m": 10.02, "sdtv3_l": 18.99}


@pytest.mark.parametrize("name,paper", PAPER.items())
def test_parameter_count_matches_the_paper(name, paper):
    model = build_model({"name": name}, lif(), meta(1000, (3, 224, 224)))
    assert abs(count(model) / 1e6 - paper) / paper < 0.005


@pytest.mark.parametrize("pos_embed,extra", [("none", 0), ("learned", 128 * 2 * 2), ("sincos", 0), ("conv", 128 * 9 + 2 * 128)])
def test_cifar_resolution_and_position_encodings(pos_embed, extra):
    base = count(build_model({"name": "sdtv3_s"}, lif(), meta(100)))
    model = build_model({"name": "sdtv3_s", "pos_embed": pos_embed}, lif(), meta(100, time_steps=2))
    assert count(model) - base == extra
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 2, 100)


def test_sincos_code_is_fixed_and_distinct_per_position():
    model = build_model({"name": "sdtv3_t", "pos_embed": "sincos"}, lif(), meta(10, (3, 64, 64)))
    table = model.stage3[1].table
    assert table.shape == (96, 4, 4) and not table.requires_grad
    assert torch.unique(table.flatten(1).T, dim=0).shape[0] == 16


def test_head_neuron_gets_its_overrides():
    model = build_model({"name": "sdtv3_t", "head_neuron": {"v_threshold": 0.25}}, lif(), meta())
    assert model.head_spike.v_threshold == 0.25
    assert model.stage4[1].attn.attn_spike.v_threshold == 1.0


def test_misuse_is_one_clear_error():
    with pytest.raises(ValueError, match="multiple of 16"):
        build_model({"name": "sdtv3_t"}, lif(), meta(shape=(3, 40, 40)))
    with pytest.raises(ValueError, match="pos_embed='rope' is unknown"):
        build_model({"name": "sdtv3_t", "pos_embed": "rope"}, lif(), meta())


def test_event_input_and_one_training_step():
    torch.manual_seed(0)
    model = build_model({"name": "sdtv3_t", "pos_embed": "learned"}, lif(), meta(11, (2, 32, 32), 2, True))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = torch.nn.functional.cross_entropy(model(torch.rand(2, 2, 2, 32, 32)).mean(0), torch.tensor([1, 9]))
    loss.backward()
    opt.step()
    reset_states(model)
    after = model.state_dict()
    assert torch.isfinite(loss)
    for key in ("head.weight", "stage1.0.conv.0.weight", "stage3.1.table"):
        assert not torch.equal(before[key], after[key]), key


@pytest.mark.parametrize("name", ["sdtv3_t", "spikingformer_2_256"])
def test_bf16_autocast_trains(name):
    model = build_model({"name": name}, lif(), meta(10, (3, 32, 32), 1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.rand(2, 3, 32, 32))
    assert logits.dtype == torch.bfloat16
    logits.float().mean(0).sum().backward()
    reset_states(model)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("size", ["t", "s", "m", "l"])
def test_python_defaults_are_the_configs(size):
    """conf/model/sdtv3_*.yaml is the one source of the defaults: a model built from Python without them
    (e.g. head_neuron) is the same model (issue 18: the head's Norm was D in Python, 1 in the configs)."""
    import inspect

    import yaml

    from spikesweep.models.sdtv3 import HEAD_NEURON, build_sdtv3
    from spikesweep.spiking import build_neuron, build_surrogate
    from tests.conftest import REPO

    conf = yaml.safe_load((REPO / "conf" / "model" / f"sdtv3_{size}.yaml").read_text())
    defaults = {k: p.default for k, p in inspect.signature(build_sdtv3).parameters.items()}
    meaning_of_none = {"depths": [1, 2, 6, 2], "head_neuron": HEAD_NEURON}
    for key, value in conf.items():
        if key in defaults:
            default = meaning_of_none[key] if defaults[key] is None else defaults[key]
            assert default == value, f"sdtv3 {key}: Python default {default}, conf/model/sdtv3_{size}.yaml {value}"
    multispike = build_neuron({"name": "multispike", "D": 4}, build_surrogate({"name": "ste", "D": 4}))
    head = build_model({"name": f"sdtv3_{size}", "depths": [1, 1, 1, 1]}, multispike, meta()).head_spike
    assert float(head.norm) == 1.0  # integer counts, not D
