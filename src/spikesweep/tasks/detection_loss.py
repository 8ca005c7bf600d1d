"""YOLOv5's detection loss (as EMS-YOLO trains with it): anchors matched by w/h ratio, each target taught by
its cell and the two nearest neighbouring cells, CIoU box loss, objectness BCE towards the CIoU, class BCE.

Reimplemented from the description of upstream's `utils/loss.py` and `train.py` (ultralytics YOLOv5,
BICLab/EMS-YOLO); the gains and their scaling are upstream's, so its learning rates carry over.
"""

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch.nn import functional as F
from torchvision.ops import box_convert, complete_box_iou_loss

from spikesweep.tasks.detection_boxes import HeadLayout, grid_boxes

# A centre in the left half of its cell also teaches the cell to its left (and so on for the other three
# sides): YOLOv5's centre offsets reach half a cell out, so those neighbours can predict it too.
_NEIGHBOURS = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.0, 0.5], [-0.5, 0.0], [0.0, -0.5]])


class Assignment(NamedTuple):
    """Which predictions of one scale learn which target: one entry per (target, anchor, cell)."""

    image: torch.Tensor
    anchor: torch.Tensor  # anchor index
    row: torch.Tensor
    col: torch.Tensor
    target: torch.Tensor  # index into the batch's loss targets
    box: torch.Tensor  # the target (cx, cy, w, h) in grid units
    anchor_wh: torch.Tensor  # the anchor's (w, h) in grid units


def objectness_balance(num_scales: int) -> list[float]:
    """Upstream's per-scale objectness weights, finest scale first (3 scales: 4, 1, 0.4; else from P3 on)."""
    return [4.0, 1.0, 0.4] if num_scales == 3 else [4.0, 1.0, 0.25, 0.06, 0.02][:num_scales]


def scaled_gains(box: float, obj: float, cls: float, num_scales: int, num_classes: int,
                 image_size: int) -> tuple[float, float, float]:
    """The gains are tuned for 3 scales, 80 classes and 640 px; upstream's train.py rescales them thus."""
    layers = 3 / num_scales
    return box * layers, obj * (image_size / 640) ** 2 * layers, cls * num_classes / 80 * layers


class YoloLoss:
    """`(outputs [B, P, 5+K], targets [B, M, 6]) -> loss`, the weighted sum times the batch size (upstream's
    scale, which its lr 0.01 is tuned against). Target rows `(class, x1, y1, x2, y2, iscrowd)` in pixels;
    padding (class -1) and crowd rows teach nothing (COCO evaluation ignores detections on crowds)."""

    def __init__(self, layout: HeadLayout, num_classes: int, gains: tuple[float, float, float],
                 anchor_t: float = 4.0, balance: Sequence[float] | None = None) -> None:
        self.layout, self.num_classes, self.anchor_t = layout, num_classes, anchor_t
        self.box_gain, self.obj_gain, self.cls_gain = gains
        self.balance = list(balance) if balance is not None else objectness_balance(len(layout.strides))

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        outputs = outputs.float()
        image, cls, xywh = loss_targets(targets)
        box_loss = obj_loss = cls_loss = outputs.new_zeros(())
        parts = self.layout.split(outputs)
        for part, stride, anchors, balance in zip(parts, self.layout.strides, self.layout.anchors, self.balance):
            m = self.assign(image, xywh / stride, anchors.to(part.device) / stride, part.shape[2:4])
            tobj = torch.zeros_like(part[..., 4])
            if len(m.image):
                pred = part[m.image, m.anchor, m.row, m.col]
                pbox = grid_boxes(pred[:, :4], torch.stack((m.col, m.row), dim=1).to(pred.dtype), m.anchor_wh)
                lbox = complete_box_iou_loss(box_convert(pbox, "cxcywh", "xyxy"), box_convert(m.box, "cxcywh", "xyxy"))
                box_loss = box_loss + lbox.mean()
                tobj[m.image, m.anchor, m.row, m.col] = (1 - lbox.detach()).clamp(min=0)  # CIoU = 1 - its loss
                if self.num_classes > 1:  # with one class objectness says it all (as upstream)
                    onehot = F.one_hot(cls[m.target], self.num_classes).to(pred.dtype)
                    cls_loss = cls_loss + F.binary_cross_entropy_with_logits(pred[:, 5:], onehot)
            obj_loss = obj_loss + balance * F.binary_cross_entropy_with_logits(part[..., 4], tobj)
        total = self.box_gain * box_loss + self.obj_gain * obj_loss + self.cls_gain * cls_loss
        return total * outputs.shape[0]

    def assign(self, image: torch.Tensor, xywh: torch.Tensor, anchors: torch.Tensor,
               grid: Sequence[int]) -> Assignment:
        """Targets (grid units) to (image, anchor, row, column) cells of one scale: every anchor whose w and h
        are both within `anchor_t` times the target's, at the centre's cell and its two nearest neighbours."""
        ratio = xywh[None, :, 2:] / anchors[:, None]  # [A, N, 2]
        a, t = (torch.max(ratio, 1 / ratio).amax(2) < self.anchor_t).nonzero(as_tuple=True)
        centre = xywh[t, :2]
        size = torch.tensor([grid[1], grid[0]], device=xywh.device, dtype=xywh.dtype)
        low = (centre % 1 < 0.5) & (centre > 1)  # near the left / top edge, and not in the first cell
        high = ((size - centre) % 1 < 0.5) & (size - centre > 1)
        use = torch.cat((torch.ones_like(low[:, :1]), low, high), dim=1).T  # [5, n]: self, x-, y-, x+, y+
        offsets = _NEIGHBOURS.to(xywh)[:, None].expand(-1, len(t), -1)[use]
        which = torch.arange(len(t), device=xywh.device)[None].expand(5, -1)[use]
        cell = (centre[which] - offsets).long()
        gi, gj = cell[:, 0].clamp(0, grid[1] - 1), cell[:, 1].clamp(0, grid[0] - 1)
        target, anchor = t[which], a[which]
        box = xywh[target]  # the prediction's centre counts from its cell: both are whole-grid coordinates
        return Assignment(image[target], anchor, gj, gi, target, box, anchors[anchor])


def loss_targets(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The rows that teach: (image index, class, cx cy w h pixels) of every real, non-crowd, non-empty box."""
    keep = (targets[..., 0] >= 0) & (targets[..., 5] == 0)
    keep &= (targets[..., 3] > targets[..., 1]) & (targets[..., 4] > targets[..., 2])
    image, row = keep.nonzero(as_tuple=True)
    rows = targets[image, row].float()
    return image, rows[:, 0].long(), box_convert(rows[:, 1:5], "xyxy", "cxcywh")
