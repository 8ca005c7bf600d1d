"""Input encodings: how a sample becomes a [T, B, ...] tensor."""

import torch


def to_time_major(x: torch.Tensor, time_steps: int, temporal: bool) -> torch.Tensor:
    """Direct encoding for static inputs (repeat T times); event inputs [B, T, ...] become [T, B, ...]."""
    if temporal:
        return x.transpose(0, 1).contiguous()
    return x.unsqueeze(0).expand(time_steps, *x.shape).contiguous()
