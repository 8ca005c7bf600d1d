"""Hydra callback: after a multirun, print the comparison table and remember how many jobs failed."""

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

#: (sweep dir, failed job count) of the last multirun in this process; the CLI turns failures into exit 1.
LAST_SWEEP: dict[str, Any] = {}


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from spikesweep.sweeps.compare import collect, to_markdown, write_csv

        sweep_dir = Path(config.hydra.sweep.dir)
        rows = collect(sweep_dir) if sweep_dir.is_dir() else []
        failed = [r for r in rows if r["status"] != "completed"]
        LAST_SWEEP.update(dir=sweep_dir, jobs=len(rows), failed=len(failed))
        if rows:
            write_csv(rows, sweep_dir / "compare.csv")
            print(to_markdown(rows))
        _gather_speed_cells(sweep_dir)
        print(f"sweep {sweep_dir}: {len(rows) - len(failed)} succeeded, {len(failed)} failed")
        for row in failed:
            print(f"  failed: {sweep_dir / row['job']} (see its train.log)")


def _gather_speed_cells(sweep_dir: Path) -> None:
    """A speed-grid multirun (job=bench_neuron) also gets the whole grid: neuron.csv and neuron.png beside it."""
    from spikesweep.bench.neuron import gather_cells, plot
    from spikesweep.bench.report import write_csv

    cells = gather_cells(sweep_dir) if sweep_dir.is_dir() else []
    if cells:
        write_csv(cells, sweep_dir / "neuron.csv")
        plot(cells, sweep_dir / "neuron.png")
        print(f"speed grid: {sweep_dir / 'neuron.csv'}, {sweep_dir / 'neuron.png'}")
