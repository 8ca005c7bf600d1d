"""The sweeper checks every job before any is launched, composing once per set of config-group choices."""

import time

import pytest

from tests.conftest import SMOKE, run_cli


@pytest.mark.parametrize(
    ("axis", "message"),
    [
        ("trainer.epochz=1,2", "Could not override 'trainer.epochz'"),  # a value key: applied to the copy
        # a group choice: each option composed by the CLI's override check, before Hydra starts
        ("model=small_cnn,small_cnnn", "unknown model 'small_cnnn' (did you mean model=small_cnn?)"),
    ],
)
def test_a_bad_job_in_a_sweep_fails_before_any_job_runs(tmp_path, axis, message):
    out = run_cli("train", "-m", *SMOKE, axis, cwd=tmp_path)
    assert out.returncode != 0 and message in out.stderr, out.stderr[-2000:]
    assert not list(tmp_path.rglob("metrics.jsonl")), "no job may run when one of them cannot compose"


def _checking_sweeper():
    """The sweeper as Hydra loads it (its plugin scan executes plugin modules afresh), with its config loader."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.types import RunMode

    from spikesweep import REPO_ROOT

    loader = GlobalHydra.instance().config_loader()
    cfg = loader.load_configuration("config", [f"hydra.searchpath=[file://{REPO_ROOT}]"], RunMode.MULTIRUN)
    sweeper = Plugins.instance().class_name_to_class[cfg.hydra.sweeper._target_](max_batch_size=None)
    sweeper.config, sweeper.hydra_context = cfg, type("Ctx", (), {"config_loader": loader})()
    return sweeper, loader


@pytest.fixture
def hydra_conf():
    from hydra import initialize_config_dir

    from spikesweep import REPO_ROOT

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        yield


def test_checking_a_hundred_jobs_composes_once(hydra_conf):
    sweeper, loader = _checking_sweeper()
    calls = []
    original = loader.load_sweep_config
    loader.load_sweep_config = lambda *a, **k: calls.append(a) or original(*a, **k)
    started = time.perf_counter()
    sweeper.validate_batch_is_legal([[f"seed={s}", "model=small_cnn"] for s in range(100)])
    assert len(calls) == 1 and time.perf_counter() - started < 15


def test_jobs_sharing_one_copy_read_their_own_values_and_a_later_bad_key_still_fails(hydra_conf):
    from hydra.errors import ConfigCompositionException

    sweeper, _ = _checking_sweeper()
    jobs = [["seed=0", "trainer.epochs=3"], ["seed=1", "trainer.epochs=5"], ["seed=2"], ["+extra=1", "seed=3"],
            ["+extra=2", "seed=4"]]  # an append twice: each on a fresh copy, or the second would say "exists"
    sweeper.validate_batch_is_legal(jobs)
    assert [sweeper.epochs[tuple(job)] for job in jobs[:3]] == [3, 5, sweeper.config.trainer.epochs]
    with pytest.raises(ConfigCompositionException, match="trainer.epochz"):
        sweeper.validate_batch_is_legal([["trainer.epochs=3"], ["trainer.epochs=4"], ["trainer.epochz=5"]])
