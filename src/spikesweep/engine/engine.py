"""The Engine: steps, evaluates, checkpoints and resumes one run. It names no metric and no model.

What a problem means (targets, loss, metrics, which epoch is best) is the task's; what a paradigm beyond
BPTT changes (its loss, its own backward or update rule) is the method's; both plug in through the
declarations in `spikesweep.protocols`. Neuron state is reset after every batch, so batches are
independent samples, as in every recipe we reproduce.
"""

import logging
import math
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from spikesweep import IMPORTED_AT
from spikesweep.engine import checkpoint as ckpt
from spikesweep.engine.bn_fold import fold_batchnorm
from spikesweep.engine.compile_policy import CompilePolicy
from spikesweep.engine.data_loading import hold_out, make_eval_loader, make_loaders, progress
from spikesweep.engine.devices import resolve_amp
from spikesweep.engine.distributed import DistInfo, ProcessGroupSync, broadcast_flag, share_rank0_buffers
from spikesweep.engine.failures import NonFiniteLossError, worker_deaths_reported
from spikesweep.engine.optim import build_optimizer, build_scheduler, load_optimizer_state, resolve_lr
from spikesweep.engine.recompute import enable_block_recompute
from spikesweep.metrics import EnergyMonitor
from spikesweep.protocols import EditsGradients, EpochScheduled, OwnsBackward, Sync, Task, TrainingMethod
from spikesweep.spiking import reset_states
from spikesweep.tracking import Tracker

log = logging.getLogger("spikesweep.engine")


@dataclass
class FitResult:
    status: str  # completed | preempted (a mid-epoch checkpoint is saved; run again to resume)
    epochs_done: int
    final: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)
    steps: int = 0  # optimizer steps taken by this call (a resumed run does not count the steps it skipped)
    first_step_s: float | None = None  # from the process's start (spikesweep's import) to its first optimizer step


def evaluate(
    model: nn.Module, loader: DataLoader, task: Task, device: torch.device, amp: torch.dtype | None, sync: Sync,
    fold_bn: bool = False,
) -> tuple[dict[str, float], dict[str, float]]:
    """The task's metrics (keys without split prefix) over the whole split, all ranks combined, and the
    spiking activity: mean firing rate, energy and synaptic operations per sample, and NeuroBench's hardware
    metrics (footprint, connection and activation sparsity, dense and effective MACs/ACs per sample).

    Firing rate and energy are measured on this process's shard (the model is the same on every rank).
    With `fold_bn` a copy with BatchNorms folded into the layers before them is evaluated (same outputs, less
    work); the model passed in, DDP-wrapped or not, keeps its weights and statistics.
    """
    if fold_bn:
        model, _ = fold_batchnorm(model.module if isinstance(model, DistributedDataParallel) else model)
    model.eval()
    monitor = EnergyMonitor(model)
    meter = task.meter()
    autocast = torch.autocast(device.type, dtype=amp) if amp else nullcontext()
    with torch.inference_mode(), autocast, worker_deaths_reported("evaluation"):
        for batch in progress(loader, len(loader), "eval"):
            x, targets, _ = task.batch_to(batch, device, train=False)
            outputs = task.outputs(model(x))
            reset_states(model)
            meter.update(outputs, targets)
    monitor.remove()
    activity: dict[str, float] = {}
    report = monitor.report()
    # Over every rank's shard (each rank's report averages its own samples): unconditional, so that a rank
    # with an empty shard still takes part in the reduction.
    spikes, counted, energy, sops, samples, nonzero, dense, eff_macs, eff_acs = sync.sum(torch.tensor(
        [sum(monitor.spike_sums.values()), sum(monitor.spike_counts.values()), report.energy_mj * report.samples,
         report.sops * report.samples, report.samples, sum(monitor.nonzero.values()),
         report.dense_macs * report.samples, report.effective_macs * report.samples,
         report.effective_acs * report.samples], dtype=torch.float64)).tolist()
    if counted:
        activity = {"firing_rate": spikes / counted, "energy_mj": energy / samples, "sops_g": sops / samples / 1e9,
                    "activation_sparsity": 1 - nonzero / counted}
    if samples:  # NeuroBench's (metrics/energy.py): footprint and weights are the same on every rank
        activity |= {"footprint_bytes": report.footprint_bytes, "dense_macs": dense / samples,
                     "effective_macs": eff_macs / samples, "effective_acs": eff_acs / samples}
        if report.connection_sparsity is not None:
            activity["connection_sparsity"] = report.connection_sparsity
    return meter.compute(sync), activity


