"""The training loop: set-up, epochs, evaluation, checkpoints, resume. Paper-agnostic by design.

Models take a batch and return logits [T, B, K]; the loss is taken on the mean over T. Neuron state is
reset after every batch, so batches are independent samples as in every recipe we reproduce.
"""

import itertools
import logging
import math
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from timm.utils import ModelEmaV3
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, RandomSampler, Subset

from spikesweep import IMPORTED_AT
from spikesweep.engine import checkpoint as ckpt
from spikesweep.engine.bn_fold import fold_batchnorm
from spikesweep.engine.distributed import DistInfo, all_reduce_sum, broadcast_flag
from spikesweep.engine.optim import build_optimizer, build_scheduler, load_optimizer_state, resolve_lr
from spikesweep.engine.recompute import enable_block_recompute
from spikesweep.metrics import EnergyMonitor, topk_correct
from spikesweep.spiking import reset_states
from spikesweep.tracking import Tracker

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stops and keeps its last good checkpoint."""


class DataWorkerError(Exception):
    """A DataLoader worker process died (OOM killer, a signal, a crash in native decoding code)."""


@contextmanager
def worker_deaths_reported(where: str):
    """Turn torch's 'DataLoader worker ... exited unexpectedly' into one actionable line.

    torch raises it from its SIGCHLD handler, so anywhere in the main thread (mid-step as well as in
    `next(loader)`): the whole phase is wrapped. The usual cause on a shared node is the kernel's OOM
    killer, so the message says what to lower.
    """
    try:
        yield
    except RuntimeError as err:
        if "DataLoader worker" not in str(err):
            raise
        # The run is ending: without this, torch's SIGCHLD handler raises again (as "Exception ignored"
        # noise) for each further dead worker while the loaders shut down.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        raise DataWorkerError(
            f"a data loader worker died during {where} ({str(err).splitlines()[0]}); if it ran out of memory, "
            "lower trainer.num_workers or trainer.batch_size"
        ) from err


class TrainingMethod(Protocol):
    """A training paradigm beyond plain BPTT (e.g. distillation), from the `method` config group.

    More hooks are optional (looked up with getattr, so a method only writes what it needs):
    `forward_backward(x, target, criterion, autocast, backward) -> (logits, loss)`, which takes over a
    batch's forward and backward (online training back-propagates every time step on its own);
    `before_step(model)`, called after backward (gradients unscaled and clipped) and before the optimizer
    step, for rules that make their own updates (STDP); and, in run.py,
    `after_fit(model, train_set, test_set, run_dir) -> dict`, called once on the trained (or evaluated)
    model, whose result is stored under the method's name in summary.json (ANN -> SNN conversion).
    """

    def attach(self, model: nn.Module, device: torch.device) -> None:
        """Called once, after the model is on its device and before the optimizer is built: parameters it
        takes out of autograd (requires_grad=False) stay out of the optimizer."""

    def loss(self, x: torch.Tensor, logits: torch.Tensor, loss: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss to minimise, given the batch, the model's T-mean logits, the engine's loss on them and the
        target it used (class indices, or soft labels under mixup)."""


@dataclass
class FitResult:
    status: str  # completed | preempted (a mid-epoch checkpoint is saved; run again to resume)
    epochs_done: int
    final: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)
    steps: int = 0  # optimizer steps taken by this call (a resumed run does not count the steps it skipped)
    first_step_s: float | None = None  # from the process's start (spikesweep's import) to its first optimizer step


class ResumableBatchSampler(BatchSampler):
    """A BatchSampler whose next pass can start part-way: a mid-epoch resume skips the batches already trained
    on by drawing the epoch's full index order and dropping its head, without loading any sample."""

    def __init__(self, sampler, batch_size: int, drop_last: bool) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self._skip = 0

    def skip_next_pass(self, batches: int) -> None:
        self._skip = batches

    def __iter__(self) -> Iterator[list[int]]:
        skip, self._skip = self._skip, 0
        return itertools.islice(super().__iter__(), skip, None)


