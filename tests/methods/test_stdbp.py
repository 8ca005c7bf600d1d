"""STDBP (seed 004): ANN2SNN through the real entry point, BP+STDP, SNN from scratch, the named multiruns."""

import copy
import csv
import json
import socket

import pytest
import torch
from spikingjelly.activation_based.learning import STDPLearner
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
        "train", "recipe=stdbp_ann", *QUICK, f"paths.data_dir={tmp_path / 'data'}", f"paths.output_root={tmp_path}",
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


def _upstream_bp_stdp_step(model, x, target, lr, weight_decay):
    """Seed 004's step with spikingjelly's own learner: Adam for backprop, SGD (no momentum) on -dw for the
    convs after dropping their backprop gradient."""
    convs = [conv for conv, _ in model.stdp_pairs]
    learners = [STDPLearner("m", conv, sn, 2.0, 100.0, f_pre=_bound, f_post=_bound) for conv, sn in model.stdp_pairs]
    stdp_params = [conv.weight for conv in convs]
    others = [p for p in model.parameters() if all(p is not q for q in stdp_params)]
    optimizer_gd = torch.optim.Adam(others, lr=lr, weight_decay=weight_decay)
    optimizer_stdp = torch.optim.SGD(stdp_params, lr=lr, momentum=0.0, weight_decay=weight_decay)
    torch.nn.functional.cross_entropy(model(x).mean(0), target).backward()
    optimizer_stdp.zero_grad()
    for learner in learners:
        learner.step(on_grad=True)
    optimizer_gd.step()
    optimizer_stdp.step()


def _bound(w):
    return w.clamp(-1, 1)


def test_bp_stdp_step_equals_seed_004s_two_optimizers():
    """Same batch, same start: our method + the engine's Adam give the weights of the seed's script."""
    torch.manual_seed(0)
    ours = build("mnist_stdp_cnn", META, channels=4, hidden=8)
    upstream, start = copy.deepcopy(ours), copy.deepcopy(ours.state_dict())
    x, target = torch.rand(3, 1, 28, 28) * 4, torch.tensor([0, 1, 2])  # strong enough that the convs spike
    _upstream_bp_stdp_step(upstream, x, target, lr=0.01, weight_decay=5e-4)

    method = _method("bp_stdp", lr=0.01, weight_decay=5e-4)
    method.attach(ours, torch.device("cpu"))
    assert not any(conv.weight.requires_grad for conv, _ in ours.stdp_pairs)  # no backward through the convs
    optimizer = torch.optim.Adam([p for p in ours.parameters() if p.requires_grad], lr=0.01, weight_decay=5e-4)
    torch.nn.functional.cross_entropy(ours(x).mean(0), target).backward()
    method.before_step(ours)
    optimizer.step()

    for (name, mine), theirs in zip(ours.state_dict().items(), upstream.state_dict().values(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6, msg=name)
    assert all(not torch.equal(ours.state_dict()[k], start[k]) for k in ("features.0.weight", "features.3.weight"))
    assert ours.stdp_pairs[0][0].weight.grad is None
    ours.eval()
    ours(x)  # evaluation records nothing: the next training step only sees its own batch
    assert all(not learner.in_spike_monitor.records for learner in method.learners)


def _ddp_rank(rank: int, port: int, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = build("mnist_stdp_cnn", META, channels=4, hidden=8)
    method = _method("bp_stdp", lr=0.01)
    method.attach(model, torch.device("cpu"))
    torch.manual_seed(1 + rank)  # each rank its own batch
    model(torch.rand(2, 1, 28, 28) * 4)
    method.before_step(model)
    weights = [torch.zeros_like(model.stdp_pairs[0][0].weight) for _ in range(2)]
    torch.distributed.all_gather(weights, model.stdp_pairs[0][0].weight)
    if rank == 0:
        torch.save(weights, out)
    torch.distributed.destroy_process_group()


def test_bp_stdp_keeps_ddp_ranks_in_step(tmp_path):
    """Real gloo, two processes, different batches: dw is averaged, so the STDP weights stay equal."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_rank, args=(port, str(tmp_path / "w.pt")), nprocs=2)
    first, second = torch.load(tmp_path / "w.pt", weights_only=True)
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_bp_stdp_refuses_bad_settings():
    with pytest.raises(ValueError, match="lr > 0"):
        _method("bp_stdp", lr=0.0)
    with pytest.raises(ValueError, match="w_min < w_max"):
        _method("bp_stdp", w_min=1.0, w_max=1.0)
    with pytest.raises(ValueError, match="stdp_pairs"):
        _method("bp_stdp").attach(build("mnist_cnn", META, activation="spiking"), torch.device("cpu"))


def test_bp_stdp_trains_through_the_entry_point(tmp_path):
    make_mnist(tmp_path / "data", per_class=2)
    overrides = ("recipe=stdbp_bp_stdp", *QUICK, "dataset.T=3", f"paths.data_dir={tmp_path / 'data'}")
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
    overrides = ("recipe=stdbp_snn_scratch", *QUICK, "dataset.T=5", f"paths.data_dir={tmp_path / 'data'}")
    summary = train(compose(*overrides), tmp_path / "run", list(overrides))
    assert summary["status"] == "completed" and summary["final"]["train_loss"] < 1.0  # an MSE on rates, not a CE


@pytest.mark.parametrize("name, jobs", [("stdbp_ann2snn", 24), ("stdbp_methods", 3), ("stdbp_tau", 4), ("stdbp_stdp_tau", 9)])
def test_named_multiruns_compose(tmp_path, name, jobs):
    out = run_cli("sweep", name, "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{jobs} jobs in '{name}'" in out.stdout
