"""One training run: config -> objects -> Engine.fit -> files (the Hydra entry point, jobs.py, calls it).

Everything a run writes lives in its own directory: config.yaml (resolved), overrides.yaml, git.txt,
metrics.jsonl, summary.json, checkpoints/{last,best}.pt, wandb/. Restarting a run in the same directory
continues from checkpoints/last.pt without any flag (preemption, requeue, crash). The preemption signal
(SIGUSR2, as submitit sends it) saves mid-epoch and requeues (under submitit) or exits with code 75.
"""

import json
import logging
import os
import random
import socket
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from filelock import FileLock, Timeout
from omegaconf import DictConfig, OmegaConf

from spikesweep import IMPORTED_AT, provenance, resolvers
from spikesweep.config_schema import ConfigError, validate
from spikesweep.engine import resume_policy

resolvers.register()

log = logging.getLogger("spikesweep")


class RunError(RuntimeError):
    """A failure the user can act on; reported as one line, the run marked failed."""


def seed_everything(seed: int, deterministic: bool) -> None:
    import numpy as np
    import torch  # here, not at the top: the process that only submits a sweep never loads torch (~2 s)

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def git_description() -> str:
    from spikesweep.sweeps.sweep_record import git_commit  # one git reader for runs and sweeps

    described = git_commit()
    return f"commit: {described['commit']}\ndirty: {str(described['dirty']).lower()}\n"


def where_it_ran() -> dict[str, str | None]:
    """Host and scheduler placement, for finding a run's logs and node after the fact."""
    return {
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    tmp = run_dir / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, run_dir / "summary.json")


def first_step_times(from_process: float | None, job_started: float) -> dict[str, float | None]:
    """`first_step_s` from this job's start (in a local multirun the process ran the jobs before it too);
    `first_step_from_process_s` from the process's start, what `bench startup` measures."""
    if from_process is None:
        return {"first_step_s": None, "first_step_from_process_s": None}
    return {"first_step_s": from_process + IMPORTED_AT - job_started, "first_step_from_process_s": from_process}


def run_name(cfg: DictConfig, overrides: list[str]) -> str:
    """wandb run name: the overrides that distinguish this job, else the config name."""
    shown = [o for o in overrides if not o.startswith(("hydra.", "paths.", "logger.", "+experiments", "+search.dir"))]
    return ",".join(shown) or cfg.name


