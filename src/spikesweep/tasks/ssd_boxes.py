"""SSD's priors, its box offsets and its matching, shared by the SSD loss and decoder.

Priors follow torchvision's DefaultBoxGenerator (which SFOD and Cordone et al. use) on the model's own
grids: map m has scale s_m = min_ratio + (max_ratio - min_ratio) m / (M - 1) (s_M = 1), and at each cell
centre the (w, h) pairs (s_m, s_m), (s', s') with s' = sqrt(s_m s_m+1), then (s_m sqrt(r), s_m / sqrt(r)) and
its transpose for each aspect ratio r, clipped to [0, 1] and scaled by the input's width and height. The
order (map, row, column, prior) is the model's output order (models/sfod.py).
"""

import math
from collections.abc import Sequence

import torch
from torchvision.ops import box_convert, box_iou

#: the largest log-scale a decoded offset may have (torchvision's BoxCoder: boxes up to 1000/16 x the prior)
MAX_LOG_SCALE = math.log(1000.0 / 16)


def grid_sizes(image_hw: Sequence[int], halvings: Sequence[Sequence[str]]) -> list[tuple[int, int]]:
    """Each map's (H, W): from the input (or the previous map) one stride-2 halving per entry, rounded "up"
    (a padded 3x3 conv or pool) or "down" (a 2x2 pool)."""
    h, w = int(image_hw[0]), int(image_hw[1])
    sizes = []
    for steps in halvings:
        for rounding in steps:
            if rounding not in ("up", "down"):
                raise ValueError(f"a halving rounds 'up' or 'down', got '{rounding}'")
            h, w = ((-(-h // 2), -(-w // 2)) if rounding == "up" else (h // 2, w // 2))
        sizes.append((h, w))
    return sizes


def prior_shapes(aspect_ratios: Sequence[Sequence[float]], min_ratio: float, max_ratio: float) -> list[torch.Tensor]:
    """Per map [A_m, 2] (w, h) as fractions of the input's width and height, clipped to [0, 1]."""
    maps = len(aspect_ratios)
    scales = [min_ratio + (max_ratio - min_ratio) * m / (maps - 1.0) for m in range(maps)] + [1.0]
    shapes = []
    for m, ratios in enumerate(aspect_ratios):
        between = math.sqrt(scales[m] * scales[m + 1])
        pairs = [(scales[m], scales[m]), (between, between)]
        for r in ratios:
            pairs += [(scales[m] * math.sqrt(r), scales[m] / math.sqrt(r)),
                      (scales[m] / math.sqrt(r), scales[m] * math.sqrt(r))]
        shapes.append(torch.tensor(pairs).clamp(0.0, 1.0))
    return shapes


def ssd_priors(image_hw: Sequence[int], halvings: Sequence[Sequence[str]], aspect_ratios: Sequence[Sequence[float]],
               min_ratio: float, max_ratio: float) -> torch.Tensor:
    """[P, 4] (x1, y1, x2, y2) pixels, map by map, then row, column, prior."""
    h_img, w_img = float(image_hw[0]), float(image_hw[1])
    grids = grid_sizes(image_hw, halvings)
    if len(grids) != len(aspect_ratios):
        raise ValueError(f"{len(aspect_ratios)} aspect-ratio lists for {len(grids)} maps: give one per map")
    priors = []
    for (h, w), shapes in zip(grids, prior_shapes(aspect_ratios, min_ratio, max_ratio)):
        ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
        centres = torch.stack((xs, ys), dim=-1).view(-1, 1, 2).expand(-1, len(shapes), 2)
        cxcywh = torch.cat((centres, shapes.expand(h * w, -1, -1)), dim=-1).reshape(-1, 4)
        priors.append(cxcywh * torch.tensor([w_img, h_img, w_img, h_img]))
    return box_convert(torch.cat(priors), "cxcywh", "xyxy")


def encode(boxes: torch.Tensor, priors: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """(dx, dy, dw, dh) of xyxy `boxes` from their xyxy `priors` (both [N, 4]): the centre shift in prior
    sizes and the log size ratio, times `weights` (SSD's variances 0.1 / 0.2 as 10, 10, 5, 5)."""
    b, p = box_convert(boxes, "xyxy", "cxcywh"), box_convert(priors, "xyxy", "cxcywh")
    wx, wy, ww, wh = weights
    return torch.stack((wx * (b[:, 0] - p[:, 0]) / p[:, 2], wy * (b[:, 1] - p[:, 1]) / p[:, 3],
                        ww * torch.log(b[:, 2] / p[:, 2]), wh * torch.log(b[:, 3] / p[:, 3])), dim=1)


def decode(offsets: torch.Tensor, priors: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """The inverse of `encode` on [..., P, 4] offsets, sizes capped at MAX_LOG_SCALE: xyxy boxes."""
    p = box_convert(priors, "xyxy", "cxcywh")
    wx, wy, ww, wh = weights
    cx = offsets[..., 0] / wx * p[:, 2] + p[:, 0]
    cy = offsets[..., 1] / wy * p[:, 3] + p[:, 1]
    w = torch.exp((offsets[..., 2] / ww).clamp(max=MAX_LOG_SCALE)) * p[:, 2]
    h = torch.exp((offsets[..., 3] / wh).clamp(max=MAX_LOG_SCALE)) * p[:, 3]
    return box_convert(torch.stack((cx, cy, w, h), dim=-1), "cxcywh", "xyxy")


def match(boxes: torch.Tensor, priors: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """[P] index of the ground-truth box each prior learns (-1: background). A prior takes the box it overlaps
    most when that IoU reaches the threshold; each box also takes its best prior whatever the IoU (a later
    box wins a prior two boxes both prefer), so every box is learnt."""
    if len(boxes) == 0:
        return torch.full((len(priors),), -1, dtype=torch.long, device=priors.device)
    iou = box_iou(boxes, priors)  # [M, P]
    best_iou, matched = iou.max(dim=0)
    matched[best_iou < iou_threshold] = -1
    matched[iou.argmax(dim=1)] = torch.arange(len(boxes), device=priors.device)
    return matched
