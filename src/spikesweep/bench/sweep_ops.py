"""`bench status`: how long `spikesweep status` and the `--resume` plan take on a synthetic sweep of N jobs.

The operations are passed in (the CLI hands over spikesweep.sweeps' functions), so this module stays below
the sweeps layer and imports no torch: the timing is what a user's `status` pays.
"""

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STATES = ("completed", "completed", "failed", "preempted", "running")
EPOCHS = 20


def make_sweep(root: Path, jobs: int, all_completed: bool = False) -> Path:
    """A sweep directory as a real one looks after some hours: sweep.json and N run directories with
    summary.json, a 20-line metrics.jsonl, a checkpoint, config.yaml and .lock."""
    sweep_dir = root / "multirun" / "synthetic" / "stamp"
    sweep_dir.mkdir(parents=True)
    listed = [{"num": i, "overrides": [f"seed={i}"], "epochs": EPOCHS} for i in range(jobs)]
    (sweep_dir / "sweep.json").write_text(json.dumps({
        "name": "synthetic", "axes": {"seed": [str(i) for i in range(jobs)]}, "fixed": ["+experiments=synthetic"],
        "arguments": ["+experiments=synthetic"], "launcher": "local", "job_count": jobs,
        "git": {"commit": "0" * 40, "dirty": False}, "created": "", "jobs": listed, "resumes": []}))
    line = {"epoch": 0, "lr": 0.1, "train_loss": 1.0, "train_top1": 50.0, "test_loss": 1.0, "test_top1": 50.0,
            "firing_rate": 0.1, "energy_mj": 0.01, "sops_g": 0.1}
    for i in range(jobs):
        run_dir = sweep_dir / str(i)
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "checkpoints" / "last.pt").write_bytes(b"")
        (run_dir / ".lock").write_text("")
        (run_dir / "config.yaml").write_text("seed: 0\n")
        state = "completed" if all_completed else STATES[i % len(STATES)]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(line | {"epoch": e}) + "\n" for e in range(EPOCHS)))
        if state != "running":
            summary = {"status": state, "epochs": EPOCHS, "final": line, "wall_time_s": 100.0,
                       "best": {"test_top1": 50.0, "selected_by": "test_top1", "epoch": EPOCHS - 1}}
            if state == "failed":
                summary["error"] = "synthetic failure"
            (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return sweep_dir


def _best_of(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_sweep_ops(jobs: int, status: Callable[[Path], Any], resume_plan: Callable[[Path], Any],
                    repeats: int = 3) -> list[dict[str, Any]]:
    """Seconds for `status` of a mixed N-job sweep and the resume plan of an N-job all-completed sweep."""
    with tempfile.TemporaryDirectory() as tmp:
        mixed = make_sweep(Path(tmp) / "mixed", jobs)
        done = make_sweep(Path(tmp) / "done", jobs, all_completed=True)
        return [
            {"operation": "status (table of every job)", "jobs": jobs, "seconds": _best_of(lambda: status(mixed), repeats),
             "target_s": 1.0},
            {"operation": "sweep --resume plan (all completed)", "jobs": jobs,
             "seconds": _best_of(lambda: resume_plan(done), repeats), "target_s": 1.0},
        ]