def train(
    cfg: DictConfig, run_dir: Path, overrides: list[str], stop_requested: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """Run one training (or evaluation) job in `run_dir`; returns the summary written to summary.json.

    `stop_requested` (asked after every optimizer step) ends training early with a mid-epoch checkpoint and
    status "preempted"."""
    from spikesweep.assemble import assemble
    from spikesweep.engine import checkpoint as ckpt
    from spikesweep.engine.cpu_allocation import apply_threads, cpu_allocation
    from spikesweep.engine.devices import resolve_device
    from spikesweep.engine.distributed import init_distributed, shutdown_distributed
    from spikesweep.engine.engine import Engine
    from spikesweep.engine.failures import DataWorkerError, NonFiniteLossError
    from spikesweep.protocols import RunsAfterFit
    from spikesweep.tracking import JsonlTracker, NullTracker, TrackerGroup

    validate(cfg)
    dist = init_distributed()
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / ".lock")  # held by rank 0 only: the ranks of one job share the directory
    if dist.is_main:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise RunError(f"another process is already running in {run_dir}; refusing to share it") from None
    started = time.time()
    if dist.is_main:
        log.info("run directory: %s", run_dir.resolve())
    summary: dict[str, Any] = {"status": "running", "run_dir": str(run_dir), "where": where_it_ran()}
    last = run_dir / "checkpoints" / "last.pt"
    resolved = OmegaConf.to_container(cfg, resolve=True)
    try:  # before anything is written: a refused restart leaves the run directory as it was
        resume, extension = resume_policy.decide(last, resolved, bool(cfg.trainer.eval_only))
    except resume_policy.ResumeRefused:
        if lock.is_locked:
            lock.release()
        shutdown_distributed()
        raise
    extensions = resume_policy.extensions(resume, extension)
    if extensions:
        summary["extensions"] = extensions
    if dist.is_main:
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        (run_dir / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))
        (run_dir / "git.txt").write_text(git_description())
        provenance.write(run_dir)
    # One persistent compile cache for whole-model compile and the `compile` neuron backend alike, in the
    # project's cache rather than /tmp: a later run of a shape skips the compilation. Set, not defaulted:
    # importing torch's compiler already wrote its /tmp default into the environment.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(cfg.paths.cache_dir).resolve() / "inductor")
    try:
        seed_everything(int(cfg.seed), bool(cfg.trainer.deterministic))
        device = resolve_device(cfg.trainer.device, dist)  # `neuron.backend: auto` chooses for it
        allocation = cpu_allocation(cfg.trainer.num_workers, device.type)  # the loaders ask it again
        apply_threads(allocation)
        if dist.is_main:
            log.info(allocation.describe())
        parts = assemble(cfg, device)  # the method before any tracker starts
        model, method, bundle = parts.model, parts.method, parts.data
        summary |= {
            "model": cfg.model.name,
            "dataset": cfg.dataset.name,
            "params": sum(p.numel() for p in model.parameters()),
            "num_classes": parts.meta.num_classes,
            "task": parts.task.name,
            "metric": parts.task.best_metric,  # what report and compare judge this run by
            "split_hash": provenance.split_hash(bundle.train, bundle.test),
        }
        after_fit = method.after_fit if isinstance(method, RunsAfterFit) else None
        engine_args = dict(model=model, task=parts.task, cfg=cfg, run_dir=run_dir, dist=dist, device=device,
                           seed=int(cfg.seed), method=method)
        if cfg.trainer.eval_only:
            source = Path(cfg.ckpt)
            ckpt.load_model_weights(model, ckpt.load(source), source)
            engine = Engine(tracker=NullTracker(), **engine_args)
            on_test, activity = engine.evaluate(engine.eval_loader(bundle.test))
            metrics = {f"test_{k}": v for k, v in on_test.items()} | activity
            summary |= {"status": "completed", "eval_only": True, "checkpoint": str(source), "final": metrics}
            log.info("evaluated %s: %s", source, "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
            if after_fit is not None and dist.is_main:
                summary[cfg.method.name] = after_fit(model, bundle.train, bundle.test, run_dir)
            return summary
        if cfg.get("ckpt"):
            source = Path(cfg.ckpt)
            ckpt.load_model_weights(model, ckpt.load(source), source)  # fine-tune from these weights
        resume_epoch = None if resume is None else ckpt.resume_point(resume)[0] - 1  # the last finished one
        tracker = TrackerGroup(JsonlTracker(run_dir / "metrics.jsonl", resume_epoch) if dist.is_main else NullTracker())
        wandb_id = resume.get("wandb_id") if resume else None
        if dist.is_main and cfg.logger.name == "wandb":
            from spikesweep.tracking.wandb_tracker import WandbTracker, new_run_id, run_group

            wandb_id = wandb_id or new_run_id()
            try:
                tracker.optional.append(
                    WandbTracker(
                        run_dir=run_dir,
                        project=cfg.logger.project,
                        entity=cfg.logger.entity,
                        group=run_group(cfg),
                        name=run_name(cfg, overrides),
                        config=resolved,
                        run_id=wandb_id,
                        mode=cfg.logger.mode,
                        tags=list(cfg.logger.tags),
                        replay_from=run_dir / "metrics.jsonl",  # on resume: the epochs wandb lacks
                    )
                )
            except Exception as err:  # an unreachable wandb must not cost the training run
                log.error("wandb could not start, logging to metrics.jsonl only: %s", err)
        pruning = None
        if cfg.get("search") is not None and dist.is_main:  # a search's trial: report each epoch, stop when pruned
            from spikesweep.sweeps.search import TrialPruning

            pruning = TrialPruning(Path(cfg.search.dir), int(cfg.search.trial))
            tracker.optional.append(pruning)
            summary["trial"] = int(cfg.search.trial)
        extra = {"config": resolved, "wandb_id": wandb_id, "model_name": cfg.model.name, "extensions": extensions}
        status = "failed"
        try:
            engine = Engine(tracker=tracker, checkpoint_extra=extra, stop_requested=stop_requested,
                            stop_after_epoch=None if pruning is None else (lambda: pruning.pruned), **engine_args)
            result = engine.fit(bundle.train, bundle.test, resume)
            summary |= {"epochs": result.epochs_done, "final": result.final, "best": result.best,
                        "steps_this_run": result.steps, **first_step_times(result.first_step_s, started)}
            if after_fit is not None and dist.is_main and result.status == "completed":
                summary[cfg.method.name] = after_fit(model, bundle.train, bundle.test, run_dir)
            status = result.status
            if pruning is not None and pruning.pruned and status == "preempted":
                status = "pruned"  # its last checkpoint is kept, as a preempted run's is
            summary["status"] = status
        except NonFiniteLossError as err:
            summary |= {"status": "failed", "error": str(err)}
            raise RunError(f"{err}; the last good checkpoint is kept in {last.parent}") from err
        except DataWorkerError as err:
            summary |= {"status": "failed", "error": str(err)}
            raise RunError(f"{err}; restart in {run_dir} to resume from its last checkpoint") from err
        finally:
            tracker.finish(status)
        return summary
    except (ConfigError, ValueError, ckpt.CheckpointError, FileNotFoundError, DataWorkerError) as err:
        summary |= {"status": "failed", "error": str(err)}
        raise RunError(str(err)) from err
    except KeyboardInterrupt:
        summary["status"] = "interrupted"
        raise
    except BaseException as err:
        summary |= {"status": "failed", "error": f"{type(err).__name__}: {err}"}
        raise
    finally:
        summary["wall_time_s"] = summary.get("wall_time_s", 0) + time.time() - started
        if dist.is_main:
            write_summary(run_dir, summary)
            log.info("%s: %s", summary["status"], run_dir.resolve())
        if lock.is_locked:
            lock.release()
        shutdown_distributed()
