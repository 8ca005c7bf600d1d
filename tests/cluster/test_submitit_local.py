"""Sweeps through submitit's local executor: each job in its own process, the same path SLURM jobs take."""

from tests.conftest import compose, run_cli


def test_submitit_local_sweep_lands_in_one_sweep_dir(tmp_path):
    out = run_cli(
        "train", "-m", "hydra/launcher=submitit_local", "trainer.epochs=1", "trainer.max_steps_per_epoch=2",
        "logger=none", "seed=0,1", cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 succeeded, 0 failed" in out.stdout
    (sweep_dir,) = (tmp_path / "multirun" / "train").iterdir()
    assert (sweep_dir / "0" / "summary.json").is_file() and (sweep_dir / "1" / "summary.json").is_file()
    assert (sweep_dir / ".submitit").is_dir()


def test_slurm_launcher_defaults_requeue_and_profiles_fit():
    cfg = compose("hydra/launcher=slurm", "+cluster=example", hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher.max_num_timeout >= 10  # the plugin's default 0 would never requeue a preempted job
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1 and launcher.tasks_per_node == 1


def _fake_slurm(folder, message: str):
    """sbatch and srun that answer as on a machine whose SLURM controller is down."""
    folder.mkdir()
    for name in ("sbatch", "srun"):
        script = folder / name
        script.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
        script.chmod(0o755)
    return folder


def test_slurm_launcher_without_a_cluster_is_one_line(tmp_path):
    import os
    import sys

    # PATH without SLURM's commands: submitit's "Could not detect srun" traceback before
    no_slurm = {"PATH": os.path.dirname(sys.executable)}
    out = run_cli("train", "-m", "hydra/launcher=slurm", "logger=none", cwd=tmp_path, env=no_slurm)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "error: hydra/launcher=slurm: no sbatch or srun on PATH, so no SLURM cluster to submit to; run on the "
        "cluster's login node, or drop hydra/launcher=slurm to run the jobs here"
    ]
    # a controller that does not answer: submitit's FailedJobError before
    down = "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)"
    fake = _fake_slurm(tmp_path / "bin", down)
    out = run_cli("train", "-m", "hydra/launcher=slurm", "logger=none", cwd=tmp_path,
                  env={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == f"error: hydra/launcher=slurm: sbatch refused the sweep: {down}"


def test_slurm_launcher_without_multirun_is_refused(tmp_path):
    out = run_cli("train", "hydra/launcher=slurm", "logger=none", cwd=tmp_path)
    assert out.returncode == 2 and not (tmp_path / "outputs").exists()
    assert out.stderr.strip() == (
        "error: hydra/launcher=slurm launches multiruns only: add -m (`spikesweep train -m ...`) or run a named "
        "sweep (`spikesweep sweep NAME ...`)"
    )
