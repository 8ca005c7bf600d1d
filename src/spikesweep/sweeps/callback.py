"""Hydra callback: after a multirun, print the comparison table and remember how many jobs failed."""

from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

#: (sweep dir, failed job count) of the last multirun in this process; the CLI turns failures into exit 1.
LAST_SWEEP: dict[str, Any] = {}


class SweepSummary(Callback):
    """Counts from the jobs' summary.json files, and, for jobs that ran in this process (the local
    launcher), from what they returned: a job refused without touching its directory still counts."""

    def __init__(self) -> None:
        self.ended: dict[Path, bool] = {}  # run dir -> failed, for the jobs that ran in this process

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        failed = job_return.status != JobStatus.COMPLETED or job_return._return_value == "failed"
        self.ended[Path(config.hydra.runtime.output_dir).resolve()] = failed

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from spikesweep.sweeps.compare import (
            collect,
            provenance_differences,
            to_markdown,
            write_csv,
        )

        sweep_dir = Path(config.hydra.sweep.dir)
        if config.hydra.sweeper.get("detach") and "slurm" in str(config.hydra.launcher.get("_target_", "")).lower():
            LAST_SWEEP.update(dir=sweep_dir, jobs=0, failed=0)  # the summary job writes the summary
            print(f"sweep {sweep_dir}: submitted; the summary is written when the last job ends")
            return
        rows = collect(sweep_dir) if sweep_dir.is_dir() else []
        by_dir = {(sweep_dir / r["job"]).resolve(): r["status"] != "completed" for r in rows}
        for run_dir, failed in self.ended.items():
            by_dir[run_dir] = by_dir.get(run_dir, False) or failed
        failed_dirs = sorted((d for d, failed in by_dir.items() if failed), key=str)
        LAST_SWEEP.update(dir=sweep_dir, jobs=len(by_dir), failed=len(failed_dirs))
        if rows:
            write_csv(rows, sweep_dir / "compare.csv")
            print(to_markdown(rows))
            for line in provenance_differences(sweep_dir):
                print(f"warning: {line}")
        _gather_speed_cells(sweep_dir)
        _gather_export_widths(sweep_dir)
        print(f"sweep {sweep_dir}: {len(by_dir) - len(failed_dirs)} succeeded, {len(failed_dirs)} failed")
        for run_dir in failed_dirs:
            print(f"  failed: {run_dir} (see its train.log)")
        self.ended.clear()


def _gather_speed_cells(sweep_dir: Path) -> None:
    """A speed-grid multirun (job=bench_neuron) also gets the whole grid: neuron.csv and neuron.png beside it."""
    from spikesweep.bench.neuron import gather_cells, plot
    from spikesweep.tables import write_csv

    cells = gather_cells(sweep_dir) if sweep_dir.is_dir() else []
    if cells:
        write_csv(cells, sweep_dir / "neuron.csv")
        plot(cells, sweep_dir / "neuron.png")
        print(f"speed grid: {sweep_dir / 'neuron.csv'}, {sweep_dir / 'neuron.png'}")


def _gather_export_widths(sweep_dir: Path) -> None:
    """An export multirun (job=export_fpga) also gets its bit-width table: fpga_bits.csv and fpga_bits.png."""
    from spikesweep.sweeps import export_table

    written = export_table.write(sweep_dir, sweep_dir) if sweep_dir.is_dir() else None
    if written:
        print(written[0])
        print(f"bit widths: {sweep_dir / 'fpga_bits.csv'}, {written[1]}")
