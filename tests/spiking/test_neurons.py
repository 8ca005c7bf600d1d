"""Neurons: tiny hand-computed examples, state reset, and every neuron training inside a real model."""

import pytest
import torch

from spikesweep.run import train
from spikesweep.spiking import build_neuron, build_surrogate, is_spiking_neuron, neuron_names, reset_states
from tests.conftest import SMOKE, compose

CONFIGS = ["if", "lif", "plif", "clif", "osr", "block_alif", "gac_lif", "gac_lif_imagenet", "psn", "sliding_psn",
           "masked_psn", "multispike"]


def _neuron(name: str, surrogate: str = "atan", **overrides):
    cfg = compose(f"neuron={name}", f"surrogate={surrogate}")
    return build_neuron(cfg.neuron, build_surrogate(cfg.surrogate), time_steps=3)(**overrides)


def test_every_config_is_registered():
    assert set(neuron_names()) >= set(CONFIGS) - {"gac_lif_imagenet"}


def test_gac_lif_by_hand():
    # u1 = 0.6 -> no spike; u2 = 0.5*0.6 + 0.8 = 1.1 -> spike; u3 = 0.5*1.1*(1-1) + 0.3 = 0.3 -> no spike
    x = torch.tensor([0.6, 0.8, 0.3]).reshape(3, 1)
    assert _neuron("gac_lif", "triangle")(x).flatten().tolist() == [0.0, 1.0, 0.0]


def test_gac_lif_reset_is_in_the_graph_unless_detached():
    x = torch.tensor([0.6, 0.8, 0.9]).reshape(3, 1).requires_grad_(True)
    kept, detached = _neuron("gac_lif", "triangle"), _neuron("gac_lif", "triangle", detach_reset=True)
    g1 = torch.autograd.grad(kept(x).sum(), x)[0]
    g2 = torch.autograd.grad(detached(x).sum(), x)[0]
    assert not torch.allclose(g1, g2)


def test_lif_by_hand():
    # tau 2, decay_input: v = v + (x - v)/2; x = 1.5 -> 0.75, 1.125 -> spike, reset 0, then 0.75
    x = torch.tensor([1.5, 1.5, 1.5]).reshape(3, 1)
    assert _neuron("lif")(x).flatten().tolist() == [0.0, 1.0, 0.0]


def test_osr_cuts_the_gradient_through_time():
    x = torch.tensor([0.9, 0.9, 0.9]).reshape(3, 1).requires_grad_(True)
    out = _neuron("osr", "triangle")(x)
    grad_first = torch.autograd.grad(out[2].sum(), x)[0]
    assert grad_first[0] == 0 and grad_first[1] == 0  # step 3's spike does not reach earlier inputs


def test_multispike_values_and_norms():
    x = torch.tensor([-1.0, 0.4, 1.6, 2.6, 9.0]).reshape(1, 1, 5)
    fixed = _neuron("multispike", "ste")
    assert fixed(x).flatten().tolist() == [0.0, 0.0, 0.5, 0.75, 1.0]  # round(clamp(x,0,4))/4
    head = _neuron("multispike", "ste", norm_value=1.0)
    assert head(x).flatten().tolist() == [0.0, 0.0, 2.0, 3.0, 4.0]
    layer = _neuron("multispike", "ste", norm="learnable_layer")
    assert len(list(layer.parameters())) == 1
    channel = _neuron("multispike", "ste", norm="learnable_channel", channels=5)
    assert next(channel.parameters()).shape == (5,)
    y = channel(torch.rand(2, 3, 5, 4, 4) * 4)
    y.sum().backward()
    assert next(channel.parameters()).grad.abs().sum() > 0


def test_learnable_clip_gets_the_pact_gradient():
    n = _neuron("multispike", "ste", clip="learnable")
    x = torch.tensor([0.5, 2.0, 7.0]).reshape(1, 1, 3)
    n(x).sum().backward()
    assert n.max_delta.grad is not None and n.max_delta.grad > 0  # one input (7) was cut by the bound


@pytest.mark.parametrize(("neuron", "surrogate", "message"), [
    ("lif", "ste", "emits binary spikes but the surrogate is for integer spikes"),
    ("nope", "atan", "unknown neuron 'nope'; valid: "),
])
def test_impossible_pairs_fail_at_build_time(neuron, surrogate, message):
    cfg = compose(f"surrogate={surrogate}")
    with pytest.raises(ValueError, match=message):
        build_neuron({"name": neuron}, build_surrogate(cfg.surrogate))(channels=4)


def test_psn_without_time_steps_says_so():
    with pytest.raises(ValueError, match="needs the number of time steps"):
        build_neuron({"name": "psn"}, build_surrogate({"name": "atan"}))()


def test_unknown_neuron_parameter_is_named():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['taux'\]"):
        build_neuron({"name": "lif", "taux": 2.0}, build_surrogate({"name": "atan"}))


def test_reset_clears_state():
    n = _neuron("lif")
    first = n(torch.full((3, 1), 0.9))
    reset_states(n)
    assert torch.equal(n(torch.full((3, 1), 0.9)), first)
    assert is_spiking_neuron(n) and is_spiking_neuron(_neuron("psn"))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_neuron_trains_in_a_real_run(name, tmp_path):
    surrogate = "ste" if name == "multispike" else "atan"
    summary = train(compose(*SMOKE, f"neuron={name}", f"surrogate={surrogate}", "trainer.max_steps_per_epoch=1"),
                    tmp_path, [])
    assert summary["status"] == "completed" and summary["final"]["train_loss"] > 0


def test_binary_surrogate_on_multispike_acts_at_every_threshold():
    n = _neuron("multispike", "atan")
    x = torch.tensor([0.5, 1.5, 2.5, 3.5, 6.0]).reshape(1, 1, 5).requires_grad_(True)
    n(x).sum().backward()
    g = x.grad.flatten()
    assert torch.allclose(g[:4], g[0].expand(4), rtol=0.1) and g[0] > 10 * g[4]  # peaks at k + 1/2 alike
