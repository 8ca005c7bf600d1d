"""Classification: class-index targets, cross-entropy on the T-mean logits, top-1/top-5, mixup/CutMix.

Models return logits [T, B, K]; the loss and the metrics read their mean over T (rate decoding, as every
recipe we reproduce does). Mixup/CutMix run on the device, after the batch is moved there: timm's are
plain tensor ops, so on a GPU they cost no main-process CPU time. timm is imported only by runs that mix:
it costs about a second of startup (engine/optim.py).
"""

import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from timm.data import Mixup

from spikesweep.metrics import topk_correct
from spikesweep.protocols import Sync
from spikesweep.tasks import TASKS


class TopKMeter:
    """Loss sum, top-1 and top-5 hits and the sample count; sums, so ranks and resumed halves add up."""

    def __init__(self) -> None:
        self.sums = torch.zeros(4, dtype=torch.float64)  # loss sum, top1, top5, count

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor | None = None) -> None:
        """With `loss` (a training batch's mean loss) it is counted as given; without, the plain
        cross-entropy of the outputs is (evaluation)."""
        top1, top5 = topk_correct(outputs, targets)
        if loss is None:
            loss_sum = float(nn.functional.cross_entropy(outputs.float(), targets, reduction="sum"))
        else:
            loss_sum = loss.item() * len(targets)
        self.sums += torch.tensor([loss_sum, top1, top5, len(targets)], dtype=torch.float64)

    @property
    def samples(self) -> int:
        return int(self.sums[3])

    def compute(self, sync: Sync) -> dict[str, float]:
        loss_sum, top1, top5, count = sync.sum(self.sums).tolist()
        return {"loss": loss_sum / count, "top1": 100 * top1 / count, "top5": 100 * top5 / count}

    def state(self) -> dict[str, Any]:
        return {"sums": self.sums.tolist()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.sums = torch.tensor(state["sums"], dtype=torch.float64)


class Classification:
    name = "classification"
    best_metric = "top1"
    higher_is_better = True
    report_columns = ("test_top1", "test_top5", "test_loss")

    def __init__(self, num_classes: int, label_smoothing: float = 0.0, mixup: Mapping[str, Any] | None = None) -> None:
        self.num_classes = num_classes
        self.mixup_cfg = dict(mixup or {})
        self.mixup = build_mixup(self.mixup_cfg, label_smoothing, num_classes) if self.mixup_cfg else None
        self.criterion: Callable[..., torch.Tensor] = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        if self.mixup is not None:
            from timm.loss import SoftTargetCrossEntropy

            self.criterion = SoftTargetCrossEntropy()

    def collate(self) -> None:
        return None

    def start_epoch(self, epoch: int, seed: int) -> None:
        if self.mixup is not None:
            self.mixup.mixup_enabled = mixup_active(self.mixup_cfg, epoch, seed)

    def batch_to(self, batch: Any, device: torch.device, train: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = batch
        return device_batch(x, y, device, self.mixup if train else None)

    def outputs(self, model_output: torch.Tensor) -> torch.Tensor:
        return model_output.float().mean(0)

    def loss(self, outputs: torch.Tensor, loss_targets: torch.Tensor) -> torch.Tensor:
        return self.criterion(outputs, loss_targets)

    def meter(self) -> TopKMeter:
        return TopKMeter()

    def epoch_line(self, metrics: Mapping[str, float]) -> str:
        return f"loss {metrics['train_loss']:.4f}  train {metrics['train_top1']:.2f}%  test {metrics['test_top1']:.2f}%"


def device_batch(
    x: torch.Tensor, y: torch.Tensor, device: torch.device, mixup: "Mixup | None"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch on the device, mixed there. Returns inputs, class labels and the loss target (soft labels
    under mixup, else the labels)."""
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    if mixup is None:
        return x, y, y
    x, target = mixup(x, y)
    return x, y, target


def mixup_active(m: Mapping[str, Any], epoch: int, seed: int) -> bool:
    """Off from off_epoch on; with per_epoch, one draw of probability `prob` decides the whole epoch.

    The per-epoch draw is seeded by (seed, epoch), so a resumed run makes the same choices.
    """
    if m["off_epoch"] is not None and epoch >= int(m["off_epoch"]):
        return False
    return not m.get("per_epoch") or random.Random(seed * 100_003 + epoch).random() < float(m["prob"])


def build_mixup(m: Mapping[str, Any], label_smoothing: float, num_classes: int) -> "Mixup | None":
    if not (m["mixup_alpha"] > 0 or m["cutmix_alpha"] > 0):
        return None
    from timm.data import Mixup

    return Mixup(
        mixup_alpha=float(m["mixup_alpha"]),
        cutmix_alpha=float(m["cutmix_alpha"]),
        prob=1.0 if m.get("per_epoch") else float(m["prob"]),  # per_epoch: `prob` is spent on the epoch draw
        switch_prob=float(m["switch_prob"]),
        mode=m["mode"],
        label_smoothing=float(label_smoothing),
        num_classes=num_classes,
    )


@TASKS.register("classification")
def build_classification(meta: Any, trainer: Mapping[str, Any]) -> Classification:
    """Label smoothing and mixup are trainer settings in every recipe, so they are read from there."""
    return Classification(meta.num_classes, float(trainer["label_smoothing"]), trainer["mixup"])
