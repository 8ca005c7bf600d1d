"""Is the data loader fast enough? Samples/s of the real training loader (its workers, its augmentation)
against samples/s of the model's training step on the run's device. The loader should deliver at least
twice what the step consumes, so that it never limits a GPU run.
"""

import time
from typing import Any

import torch
from omegaconf import DictConfig

from spikesweep.assemble import assemble
from spikesweep.engine.cpu_allocation import cpu_allocation
from spikesweep.engine.data_loading import make_loaders
from spikesweep.engine.devices import resolve_amp, resolve_device
from spikesweep.engine.distributed import DistInfo
from spikesweep.spiking import reset_states


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_data(cfg: DictConfig, batches: int) -> dict[str, Any]:
    """Time `batches` batches of the train loader (after its first, which starts the workers) and as many
    training steps (forward, backward, SGD update) on one batch already on the device."""
    dist = DistInfo()
    device = resolve_device(cfg.trainer.device, dist)
    parts = assemble(cfg, device)
    bundle, task = parts.data, parts.task
    loader, _ = make_loaders(bundle.train, bundle.test, cfg.trainer, dist, int(cfg.seed), device, task.collate())
    batches = min(batches, len(loader) - 1)
    if batches < 1:
        raise ValueError(f"the training set gives {len(loader)} batch(es) of {cfg.trainer.batch_size}: too few to time")
    it = iter(loader)
    x, y = next(it)  # the task's batch: inputs and targets
    started, seen = time.perf_counter(), 0
    for _ in range(batches):
        seen += len(next(it)[1])
    loader_rate = seen / (time.perf_counter() - started)

    model = parts.model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    amp = resolve_amp(cfg.trainer.amp, device)
    x, _, target = task.batch_to((x, y), device, train=True)  # mixed as in training, where configured

    def step() -> None:
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = task.loss(task.outputs(model(x)), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        reset_states(model)

    step()  # warm-up: allocations, kernel selection
    _sync(device)
    started = time.perf_counter()
    for _ in range(batches):
        step()
    _sync(device)
    step_rate = batches * len(y) / (time.perf_counter() - started)
    return {
        "dataset": cfg.dataset.name,
        "model": cfg.model.name,
        "device": str(device),
        "num_workers": cfg.trainer.num_workers if cfg.trainer.num_workers != "auto"
        else f"auto ({cpu_allocation('auto', device.type).workers})",
        "batch_size": int(cfg.trainer.batch_size),
        "batches": batches,
        "loader_samples_per_s": round(loader_rate, 1),
        "step_samples_per_s": round(step_rate, 1),
        "ratio": round(loader_rate / step_rate, 2),
    }


# The report's section 5: every dataset whose files are on this machine, each with a small model that
# takes its input (a static or event image: small_cnn; a sequence: spiking_mlp)
REPORT_DATASETS = {
    "digits": "small_cnn", "mnist": "small_cnn", "cifar10": "small_cnn", "cifar100": "small_cnn",
    "cifar10_dvs": "small_cnn", "dvs128_gesture": "small_cnn", "shd": "spiking_mlp", "ssc": "spiking_mlp",
    "seq_cifar10": "spiking_mlp",
}


def bench_datasets(batches: int = 10, datasets: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """bench_data for each dataset present under paths.data_dir (the digits are embedded); the rows, and the
    names of the datasets whose files are not here."""
    from spikesweep.compose import compose_config
    from spikesweep.data.registry import DataError

    rows, absent = [], []
    for name, model in (datasets or REPORT_DATASETS).items():
        cfg = compose_config([f"dataset={name}", f"model={model}"])  # num_workers: auto, as a run has it
        try:
            rows.append(bench_data(cfg, batches))
        except DataError:
            absent.append(name)
    return rows, absent
