"""Real torch.distributed: two gloo processes on the CPU, launched by torchrun."""

import json
import os
import subprocess
import sys

import pytest

from spikesweep.run import train
from tests.conftest import compose


@pytest.mark.slow
def test_two_process_ddp_trains_and_rank0_writes_once(tmp_path):
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "spikesweep.cli", "train", "trainer.epochs=2", "trainer.max_steps_per_epoch=4", "logger=none",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    run_dirs = list((tmp_path / "outputs" / "train").iterdir())
    assert len(run_dirs) == 1, "both ranks must agree on one run directory"
    run_dir = run_dirs[0]
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1]
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"

    # Sharded evaluation counts every test sample once: it matches a single-process evaluation.
    single = train(
        compose("trainer.eval_only=true", f"ckpt={run_dir / 'checkpoints' / 'last.pt'}", "logger=none"),
        tmp_path / "eval",
        [],
    )
    assert single["final"]["test_top1"] == pytest.approx(summary["final"]["test_top1"])
