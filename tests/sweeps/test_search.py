"""An Optuna search end to end on digits: trials as train jobs, pruning from inside them, a dead worker's trial
retried once, `--resume` to exactly n_trials, a changed search space refused, the report's best command."""

import json
import os
import signal
import subprocess
import sys
import time

from spikesweep.sweeps import search
from tests.conftest import run_cli

N_TRIALS = 4
SETTINGS = (f"hparams_search.n_trials={N_TRIALS}", "hparams_search.pruner.n_startup_trials=1",
            "hparams_search.pruner.n_warmup_steps=0", "hparams_search.space.optimizer.lr.low=0.01",
            "hparams_search.space.optimizer.lr.high=0.5")  # learns something in 3 steps: trials differ
TINY = ("trainer.epochs=3", "trainer.max_steps_per_epoch=3", "trainer.batch_size=32", "logger=none", "model.channels=[4,8]")
ENV = {"WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}


def _start(cwd, *args: str) -> subprocess.Popen:
    """The search in its own session, so that killing it kills its trials too (a dead node)."""
    return subprocess.Popen([sys.executable, "-m", "spikesweep.cli", "search", "digits", *args], cwd=cwd,
                            env={**os.environ, **ENV}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def test_search_prunes_retries_a_dead_trial_and_resumes_to_n_trials(tmp_path):
    import optuna
    from optuna.trial import TrialState

    first = _start(tmp_path, "--workers", "1", *SETTINGS, *TINY)
    deadline = time.time() + 120
    while not list(tmp_path.glob("multirun/search_digits/*/logs/1.log")) and first.poll() is None:
        assert time.time() < deadline, "trial 1 never started"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # trial 0 finished, trial 1 running: its worker dies with it
    first.wait()
    sweep_dir = next(tmp_path.glob("multirun/search_digits/*"))
    study = optuna.load_study(study_name="search_digits", storage=search.storage(sweep_dir))
    assert study.trials[1].state == TrialState.RUNNING
    lost = study.trials[1].params

    changed = run_cli("search", "digits", "--resume", str(sweep_dir), *SETTINGS, "hparams_search.space.neuron.tau.high=9",
                      *TINY, cwd=tmp_path, env=ENV)
    assert changed.returncode == 2
    assert changed.stderr.strip().splitlines() == [
        f"error: refusing to resume {sweep_dir}: the search changed (space neuron.tau: "
        '{"type":"float","low":1.5,"high":4.0} -> {"type":"float","low":1.5,"high":9}); start a new search instead']

    done = run_cli("search", "digits", "--resume", str(sweep_dir), "--workers", "2", cwd=tmp_path, env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trial(s) 1 were running when their worker died: marked failed" in done.stdout
    trials = optuna.load_study(study_name="search_digits", storage=search.storage(sweep_dir)).trials
    states = [t.state for t in trials]
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states) == N_TRIALS  # exactly, none twice
    assert states.count(TrialState.FAIL) == 1 and TrialState.RUNNING not in states
    assert trials[2].params == lost and trials[2].user_attrs == {"retry_of": 1}  # retried once, same parameters
    drawn = [json.dumps(t.params, sort_keys=True) for t in trials if t.number != 1]
    assert len(set(drawn)) == len(drawn)  # the resumed sampler does not draw the first trials' parameters again
    pruned = [t.number for t in trials if t.state == TrialState.PRUNED]
    assert pruned, done.stdout
    summary = json.loads((sweep_dir / str(pruned[0]) / "summary.json").read_text())
    assert summary["status"] == "pruned" and summary["epochs"] < 3
    assert (sweep_dir / str(pruned[0]) / "checkpoints" / "last.pt").is_file()

    status = run_cli("status", str(sweep_dir), "--json", "--no-slurm", cwd=tmp_path)
    rows = json.loads(status.stdout)
    assert rows["counts"]["pruned"] == len(pruned)
    row = next(r for r in rows["jobs"] if r["job"] == pruned[0])
    assert row["state"] == "pruned" and f"optimizer.lr={trials[pruned[0]].params['optimizer.lr']!r}" in row["overrides"]
    best = min(trials, key=lambda t: -t.value if t.state == TrialState.COMPLETE else float("inf"))
    command = next(line.strip() for line in done.stdout.splitlines() if line.strip().startswith("spikesweep train"))
    assert command.startswith("spikesweep train dataset=digits model=small_cnn trainer.val_fraction=0.2 neuron.backend=torch "
                              "trainer.epochs=3 ")
    assert f"optimizer.lr={best.params['optimizer.lr']!r}" in command.split()
    assert f"{N_TRIALS} of {N_TRIALS} trials finished" in done.stdout
    assert (sweep_dir / "history.png").is_file(), done.stdout
