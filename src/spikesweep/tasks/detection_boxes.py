"""The detection head's layout and its box parametrisation, shared by the loss and the decoder.

A head output is [B, P, 5 + K]: scale by scale (in the model config's `strides` order), then anchor, row,
column; last dim (tx, ty, tw, th, objectness, class logits). A box is YOLOv5's: centre
`(2 sigmoid(txy) - 0.5 + cell)` and size `(2 sigmoid(twh))^2 * anchor`, in grid units; the loss and the
decoder both call `grid_boxes`, so what is trained is what is evaluated.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchvision.ops import batched_nms, box_convert

#: boxes kept before NMS (YOLOv5's val caps them too): an untrained head passes the 0.001 threshold everywhere
MAX_CANDIDATES = 30_000


@dataclass(frozen=True)
class HeadLayout:
    """Where each scale's predictions sit in the flat P axis, and its anchors (pixels)."""

    strides: tuple[int, ...]
    anchors: tuple[torch.Tensor, ...]  # per scale [A_s, 2] (w, h) in pixels
    grids: tuple[tuple[int, int], ...]  # per scale (H_s, W_s)

    @classmethod
    def build(cls, anchors: Sequence[Sequence[float]], strides: Sequence[int], image_hw: Sequence[int]) -> "HeadLayout":
        """`anchors` as configs write them: per scale a flat list w0, h0, w1, h1, ... A stride-s map of an
        H-pixel input has ceil(H / s) rows (padded stride-2 convolutions round up)."""
        if len(anchors) != len(strides):
            raise ValueError(f"{len(anchors)} anchor sets for {len(strides)} strides: give one set per scale")
        pairs = tuple(torch.tensor([float(v) for v in a]).view(-1, 2) for a in anchors)
        grids = tuple((math.ceil(image_hw[0] / s), math.ceil(image_hw[1] / s)) for s in strides)
        return cls(tuple(int(s) for s in strides), pairs, grids)

    @property
    def sizes(self) -> list[int]:
        return [len(a) * h * w for a, (h, w) in zip(self.anchors, self.grids)]

    def split(self, outputs: torch.Tensor) -> list[torch.Tensor]:
        """[B, P, C] -> per scale [B, A, H, W, C]."""
        if outputs.shape[1] != sum(self.sizes):
            raise ValueError(f"the head gave {outputs.shape[1]} predictions per image; strides {self.strides} and "
                             f"anchors {[len(a) for a in self.anchors]} on grids {self.grids} make {sum(self.sizes)}")
        parts = outputs.split(self.sizes, dim=1)
        return [p.view(p.shape[0], len(a), h, w, -1) for p, a, (h, w) in zip(parts, self.anchors, self.grids)]


def grid_boxes(raw: torch.Tensor, cells: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) in grid units from raw (tx, ty, tw, th) [..., 4], the cells' (x, y) and the anchors in
    grid units (all broadcastable). The centre can leave its cell by half a cell each side, which is what lets
    a target be assigned to its neighbouring cells too."""
    s = raw.sigmoid() * 2
    return torch.cat((s[..., :2] - 0.5 + cells, s[..., 2:].square() * anchors), dim=-1)


def decode(outputs: torch.Tensor, layout: HeadLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes [B, P, 4] (x1, y1, x2, y2 pixels) and class confidences [B, P, K] = objectness * class score."""
    boxes, scores = [], []
    for part, stride, anchors in zip(layout.split(outputs), layout.strides, layout.anchors):
        _, a, h, w, _ = part.shape
        ys, xs = torch.meshgrid(torch.arange(h, device=part.device), torch.arange(w, device=part.device), indexing="ij")
        cells = torch.stack((xs, ys), dim=-1).view(1, 1, h, w, 2)
        anchor = (anchors.to(part.device) / stride).view(1, a, 1, 1, 2)
        xywh = grid_boxes(part[..., :4].float(), cells, anchor) * stride
        boxes.append(box_convert(xywh, "cxcywh", "xyxy").flatten(1, 3))
        scores.append((part[..., 4:5].float().sigmoid() * part[..., 5:].float().sigmoid()).flatten(1, 3))
    return torch.cat(boxes, 1), torch.cat(scores, 1)


def detect(
    outputs: torch.Tensor, layout: HeadLayout, conf_threshold: float, iou_threshold: float, max_detections: int
) -> list[torch.Tensor]:
    """Per image [n, 6] (x1, y1, x2, y2, score, class): every (box, class) pair above the threshold (a box may
    count for several classes, as in YOLOv5's val), class-wise NMS, the `max_detections` best kept."""
    boxes, scores = decode(outputs, layout)
    found = []
    for b, s in zip(boxes, scores):
        p, k = (s > conf_threshold).nonzero(as_tuple=True)
        conf = s[p, k]
        if len(conf) > MAX_CANDIDATES:
            conf, top = conf.topk(MAX_CANDIDATES)
            p, k = p[top], k[top]
        keep = batched_nms(b[p], conf, k, iou_threshold)[:max_detections]
        found.append(torch.cat((b[p[keep]], conf[keep, None], k[keep, None].float()), dim=1))
    return found
