"""Decoding + NMS on a hand-made head output, and COCO mAP on cases whose AP is derived by hand."""

import math

import pytest
import torch

from spikesweep.bench.coco_eval import random_detections
from spikesweep.tasks.coco_metrics import coco_inputs, coco_map
from spikesweep.tasks.detection_boxes import HeadLayout, detect


def det(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).view(-1, 6)


def test_detect_suppresses_within_a_class_only():
    """Stride 8, one 16 px anchor, 4 x 4 grid. Raw wh ln 3 -> (2 sigmoid)^2 = 2.25 -> 36 px boxes; raw xy 0
    puts a centre mid-cell. Boxes at neighbouring cells (8 px apart) overlap by IoU 28*36/(2*36^2 - 28*36)
    = 0.64 > 0.6: the weaker class-0 box goes, the class-1 box stays (NMS is per class)."""
    layout = HeadLayout.build([[16, 16]], [8], (32, 32))
    out = torch.zeros(1, 16, 7)
    out[..., 2:4] = math.log(3)
    out[..., 4] = -20.0  # objectness ~ 2e-9: under the 0.001 threshold
    out[..., 5:] = -20.0
    for (row, col), obj, cls in (((1, 1), 4.0, 0), ((1, 2), 2.0, 0), ((2, 1), 3.0, 1)):
        out[0, row * 4 + col, 4] = obj
        out[0, row * 4 + col, 5 + cls] = 10.0
    (found,) = detect(out, layout, conf_threshold=0.001, iou_threshold=0.6, max_detections=300)
    sig = torch.sigmoid
    expected = det([-6, -6, 30, 30, sig(torch.tensor(4.0)) * sig(torch.tensor(10.0)), 0],
                   [-6, 2, 30, 38, sig(torch.tensor(3.0)) * sig(torch.tensor(10.0)), 1])
    assert torch.allclose(found, expected, atol=1e-5)
    (capped,) = detect(out, layout, 0.001, 0.6, max_detections=1)
    assert torch.equal(capped, found[:1])


def test_map_by_hand():
    """One class, three GT boxes in two images; detections by score: TP, FP, TP. Precision/recall after each:
    (1, 1/3), (1/2, 1/3), (2/3, 2/3). Interpolated precision is 1 up to recall 1/3 (34 of COCO's 101 recall
    points: 0.00 ... 0.33) and 2/3 up to 2/3 (33 points: 0.34 ... 0.66): AP = (34 + 33 * 2/3) / 101 at every
    IoU threshold (the TPs are exact)."""
    gt = [det([0, 0, 0, 10, 10, 0], [0, 20, 20, 30, 30, 0]), det([0, 0, 0, 10, 10, 0])]
    found = [det([0, 0, 10, 10, 0.9, 0], [40, 40, 50, 50, 0.8, 0]), det([0, 0, 10, 10, 0.7, 0])]
    assert coco_map(*coco_inputs(gt, found, 1)) == pytest.approx((56 / 101, 56 / 101))


def test_map50_and_map50_95_differ_by_iou():
    """A box of IoU 0.775 with its GT is a hit at thresholds 0.50 ... 0.75 (6 of 10): mAP50 1, mAP50-95 0.6.
    A crowd GT region absorbs the detection on it instead of making it a false positive; a padding row is
    no box."""
    gt = [det([0, 0, 0, 10, 10, 0], [0, 50, 50, 90, 90, 1], [-1, -1, -1, -1, -1, -1])]
    found = [det([0, 0, 10, 7.75, 0.9, 0], [60, 60, 70, 70, 0.95, 0])]
    assert coco_map(*coco_inputs(gt, found, 1)) == pytest.approx((0.6, 1.0))


def test_map_without_detections_or_boxes_is_zero():
    gt, none = [det([0, 0, 0, 10, 10, 0])], [det()]
    assert coco_map(*coco_inputs(gt, none, 1)) == (0.0, 0.0)
    assert coco_map(*coco_inputs([det()], [det([0, 0, 10, 10, 0.5, 0])], 1)) == (0.0, 0.0)


def test_faster_coco_eval_agrees_with_pycocotools():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    inputs = coco_inputs(*random_detections(200, 3, seed=0), 3)
    reference = coco_map(*inputs, api=(COCO, COCOeval))
    faster = coco_map(*inputs)
    assert 0.05 < reference[0] < reference[1] < 1  # a case with hits, misses and partial overlaps
    assert faster == pytest.approx(reference, abs=1e-9)
