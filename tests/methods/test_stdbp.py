"""STDBP (seed 004): ANN2SNN through the real entry point, BP+STDP, SNN from scratch, the named multiruns."""

import csv
import json

import pytest
import torch
from torch.utils.data import TensorDataset

from spikesweep.data.registry import DatasetMeta
from spikesweep.methods import build_method
from spikesweep.run import train
from tests.conftest import compose, run_cli
from tests.data.fixtures import make_mnist
from tests.models.helpers import build, lif

META = DatasetMeta(num_classes=10, input_shape=(1, 28, 28), time_steps=4, temporal=False)
QUICK = ("logger=none", "trainer.epochs=1", "trainer.batch_size=10", "trainer.eval_batch_size=30")


def _method(name, **params):
    return build_method({"name": name, **params}, {"name": "unused"}, lif(), META)


def test_ann2snn_chain_from_one_command(tmp_path):
    """Train the ANN, convert it for two modes, evaluate at two T: csv, summary and log from one CLI call."""
    make_mnist(tmp_path / "data", per_class=3)
    out = run_cli(
        "train", "experiment=stdbp_ann", *QUICK, f"paths.data_dir={tmp_path / 'data'}", f"paths.output_root={tmp_path}",
        "method.modes=[max,99.9%,0.5]", "method.time_steps=[3,8]", "method.calibration_batches=2", cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (run_dir,) = (tmp_path / "outputs" / "stdbp_ann").iterdir()
    rows = list(csv.DictReader(open(run_dir / "ann2snn.csv")))
    assert [(r["mode"], r["T"]) for r in rows] == [(m, t) for m in ("max", "99.9%", "0.5") for t in ("3", "8")]
    assert all(0 <= float(r["top1"]) <= 100 for r in rows)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and len(summary["ann2snn"]["snn"]) == 6
    assert "| mode | T=3 | T=8 |" in (out.stdout + out.stderr)


def test_converted_snn_reproduces_the_ann_given_enough_steps(tmp_path):
    """Labels = the ANN's own predictions, so the ANN scores 100 %; the rate-coded SNN must get close."""
    torch.manual_seed(0)
    ann = build("mnist_cnn", META, activation="relu")
    x = torch.rand(40, 1, 28, 28)
    for bn in (m for m in ann.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.momentum = None  # BN statistics of x itself: an untrained net then separates the samples
    with torch.no_grad():
        ann(x)
        torch.nn.init.zeros_(ann.network[-1].bias)
        labels = ann.eval()(x).mean(0).argmax(-1)
    assert len(labels.unique()) >= 4
    data = TensorDataset(x, labels)
    result = _method("ann2snn", modes="max", time_steps=[1, 200], batch_size=40).after_fit(ann, data, data, tmp_path)
    assert result["ann_top1"] == 100.0
    by_steps = {r["T"]: r["top1"] for r in result["snn"]}
    assert by_steps[200] >= 80.0 and by_steps[200] > by_steps[1]


def test_ann2snn_refuses_a_spiking_model_and_bad_modes():
    with pytest.raises(ValueError, match="converts a ReLU ANN"):
        _method("ann2snn").attach(build("mnist_cnn", META, activation="spiking"), torch.device("cpu"))
    with pytest.raises(ValueError, match="not a conversion mode"):
        _method("ann2snn", modes=["max", "1.5"])


def test_bp_stdp_changes_the_conv_weights_by_stdp_and_the_classifier_by_backprop(tmp_path):
    torch.manual_seed(0)
    model = build("mnist_stdp_cnn", META, channels=4)
    method = _method("bp_stdp")
    method.attach(model, torch.device("cpu"))
    conv = model.stdp_pairs[0][0]
    x = torch.rand(3, 1, 28, 28) * 4  # strong enough input that the conv neurons spike
    loss = torch.nn.functional.cross_entropy(model(x).mean(0), torch.tensor([0, 1, 2]))
    loss.backward()
    backprop_grad = conv.weight.grad.clone()
    method.before_step(model)
    stdp_grad = conv.weight.grad
    assert stdp_grad.abs().sum() > 0 and not torch.allclose(stdp_grad, backprop_grad)
    assert model.classifier[0].weight.grad is not None  # backprop keeps the classifier's gradient
    model.eval()
    model(x)  # evaluation records nothing: the next training step only sees its own batch
    assert all(not learner.in_spike_monitor.records for learner in method.learners)


def test_bp_stdp_trains_through_the_entry_point(tmp_path):
    make_mnist(tmp_path / "data", per_class=2)
    overrides = ("experiment=stdbp_bp_stdp", *QUICK, "dataset.T=3", f"paths.data_dir={tmp_path / 'data'}")
    cfg = compose(*overrides)
    from spikesweep.models import build_model
    from spikesweep.spiking import build_neuron, build_surrogate

    torch.manual_seed(int(cfg.seed))
    initial = build_model(cfg.model, build_neuron(cfg.neuron, build_surrogate(cfg.surrogate)), META).state_dict()
    summary = train(cfg, tmp_path / "run", list(overrides))
    assert summary["status"] == "completed" and "test_top1" in summary["final"]
    trained = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert not torch.equal(trained["features.0.weight"], initial["features.0.weight"])


def test_snn_scratch_mse_on_rate_trains_a_step(tmp_path):
    method = _method("snn_scratch", loss="mse")
    rate, target = torch.tensor([[1.0, 0.0], [0.5, 0.5]]), torch.tensor([0, 1])
    assert torch.isclose(method.loss(None, rate, torch.tensor(9.0), target), torch.tensor(0.25 / 4 * 2))
    make_mnist(tmp_path / "data", per_class=2)
    overrides = ("experiment=stdbp_snn_scratch", *QUICK, "dataset.T=5", f"paths.data_dir={tmp_path / 'data'}")
    summary = train(compose(*overrides), tmp_path / "run", list(overrides))
    assert summary["status"] == "completed" and summary["final"]["train_loss"] < 1.0  # an MSE on rates, not a CE


@pytest.mark.parametrize("name, jobs", [("stdbp_ann2snn", 24), ("stdbp_methods", 3), ("stdbp_tau", 4), ("stdbp_stdp_tau", 9)])
def test_named_multiruns_compose(tmp_path, name, jobs):
    out = run_cli("sweep", name, "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{jobs} jobs in '{name}'" in out.stdout
