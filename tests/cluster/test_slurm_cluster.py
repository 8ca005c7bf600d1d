"""The project's local SLURM cluster (`make slurm-up`, scripts/slurm/) behaves as the launchers need.

Runs against the cluster named by $SLURM_CONF; skipped when there is none. Every job is tiny (1 CPU,
a few seconds), so the whole module takes well under a minute on a 2-core machine.
"""

import os
import re
import shutil
import subprocess
import threading
import time

import pytest

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        not os.environ.get("SLURM_CONF") or shutil.which("sinfo") is None,
        reason="no local SLURM cluster: run `make slurm-up`, then `export SLURM_CONF=...` (see .slurm/slurm.env)",
    ),
]


def slurm(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def node_field(name: str) -> str:
    out = slurm("scontrol", "show", "node", "-o").stdout
    match = re.search(rf"\b{name}=(\S+)", out)
    assert match, f"{name} not in: {out}"
    return match.group(1)


def test_node_is_idle():
    # jobs of an earlier test may still be completing: give them a few seconds
    deadline = time.monotonic() + 30
    while (state := slurm("sinfo", "-h", "-o", "%T").stdout.strip()) != "idle" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert state == "idle", slurm("sinfo", "-N", "-l").stdout


def test_sbatch_runs_a_job_and_writes_its_output(tmp_path):
    out_file = tmp_path / "job-%j.out"
    token = f"spikesweep-{os.getpid()}"
    # --wait: sbatch returns when the job ends, with the job's exit code
    done = slurm("sbatch", "--wait", "--parsable", "-c", "1", "-t", "1", "-o", str(out_file),
                 "--wrap", f"echo {token} $SLURM_JOB_ID")
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip().split(";")[0]
    assert (tmp_path / f"job-{job_id}.out").read_text().split() == [token, job_id]


def test_more_cpus_than_the_node_has_is_rejected_at_submission(tmp_path):
    # EnforcePartLimits=ALL: the request fails now instead of pending forever
    cpus = int(node_field("CPUTot"))
    out = slurm("sbatch", "-c", str(cpus + 1), "-o", str(tmp_path / "never.out"), "--wrap", "true")
    assert out.returncode != 0
    assert "Submitted batch job" not in out.stdout
    assert "submission failed" in out.stderr, out.stderr  # "More processors requested than permitted"


def test_a_time_limit_over_the_partition_maximum_is_rejected_at_submission(tmp_path):
    max_time = re.search(r"MaxTime=(\S+)", slurm("scontrol", "show", "partition", "-o").stdout).group(1)
    if max_time == "UNLIMITED":
        pytest.skip("partition has no MaxTime")
    out = slurm("sbatch", "-t", "30-00:00:00", "-o", str(tmp_path / "never.out"), "--wrap", "true")
    assert out.returncode != 0
    assert "submission failed" in out.stderr and "time limit" in out.stderr, out.stderr


def test_a_fake_gpu_job_sees_its_own_cuda_visible_devices():
    gres = node_field("Gres")
    if "gpu" not in gres:
        pytest.skip("cluster started without SLURM_FAKE_GPUS (make slurm-up sets 2)")
    with_gpu = slurm("srun", "--gres=gpu:1", "-c", "1", "-t", "1", "env")
    assert with_gpu.returncode == 0, with_gpu.stderr
    assert re.search(r"^CUDA_VISIBLE_DEVICES=\d+$", with_gpu.stdout, re.M), with_gpu.stdout
    without = slurm("srun", "-c", "1", "-t", "1", "env")
    assert without.returncode == 0, without.stderr
    assert not re.search(r"^CUDA_VISIBLE_DEVICES=\d", without.stdout, re.M)


def test_submitit_runs_a_function_on_the_cluster(tmp_path):
    submitit = pytest.importorskip("submitit")

    def work(x):  # local: pickled by value, so the job does not need to import this test module
        return x * x, os.environ["SLURM_JOB_ID"]

    # a fresh folder per test: job ids restart at 1 after the cluster state is wiped
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit")
    assert executor.cluster == "slurm"
    executor.update_parameters(timeout_min=2, cpus_per_task=1)
    job = executor.submit(work, 7)
    assert job.result() == (49, str(job.job_id))


def _accounting_enabled() -> bool:
    return "accounting_storage/slurmdbd" in slurm("scontrol", "show", "config").stdout


def test_submitit_reports_a_cancelled_job_instead_of_waiting_forever(tmp_path):
    # needs sacct: without accounting, submitit never learns the job ended and result() blocks
    if not _accounting_enabled():
        pytest.skip("cluster started with SLURM_ACCOUNTING=0")
    submitit = pytest.importorskip("submitit")
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit")
    # 10 minutes: submitit's USR2 comes 90 s before the limit, and a job that gets it ends FAILED, not RUNNING
    executor.update_parameters(timeout_min=10, cpus_per_task=1)
    job = executor.submit(time.sleep, 600)
    deadline = time.monotonic() + 120
    while job.state not in ("RUNNING", "COMPLETED", "FAILED") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job.state == "RUNNING", f"job {job.job_id} is {job.state}: {job.stderr() or job.stdout()}"
    job.cancel()

    outcome: list = []

    def wait():
        try:
            outcome.append(job.result())
        except Exception as exc:  # noqa: BLE001 - the type is the assertion below
            outcome.append(exc)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    waiter.join(timeout=90)
    assert outcome, "job.result() still waiting 90 s after the job was cancelled"
    assert isinstance(outcome[0], submitit.core.utils.UncompletedJobError), outcome
