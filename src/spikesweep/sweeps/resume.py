"""`spikesweep sweep NAME --resume [DIR]`: which jobs of a sweep run again, decided from its small files.

The plan is made before Hydra or torch is imported, so a sweep whose jobs all completed costs nothing; the
jobs that run again do so in their own directories under their own numbers, each resuming from its own
checkpoints/last.pt (and with it its wandb run).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spikesweep.sweeps import status, sweep_record

RERUN = ("unfinished", "failed", "all")


@dataclass
class Plan:
    sweep_dir: Path
    record: dict[str, Any]
    run: list[int]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def line(self) -> str:
        by_state = status.counts([r for r in self.rows if r["job"] in self.run])
        said = ", ".join(f"{n} {state}" for state, n in by_state.items() if n)
        done = sum(r["state"] == "completed" and r["job"] not in self.run for r in self.rows)
        running = [r["job"] for r in self.rows if r["state"] == "running"]
        busy = f"; {len(running)} running left alone (job {', '.join(map(str, running))})" if running else ""
        return (f"resuming {len(self.run)} of {len(self.rows)} jobs of {self.sweep_dir} ({said or 'none'}); "
                f"{done} completed skipped{busy}")


def plan(sweep_dir: Path, rerun: str = "unfinished", use_slurm: bool = True) -> Plan:
    """The job numbers to launch again: every job not completed (default), only the failed ones, or all;
    never one that is running now."""
    if rerun not in RERUN:
        raise ValueError(f"--rerun {rerun!r}: valid: {', '.join(RERUN[1:])}")
    record = sweep_record.read(sweep_dir)
    if record is None:
        raise FileNotFoundError(f"no {sweep_record.FILE} in {sweep_dir}: it was not started by this version; run "
                                f"the same command with hydra.sweep.dir={sweep_dir} to resume it by hand")
    rows = status.collect(sweep_dir, use_slurm)
    wanted = {"unfinished": lambda s: s != "completed", "failed": lambda s: s == "failed", "all": lambda s: True}[rerun]
    run = [r["job"] for r in rows if r["state"] != "running" and wanted(r["state"])]
    return Plan(sweep_dir, record, run, rows)


def arguments(name: str, plan: Plan, params: dict[str, str], overrides: list[str]) -> list[str]:
    """The sweep's arguments for the relaunch: the recorded ones, or the ones given now if they describe
    the same grid; a changed axis or fixed override raises SweepChanged with a one-line diff."""
    given = [f"+experiments={name}", *overrides] if overrides else list(plan.record["arguments"])
    axes, fixed = sweep_record.split_arguments(given, params)
    sweep_record.check_unchanged(plan.sweep_dir, plan.record, axes, fixed)
    return given


def hydra_arguments(plan: Plan, given: list[str]) -> list[str]:
    launch = [o for o in plan.record.get("hydra_arguments", []) if o.split("=")[0] not in {g.split("=")[0] for g in given}]
    return ["-m", *given, *launch, f"hydra.sweep.dir={plan.sweep_dir}",
            f"hydra.sweeper.only_jobs=[{','.join(map(str, plan.run))}]"]
