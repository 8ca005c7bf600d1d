"""Where and in which precision a run computes: `auto` resolved once, here."""

import torch

from spikesweep.engine.distributed import DistInfo


def resolve_device(requested: str, dist: DistInfo) -> torch.device:
    if requested == "auto":
        return torch.device(f"cuda:{dist.local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"trainer.device={requested} but CUDA is not available on this machine")
    return device


def resolve_amp(requested: str, device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU supports it, fp16 otherwise; never on CPU unless asked (it is slower there)."""
    if requested == "off" or (requested == "auto" and device.type != "cuda"):
        return None
    if requested == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[requested]
