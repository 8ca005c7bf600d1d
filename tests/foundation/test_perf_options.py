"""Speed and memory options change how a step is computed, never what it computes: fused/foreach optimizers,
BatchNorm folding at evaluation, activation recomputation over model blocks, mixup on the device."""

import copy
import os
import subprocess
import sys

import pytest
import torch
from spikingjelly.activation_based import layer
from timm.data import Mixup
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from spikesweep.bench.model import time_train_steps
from spikesweep.config_schema import ConfigError, validate
from spikesweep.data.digits import build_digits
from spikesweep.engine.bn_fold import fold_batchnorm
from spikesweep.engine.distributed import DistInfo
from spikesweep.engine.distributed import ProcessGroupSync
from spikesweep.engine.engine import evaluate
from spikesweep.tasks.classification import Classification, device_batch
from spikesweep.engine.optim import build_optimizer, load_optimizer_state
from spikesweep.engine.recompute import enable_block_recompute
from spikesweep.models import build_model
from spikesweep.run import train
from spikesweep.spiking import reset_states
from tests.conftest import REPO, SMOKE, compose
from tests.models.transformer_helpers import lif, meta


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))


def _trained(name: str, impl: str, steps: int = 4) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A few steps of `name` with fixed gradients (weight decay and momentum on, so every term is used)."""
    model = _net()
    cfg = {"name": name, "impl": impl, "weight_decay": 0.05}
    if name == "sgd":
        cfg["momentum"] = 0.9
    optimizer = build_optimizer(model, cfg, lr=0.01)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=generator)
        optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_fast_optimizer_paths_match_the_single_tensor_update(name, impl):
    reference, _ = _trained(name, "single")
    model, optimizer = _trained(name, impl)
    assert all(g[impl] is True for g in optimizer.param_groups)
    for p, q in zip(reference.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-7)


def test_auto_takes_torch_fused_kernel_on_cpu_and_the_step_runs_it():
    model, optimizer = _trained("adamw", "auto", steps=1)
    assert optimizer.defaults["fused"] is True and not optimizer.defaults["foreach"]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        optimizer.step()
    assert "aten::_fused_adamw_" in {e.name for e in prof.events()}


def test_single_impl_runs_the_per_tensor_loop():
    _, optimizer = _trained("adamw", "single", steps=1)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        optimizer.step()
    names = {e.name for e in prof.events()}
    assert "aten::_fused_adamw_" not in names and not any(n.startswith("aten::_foreach") for n in names)


def test_optimizer_without_fused_kernel_is_refused_by_name():
    with pytest.raises(ValueError, match="optimizer.impl=fused: timm.optim.lamb.Lamb has no fused implementation"):
        build_optimizer(_net(), {"name": "lamb", "impl": "fused"}, lr=0.01)
    assert build_optimizer(_net(), {"name": "lamb", "impl": "auto"}, lr=0.01).defaults["foreach"] is True


def test_resume_keeps_this_runs_implementation():
    _, saved = _trained("adamw", "foreach")
    model = _net()
    optimizer = build_optimizer(model, {"name": "adamw", "impl": "fused", "weight_decay": 0.05}, lr=0.01)
    load_optimizer_state(optimizer, saved.state_dict())
    assert all(g["fused"] is True and not g["foreach"] for g in optimizer.param_groups)
    assert optimizer.state_dict()["state"][0]["exp_avg"].abs().sum() > 0


def test_unknown_optimizer_impl_is_a_config_error():
    with pytest.raises(ConfigError, match="optimizer.impl='fastest' is not one of auto, foreach, fused, single"):
        validate(compose(*SMOKE, "optimizer.impl=fastest"))


def _randomise_norms(model: nn.Module) -> None:
    """Trained-looking BatchNorm statistics and affine parameters, so folding has something to fold."""
    generator = torch.Generator().manual_seed(2)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=generator) - 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=generator) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=generator) * 0.4 - 0.2)


FOLD_CASES = [
    ("small_cnn", meta(10, (3, 16, 16), 2), 2),
    ("msresnet18", meta(10, (3, 16, 16), 2), 20),  # Conv->BN pairs in nested Sequentials
    ("spikingformer_2_256", meta(10, (3, 16, 16), 2), 17),  # Conv1d/Conv2d->BN in SeqToANNContainer
    ("spiking_mlp", meta(10, (20,), 2), 2),  # Linear->BatchNorm1d in step mode m
    ("shd_delays", meta(20, (700,), 4, True), 0),  # its DelayedLinear is no plain linear: left alone
]


@pytest.mark.parametrize(("name", "dataset", "pairs"), FOLD_CASES, ids=[c[0] for c in FOLD_CASES])
def test_folded_model_gives_the_same_logits(name, dataset, pairs):
    torch.manual_seed(0)
    model = build_model({"name": name}, lif(), dataset)
    _randomise_norms(model)
    model.eval()
    x = torch.rand(2, *((dataset.time_steps,) if dataset.temporal else ()), *dataset.input_shape)
    with torch.inference_mode():
        expected = model(x)
        reset_states(model)
        folded, count = fold_batchnorm(model)
        got = folded(x)
    assert count == pairs
    assert sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules()) == \
        sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()) - pairs
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_evaluation_runs_the_folded_copy_and_leaves_training_weights_alone():
    model = build_model({"name": "small_cnn"}, lif(), meta(10, (3, 16, 16), 2))
    _randomise_norms(model)
    model.train()
    before = copy.deepcopy(model.state_dict())
    norm_calls = []
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.register_forward_hook(lambda *_: norm_calls.append(1))
    loader = DataLoader(TensorDataset(torch.rand(12, 3, 16, 16), torch.randint(0, 10, (12,))), batch_size=4)
    cpu, task = torch.device("cpu"), Classification(10)
    single = ProcessGroupSync(DistInfo(), cpu)
    folded, folded_activity = evaluate(model, loader, task, cpu, None, single, fold_bn=True)
    assert norm_calls == [] and model.training  # the norms of the model itself never ran
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    plain, plain_activity = evaluate(model, loader, task, cpu, None, single, fold_bn=False)
    assert len(norm_calls) == 2 * len(loader)
    assert folded["loss"] == pytest.approx(plain["loss"], abs=1e-5)
    assert folded_activity["firing_rate"] == pytest.approx(plain_activity["firing_rate"])


class NarrowStack(nn.Module):
    """Many narrow multi-step blocks (conv, BN, neuron, dropout): activations dwarf the parameters, so
    recomputation shows in memory; dropout and BN exercise the RNG and running-statistics handling."""

    def __init__(self, depth: int = 6, width: int = 8) -> None:
        super().__init__()
        self.stem = layer.Conv2d(3, width, 3, padding=1, step_mode="m")
        self.blocks = nn.Sequential(*(
            nn.Sequential(layer.Conv2d(width, width, 3, padding=1, bias=False, step_mode="m"),
                          layer.BatchNorm2d(width, step_mode="m"), lif()(), layer.Dropout(0.2, step_mode="m"))
            for _ in range(depth)
        ))
        self.head = layer.Linear(width, 10, step_mode="m")

    def checkpoint_blocks(self) -> list[nn.Module]:
        return list(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean((-2, -1)))


def _one_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[dict, dict]:
    """Gradients and buffers after one engine-like step (forward, loss on the T-mean, backward, reset)."""
    torch.manual_seed(3)  # the same dropout masks in both runs
    nn.functional.cross_entropy(model(x).mean(0), y).backward()
    reset_states(model)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return grads, {n: b.clone() for n, b in model.named_buffers()}


def _with_and_without_recompute(build, x: torch.Tensor, y: torch.Tensor) -> tuple[tuple, tuple]:
    torch.manual_seed(0)
    plain = build()
    recomputing = copy.deepcopy(plain)
    assert enable_block_recompute(recomputing) > 0
    return _one_step(plain, x, y), _one_step(recomputing, x, y)


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)


def test_recomputed_blocks_give_the_same_gradients_and_statistics():
    """The neurons restart from their entry state in the rerun (they would otherwise start from the state
    the first run left, and fire differently), and BatchNorm's running statistics are updated once."""
    x, y = torch.rand(4, 4, 3, 8, 8), torch.randint(0, 10, (4,))  # [T, B, C, H, W]
    (grads, buffers), (grads_r, buffers_r) = _with_and_without_recompute(NarrowStack, x, y)
    _assert_same(grads, grads_r)
    _assert_same(buffers, buffers_r)
    assert any(g.abs().sum() > 0 for k, g in grads.items() if k.startswith("blocks.0."))


