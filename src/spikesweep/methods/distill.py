"""Distillation from an ANN teacher of the same architecture, as the surrogate-gradient survey trains it.

- response: loss = alpha * tau^2 * CE(student / tau, softmax(teacher / tau)) + (1 - alpha) * loss
- feature:  loss = loss + beta * sum over activation layers of MSE(teacher ReLU output, student T-mean spikes)

The teacher is the student's model config with `teacher_model` overrides (activation=relu) run for
`teacher_T` steps, loaded from `teacher_ckpt` (e.g. `recipe=survey_cf10_ann`'s checkpoints/last.pt).
Feature distillation needs both models to list their activation modules in `feature_layers`.
"""

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from spikesweep.engine import checkpoint as ckpt
from spikesweep.models import build_model
from spikesweep.methods import METHODS
from spikesweep.protocols import HasFeatureLayers
from spikesweep.spiking import reset_states


class Distillation:
    """Holds the frozen teacher; adds its term to the engine's loss at every training step."""

    def __init__(self, teacher: nn.Module, kind: str, alpha: float, tau: float, beta: float) -> None:
        self.teacher = teacher.eval().requires_grad_(False)
        self.kind, self.alpha, self.tau, self.beta = kind, alpha, tau, beta
        self.student_features: list[torch.Tensor] = []
        self.teacher_features: list[torch.Tensor] = []

    def attach(self, student: nn.Module, device: torch.device) -> None:
        """Move the teacher next to the student; for feature distillation, record both models' activations."""
        self.teacher.to(device)
        if self.kind != "distill_feature":
            return
        pairs = (student, self.student_features, True), (self.teacher, self.teacher_features, False)
        for model, store, training_only in pairs:
            layers = model.feature_layers if isinstance(model, HasFeatureLayers) else None
            if not layers:
                raise ValueError(f"feature distillation needs a model with feature_layers; {type(model).__name__} has none")
            for module in layers:
                module.register_forward_hook(_recorder(store, training_only))
        if len(student.feature_layers) != len(self.teacher.feature_layers):
            raise ValueError("feature distillation: student and teacher have different numbers of activation layers")

    def loss(
        self, x: torch.Tensor, logits: torch.Tensor, loss: torch.Tensor, target: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`logits`: the student's T-mean logits for batch x; `loss`: the engine's loss on them. The teacher
        replaces the labels, so `target` is not used."""
        del target
        with torch.no_grad():
            teacher_logits = self.teacher(x).float().mean(0)
            reset_states(self.teacher)  # a spiking teacher starts every batch from rest, like the student
        if self.kind == "distill_response":
            soft = F.cross_entropy(logits / self.tau, F.softmax(teacher_logits / self.tau, -1))
            return self.alpha * self.tau**2 * soft + (1 - self.alpha) * loss
        student, teacher = list(self.student_features), list(self.teacher_features)
        self.student_features.clear()
        self.teacher_features.clear()
        match = sum(F.mse_loss(s.float().mean(0), t.float().mean(0)) for s, t in zip(student, teacher, strict=True))
        return loss + self.beta * match


def _recorder(store: list[torch.Tensor], training_only: bool) -> Callable[..., None]:
    """A forward hook keeping [T, B, ...] outputs; the student's only in training (evaluation must not pile up)."""

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        del inputs
        if module.training or not training_only:
            store.append(output)

    return hook


def build_distillation(
    kind: str,
    model_cfg: Mapping[str, Any],
    neuron: Callable[..., nn.Module],
    meta: Any,
    teacher_ckpt: str | None = None,
    teacher_model: Mapping[str, Any] | None = None,
    teacher_T: int = 1,
    alpha: float = 1e-3,
    tau: float = 4.0,
    beta: float = 0.1,
) -> Distillation:
    if not teacher_ckpt:
        raise ValueError(
            f"method={kind} needs method.teacher_ckpt: train the teacher (e.g. `spikesweep train "
            "recipe=survey_cf10_ann`) and pass its checkpoints/last.pt"
        )
    if not 0.0 <= alpha <= 1.0 or tau <= 0 or beta < 0:
        raise ValueError(f"method={kind}: need 0 <= alpha <= 1, tau > 0, beta >= 0 (got {alpha}, {tau}, {beta})")
    teacher_meta = dataclasses.replace(meta, time_steps=int(teacher_T)) if not meta.temporal else meta
    teacher = build_model({**dict(model_cfg), **dict(teacher_model or {})}, neuron, teacher_meta)
    source = Path(teacher_ckpt)
    ckpt.load_model_weights(teacher, ckpt.load(source), source)
    return Distillation(teacher, kind, float(alpha), float(tau), float(beta))


for _kind in ("distill_response", "distill_feature"):
    METHODS.register(_kind, build_distillation)
