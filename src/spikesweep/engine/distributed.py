"""Distributed set-up detected from the environment (torchrun or SLURM), never from flags."""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _export_slurm_env() -> None:
    """Under `srun`/submitit with several tasks, turn SLURM's variables into torch's (RANK, MASTER_ADDR...)."""
    if "RANK" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) <= 1:
        return
    import submitit

    submitit.helpers.TorchDistributedEnvironment().export()


def init_distributed() -> DistInfo:
    """Join the process group when launched with several processes; a no-op for a single process."""
    _export_slurm_env()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """Agree on a rank-0 decision (e.g. 'stop: loss is NaN') so no rank waits forever in a collective."""
    if not info.enabled:
        return flag
    t = torch.tensor([float(flag)])
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def share_rank0_buffers(model: torch.nn.Module, info: DistInfo) -> None:
    """Give every rank rank 0's buffers (BN running statistics). DDP broadcasts them at the start of each
    training forward, so after the last step every rank holds its own: evaluated as they are, each shard of
    the test split would see a slightly different model from the one rank 0 checkpoints."""
    if info.enabled:
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


class ProcessGroupSync:
    """The `Sync` a task's meters reduce through: sums and gathers over the job's processes."""

    def __init__(self, info: DistInfo, device: torch.device) -> None:
        self.info, self.device = info, device

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        if not self.info.enabled:
            return values
        return all_reduce_sum(values.to(self.device), self.info).cpu()

    def gather(self, obj: object) -> list[object]:
        if not self.info.enabled:
            return [obj]
        out: list[object] = [None] * self.info.world_size
        dist.all_gather_object(out, obj)
        return out
