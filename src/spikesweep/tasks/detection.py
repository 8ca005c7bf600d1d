"""Detection: boxes per image, YOLOv5's loss on the T-mean head output, COCO mAP50-95 / mAP50.

A batch is (images [B, ...], targets [B, maxN, 6]) with rows (class, x1, y1, x2, y2, iscrowd) in pixels of
the model's input, padded with -1 rows. Models return [T, B, P, 5 + K] raw head outputs (layout in
detection_boxes.py); the loss and the decoder read their mean over T. Anchors and strides come from the
model's config (conf/task/detection.yaml reads them there).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import torch

from spikesweep.protocols import Sync
from spikesweep.tasks import TASKS
from spikesweep.tasks.coco_metrics import coco_inputs, coco_map
from spikesweep.tasks.detection_boxes import HeadLayout, detect
from spikesweep.tasks.detection_loss import YoloLoss, scaled_gains


def collate_detection(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images stacked; each image's [N_i, 6] boxes padded with -1 rows to the batch's largest N (at least 1,
    so that a batch without boxes still has a [B, 1, 6] target)."""
    images, targets = zip(*items)
    padded = torch.full((len(targets), max(1, *(len(t) for t in targets)), 6), -1.0)
    for row, t in zip(padded, targets):
        row[: len(t)] = t
    return torch.stack(images), padded


def interleave(per_rank: list[list[Any]]) -> list[Any]:
    """The split's order back from strided shards (rank r holds images r, r+W, ...: see `Sync.gather`).
    COCO AP breaks score ties by image order, so a sharded evaluation must see the images in the order a
    single process does to give its number."""
    longest = max(len(items) for items in per_rank)
    return [items[i] for i in range(longest) for items in per_rank if i < len(items)]


class BoxTask(Protocol):
    """What DetectionMeter asks of a detection task (the YOLO one here, the SSD one in ssd_detection.py)."""

    num_classes: int
    #: True when `loss` is a batch's mean per image (SSD's, normalised by the batch's matched priors); False
    #: when it sums the batch's images (YOLOv5's, times the batch size)
    loss_is_batch_mean: bool

    def loss(self, outputs: torch.Tensor, loss_targets: torch.Tensor) -> torch.Tensor: ...

    def detect(self, outputs: torch.Tensor) -> list[torch.Tensor]:
        """Per image [n, 6] (x1, y1, x2, y2, score, class)."""

    def ground_truth(self, targets: torch.Tensor) -> list[torch.Tensor]:
        """Per image the [m, 6] target rows the detections are evaluated against."""


class DetectionMeter:
    """Training: sums the loss it is given. Evaluation (no loss given): computes the loss and keeps each
    image's detections and ground truth, to run the COCO evaluator once over every rank's images."""

    def __init__(self, task: BoxTask) -> None:
        self.task = task
        self.loss_sum, self.samples = 0.0, 0
        self.ground_truth: list[torch.Tensor] = []  # per image [m, 6] (class, x1, y1, x2, y2, iscrowd)
        self.detections: list[torch.Tensor] = []  # per image [n, 6] (x1, y1, x2, y2, score, class)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor | None = None) -> None:
        """`loss` is a batch's loss as the task's `loss` returns it (a sum or a mean over the batch's images)."""
        if loss is None:
            loss = self.task.loss(outputs, targets)
            found = self.task.detect(outputs)
            self.detections += [d.cpu() for d in found]
            self.ground_truth += [t.cpu() for t in self.task.ground_truth(targets)]
        self.loss_sum += loss.item() * (len(outputs) if self.task.loss_is_batch_mean else 1)
        self.samples += len(outputs)

    def compute(self, sync: Sync) -> dict[str, float]:
        parts = sync.gather((self.loss_sum, self.samples, self.ground_truth, self.detections))
        loss_sum, samples = sum(p[0] for p in parts), sum(p[1] for p in parts)
        metrics = {"loss": loss_sum / max(samples, 1)}
        if any(p[2] for p in parts):
            gt, det = interleave([p[2] for p in parts]), interleave([p[3] for p in parts])
            map50_95, map50 = coco_map(*coco_inputs(gt, det, self.task.num_classes))
            metrics |= {"map50_95": 100 * map50_95, "map50": 100 * map50}  # points, as top-1 and the reports
        return metrics

    def state(self) -> dict[str, Any]:
        return {"loss_sum": self.loss_sum, "samples": self.samples, "ground_truth": list(self.ground_truth),
                "detections": list(self.detections)}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.loss_sum, self.samples = float(state["loss_sum"]), int(state["samples"])
        self.ground_truth, self.detections = list(state["ground_truth"]), list(state["detections"])