def resolve_device(requested: str, dist: DistInfo) -> torch.device:
    if requested == "auto":
        return torch.device(f"cuda:{dist.local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"trainer.device={requested} but CUDA is not available on this machine")
    return device


def resolve_amp(requested: str, device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU supports it, fp16 otherwise; never on CPU unless asked (it is slower there)."""
    if requested == "off" or (requested == "auto" and device.type != "cuda"):
        return None
    if requested == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[requested]


def make_loaders(
    train: Dataset, test: Dataset, cfg: Mapping[str, Any], dist: DistInfo, seed: int, device: torch.device
) -> tuple[DataLoader, DataLoader]:
    per_rank = int(cfg["batch_size"])
    if per_rank * dist.world_size > len(train):
        raise ValueError(
            f"trainer.batch_size={per_rank} x {dist.world_size} process(es) exceeds the training set "
            f"({len(train)} samples)"
        )
    generator = torch.Generator().manual_seed(seed)
    sampler = (
        DistributedSampler(train, shuffle=True, seed=seed, drop_last=True)
        if dist.enabled
        else RandomSampler(train, generator=generator)  # what DataLoader(shuffle=True) builds: the same order
    )
    train_loader = DataLoader(
        train,
        # drop_last: fixed shapes, no recompiles, no odd-sized batch for mixup
        batch_sampler=ResumableBatchSampler(sampler, per_rank, drop_last=True),
        generator=generator,
        **_loader_options(cfg, device),
    )
    return train_loader, make_eval_loader(test, cfg, dist, device)


def _loader_options(cfg: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    workers = int(cfg["num_workers"])
    return dict(num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0)


def make_eval_loader(data: Dataset, cfg: Mapping[str, Any], dist: DistInfo, device: torch.device) -> DataLoader:
    # Shard evaluation without padding so distributed accuracy counts every sample exactly once.
    indices = list(range(dist.rank, len(data), dist.world_size)) if cfg["dist_eval"] else None
    return DataLoader(data, batch_size=int(cfg["eval_batch_size"]), sampler=indices, **_loader_options(cfg, device))


def hold_out(train: Dataset, fraction: float) -> tuple[Dataset, Dataset | None]:
    """Split off `fraction` of the training set for model selection, the same samples in every run (fixed
    seed, independent of the run's seed) so the jobs of a sweep are selected on one validation set."""
    if fraction <= 0:
        return train, None
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).tolist()
    n_val = round(fraction * len(train))
    if not 0 < n_val < len(train):
        raise ValueError(f"trainer.val_fraction={fraction} leaves no validation or no training sample "
                         f"of the {len(train)} training samples")
    return Subset(train, sorted(order[n_val:])), Subset(train, sorted(order[:n_val]))


def _progress(iterable, total: int, description: str):
    """A progress bar on a terminal, nothing when output goes to a log file."""
    if not sys.stderr.isatty():
        return iterable
    from rich.progress import track

    return track(iterable, total=total, description=description, transient=True)


def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    amp: torch.dtype | None,
    dist: DistInfo,
    fold_bn: bool = False,
) -> dict[str, float]:
    """Loss, top-1/top-5, mean firing rate and energy per sample over the whole test set (all ranks combined).

    Firing rate and energy are measured on this process's shard (the model is the same on every rank).
    With `fold_bn` a copy with BatchNorms folded into the layers before them is evaluated (same logits, less
    work); the model passed in, DDP-wrapped or not, keeps its weights and statistics.
    """
    if fold_bn:
        model, _ = fold_batchnorm(model.module if isinstance(model, DistributedDataParallel) else model)
    model.eval()
    monitor = EnergyMonitor(model)
    totals = torch.zeros(4, dtype=torch.float64)  # loss sum, top1, top5, count
    autocast = torch.autocast(device.type, dtype=amp) if amp else nullcontext()
    with torch.inference_mode(), autocast, worker_deaths_reported("evaluation"):
        for x, y in _progress(loader, len(loader), "eval"):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = model(x).float().mean(0)
            reset_states(model)
            top1, top5 = topk_correct(logits, y)
            totals += torch.tensor([float(nn.functional.cross_entropy(logits, y, reduction="sum")), top1, top5, len(y)])
    monitor.remove()
    report = monitor.report()
    if dist.enabled:
        totals = all_reduce_sum(totals.to(device), dist).cpu()
    loss_sum, top1, top5, count = totals.tolist()
    out = {"test_loss": loss_sum / count, "test_top1": 100 * top1 / count, "test_top5": 100 * top5 / count}
    spikes, outputs = sum(monitor.spike_sums.values()), sum(monitor.spike_counts.values())
    if outputs:
        out["firing_rate"] = spikes / outputs
        out |= {"energy_mj": report.energy_mj, "sops_g": report.sops / 1e9}
    return out


def fit(
    model: nn.Module,
    train_set: Dataset,
    test_set: Dataset,
    num_classes: int,
    cfg: Mapping[str, Any],
    run_dir: Path,
    tracker: Tracker,
    dist: DistInfo,
    seed: int,
    checkpoint_extra: dict[str, Any],
    resume: dict[str, Any] | None,
    method: TrainingMethod | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> FitResult:
    """Train for cfg.trainer.epochs, evaluating and checkpointing every epoch.

    `resume` is a loaded last.pt; `checkpoint_extra` (config, tracker id, model name) is stored in every
    checkpoint so a restarted job carries on the same run. `stop_requested` is asked after every optimizer
    step (any rank saying yes stops all): the loop then saves a mid-epoch checkpoint and returns "preempted".
    """
    tcfg = cfg["trainer"]
    device = resolve_device(tcfg["device"], dist)
    amp = resolve_amp(tcfg["amp"], device)
    train_set, val_set = hold_out(train_set, float(tcfg.get("val_fraction") or 0.0))
    train_loader, test_loader = make_loaders(train_set, test_set, tcfg, dist, seed, device)
    val_loader = None if val_set is None else make_eval_loader(val_set, tcfg, dist, device)
    select_on = "test_top1" if val_set is None else "val_top1"
    steps_per_epoch = len(train_loader)
    if tcfg.get("max_steps_per_epoch"):
        steps_per_epoch = min(steps_per_epoch, int(tcfg["max_steps_per_epoch"]))

    model.to(device)
    if dist.enabled:
        log.info("distributed: rank %d of world size %d on %s", dist.rank, dist.world_size, device)
    if tcfg.get("channels_last") and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    if tcfg.get("checkpoint_activations", "none") == "blocks":
        log.info("recomputing activations of %d blocks in backward", enable_block_recompute(model))
    if method is not None:
        method.attach(model, device)
    lr = resolve_lr(cfg["optimizer"], int(tcfg["batch_size"]) * dist.world_size)
    optimizer = build_optimizer(model, cfg["optimizer"], lr)
    epochs = int(tcfg["epochs"])
    scheduler = build_scheduler(optimizer, cfg["scheduler"], epochs, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)
    ema = ModelEmaV3(model, decay=float(tcfg["ema"]["decay"])) if tcfg["ema"]["enabled"] else None

    start_epoch, start_step, best, final = 0, 0, {select_on: -math.inf, "test_top1_on_test": -math.inf}, {}
    partial = {"seen": 0, "loss_sum": 0.0, "correct": 0, "train_time": 0.0}  # the epoch so far, when resumed
    data_order = {"seed": seed, "world_size": dist.world_size, "batch_size": int(tcfg["batch_size"])}
    if resume is not None:
        ckpt.load_model_weights(model, resume, run_dir / "checkpoints" / "last.pt")
        saved_groups = resume["optimizer"]["param_groups"]
        if {k for g in saved_groups for k in g} != {k for g in optimizer.param_groups for k in g}:
            raise ckpt.CheckpointError(
                f"cannot resume: the optimizer state in {run_dir / 'checkpoints' / 'last.pt'} was written by "
                f"another optimizer than optimizer={cfg['optimizer']['name']}"
            )
        load_optimizer_state(optimizer, resume["optimizer"])
        scaler.load_state_dict(resume["scaler"])
        if ema is not None and resume.get("ema") is not None:
            ema.module.load_state_dict(resume["ema"])
        start_epoch, start_step = ckpt.resume_point(resume)
        best, final = dict(resume["best"]), dict(resume["metrics"])
        if start_step:
            _check_data_order(resume.get("data_order"), data_order, run_dir / "checkpoints" / "last.pt")
            partial = dict(resume["train_partial"])
        log.info(
            "resuming from epoch %d%s (best %s so far %.2f)", start_epoch,
            f", step {start_step} of {steps_per_epoch}" if start_step else "", select_on,
            best.get(select_on, math.nan),
        )

    net = DistributedDataParallel(model) if dist.enabled else model
    if tcfg["compile"]:
        net = torch.compile(net)

    mixup = _build_mixup(tcfg, num_classes)
    smoothing = float(tcfg["label_smoothing"])
    criterion = SoftTargetCrossEntropy() if mixup else nn.CrossEntropyLoss(label_smoothing=smoothing)
    fold_bn = bool(tcfg.get("fold_bn_eval")) and not tcfg["compile"]  # a fresh copy would recompile every epoch
    grad_clip = tcfg.get("grad_clip")
    before_step = getattr(method, "before_step", None)
    forward_backward = getattr(method, "forward_backward", None)
    autocast = (lambda: torch.autocast(device.type, dtype=amp)) if amp else nullcontext

    def checkpoint_state(epoch: int, step_in_epoch: int | None, train_partial: dict | None) -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            # for inspection: timm schedules are functions of the step, so a resume recomputes them from the
            # config (a changed lr applies) instead of loading this
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict(),
            "ema": ema.module.state_dict() if ema is not None else None,
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,  # None: epoch finished; n: n steps of `epoch` done (mid-epoch)
            "train_partial": train_partial,
            "data_order": data_order,
            "best": best,
            "metrics": final,
            "rng": ckpt.rng_state(),
            **checkpoint_extra,
        }

    if resume is not None:
        ckpt.set_rng_state(resume["rng"])  # last before the loop, so set-up (attach, compile) cannot shift it
    steps_taken, first_step_s = 0, None
    for epoch in range(start_epoch, epochs):
        if hasattr(model, "set_epoch"):  # schedules a model keeps itself (e.g. a kernel width); resume-safe
            model.set_epoch(epoch)
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        else:
            train_loader.generator.manual_seed(seed * 100_003 + epoch)  # same order whether resumed or not
        if mixup is not None:
            mixup.mixup_enabled = _mixup_active(tcfg["mixup"], epoch, seed)
        net.train()
        skip = start_step if epoch == start_epoch else 0
        train_loader.batch_sampler.skip_next_pass(skip)
        if not skip:
            partial = {"seen": 0, "loss_sum": 0.0, "correct": 0, "train_time": 0.0}
        t0, seen, loss_sum, correct = time.perf_counter(), partial["seen"], partial["loss_sum"], partial["correct"]
        batches = _progress(train_loader, steps_per_epoch - skip, f"epoch {epoch}")
        for step, (x, y) in enumerate(batches, start=skip):
            if step >= steps_per_epoch:
                break
            x, y, target = device_batch(x, y, device, mixup)
            optimizer.zero_grad(set_to_none=True)
            if forward_backward is not None:
                logits, loss = forward_backward(x, target, criterion, autocast, lambda l: scaler.scale(l).backward())
            else:
                with autocast():
                    logits = net(x).float().mean(0)
                    loss = criterion(logits, target)
                    if method is not None:
                        loss = method.loss(x, logits, loss, target)
                scaler.scale(loss).backward()
            if broadcast_flag(not torch.isfinite(loss).item(), dist):  # before any weight changes
                raise NonFiniteLossError(f"loss became {loss.item()} at epoch {epoch}, step {step}")
            if grad_clip or before_step:
                scaler.unscale_(optimizer)  # a method's own updates must not be divided by the loss scale
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), float(grad_clip))
            if before_step:
                before_step(model)
            scaler.step(optimizer)
            scaler.update()
            reset_states(net)
            if ema is not None:
                ema.update(model)
            if scheduler is not None:
                scheduler.step_update(epoch * steps_per_epoch + step + 1)
            seen += len(y)
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(-1) == y).sum())
            steps_taken += 1
            if first_step_s is None:
                first_step_s = time.time() - IMPORTED_AT
            if stop_requested is not None and broadcast_flag(stop_requested(), dist):
                so_far = {"seen": seen, "loss_sum": loss_sum, "correct": correct,
                          "train_time": partial["train_time"] + time.perf_counter() - t0}
                if dist.is_main:
                    ckpt.save_atomic(checkpoint_state(epoch, step + 1, so_far), run_dir / "checkpoints" / "last.pt")
                log.warning("preempted: saved a mid-epoch checkpoint at epoch %d, step %d of %d",
                            epoch, step + 1, steps_per_epoch)
                return FitResult("preempted", epoch, final, best, steps_taken, first_step_s)
        train_time = partial["train_time"] + time.perf_counter() - t0

        metrics = {
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum / seen,
            "train_top1": 100 * correct / seen,
            "samples_per_s": seen * dist.world_size / train_time,
            "epoch_time_s": train_time,
        }
        metrics.update(evaluate(net, test_loader, device, amp, dist, fold_bn))
        if val_loader is not None:
            on_val = evaluate(net, val_loader, device, amp, dist, fold_bn)
            metrics |= {f"val_{k.removeprefix('test_')}": on_val[k] for k in ("test_loss", "test_top1", "test_top5")}
        if ema is not None:
            metrics["ema_top1"] = evaluate(ema.module, test_loader, device, amp, dist, fold_bn)["test_top1"]
        best = _update_best(best, metrics, epoch, select_on)
        improved = best.get("epoch") == epoch
        final = metrics
        if dist.is_main:
            state = checkpoint_state(epoch, None, None)
            tracker.log(metrics, epoch)  # after the metrics exist, before the checkpoint names them done
            ckpt.save_atomic(state, run_dir / "checkpoints" / "last.pt")
            if improved:
                ckpt.save_atomic(state, run_dir / "checkpoints" / "best.pt")
            log.info(
                "epoch %d/%d  loss %.4f  train %.2f%%  test %.2f%%  %.0f samples/s",
                epoch + 1, epochs, metrics["train_loss"], metrics["train_top1"], metrics["test_top1"],
                metrics["samples_per_s"],
            )
    return FitResult(status="completed", epochs_done=epochs, final=final, best=best, steps=steps_taken,
                     first_step_s=first_step_s)


