"""Models by name (timm-style registry); every model maps [T, B, ...] or [B, ...] input to [T, B, K] logits."""

from spikesweep.models.registry import build_model, model_names, register_model

__all__ = ["build_model", "model_names", "register_model"]