class PaddedBoxBatches:
    """What both detection tasks do alike: padded box batches, the T-mean output, the criterion's loss."""

    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def collate(self) -> Callable[[list[Any]], Any]:
        return collate_detection

    def start_epoch(self, epoch: int, seed: int) -> None:
        """Nothing per epoch: augmentation is the dataset's."""

    def batch_to(self, batch: Any, device: torch.device, train: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, targets = batch
        x, targets = x.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        return x, targets, targets

    def outputs(self, model_output: torch.Tensor) -> torch.Tensor:
        return model_output.float().mean(0)

    def loss(self, outputs: torch.Tensor, loss_targets: torch.Tensor) -> torch.Tensor:
        return self.criterion(outputs, loss_targets)


class Detection(PaddedBoxBatches):
    name = "detection"
    best_metric = "map50_95"
    higher_is_better = True
    report_columns = ("test_map50_95", "test_map50", "test_loss")
    loss_is_batch_mean = False  # YOLOv5's loss is the batch's sum

    def __init__(self, layout: HeadLayout, num_classes: int, criterion: YoloLoss, conf_threshold: float,
                 iou_threshold: float, max_detections: int) -> None:
        self.layout, self.num_classes, self.criterion = layout, num_classes, criterion
        self.conf_threshold, self.iou_threshold, self.max_detections = conf_threshold, iou_threshold, max_detections


    def detect(self, outputs: torch.Tensor) -> list[torch.Tensor]:
        """Per image [n, 6] (x1, y1, x2, y2, score, class) after NMS."""
        return detect(outputs, self.layout, self.conf_threshold, self.iou_threshold, self.max_detections)

    def ground_truth(self, targets: torch.Tensor) -> list[torch.Tensor]:
        """Every real box (padding rows dropped)."""
        return [t[t[:, 0] >= 0].float() for t in targets]

    def meter(self) -> DetectionMeter:
        return DetectionMeter(self)

    def epoch_line(self, metrics: Mapping[str, float]) -> str:
        return (f"loss {metrics['train_loss']:.4f}  test mAP50-95 {metrics['test_map50_95']:.2f}%"
                f"  mAP50 {metrics['test_map50']:.2f}%")


@TASKS.register("detection")
def build_detection(
    meta: Any, trainer: Mapping[str, Any], *, anchors: Sequence[Sequence[float]], strides: Sequence[int],
    box: float, obj: float, cls: float, anchor_t: float, balance: Sequence[float] | None = None,
    conf_threshold: float, iou_threshold: float, max_detections: int,
) -> Detection:
    """Gains are given as tuned for 640 px, 3 scales and 80 classes and rescaled to this head, input size
    and class count as upstream does; `balance` (per-scale objectness weights) defaults to upstream's."""
    image_hw = tuple(meta.input_shape[-2:])
    layout = HeadLayout.build(anchors, strides, image_hw)
    gains = scaled_gains(box, obj, cls, len(layout.strides), meta.num_classes, max(image_hw))
    criterion = YoloLoss(layout, meta.num_classes, gains, anchor_t, balance)
    return Detection(layout, meta.num_classes, criterion, conf_threshold, iou_threshold, max_detections)
