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
