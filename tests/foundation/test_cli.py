"""The command line, run for real in a subprocess: sweeps, tables, and one-line errors."""

import csv
import os

import pytest

from tests.conftest import run_cli


def test_list_shows_the_demo(tmp_path):
    out = run_cli("list", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "demo" in out.stdout and "6 jobs" in out.stdout


def test_demo_sweep_runs_every_job_and_compares(tmp_path):
    out = run_cli("sweep", "demo", "trainer.epochs=1", "trainer.max_steps_per_epoch=2", "logger=none",
                  f"paths.cache_dir={tmp_path / 'cache'}", cwd=tmp_path)  # a cold cache: the data is prepared once
    assert out.returncode == 0, out.stderr[-3000:]
    assert "6 succeeded, 0 failed" in out.stdout
    sweep_dirs = list((tmp_path / "multirun" / "demo").iterdir())
    assert len(sweep_dirs) == 1
    said = out.stdout + out.stderr  # where it goes, which job of how many, the data as a sentence
    assert f"sweep {sweep_dirs[0].resolve()}: 6 of 6 job(s) to launch" in said
    assert "job 1/6: surrogate=sigmoid seed=0" in said and "job 6/6: " in said
    assert "prepared 1,797 samples in " in said and "{" not in said.split("prepared 1,797 samples")[1].split("\n")[0]
    jobs = sorted(p.name for p in sweep_dirs[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert jobs == ["0", "1", "2", "3", "4", "5"]
    table = run_cli("compare", str(sweep_dirs[0]), cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert table.stdout.count("| completed |") == 6
    with (sweep_dirs[0] / "compare.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["overrides"] for r in rows} == {
        f"surrogate={s} seed={seed}" for s in ("sigmoid", "atan", "piecewise_quadratic") for seed in (0, 1)
    }
    assert all(0 < float(r["activation_sparsity"]) < 1 and float(r["effective_acs_m"]) > 0 for r in rows)


def test_dry_run_lists_jobs_without_running(tmp_path):
    out = run_cli("sweep", "demo", "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "6 jobs in 'demo'" in out.stdout
    assert not (tmp_path / "multirun").exists()
    slurm = run_cli("sweep", "demo", "--dry-run", "hydra/launcher=slurm", "+cluster=example", cwd=tmp_path)
    assert "6 jobs in 'demo', at most 144.0 GPU-hours (1 GPU(s) x 1440 min per job)" in slurm.stdout, slurm.stderr


def test_failed_job_does_not_sink_the_sweep(tmp_path):
    out = run_cli(
        "sweep", "demo", "trainer.epochs=1", "trainer.max_steps_per_epoch=1", "logger=none",
        "trainer.batch_size=64,5000", "hydra.sweeper.params.surrogate=atan", "hydra.sweeper.params.seed=0",
        cwd=tmp_path,
    )
    assert out.returncode == 1
    assert "1 succeeded, 1 failed" in out.stdout


def test_unknown_option_lists_the_valid_ones(tmp_path):
    out = run_cli("train", "model=nope", cwd=tmp_path)
    assert out.returncode == 2
    assert "error: unknown model 'nope'; valid: " in out.stderr and "small_cnn" in out.stderr


def test_misspelled_key_is_named(tmp_path):
    out = run_cli("train", "trainer.epochz=3", cwd=tmp_path)
    assert out.returncode == 2
    assert "unknown key 'trainer.epochz' (did you mean trainer.epochs?)" in out.stderr


def test_misspelled_option_gets_a_suggestion(tmp_path):
    out = run_cli("sweep", "demo", "--dry-run", "surrogate=atann", cwd=tmp_path)
    assert out.returncode == 2 and "did you mean surrogate=atan?" in out.stderr


def test_run_error_is_one_line_and_nonzero(tmp_path):
    out = run_cli("train", "dataset.T=0", cwd=tmp_path)
    assert out.returncode != 0
    assert "error: dataset.T=0 (time steps) must be an integer >= 1" in out.stderr
    assert "Traceback" not in out.stderr


# The bad-input catalogue: refused before anything runs, in one line (no traceback), with exit code 2.
SIGMOIDD = "error: unknown surrogate 'sigmoidd' (did you mean surrogate=sigmoid?); valid: "
BAD_INPUTS = [
    (("sweep", "surrogate_shapes", "surrogate=atan,sigmoidd", "--dry-run"), SIGMOIDD),
    (("train", "-m", "surrogate=atan,sigmoidd", "logger=none"), SIGMOIDD),
    (("sweep", "demo", "seed=-1,2", "--dry-run"), "error: job 0 (surrogate=sigmoid seed=-1): seed=-1 must be an integer >= 0"),
    (("train", "hydra.run.dir=/proc/x"), "error: hydra.run.dir=/proc/x cannot be written (No such file or directory); "
                                         "point hydra.run.dir or paths.output_root at a writable folder"),
    (("train", "-m", "seed=0,1", "hydra.sweep.dir=/proc/x"), "error: hydra.sweep.dir=/proc/x cannot be written"),
    (("train", "hydra.run.dir=/sys/spikesweep/run"), "error: hydra.run.dir=/sys/spikesweep/run cannot be written ("),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line(tmp_path, args, message):
    out = run_cli(*args, cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), out.stderr[-2000:]


def test_output_dir_under_a_file_or_read_only_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("")
    out = run_cli("train", f"hydra.run.dir={tmp_path / 'a_file' / 'run'}", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.strip() == (
        f"error: hydra.run.dir={tmp_path / 'a_file' / 'run'} cannot be written (a file is in the way: "
        f"{tmp_path / 'a_file'}); point hydra.run.dir or paths.output_root at a writable folder"
    )
    if os.geteuid() == 0:
        return  # root writes into a read-only folder; /sys above stands in for it
    read_only = tmp_path / "read_only"
    read_only.mkdir(mode=0o555)
    out = run_cli("train", f"hydra.run.dir={read_only / 'run'}", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.strip().startswith(f"error: hydra.run.dir={read_only / 'run'} cannot be written (Permission denied")


def test_unknown_named_multirun(tmp_path):
    out = run_cli("sweep", "nope", cwd=tmp_path)
    assert out.returncode == 2 and "unknown named multirun 'nope'; valid: " in out.stderr and "demo" in out.stderr


def test_compare_on_empty_dir(tmp_path):
    out = run_cli("compare", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2 and "no runs" in out.stderr


def test_sweep_axis_with_no_values_is_refused(tmp_path):
    for bad in ("seed=", "seed=1,,2"):
        out = run_cli("sweep", "demo", bad, "--dry-run", cwd=tmp_path)
        assert out.returncode == 2 and "sweep axis 'seed' has an empty value" in out.stderr


def test_named_multirun_with_an_empty_axis_is_refused(tmp_path, monkeypatch):
    from spikesweep.sweeps import catalogue

    (tmp_path / "broken.yaml").write_text("sweep: {description: x}\nhydra: {sweeper: {params: {seed: ''}}}\n")
    monkeypatch.setattr(catalogue, "EXPERIMENTS_DIR", tmp_path)
    import pytest

    with pytest.raises(ValueError, match="sweep axis 'broken: seed' has an empty value"):
        catalogue.load("broken")


def test_range_and_choice_sweeps_pass_the_override_check_and_typos_beside_them_do_not():
    from spikesweep.override_check import check

    assert check(["seed=range(3)", "surrogate=choice(atan,sigmoid)"]) is None  # Hydra expands them, not compose
    assert check(["seed=range(3)", "trainer.epochz=1"]).startswith("unknown key 'trainer.epochz'")


def test_cpu_runs_do_not_warn_about_a_missing_cuda_runtime(tmp_path):
    """Inductor imports torch's C++-extension module to compile for the CPU; with a CUDA toolkit installed and
    no GPU usable it warned "No CUDA runtime is found" on every CPU run."""
    import subprocess
    import sys

    env = {**os.environ, "CUDA_HOME": str(tmp_path), "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-c", "import spikesweep, torch.utils.cpp_extension"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "No CUDA runtime is found" not in out.stderr, out.stderr


def test_bench_help_lists_every_benchmark(tmp_path):
    out = run_cli("bench", "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for name in ("neuron", "report", "stdp", "dispatch", "data", "model", "coco"):
        assert f"\n  {name} " in out.stdout, name


def test_a_rejected_config_leaves_no_run_directory(tmp_path):
    """Hydra makes the stamped folder before the config is checked; a refused command removes it again."""
    out = run_cli("train", "seed=-1", "logger=none", cwd=tmp_path)
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1] == "error: seed=-1 must be an integer >= 0"
    assert not (tmp_path / "outputs").exists()


def test_a_run_prints_its_directory_when_it_starts_and_ends(tmp_path):
    out = run_cli("train", "trainer.epochs=1", "trainer.max_steps_per_epoch=1", "logger=none", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    (run_dir,) = (tmp_path / "outputs" / "train").iterdir()
    text = out.stdout + out.stderr
    assert f"run directory: {run_dir}" in text and f"completed: {run_dir}" in text
