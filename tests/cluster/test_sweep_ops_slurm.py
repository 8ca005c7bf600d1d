"""Operating a sweep on the real local SLURM cluster (`make slurm-up`): --detach, status from sacct/squeue,
--resume of exactly the cancelled and the failed job, and the summary job's report."""

import json
import os
import subprocess
import time

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slurm
ON_SLURM = ("hydra/launcher=slurm", "+cluster=local_slurm")
TINY = ("trainer.epochs=1", "trainer.max_steps_per_epoch=2", "logger=none", "model.channels=[4,8]", "surrogate=sigmoid")


def _status(sweep_dir) -> dict:
    out = run_cli("status", str(sweep_dir), "--json", cwd=sweep_dir)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _wait_until_ended(sweep_dir, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        report = _status(sweep_dir)
        summary_jobs = subprocess.run(["squeue", "-h", "-n", "sweep-summary"], capture_output=True, text=True).stdout
        if not report["counts"]["queued"] and not report["counts"]["running"] and not summary_jobs.strip():
            return report
        assert time.monotonic() < deadline, report
        time.sleep(2)


def test_detach_cancel_fail_status_resume_report(tmp_path):
    started = time.monotonic()
    # two at a time, so that job 3 is still pending when it is cancelled; seed=-1 (job 0) fails on purpose
    out = run_cli("sweep", "demo", "seed=-1,0,1,2", *TINY, *ON_SLURM, "hydra.launcher.array_parallelism=2",
                  "--detach", cwd=tmp_path, env={"SPIKESWEEP_AUTO_BACKEND": "torch"})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert time.monotonic() - started < 60  # no waiting for the jobs: start-up and submission only
    (sweep_dir,) = (tmp_path / "multirun" / "demo").iterdir()
    assert f"see it with `spikesweep status {sweep_dir}`" in out.stdout
    array = next(p.name.split("_")[0] for p in (sweep_dir / ".submitit").iterdir() if p.name.split("_")[0].isdigit())
    subprocess.run(["scancel", f"{array}_3"], check=True)

    ended = _wait_until_ended(sweep_dir)
    states = {j["job"]: j["state"] for j in ended["jobs"]}
    assert states == {0: "failed", 1: "completed", 2: "completed", 3: "failed"}, ended
    errors = {j["job"]: j["error"] for j in ended["jobs"]}
    assert errors[0] == "seed=-1 must be an integer >= 0" and errors[3].startswith("SLURM: ")
    assert (sweep_dir / "compare.csv").is_file() and (sweep_dir / "summary.md").is_file()  # the summary job's

    again = run_cli("sweep", "demo", "--resume", str(sweep_dir), cwd=tmp_path,
                    env={"SPIKESWEEP_AUTO_BACKEND": "torch", "PATH": os.environ["PATH"]})
    assert f"resuming 2 of 4 jobs of {sweep_dir} (2 failed); 2 completed skipped" in again.stdout, again.stderr[-2000:]
    record = json.loads((sweep_dir / "sweep.json").read_text())
    assert record["launcher"] == "slurm" and record["resumes"][0]["jobs"] == [0, 3]
    final = _status(sweep_dir)
    assert {j["job"]: j["state"] for j in final["jobs"]} == {0: "failed", 1: "completed", 2: "completed", 3: "completed"}
    rep = run_cli("report", str(sweep_dir), cwd=tmp_path)
    assert rep.returncode == 0 and (sweep_dir / "report" / "report.csv").read_text().count("\n") == 5
