import torch


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """Number of samples whose target is among the top-k logits, for each k (k capped at the class count)."""
    kmax = min(max(ks), logits.shape[-1])
    top = logits.topk(kmax, dim=-1).indices
    hits = top.eq(targets.unsqueeze(-1))
    return [int(hits[:, : min(k, kmax)].any(dim=-1).sum()) for k in ks]
