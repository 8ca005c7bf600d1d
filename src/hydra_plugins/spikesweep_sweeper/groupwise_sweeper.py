"""Hydra's basic sweeper with a faster pre-launch check, so a 100-point sweep reaches SLURM in seconds.

Before launching, Hydra's BasicSweeper composes the full config of every job to catch composition errors
early: ~0.15 s a job, 15 s for 100, far longer than submitting them (0.02 s). Jobs with the same config-group
choices (model=, +cluster=, hydra/launcher=...) compose the same defaults tree and differ only in their value
overrides, so this sweeper composes once per distinct set of group choices and applies each job's value
overrides to a copy with Hydra's own function: the same errors, before any job is submitted.
"""

import copy
from collections.abc import Sequence

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig


class GroupwiseSweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        assert self.hydra_context is not None and self.config is not None
        loader = self.hydra_context.config_loader
        assert isinstance(loader, ConfigLoaderImpl)
        parser = OverridesParser.create(config_loader=loader)
        composed: dict[tuple[str, ...], DictConfig] = {}
        for overrides in batch:
            parsed = parser.parse_overrides(list(overrides))
            is_group = [loader.repository.group_exists(o.key_or_group) for o in parsed]
            groups = tuple(o.input_line for o, g in zip(parsed, is_group) if g)
            if groups not in composed:
                composed[groups] = loader.load_sweep_config(self.config, list(groups))
            cfg = copy.deepcopy(composed[groups])
            ConfigLoaderImpl._apply_overrides_to_config([o for o, g in zip(parsed, is_group) if not g], cfg)