def _check_data_order(saved: Mapping[str, Any] | None, current: Mapping[str, Any], source: Path) -> None:
    """A mid-epoch resume skips the batches already done: only sound if they are drawn in the same order."""
    changed = [f"{k} {saved.get(k)} -> {current[k]}" for k in current if saved and saved.get(k) != current[k]]
    if saved is None or changed:
        raise ckpt.CheckpointError(
            f"cannot resume the mid-epoch checkpoint {source}: its batches were drawn with another "
            f"{', '.join(changed) or 'data order'}; restore those settings or delete it to restart"
        )


def _update_best(best: dict[str, Any], metrics: dict[str, float], epoch: int, select_on: str) -> dict[str, Any]:
    """The epoch with the highest `select_on` (val_top1 when a split is held out, else test_top1), with its
    test and val metrics. `test_top1_on_test` is the best test top-1 of any epoch: picking the epoch on the
    test set, as some upstream code does; kept for comparison, optimistic by construction."""
    on_test = max(best.get("test_top1_on_test", -math.inf), metrics["test_top1"])
    if metrics[select_on] > best.get(select_on, -math.inf):
        best = {k: v for k, v in metrics.items() if k.startswith(("test_", "val_"))}
        best |= {"epoch": epoch, "selected_by": select_on}
    return best | {"test_top1_on_test": on_test}


