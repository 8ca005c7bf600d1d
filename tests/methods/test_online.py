"""Online training: one backward per time step gives the gradient of the per-step losses, state detached."""

import json

import pytest
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional

from spikesweep.data.registry import DatasetMeta
from spikesweep.methods import build_method
from spikesweep.run import RunError, train
from spikesweep.spiking import build_neuron, build_surrogate
from tests.conftest import SMOKE, compose
from tests.models.helpers import build

META = DatasetMeta(num_classes=10, input_shape=(1, 8, 8), time_steps=3, temporal=False)
TINY = ("model=survey_cf10", "model.hidden=16", "dataset.T=2", "trainer.batch_size=8", "trainer.eval_batch_size=512")


def _neuron(name: str):
    return build_neuron({"name": name}, build_surrogate({"name": "atan", "alpha": 2.0}), META.time_steps)


def _online(model):
    method = build_method({"name": "online"}, {"name": "survey_cf10"}, None, META)
    method.attach(model, torch.device("cpu"))
    return method


def test_per_step_backward_equals_the_gradient_of_the_summed_step_losses():
    torch.manual_seed(0)
    model = build("survey_cf10", META, neuron=_neuron("osr"), hidden=16).eval()  # BN on running stats
    x, y = torch.rand(4, 1, 8, 8) * 3, torch.randint(0, 10, (4,))

    out = model(x)  # the osr neuron detaches its state: no gradient crosses steps in one backward either
    reference = sum(F.cross_entropy(o, y) for o in out) / len(out)
    reference.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    functional.reset_net(model)

    logits, loss = _online(model).forward_backward(x, y, F.cross_entropy, torch.enable_grad, torch.Tensor.backward)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    assert torch.allclose(logits, out.mean(0).detach(), atol=1e-6)
    for got, want in zip((p.grad for p in model.parameters()), expected, strict=True):
        assert torch.allclose(got, want, atol=1e-6)


def test_lif_state_is_detached_between_steps_so_each_backward_stays_within_its_step():
    torch.manual_seed(0)
    model = build("survey_cf10", META, neuron=_neuron("lif"), hidden=16)
    x, y = torch.rand(4, 1, 8, 8) * 3, torch.randint(0, 10, (4,))
    # Without the detach the second backward would walk into the first step's freed graph and fail.
    _online(model).forward_backward(x, y, F.cross_entropy, torch.enable_grad, torch.Tensor.backward)
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    ("model", "neuron", "message"),
    [
        ("small_cnn", "osr", "needs a model that runs one time step at a time"),
        ("survey_cf10", "psn", "mixes all time steps at once"),
    ],
)
def test_models_and_neurons_that_cannot_step_are_refused(model, neuron, message):
    net = build(model, META, neuron=_neuron(neuron), **({"hidden": 16} if model == "survey_cf10" else {}))
    with pytest.raises(ValueError, match=message):
        _online(net)


def test_survey_shd_readout_is_refused():
    meta = DatasetMeta(20, (140,), 5, True)
    with pytest.raises(ValueError, match="needs a model that runs one time step at a time"):
        _online(build("survey_shd", meta, neuron=_neuron("osr")))


def test_online_training_runs_through_the_entry_point(tmp_path):
    summary = train(compose(*SMOKE, *TINY, "neuron=osr", "method=online"), tmp_path, [])
    assert summary["status"] == "completed"
    line = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert line["train_loss"] > 0 and 0 <= line["test_top1"] <= 100


def test_online_with_small_cnn_fails_with_one_line(tmp_path):
    with pytest.raises(RunError, match="method=online needs a model"):
        train(compose(*SMOKE, "method=online"), tmp_path, [])
