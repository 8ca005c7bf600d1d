"""The Hydra task: one job of a run or a sweep, dispatched by its kind (`job: train | bench_neuron | export_fpga`).

Training is run.py's; a cell of the neuron speed grid (experiments/survey_speed.yaml) is the benchmark's; one
bit width of a fixed-point export (experiments/stdbp_fpga_bits.yaml) is the exporter's. Here, above them all,
so that the training run knows no benchmark and no exporter. A failed job in a sweep is recorded and the
sweep goes on; a single run exits non-zero with one line.
"""

import logging
import os
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from spikesweep import REPO_ROOT, provenance
from spikesweep.config_schema import ConfigError, validate
from spikesweep.run import RunError, git_description, train, write_summary

log = logging.getLogger("spikesweep")


def other_job(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """A job other than training (a speed-grid cell, an export) writes the same run directory files; a user's
    mistake (ValueError) fails it in one line with its summary.json saying why."""
    validate(cfg)
    started = time.time()
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    (run_dir / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))
    (run_dir / "git.txt").write_text(git_description())
    provenance.write(run_dir)
    try:
        if cfg.job == "bench_neuron":
            from spikesweep.bench.neuron import run_cell

            summary = run_cell(OmegaConf.to_container(cfg.bench, resolve=True), run_dir)
        else:
            from spikesweep.export.export_job import run_export_job

            summary = run_export_job(Path(cfg.ckpt), OmegaConf.to_container(cfg.export, resolve=True),
                                     OmegaConf.to_container(cfg.paths, resolve=True), run_dir)
    except ValueError as err:
        write_summary(run_dir, {"status": "failed", "error": str(err), "wall_time_s": time.time() - started})
        raise RunError(str(err)) from err
    write_summary(run_dir, summary | {"wall_time_s": time.time() - started})
    return summary


@hydra.main(config_path=str(REPO_ROOT / "conf"), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> str:
    """In a sweep a failed job is recorded and the sweep goes on; a single run exits non-zero."""
    from spikesweep.crash import crash_line, interrupted
    from spikesweep.engine.preemption import Interruption, Preemption
    from spikesweep.engine.resume_policy import ResumeRefused
    from spikesweep.job_failure import discard_if_new, log_to_file_only, record_failed_job

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    if hc.mode == RunMode.MULTIRUN:  # which job of how many (the sweeper exports the count)
        log.info("job %d/%s: %s", int(hc.job.num) + 1, os.environ.get("SPIKESWEEP_SWEEP_JOBS", "?"), " ".join(
            hc.overrides.task))
    try:
        preemption = Preemption()
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    try:
        with preemption, Interruption() as interruption:
            if cfg.get("job", "train") != "train":
                return other_job(cfg, run_dir, list(hc.overrides.task))["status"]

            def stop() -> bool:  # asked after every optimizer step
                return interruption.pending() or preemption.requested()

            status = train(cfg, run_dir, list(hc.overrides.task), stop)["status"]
    except (RunError, ConfigError) as err:
        if hc.mode == RunMode.MULTIRUN:
            log.error("job %s failed: %s", hc.job.num, err)
            record_failed_job(run_dir, err)
            return "failed"
        if not (isinstance(err, ConfigError) and not isinstance(err, ResumeRefused) and discard_if_new(run_dir)):
            log_to_file_only(f"error: {err}")  # the terminal gets it from SystemExit
        raise SystemExit(f"error: {err}") from None
    except KeyboardInterrupt:
        raise SystemExit(interrupted(run_dir)) from None
    except Exception as err:  # a bug in model or data code: its traceback goes to train.log, not the terminal
        line = crash_line(err, run_dir)
        if hc.mode != RunMode.MULTIRUN:
            raise SystemExit(f"error: {line}") from None
        log.error("job %s crashed: %s; the sweep goes on", hc.job.num, line)  # one bad job never sinks the others
        record_failed_job(run_dir, err)
        return "failed"
    if status == "preempted":  # the checkpoint is on disk and the run directory unlocked
        preemption.deliver()  # outside the try: submitit's "not requeued" error must reach submitit
    return status
