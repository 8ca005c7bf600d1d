"""Data loaders whose order is a function of (seed, epoch) alone, so a resumed run draws the same batches."""

import itertools
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, RandomSampler, Subset

from spikesweep.engine.cpu_allocation import cpu_allocation
from spikesweep.engine.distributed import DistInfo


class ResumableBatchSampler(BatchSampler):
    """A BatchSampler whose next pass can start part-way: a mid-epoch resume skips the batches already trained
    on by drawing the epoch's full index order and dropping its head, without loading any sample."""

    def __init__(self, sampler, batch_size: int, drop_last: bool) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self._skip = 0

    def skip_next_pass(self, batches: int) -> None:
        self._skip = batches

    def __iter__(self) -> Iterator[list[int]]:
        skip, self._skip = self._skip, 0
        return itertools.islice(super().__iter__(), skip, None)


def make_loaders(
    train: Dataset, test: Dataset, cfg: Mapping[str, Any], dist: DistInfo, seed: int, device: torch.device,
    collate: Callable[[list[Any]], Any] | None = None,
) -> tuple[DataLoader, DataLoader]:
    per_rank = int(cfg["batch_size"])
    if per_rank * dist.world_size > len(train):
        raise ValueError(
            f"trainer.batch_size={per_rank} x {dist.world_size} process(es) exceeds the training set "
            f"({len(train)} samples)"
        )
    generator = torch.Generator().manual_seed(seed)
    sampler = (
        DistributedSampler(train, shuffle=True, seed=seed, drop_last=True)
        if dist.enabled
        else RandomSampler(train, generator=generator)  # what DataLoader(shuffle=True) builds: the same order
    )
    train_loader = DataLoader(
        train,
        # drop_last: fixed shapes, no recompiles, no odd-sized batch for mixup
        batch_sampler=ResumableBatchSampler(sampler, per_rank, drop_last=True),
        generator=generator,
        collate_fn=collate,
        # Workers started afresh each epoch: their seeds come from the generator the engine reseeds per epoch,
        # so a run resumed at an epoch boundary draws the same augmentations as one that was not (persistent
        # workers would keep epoch 0's seeds, and would not draw the base seed the sampler's order follows).
        **_loader_options(cfg, device, persistent=False),
    )
    return train_loader, make_eval_loader(test, cfg, dist, device, collate)


def _loader_options(cfg: Mapping[str, Any], device: torch.device, persistent: bool = True) -> dict[str, Any]:
    workers = cpu_allocation(cfg["num_workers"], device.type).workers
    return dict(num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=persistent and workers > 0)


def make_eval_loader(
    data: Dataset, cfg: Mapping[str, Any], dist: DistInfo, device: torch.device,
    collate: Callable[[list[Any]], Any] | None = None,
) -> DataLoader:
    # Strided shards without padding: every sample counted exactly once, and interleaving the ranks' per-sample
    # results restores the split's order (the `Sync.gather` contract that order-sensitive metrics rely on).
    indices = list(range(dist.rank, len(data), dist.world_size)) if cfg["dist_eval"] else None
    return DataLoader(data, batch_size=int(cfg["eval_batch_size"]), sampler=indices, collate_fn=collate,
                      **_loader_options(cfg, device))


def hold_out(train: Dataset, fraction: float) -> tuple[Dataset, Dataset | None]:
    """Split off `fraction` of the training set for model selection, the same samples in every run (fixed
    seed, independent of the run's seed) so the jobs of a sweep are selected on one validation set."""
    if fraction <= 0:
        return train, None
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).tolist()
    n_val = round(fraction * len(train))
    if not 0 < n_val < len(train):
        raise ValueError(f"trainer.val_fraction={fraction} leaves no validation or no training sample "
                         f"of the {len(train)} training samples")
    return Subset(train, sorted(order[n_val:])), Subset(train, sorted(order[:n_val]))


def progress(iterable, total: int, description: str):
    """A progress bar on a terminal, nothing when output goes to a log file."""
    if not sys.stderr.isatty():
        return iterable
    from rich.progress import track

    return track(iterable, total=total, description=description, transient=True)
