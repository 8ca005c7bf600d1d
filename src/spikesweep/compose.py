"""Compose the config outside a Hydra run (dry runs, override checks, tests), exactly as the CLI does:
conf/ as the primary tree and the repo root on the search path, so `+experiments=NAME` finds experiments/."""

from omegaconf import DictConfig

from spikesweep import REPO_ROOT, resolvers


def compose_config(overrides: list[str], hydra_config: bool = False) -> DictConfig:
    from hydra import compose, initialize_config_dir

    resolvers.register()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose(
            "config",
            overrides=[*overrides, f"hydra.searchpath=[file://{REPO_ROOT}]"],
            return_hydra_config=hydra_config,
        )