def test_recompute_on_a_model_family_keeps_gradients_and_state_dict_keys():
    dataset = meta(10, (3, 16, 16), 2)
    x, y = torch.rand(2, 3, 16, 16), torch.randint(0, 10, (2,))
    (grads, buffers), (grads_r, buffers_r) = _with_and_without_recompute(
        lambda: build_model({"name": "msresnet18"}, lif(), dataset), x, y)
    _assert_same(grads, grads_r)
    _assert_same(buffers, buffers_r)


def test_recompute_lowers_peak_memory_of_a_step():
    x, y = torch.rand(4, 8, 3, 32, 32), torch.randint(0, 10, (8,))
    torch.manual_seed(0)
    plain = NarrowStack()
    recomputing = copy.deepcopy(plain)
    enable_block_recompute(recomputing)
    peaks = [time_train_steps(m, x, y, steps=1, warmup=1, amp=None).peak_mib for m in (plain, recomputing)]
    assert peaks[1] < 0.8 * peaks[0], peaks  # 6 blocks: 30 -> 22 MiB (inputs kept, one block rerun at a time)


def test_recompute_needs_a_model_that_lists_its_blocks():
    small = build_model({"name": "small_cnn"}, lif(), meta(10, (1, 8, 8), 2))
    with pytest.raises(ValueError, match="model SmallCNN does not list its blocks .* use trainer.checkpoint_activations=none"):
        enable_block_recompute(small)
    with pytest.raises(ConfigError, match="trainer.checkpoint_activations='all' is not one of none, blocks"):
        validate(compose(*SMOKE, "trainer.checkpoint_activations=all"))


