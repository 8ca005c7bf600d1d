"""SSD detection (SFOD's, after Cordone et al.): priors matched to boxes, smooth-L1 offsets, sigmoid focal loss.

A batch is the YOLO task's (images, [B, maxN, 6] targets padded with -1 rows; collate_detection). Models
return [T, B, P, 4 + K] (SFOD: T = 1, its head reads the spike rates): per prior (dx, dy, dw, dh) offsets
then K class logits, priors ordered map, row, column, prior (ssd_boxes.py builds them from the model's
config). Loss, as upstream's: each box takes its best prior and every prior it overlaps at IoU >= 0.5;
smooth L1 (beta 1) on the matched priors' offsets plus sigmoid focal loss over every prior and class, both
divided by the batch's matched priors. Detection: per class the top candidates above a score threshold,
class-wise NMS. Metrics are the YOLO task's (DetectionMeter, COCO mAP in points); Gen1's evaluation drops
boxes with a diagonal or side below Prophesee's minimum from both detections and ground truth.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.nn import functional as F
from torchvision.ops import batched_nms, clip_boxes_to_image, sigmoid_focal_loss

from spikesweep.tasks import TASKS
from spikesweep.tasks.detection import DetectionMeter, PaddedBoxBatches
from spikesweep.tasks.ssd_boxes import decode, encode, match, ssd_priors


class SSDLoss:
    """`(outputs [B, P, 4 + K], targets [B, M, 6]) -> loss`: the batch's box + class loss per matched prior."""

    def __init__(self, priors: torch.Tensor, num_classes: int, box_weights: Sequence[float], match_iou: float,
                 focal_alpha: float, focal_gamma: float) -> None:
        self.priors, self.num_classes, self.box_weights = priors, num_classes, tuple(box_weights)
        self.match_iou, self.focal_alpha, self.focal_gamma = match_iou, focal_alpha, focal_gamma

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        priors = self.priors.to(outputs.device)
        box_loss = cls_loss = outputs.new_zeros(())
        matched_priors = 0
        for out, rows in zip(outputs.float(), targets):
            rows = rows[(rows[:, 0] >= 0) & (rows[:, 5] == 0)]  # real, non-crowd boxes
            matched = match(rows[:, 1:5], priors, self.match_iou)
            fg = (matched >= 0).nonzero(as_tuple=True)[0]
            goal = encode(rows[matched[fg], 1:5], priors[fg], self.box_weights)
            box_loss = box_loss + F.smooth_l1_loss(out[fg, :4], goal, reduction="sum")
            classes = torch.zeros_like(out[:, 4:])
            classes[fg, rows[matched[fg], 0].long()] = 1.0
            cls_loss = cls_loss + sigmoid_focal_loss(out[:, 4:], classes, self.focal_alpha, self.focal_gamma, "sum")
            matched_priors += len(fg)
        return (box_loss + cls_loss) / max(1, matched_priors)


class SSDDetection(PaddedBoxBatches):
    name = "ssd_detection"
    best_metric = "map50_95"
    higher_is_better = True
    report_columns = ("test_map50_95", "test_map50", "test_loss")
    loss_is_batch_mean = True  # divided by the batch's matched priors, as upstream

    def __init__(self, priors: torch.Tensor, image_hw: tuple[int, int], num_classes: int, criterion: SSDLoss,
                 conf_threshold: float, nms_iou: float, topk_candidates: int, max_detections: int,
                 min_box_diagonal: float, min_box_side: float) -> None:
        self.priors, self.image_hw, self.num_classes, self.criterion = priors, image_hw, num_classes, criterion
        self.conf_threshold, self.nms_iou = conf_threshold, nms_iou
        self.topk_candidates, self.max_detections = topk_candidates, max_detections
        self.min_box_diagonal, self.min_box_side = min_box_diagonal, min_box_side


    def evaluated(self, xyxy: torch.Tensor) -> torch.Tensor:
        """Which boxes [n, 4] count in evaluation: diagonal and both sides at least the minimums."""
        wh = xyxy[:, 2:4] - xyxy[:, :2]
        return (wh.square().sum(1) >= self.min_box_diagonal ** 2) & (wh.min(1).values >= self.min_box_side)

    def ground_truth(self, targets: torch.Tensor) -> list[torch.Tensor]:
        """Per image the [m, 6] rows evaluation compares against: real boxes of evaluated size."""
        real = [t[t[:, 0] >= 0].float() for t in targets]
        return [t[self.evaluated(t[:, 1:5])] for t in real]

    def detect(self, outputs: torch.Tensor) -> list[torch.Tensor]:
        """Per image [n, 6] (x1, y1, x2, y2, score, class): per class the `topk_candidates` best priors above
        the threshold, class-wise NMS, the `max_detections` best kept, small boxes dropped."""
        boxes = clip_boxes_to_image(decode(outputs[..., :4].float(), self.priors.to(outputs.device),
                                           self.criterion.box_weights), self.image_hw)
        found = []
        for b, scores in zip(boxes, outputs[..., 4:].float().sigmoid()):
            keep_boxes, keep_scores, keep_classes = [], [], []
            for k in range(scores.shape[1]):
                idx = (scores[:, k] > self.conf_threshold).nonzero(as_tuple=True)[0]
                score, top = scores[idx, k].topk(min(self.topk_candidates, len(idx)))
                keep_boxes.append(b[idx[top]])
                keep_scores.append(score)
                keep_classes.append(torch.full_like(score, k))
            b, s, c = torch.cat(keep_boxes), torch.cat(keep_scores), torch.cat(keep_classes)
            keep = batched_nms(b, s, c.long(), self.nms_iou)[: self.max_detections]
            image = torch.cat((b[keep], s[keep, None], c[keep, None]), dim=1)
            found.append(image[self.evaluated(image[:, :4])])
        return found

    def meter(self) -> DetectionMeter:
        return DetectionMeter(self)

    def epoch_line(self, metrics: Mapping[str, float]) -> str:
        return (f"loss {metrics['train_loss']:.4f}  test mAP50-95 {metrics['test_map50_95']:.2f}%"
                f"  mAP50 {metrics['test_map50']:.2f}%")


@TASKS.register("ssd_detection")
def build_ssd_detection(
    meta: Any, trainer: Mapping[str, Any], *, aspect_ratios: Sequence[Sequence[float]], min_ratio: float,
    max_ratio: float, halvings: Sequence[Sequence[str]], box_weights: Sequence[float], match_iou: float,
    focal_alpha: float, focal_gamma: float, conf_threshold: float, nms_iou: float, topk_candidates: int,
    max_detections: int, min_box_diagonal: float = 0.0, min_box_side: float = 0.0,
) -> SSDDetection:
    """Priors for the dataset's input size from the model's geometry (its config is the one source)."""
    image_hw = (int(meta.input_shape[-2]), int(meta.input_shape[-1]))
    priors = ssd_priors(image_hw, halvings, aspect_ratios, min_ratio, max_ratio)
    criterion = SSDLoss(priors, meta.num_classes, box_weights, match_iou, focal_alpha, focal_gamma)
    return SSDDetection(priors, image_hw, meta.num_classes, criterion, conf_threshold, nms_iou, topk_candidates,
                        max_detections, min_box_diagonal, min_box_side)
