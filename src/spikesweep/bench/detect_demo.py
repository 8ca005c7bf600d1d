"""The detection demo as a user runs it (`spikesweep train recipe=detect_demo`): wall time from the call to
the end of its last epoch, and the mAP it reaches, so the README's figure stays the measured one."""

import tempfile
import time
from pathlib import Path


def bench_detect_demo(overrides: tuple[str, ...] = ()) -> list[dict[str, float | str]]:
    """One row: the demo's wall seconds, throughput and final test mAP50 / mAP50-95 (points)."""
    from spikesweep.compose import compose_config
    from spikesweep.run import train

    args = ["recipe=detect_demo", "logger=none", *overrides]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config(args)
        started = time.perf_counter()
        summary = train(cfg, Path(tmp) / "run", args)
        seconds = time.perf_counter() - started
    final = summary["final"]
    return [{"run": " ".join(args), "epochs": int(cfg.trainer.epochs), "wall_s": seconds,
             "samples_per_s": final["samples_per_s"], "test_map50": final["test_map50"],
             "test_map50_95": final["test_map50_95"]}]
