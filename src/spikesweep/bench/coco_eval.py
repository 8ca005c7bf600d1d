"""The COCO evaluator on synthetic detections: pycocotools (the reference) against faster-coco-eval (a C++
port, what task=detection reports) on the same ground truth and detections, in one process.

Evaluation runs once per epoch over the whole test split, in the main process, while the devices wait; at
COCO's size (5,000 images, up to 300 detections each at the 0.001 threshold) the evaluator's time is a
share of every epoch worth knowing."""

import time

import torch

from spikesweep.tasks.coco_metrics import coco_inputs, coco_map


def random_detections(images: int, classes: int, seed: int, false_positives: int = 5
                      ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per image 0-7 GT boxes (1 in 10 crowd) in a 270 px frame, and detections: a jittered copy of each
    (IoU from about 0.5 to 1) plus `false_positives` random boxes, all with random scores and the formats
    of tasks/coco_metrics.py."""
    g = torch.Generator().manual_seed(seed)
    gts, dets = [], []
    for _ in range(images):
        n = int(torch.randint(0, 8, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g) * 200
        boxes = torch.cat((xy, xy + 10 + torch.rand(n, 2, generator=g) * 60), 1)
        cls = torch.randint(0, classes, (n, 1), generator=g).float()
        crowd = (torch.rand(n, 1, generator=g) < 0.1).float()
        gts.append(torch.cat((cls, boxes, crowd), 1))
        fp_xy = torch.rand(false_positives, 2, generator=g) * 200
        found = torch.cat((boxes + torch.randn(n, 4, generator=g) * 3, torch.cat((fp_xy, fp_xy + 20), 1)))
        found_cls = torch.cat((cls, torch.randint(0, classes, (false_positives, 1), generator=g).float()))
        dets.append(torch.cat((found, torch.rand(len(found), 1, generator=g), found_cls), 1))
    return gts, dets


def bench_coco_eval(images: int = 1000, detections: int = 100, classes: int = 80) -> list[dict[str, float | str]]:
    """One row per evaluator: seconds for one evaluation and its two numbers (they must agree)."""
    import faster_coco_eval
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset, results = coco_inputs(*random_detections(images, classes, 0, false_positives=detections), classes)
    evaluators = {"pycocotools": (COCO, COCOeval), f"faster-coco-eval {faster_coco_eval.__version__}":
                  (faster_coco_eval.COCO, faster_coco_eval.COCOeval_faster)}
    rows: list[dict[str, float | str]] = []
    for name, api in evaluators.items():
        started = time.perf_counter()
        map50_95, map50 = coco_map(dataset, results, api)
        seconds = time.perf_counter() - started
        rows.append({"evaluator": name, "images": images, "detections": len(results), "s": seconds,
                     "speedup": float(rows[0]["s"]) / seconds if rows else 1.0, "map50_95": map50_95, "map50": map50})
    return rows
