"""A search on the real local SLURM cluster (`make slurm-up`): its workers are the tasks of one array, each asking
the study for trials; one task cancelled mid-trial, then `--resume` ends with exactly n_trials, none twice."""

import json
import os
import subprocess
import sys
import time

import pytest

from spikesweep.sweeps import search
from tests.conftest import run_cli
from tests.sweeps.test_search import ENV, N_TRIALS, SETTINGS, TINY

pytestmark = pytest.mark.slurm
ON_SLURM = ("hydra/launcher=slurm", "+cluster=local_slurm")


def _wait_for(condition, what: str, proc: subprocess.Popen, timeout_s: float = 180):
    deadline = time.monotonic() + timeout_s
    while not (found := condition()):
        assert proc.poll() is None, f"the search ended before {what}: {proc.communicate()[0][-3000:]}"
        assert time.monotonic() < deadline, f"no {what} after {timeout_s} s"
        time.sleep(0.2)
    return found


def test_search_array_survives_a_cancelled_task_and_resumes_to_exactly_n_trials(tmp_path):
    import optuna
    from optuna.trial import TrialState

    launcher = subprocess.Popen(
        [sys.executable, "-m", "spikesweep.cli", "search", "digits", "--workers", "2", *ON_SLURM, *SETTINGS, *TINY],
        cwd=tmp_path, env={**os.environ, **ENV}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sweep_dir = _wait_for(lambda: next(tmp_path.glob("multirun/search_digits/*"), None), "sweep directory", launcher)
    arrays = _wait_for(lambda: (search.read_record(sweep_dir) or {}).get("slurm_arrays"), "worker array", launcher)
    task0 = sweep_dir / ".submitit" / f"{arrays[0]}_0" / f"{arrays[0]}_0_0_log.out"
    started = _wait_for(lambda: task0.is_file() and [line.split(":")[0].split()[1] for line in
                                                     task0.read_text().splitlines() if line.endswith(": started")],
                        "trial started by task 0", launcher)
    subprocess.run(["scancel", f"{arrays[0]}_0"], check=True)  # mid-trial: the trial dies with its task
    out, _ = launcher.communicate(timeout=300)
    assert launcher.returncode == 1, out[-3000:]
    assert f"worker task 0 ({arrays[0]}_0) ended CANCELLED" in out, out[-3000:]
    study = optuna.load_study(study_name="search_digits", storage=search.storage(sweep_dir))
    lost = study.trials[int(started[-1])]
    assert lost.state == TrialState.RUNNING  # the other task went on, up to n_trials with this one counted

    done = run_cli("search", "digits", "--resume", str(sweep_dir), "--workers", "2", cwd=tmp_path, env=ENV)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"trial(s) {lost.number} were running when their worker died: marked failed" in done.stdout
    record = json.loads((sweep_dir / "search.json").read_text())
    assert record["launcher"] == list(ON_SLURM) and len(record["slurm_arrays"]) == 2  # the resume ran on SLURM too
    trials = optuna.load_study(study_name="search_digits", storage=search.storage(sweep_dir)).trials
    states = [t.state for t in trials]
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states) == N_TRIALS  # exactly, none twice
    assert states.count(TrialState.FAIL) == 1 and TrialState.RUNNING not in states
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == lost.number]
    assert retry.params == lost.params and retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert f"{N_TRIALS} of {N_TRIALS} trials finished" in done.stdout
