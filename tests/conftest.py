"""Shared helpers: compose the real config, run the real CLI in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch):
    """Tests never reach wandb's servers; offline runs are real files under the run directory."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def compose(*overrides: str, hydra_config: bool = False):
    """The real primary config (plus experiments/ on the search path), as `spikesweep train` builds it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from spikesweep import resolvers

    resolvers.register()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=hydra_config)


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
