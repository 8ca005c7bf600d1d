"""Shared helpers: compose the real config, run the real CLI in a subprocess."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# `backend: auto` is compile on CPU, whose warm-up would cost each short run seconds (test_train: 50 s -> 6 min
# on 2 cores); the suite runs the eager reference, and test_backends.py checks compile and auto themselves.
os.environ.setdefault("SPIKESWEEP_AUTO_BACKEND", "torch")
# Its parity tests are the backends' checks; the once-per-machine check (backends/verify.py) is tested on its own.
os.environ.setdefault("SPIKESWEEP_VERIFY_BACKENDS", "0")
# The per-user cache (compiled loops, verdicts, data caches: `paths.cache_dir`'s default) of this test session,
# not the user's: a test that needs a cold cache still names its own.
os.environ.setdefault("SPIKESWEEP_USER_CACHE", tempfile.mkdtemp(prefix="spikesweep-test-cache-"))


def _local_slurm() -> str | None:
    """SLURM_CONF of a running cluster: the environment's, else the one `make slurm-up` started."""
    conf = os.environ.get("SLURM_CONF") or str(REPO / ".slurm" / "etc" / "slurm.conf")
    if not Path(conf).is_file() or shutil.which("scontrol") is None:
        return None
    ping = subprocess.run(["scontrol", "ping"], env={**os.environ, "SLURM_CONF": conf}, capture_output=True, text=True)
    return conf if ping.returncode == 0 and "UP" in ping.stdout else None


def pytest_configure(config):
    """Point SLURM clients at the running local cluster before test modules are imported."""
    conf = _local_slurm()
    if conf:
        os.environ["SLURM_CONF"] = conf


def pytest_collection_modifyitems(config, items):
    """slurm tests need a cluster; CI sets SPIKESWEEP_REQUIRE_SLURM=1 so a missing one fails, not skips."""
    if _local_slurm():
        return
    if os.environ.get("SPIKESWEEP_REQUIRE_SLURM") == "1":
        raise pytest.UsageError("SPIKESWEEP_REQUIRE_SLURM=1 but no SLURM cluster answers: run `make slurm-up`")
    skip = pytest.mark.skip(reason="no SLURM cluster: run `make slurm-up` (root) first")
    for item in items:
        if "slurm" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch):
    """Tests never reach wandb's servers; offline runs are real files under the run directory."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def compose(*overrides: str, hydra_config: bool = False):
    """The real primary config (experiments/ on the search path), as `spikesweep train` builds it."""
    from spikesweep.compose import compose_config

    return compose_config(list(overrides), hydra_config=hydra_config)


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "spikesweep.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


SMOKE = ("trainer.epochs=1", "trainer.max_steps_per_epoch=3", "logger=none")


@pytest.fixture
def one_thread():
    """Small tensors on a shared 2-core machine: torch's thread pool costs more than it saves."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
