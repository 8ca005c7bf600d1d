"""`job: export_fpga`: one bit width of a fixed-point export as a sweep job (experiments/stdbp_fpga_bits.yaml).

A sweep over `export.bits` then compares one trained network at several widths from the run directories
alone, as a training sweep is compared: summary.json's `final.test_top1` is the quantised network's accuracy
(the integer simulator's, on the test set), and its `export` block holds the float accuracy, the memories'
size and the synaptic operations per sample. The sweep directory gathers them (sweeps/export_table.py).
"""

from pathlib import Path
from typing import Any

from spikesweep.engine.checkpoint import CheckpointError
from spikesweep.export.run_export import load_run, write_fpga


def run_export_job(ckpt: Path, export: dict[str, Any], paths: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The package goes to run_dir/fpga; the data (calibration and test samples) come from this machine's
    `paths`, not the ones the run was trained with."""
    try:
        loaded = load_run(ckpt, with_data=True, paths=paths)
    except CheckpointError as err:  # missing or unusable: the user's to fix, in one line
        raise ValueError(str(err)) from None
    report = write_fpga(loaded, run_dir / "fpga", int(export["bits"]), int(export["golden_samples"]),
                        int(export["calib_samples"]), int(export["eval_samples"]))
    return {
        "status": "completed", "task": "export_fpga", "metric": "top1",
        "final": {"test_top1": 100 * report["quantised_accuracy"]},
        "best": {"test_top1": 100 * report["quantised_accuracy"]},
        "export": report | {"float_top1": 100 * report["float_accuracy"],
                            "quantised_top1": 100 * report["quantised_accuracy"],
                            "recipe": loaded.config.get("recipe"), "package": str(run_dir / "fpga")},
    }