class Engine:
    """Trains `model` for `trainer.epochs` on a task, evaluating and checkpointing every epoch.

    `checkpoint_extra` (config, tracker id, model name) goes into every checkpoint so a restarted job
    carries on the same run. `stop_requested` is asked after every optimizer step (any rank saying yes
    stops all): the engine then saves a mid-epoch checkpoint and returns "preempted". `stop_after_epoch` is
    asked after each epoch's checkpoint (a search's pruner decides there): yes ends the run at that epoch
    boundary, also as "preempted". Two hooks, so that a preemption is always caught mid-epoch, after a step.
    """

    def __init__(
        self, model: nn.Module, task: Task, cfg: Mapping[str, Any], run_dir: Path, tracker: Tracker,
        dist: DistInfo, device: torch.device, seed: int, method: TrainingMethod | None = None,
        checkpoint_extra: Mapping[str, Any] | None = None, stop_requested: Callable[[], bool] | None = None,
        stop_after_epoch: Callable[[], bool] | None = None,
    ) -> None:
        self.model, self.task, self.method, self.cfg = model, task, method, cfg
        self.tcfg = cfg["trainer"]
        self.run_dir, self.tracker, self.dist, self.device, self.seed = run_dir, tracker, dist, device, seed
        self.checkpoint_extra = dict(checkpoint_extra or {})
        self.stop_requested, self.stop_after_epoch = stop_requested, stop_after_epoch
        self.amp = resolve_amp(self.tcfg["amp"], device)
        self.sync = ProcessGroupSync(dist, device)
        self.fold_bn = bool(self.tcfg["fold_bn_eval"])
        self.last_path = run_dir / "checkpoints" / "last.pt"

    # --- evaluation -------------------------------------------------------------------------------------
    def evaluate(self, loader: DataLoader, model: nn.Module | None = None) -> tuple[dict[str, float], dict[str, float]]:
        """The task's metrics on `loader` (keys without split prefix) and the spiking activity."""
        return evaluate(model if model is not None else self.model.to(self.device), loader, self.task,
                        self.device, self.amp, self.sync, self.fold_bn)

    def eval_loader(self, data: Dataset) -> DataLoader:
        return make_eval_loader(data, self.tcfg, self.dist, self.device, self.task.collate())

    # --- training ---------------------------------------------------------------------------------------
    def fit(self, train_set: Dataset, test_set: Dataset, resume: Mapping[str, Any] | None) -> FitResult:
        """`resume` is a loaded last.pt (or None): the run continues where it stopped, batch for batch."""
        self._set_up(train_set, test_set)
        if resume is not None:
            self._resume(resume)
        net = DistributedDataParallel(self.model) if self.dist.enabled else self.model
        self.net = torch.compile(net) if self.tcfg["compile"] is True else net
        steps_to_come = (self.epochs - self.start_epoch) * self.steps_per_epoch - self.start_step
        self.compile_policy = CompilePolicy(self.tcfg["compile"], steps_to_come,
                                            lambda pays: broadcast_flag(pays, self.dist))
        if resume is not None:
            ckpt.set_rng_state(resume["rng"])  # last before the loop, so set-up (attach, compile) cannot shift it
        try:
            return self._epochs()
        finally:
            self.compile_policy.close()

    def _epochs(self) -> FitResult:
        for epoch in range(self.start_epoch, self.epochs):
            if not self._train_epoch(epoch):
                return FitResult("preempted", epoch, self.final, self.best, self.steps_taken, self.first_step_s)
            with worker_deaths_reported("the end of an epoch"):  # the handler can fire while a checkpoint is written
                self._end_epoch(epoch)
            if epoch + 1 < self.epochs and self._asked_to_stop(self.stop_after_epoch):
                return FitResult("preempted", epoch + 1, self.final, self.best, self.steps_taken, self.first_step_s)
        return FitResult("completed", self.epochs, self.final, self.best, self.steps_taken, self.first_step_s)

    def _asked_to_stop(self, hook: Callable[[], bool] | None) -> bool:
        # Every rank takes part in the vote, with or without a hook of its own (a search's pruner lives on rank 0
        # only): any rank saying yes stops all, and none waits in a collective the others skipped.
        return broadcast_flag(hook is not None and bool(hook()), self.dist)

    def _set_up(self, train_set: Dataset, test_set: Dataset) -> None:
        tcfg, model, dist = self.tcfg, self.model, self.dist
        train_set, val_set = hold_out(train_set, float(tcfg["val_fraction"]))
        collate = self.task.collate()
        self.train_loader, self.test_loader = make_loaders(train_set, test_set, tcfg, dist, self.seed, self.device,
                                                           collate)
        self.val_loader = None if val_set is None else self.eval_loader(val_set)
        self.select_on = f"{'test' if val_set is None else 'val'}_{self.task.best_metric}"
        self.steps_per_epoch = len(self.train_loader)
        if tcfg["max_steps_per_epoch"]:
            self.steps_per_epoch = min(self.steps_per_epoch, int(tcfg["max_steps_per_epoch"]))
        model.to(self.device)
        if dist.enabled:
            log.info("distributed: rank %d of world size %d on %s", dist.rank, dist.world_size, self.device)
        if tcfg["channels_last"] and self.device.type == "cuda":
            model.to(memory_format=torch.channels_last)
        if tcfg["checkpoint_activations"] == "blocks":
            log.info("recomputing activations of %d blocks in backward", enable_block_recompute(model))
        if self.method is not None:
            self.method.attach(model, self.device)
        lr = resolve_lr(self.cfg["optimizer"], int(tcfg["batch_size"]) * dist.world_size)
        self.optimizer = build_optimizer(model, self.cfg["optimizer"], lr)
        self.epochs = int(tcfg["epochs"])
        self.scheduler = build_scheduler(self.optimizer, self.cfg["scheduler"], self.epochs, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp is torch.float16)
        self.ema = None
        if tcfg["ema"]["enabled"]:
            from timm.utils import ModelEmaV3  # only runs with EMA import timm (a second of startup: engine/optim.py)

            self.ema = ModelEmaV3(model, decay=float(tcfg["ema"]["decay"]))
        worst = -math.inf if self.task.higher_is_better else math.inf
        self.start_epoch, self.start_step = 0, 0
        self.best: dict[str, Any] = {self.select_on: worst, self._on_test_key: worst}
        self.final: dict[str, float] = {}
        self.partial: dict[str, Any] | None = None  # the epoch so far, when resumed mid-epoch
        self.data_order = {"seed": self.seed, "world_size": dist.world_size, "batch_size": int(tcfg["batch_size"])}
        self.steps_taken, self.first_step_s = 0, None

    @property
    def _on_test_key(self) -> str:
        return f"test_{self.task.best_metric}_on_test"

    def _resume(self, resume: Mapping[str, Any]) -> None:
        ckpt.load_model_weights(self.model, resume, self.last_path)
        saved_groups = resume["optimizer"]["param_groups"]
        if {k for g in saved_groups for k in g} != {k for g in self.optimizer.param_groups for k in g}:
            raise ckpt.CheckpointError(
                f"cannot resume: the optimizer state in {self.last_path} was written by another optimizer "
                f"than optimizer={self.cfg['optimizer']['name']}"
            )
        load_optimizer_state(self.optimizer, resume["optimizer"])
        self.scaler.load_state_dict(resume["scaler"])
        if self.ema is not None and resume.get("ema") is not None:
            self.ema.module.load_state_dict(resume["ema"])
        self.start_epoch, self.start_step = ckpt.resume_point(resume)
        self.best, self.final = dict(resume["best"]), dict(resume["metrics"])
        if self.start_step:
            _check_data_order(resume.get("data_order"), self.data_order, self.last_path)
            self.partial = dict(resume["train_partial"])
        log.info(
            "resuming from epoch %d%s (best %s so far %.2f)", self.start_epoch,
            f", step {self.start_step} of {self.steps_per_epoch}" if self.start_step else "", self.select_on,
            self.best.get(self.select_on, math.nan),
        )

    def _checkpoint_state(self, epoch: int, step_in_epoch: int | None, train_partial: dict | None) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            # for inspection: the schedule is a function of the step, so a resume recomputes it from the
            # config (a changed lr applies) instead of loading this
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,  # None: epoch finished; n: n steps of `epoch` done (mid-epoch)
            "train_partial": train_partial,
            "data_order": self.data_order,
            "best": self.best,
            "metrics": self.final,
            "rng": ckpt.rng_state(),
            **self.checkpoint_extra,
        }

    def _train_epoch(self, epoch: int) -> bool:
        """One epoch of optimizer steps; False when a stop was requested (a mid-epoch checkpoint is saved)."""
        model, net, loader, task = self.model, self.net, self.train_loader, self.task
        if isinstance(model, EpochScheduled):
            model.set_epoch(epoch)
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        else:
            loader.generator.manual_seed(self.seed * 100_003 + epoch)  # same order whether resumed or not
        task.start_epoch(epoch, self.seed)
        net.train()
        skip = self.start_step if epoch == self.start_epoch else 0
        loader.batch_sampler.skip_next_pass(skip)
        meter, time_before = task.meter(), 0.0
        if skip and self.partial is not None:
            meter.load_state(self.partial["meter"])
            time_before = self.partial["train_time"]
        t0 = time.perf_counter()
        with worker_deaths_reported("training"):
            for step, batch in enumerate(progress(loader, self.steps_per_epoch - skip, f"epoch {epoch}"), start=skip):
                if step >= self.steps_per_epoch:
                    break
                x, targets, outputs, loss = self._step(batch, epoch, step)
                meter.update(outputs, targets, loss)
                if self._asked_to_stop(self.stop_requested):
                    so_far = {"seen": meter.samples, "meter": meter.state(),
                              "train_time": time_before + time.perf_counter() - t0}
                    if self.dist.is_main:
                        ckpt.save_atomic(self._checkpoint_state(epoch, step + 1, so_far), self.last_path)
                    log.warning("preempted: saved a mid-epoch checkpoint at epoch %d, step %d of %d",
                                epoch, step + 1, self.steps_per_epoch)
                    return False
        train_time = time_before + time.perf_counter() - t0
        self.train_metrics = {f"train_{k}": v for k, v in meter.compute(_LOCAL).items()}
        self.train_time, self.samples_seen = train_time, meter.samples
        return True

    def _step(self, batch: Any, epoch: int, step: int) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
        """One optimizer step; returns the inputs, the metric targets, the outputs and the loss (detached)."""
        task, method, scaler, optimizer = self.task, self.method, self.scaler, self.optimizer
        self.compile_policy.before_step()
        x, targets, loss_targets = task.batch_to(batch, self.device, train=True)
        optimizer.zero_grad(set_to_none=True)
        autocast = (lambda: torch.autocast(self.device.type, dtype=self.amp)) if self.amp else nullcontext
        if isinstance(method, OwnsBackward):
            outputs, loss = method.forward_backward(x, loss_targets, task.loss, autocast,
                                                    lambda loss_part: scaler.scale(loss_part).backward())
        else:
            with autocast():
                outputs = task.outputs(self.net(x))
                loss = task.loss(outputs, loss_targets)
                if method is not None:
                    loss = method.loss(x, outputs, loss, loss_targets)
            scaler.scale(loss).backward()
        if broadcast_flag(not torch.isfinite(loss).item(), self.dist):  # before any weight changes
            raise NonFiniteLossError(f"loss became {loss.item()} at epoch {epoch}, step {step}")
        grad_clip = self.tcfg["grad_clip"]
        edits_gradients = isinstance(method, EditsGradients)
        if grad_clip or edits_gradients:
            scaler.unscale_(optimizer)  # a method's own updates must not be divided by the loss scale
        if grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), float(grad_clip))
        if edits_gradients:
            method.before_step(self.model)
        scaler.step(optimizer)
        scaler.update()
        reset_states(self.net)
        if self.ema is not None:
            self.ema.update(self.model)
        if self.scheduler is not None:
            self.scheduler.step_update(epoch * self.steps_per_epoch + step + 1)
        self.steps_taken += 1
        if self.first_step_s is None:
            self.first_step_s = time.time() - IMPORTED_AT
        self.net = self.compile_policy.after_step(self.net)
        return x, targets, outputs.detach(), loss.detach()

    def _end_epoch(self, epoch: int) -> None:
        """Evaluate, pick the best epoch, log, checkpoint."""
        share_rank0_buffers(self.model, self.dist)  # every rank evaluates the model rank 0 checkpoints
        if self.ema is not None:
            share_rank0_buffers(self.ema.module, self.dist)
        metric = self.task.best_metric
        metrics = {"lr": self.optimizer.param_groups[0]["lr"], **self.train_metrics,
                   "samples_per_s": self.samples_seen * self.dist.world_size / self.train_time,
                   "epoch_time_s": self.train_time}
        # Evaluation runs the eager model, also under trainer.compile: the activity hooks read every layer's
        # output on the host, which would split a compiled graph at every layer and recompile it per shape.
        on_test, activity = self.evaluate(self.test_loader)
        metrics |= {f"test_{k}": v for k, v in on_test.items()} | activity
        if self.val_loader is not None:
            metrics |= {f"val_{k}": v for k, v in self.evaluate(self.val_loader)[0].items()}
        if self.ema is not None:
            metrics[f"ema_{metric}"] = self.evaluate(self.test_loader, self.ema.module)[0][metric]
        self.best = self._update_best(metrics, epoch)
        improved = self.best.get("epoch") == epoch
        self.final = metrics
        if self.dist.is_main:
            state = self._checkpoint_state(epoch, None, None)
            self.tracker.log(metrics, epoch)  # after the metrics exist, before the checkpoint names them done
            ckpt.save_atomic(state, self.last_path)
            if improved:
                ckpt.save_atomic(state, self.run_dir / "checkpoints" / "best.pt")
            log.info("epoch %d/%d  %s  %.0f samples/s", epoch + 1, self.epochs, self.task.epoch_line(metrics),
                     metrics["samples_per_s"])

    def _update_best(self, metrics: dict[str, float], epoch: int) -> dict[str, Any]:
        """The epoch with the best `select_on` (the val metric when a split is held out, else the test one),
        with its test and val metrics. `test_<metric>_on_test` is the best test value of any epoch: picking
        the epoch on the test set, as some upstream code does; kept for comparison, optimistic by construction."""
        higher = self.task.higher_is_better
        worst = -math.inf if higher else math.inf
        is_better = (lambda new, old: new > old) if higher else (lambda new, old: new < old)
        test_value = metrics[f"test_{self.task.best_metric}"]
        on_test = self.best.get(self._on_test_key, worst)
        best = self.best
        if is_better(metrics[self.select_on], best.get(self.select_on, worst)):
            best = {k: v for k, v in metrics.items() if k.startswith(("test_", "val_"))}
            best |= {"epoch": epoch, "selected_by": self.select_on}
        return best | {self._on_test_key: test_value if is_better(test_value, on_test) else on_test}


class _LocalSync:
    """Training metrics are this process's own, as they always were: no collective per epoch."""

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        return values

    def gather(self, obj: Any) -> list[Any]:
        return [obj]


_LOCAL = _LocalSync()


def _check_data_order(saved: Mapping[str, Any] | None, current: Mapping[str, Any], source: Path) -> None:
    """A mid-epoch resume skips the batches already done: only sound if they are drawn in the same order."""
    changed = [f"{k} {saved.get(k)} -> {current[k]}" for k in current if saved and saved.get(k) != current[k]]
    if saved is None or changed:
        raise ckpt.CheckpointError(
            f"cannot resume the mid-epoch checkpoint {source}: its batches were drawn with another "
            f"{', '.join(changed) or 'data order'}; restore those settings or delete it to restart"
        )