def device_batch(
    x: torch.Tensor, y: torch.Tensor, device: torch.device, mixup: Mixup | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch on the device, mixed there: timm's Mixup/CutMix are plain tensor ops, so on a GPU they run
    on the GPU rather than in the main process's CPU time. Returns inputs, class labels and the target
    (soft labels under mixup, else the labels)."""
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    if mixup is None:
        return x, y, y
    x, target = mixup(x, y)
    return x, y, target


def _mixup_active(m: Mapping[str, Any], epoch: int, seed: int) -> bool:
    """Off from off_epoch on; with per_epoch, one draw of probability `prob` decides the whole epoch.

    The per-epoch draw is seeded by (seed, epoch), so a resumed run makes the same choices.
    """
    if m["off_epoch"] is not None and epoch >= int(m["off_epoch"]):
        return False
    return not m.get("per_epoch") or random.Random(seed * 100_003 + epoch).random() < float(m["prob"])


def _build_mixup(tcfg: Mapping[str, Any], num_classes: int) -> Mixup | None:
    m = tcfg["mixup"]
    if not (m["mixup_alpha"] > 0 or m["cutmix_alpha"] > 0):
        return None
    return Mixup(
        mixup_alpha=float(m["mixup_alpha"]),
        cutmix_alpha=float(m["cutmix_alpha"]),
        prob=1.0 if m.get("per_epoch") else float(m["prob"]),  # per_epoch: `prob` is spent on the epoch draw
        switch_prob=float(m["switch_prob"]),
        mode=m["mode"],
        label_smoothing=float(tcfg["label_smoothing"]),
        num_classes=num_classes,
    )
