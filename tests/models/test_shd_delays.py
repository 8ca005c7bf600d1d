"""Learnable delays: the kernel, integer delays at eval, the sigma schedule, the engine hooks in a real fit."""

import math

import pytest
import torch
from torch.utils.data import TensorDataset

from spikesweep.data.registry import DatasetMeta
from spikesweep.engine.distributed import DistInfo
from spikesweep.engine.engine import Engine
from spikesweep.tasks.classification import Classification
from spikesweep.engine.optim import build_optimizer, build_scheduler
from spikesweep.models.shd import DelayedLinear
from spikesweep.tracking import NullTracker
from tests.conftest import compose
from tests.models.helpers import build, compose_recipe, recipe_model, train_step

META = DatasetMeta(num_classes=3, input_shape=(8,), time_steps=6, temporal=True)
TINY = {"hidden": 8, "max_delay": 4, "sigma_epochs": 2}


def _impulse_response(delay: float, training: bool, sigma: float = 1.0) -> torch.Tensor:
    syn = DelayedLinear(1, 1, max_delay=6, sigma=sigma).train(training)
    with torch.no_grad():
        syn.weight.fill_(2.0)
        syn.delay.fill_(delay)
    x = torch.zeros(8, 1, 1)
    x[0] = 1.0
    return syn(x).flatten()


def test_eval_rounds_each_delay_to_one_integer_tap():
    assert torch.equal(_impulse_response(2.4, training=False), torch.tensor([0, 0, 2.0, 0, 0, 0, 0, 0]))


def test_training_spreads_the_weight_as_a_gaussian_around_the_delay():
    out = _impulse_response(2.4, training=True)
    assert math.isclose(out.sum().item(), 2.0, rel_tol=1e-5)  # normalised kernel keeps the weight
    assert out.argmax().item() == 2 and out[6:].abs().sum() == 0  # causal: nothing beyond max_delay - 1


def test_delays_get_gradients_and_stay_in_range():
    syn = DelayedLinear(3, 2, max_delay=4, sigma=1.0)
    syn(torch.randn(5, 2, 3)).square().sum().backward()
    assert syn.delay.grad is not None and syn.delay.grad.abs().sum() > 0
    with torch.no_grad():
        syn.delay.add_(100.0)
    syn(torch.randn(5, 2, 3))
    assert torch.all(syn.delay == 3)


def test_sigma_decays_from_12_to_0_23_by_epoch_37_then_stays():
    model = build("shd_delays", META)
    model.set_epoch(0)
    assert all(m.sigma.item() == pytest.approx(12.0) for m in model.delayed_layers())
    assert model.sigma_at(37) == pytest.approx(0.23) and model.sigma_at(149) == pytest.approx(0.23)
    assert 0.23 < model.sigma_at(18) < 12.0


def test_trains_one_step_and_reads_out_summed_probabilities():
    torch.manual_seed(0)
    model = build("shd_delays", META, **TINY)
    logits = train_step(model, torch.rand(2, 6, 8), META.num_classes)
    assert logits.shape == (6, 2, 3)
    assert torch.allclose(logits.mean(0).sum(-1), torch.full((2,), 6.0))  # sum over 6 steps of softmax


def test_delays_learn_in_their_own_group_and_follow_the_schedule():
    model = build("shd_delays", META, **TINY, position_lr=0.1)
    cfg = compose("optimizer=adamw", "optimizer.lr=1e-3", "optimizer.weight_decay=1e-5", "scheduler=cosine")
    opt = build_optimizer(model, cfg.optimizer, 1e-3)
    assert len(opt.param_groups) == 3  # decayed weights, 1-D params without decay, delays
    delays = opt.param_groups[-1]
    assert [id(p) for p in delays["params"]] == [id(m.delay) for m in model.delayed_layers()]
    assert delays["lr"] == 0.1 and delays["weight_decay"] == 0.0
    sched = build_scheduler(opt, cfg.scheduler, epochs=2, updates_per_epoch=2)
    sched.step_update(2)
    assert delays["lr"] < 0.1 and delays["lr"] / opt.param_groups[0]["lr"] == pytest.approx(100.0)


def test_a_real_fit_calls_the_epoch_hook(tmp_path):
    torch.manual_seed(0)
    model = build("shd_delays", META, **TINY)
    data = TensorDataset(torch.rand(8, 6, 8), torch.arange(8) % 3)
    cfg = compose("trainer.epochs=2", "trainer.batch_size=4", "trainer.device=cpu", "logger=none")
    engine = Engine(model, Classification(3), cfg, tmp_path, NullTracker(), DistInfo(), torch.device("cpu"), seed=0)
    result = engine.fit(data, data, resume=None)
    assert result.status == "completed"
    assert model.out.sigma.item() == pytest.approx(model.sigma_at(1))


@pytest.mark.parametrize(
    ("meta", "cfg", "message"),
    [
        (DatasetMeta(3, (1, 8, 8), 4, False), {}, "needs temporal input"),
        (META, {"readout": "max"}, "unknown readout 'max'"),
        (META, {"max_delay": 0}, "max_delay must be >= 1"),
    ],
)
def test_misuse_fails_with_one_line(meta, cfg, message):
    with pytest.raises(ValueError, match=message):
        build("shd_delays", meta, **cfg)


def test_recipe_composes_and_builds():
    cfg = compose_recipe("shd_delays")
    assert cfg.optimizer.name == "adam" and cfg.model.position_lr == 0.1 and cfg.surrogate.alpha == 5.0
    assert len(recipe_model(cfg).delayed_layers()) == 3
