"""COCO mAP on ground truth and detections held in memory, by faster-coco-eval: the official protocol
(pycocotools') ported to C++, 11.7x faster on 1,000 images x 100 detections with equal numbers
(`spikesweep bench coco`; tests/tasks keep the two equal). Evaluation runs every epoch in the main process
while the devices wait, so its speed is training time.

Boxes are in the model's input frame: a letterbox scales every box of an image alike, which leaves IoU
and the "all"-area AP unchanged (the area ranges would shift, and are not reported).
"""

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import torch
from faster_coco_eval import COCO, COCOeval_faster


def coco_inputs(ground_truth: Sequence[torch.Tensor], detections: Sequence[torch.Tensor],
                num_classes: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A COCO dataset dict and result list, image i being `ground_truth[i]` ([m, 6] rows (class, x1, y1,
    x2, y2, iscrowd); padding rows of class -1 skipped) with `detections[i]` ([n, 6] (x1, y1, x2, y2,
    score, class))."""
    images, annotations, results = [], [], []
    for image_id, (gt, det) in enumerate(zip(ground_truth, detections)):
        images.append({"id": image_id})
        for cls, x1, y1, x2, y2, crowd in gt[gt[:, 0] >= 0].tolist():
            w, h = x2 - x1, y2 - y1
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(cls),
                                "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": int(crowd)})
        for x1, y1, x2, y2, score, cls in det.tolist():
            results.append({"image_id": image_id, "category_id": int(cls), "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": score})
    categories = [{"id": k, "name": str(k)} for k in range(num_classes)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def coco_map(dataset: dict[str, Any], results: list[dict[str, Any]],
             api: tuple[type, type] = (COCO, COCOeval_faster)) -> tuple[float, float]:
    """(mAP50-95, mAP50) as fractions, by the evaluator `api` = (COCO, COCOeval) classes (faster-coco-eval by
    default; the tests and the benchmark pass pycocotools' to show they agree). No detections, or no ground truth, is 0 (COCOeval
    would say -1, "undefined", which would read as worse than an empty prediction)."""
    if not results or not dataset["annotations"]:
        return 0.0, 0.0
    coco_cls, eval_cls = api
    with contextlib.redirect_stdout(io.StringIO()):  # the evaluator narrates every stage
        gt = coco_cls()
        gt.dataset = dataset
        gt.createIndex()
        evaluator = eval_cls(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return max(float(evaluator.stats[0]), 0.0), max(float(evaluator.stats[1]), 0.0)
