"""The detection demo as a user runs it (`spikesweep train recipe=detect_demo`, a process of its own): wall
time from launch to exit, and the mAP it reaches, so the README's figure stays the measured one."""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def bench_detect_demo(overrides: tuple[str, ...] = ()) -> list[dict[str, float | str]]:
    """One row: the demo's wall seconds, throughput and final test mAP50 / mAP50-95 (points)."""
    args = ["recipe=detect_demo", "logger=none", *overrides]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "spikesweep.cli", "train", *args, f"hydra.run.dir={run_dir}"],
                       check=True, capture_output=True)
        seconds = time.perf_counter() - started
        summary = json.loads((run_dir / "summary.json").read_text())
    final = summary["final"]
    return [{"run": " ".join(args), "epochs": summary["epochs"], "wall_s": seconds,
             "samples_per_s": final["samples_per_s"], "test_map50": final["test_map50"],
             "test_map50_95": final["test_map50_95"]}]