def test_run_with_recompute_and_fold_trains(tmp_path):
    overrides = ["model=msresnet18", "model.encoding=direct", "trainer.checkpoint_activations=blocks",
                 "trainer.max_steps_per_epoch=1", "trainer.batch_size=4", "trainer.eval_batch_size=64"]
    summary = train(compose(*SMOKE, *overrides), tmp_path, overrides)
    assert summary["status"] == "completed" and summary["final"]["test_top1"] >= 0


class DeviceRecordingMixup(Mixup):
    """timm's Mixup, noting the device of every batch it mixes."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.devices: list[torch.device] = []

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.devices.append(x.device)
        return super().__call__(x, target)


def test_mixup_runs_on_the_device_after_the_batch_moved():
    mixup = DeviceRecordingMixup(mixup_alpha=0.8, cutmix_alpha=1.0, num_classes=10)
    target_device = torch.device("meta")  # any device but the loader's CPU shows where mixing happened
    x, y, target = device_batch(torch.rand(4, 3, 8, 8), torch.arange(4), target_device, mixup)
    assert mixup.devices == [target_device]
    assert x.device == y.device == target.device == target_device and target.shape == (4, 10)
    x, y, target = device_batch(torch.rand(4, 3, 8, 8), torch.arange(4), torch.device("cpu"), None)
    assert target is y


def _imports(code: str) -> str:
    """Run `code` in a fresh interpreter (imports are per process) and return what it prints."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    return out.stdout.strip()


def test_neurons_and_metrics_import_without_the_compiler():
    """torch.compile is set up on the compile backend's first call, not when the package is imported."""
    code = "import sys, spikesweep.spiking, spikesweep.metrics; print('torch._dynamo' in sys.modules)"
    assert _imports(code) == "False"


def test_digits_split_is_cached_identically_and_then_read_without_scikit_learn(tmp_path):
    fresh = build_digits(tmp_path / "data")
    first, again = (build_digits(tmp_path / "data", cache_dir=str(tmp_path / "cache")) for _ in range(2))
    for bundle in (first, again):
        for split in ("train", "test"):
            assert all(torch.equal(a, b) for a, b in zip(getattr(fresh, split).tensors, getattr(bundle, split).tensors))
    code = (f"import sys; from pathlib import Path; from spikesweep.data.digits import build_digits; "
            f"build_digits(Path('.'), cache_dir={str(tmp_path / 'cache')!r}); print('sklearn' in sys.modules)")
    assert _imports(code) == "False"
