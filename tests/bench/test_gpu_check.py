"""scripts/gpu_check.sh, the one prepared GPU check, rehearsed on the CPU: every step that needs no GPU runs
(imports, the CUDA parity tests collected, doctor, the quick neuron benchmark), the CUDA ones are listed
as skipped, and the summary and CSV land in the given directory."""

import os
import subprocess
import sys

from tests.conftest import REPO


def test_gpu_check_rehearsal_passes_and_writes_its_summary(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--rehearse", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    log = (tmp_path / "log.txt").read_text() if (tmp_path / "log.txt").exists() else ""
    assert done.returncode == 0, done.stdout[-2000:] + log[-3000:]
    summary = (tmp_path / "summary.md").read_text()
    for name in ("imports", "CUDA parity tests (collected)", "doctor", "neuron benchmark (CPU, quick)"):
        assert f"| {name} | passed |" in summary
    for name in ("Spikingformer-4-384 train step vs spikingjelly eager", "1-GPU DDP smoke"):
        assert f"| {name} | skipped (rehearsal: needs CUDA) |" in summary
    assert "0 step(s) failed" in summary and "verified" in summary  # the doctor's table is in the summary
    assert (tmp_path / "gpu-neuron.csv").stat().st_size > 0
