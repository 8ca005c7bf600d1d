"""`spikesweep search --dry-run`: the space, the budget and where the workers would run, before anything runs."""

from spikesweep.cli import main


def test_dry_run_shows_space_budget_and_workers_here(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "digits", "--dry-run", "hparams_search.n_trials=7"]) == 0
    out = capsys.readouterr().out
    assert "search search_digits: maximize val_top1 over 7 trials" in out
    assert "workers: 1, here" in out and "optimizer.lr" in out and "surrogate.alpha" in out
    assert not (tmp_path / "multirun").exists()


def test_dry_run_on_slurm_shows_the_array_settings_of_the_cluster_profile(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "digits", "--dry-run", "--workers", "3", "hydra/launcher=slurm", "+cluster=local_slurm",
                 "hydra.launcher.timeout_min=7"]) == 0
    out = capsys.readouterr().out
    assert "workers: 3, one SLURM array (" in out
    assert "'partition': 'debug'" in out and "'timeout_min': 7" in out and "'cpus_per_task': 1" in out


def test_an_unknown_cluster_profile_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "digits", "--dry-run", "hydra/launcher=slurm", "+cluster=nowhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "nowhere" in err[0], err


def test_sweep_of_a_search_name_is_the_search(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "search_digits", "--dry-run"]) == 0  # the name its sweep directories carry
    assert "search search_digits: maximize val_top1 over 20 trials" in capsys.readouterr().out
    assert main(["sweep", "digitz", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown named multirun 'digitz'") and err.endswith(
        "hyperparameter searches: digits, survey_cf10")
