"""The embedded detection default: filled squares, circles and triangles on small canvases, no download.

The images are drawn with numpy from a seed and written once, in real COCO format (PNG files and
annotations/instances_{train,test}.json), to a cache folder; the `coco` reader then loads them like any
COCO copy. So the demo exercises the same reader, checks and augmentation as COCO itself, and the files
can be opened with any COCO tool. The folder is built atomically under a lock (data/cache.py): two jobs
starting together build it once and never read half of it.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from spikesweep.data.cache import cached
from spikesweep.data.coco import load_detection
from spikesweep.data.registry import DataBundle, DataError, register_dataset

CLASSES = ("square", "circle", "triangle")  # category ids 1, 2, 3 in this order
FORMAT = 1  # bump when the drawing changes, so older caches are not reused
MAX_COVERED = 0.5  # no object may cover more than this fraction of another's box


def _mask(shape: int, u: np.ndarray, v: np.ndarray, side: int) -> np.ndarray:
    """Pixels of a filled shape in a side x side box; u, v are pixel columns/rows relative to its corner."""
    inside = (u >= 0) & (u < side) & (v >= 0) & (v < side)
    cu, cv = u + 0.5 - side / 2, v + 0.5 - side / 2  # pixel centres relative to the box centre
    if CLASSES[shape] == "circle":
        return inside & (cu**2 + cv**2 <= (side / 2) ** 2)
    if CLASSES[shape] == "triangle":  # apex at the top middle, base along the bottom
        return inside & (np.abs(cu) <= (v + 0.5) / 2)
    return inside


def _covered(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """The largest fraction of either square box (x, y, side) that the other covers."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[2], b[1] + b[2]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0) / min(a[2], b[2]) ** 2


def draw(rng: np.random.Generator, canvas: int, min_size: int, max_size: int,
         max_objects: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One image [canvas, canvas, 3] uint8 and its objects as COCO annotation fields (category_id, bbox, area).
    Bright shapes on a dark noisy background; an object's box is the tight box of its own pixels."""
    background = rng.integers(0, 90, size=3)
    image = np.clip(background + rng.integers(-12, 13, size=(canvas, canvas, 3)), 0, 255).astype(np.uint8)
    v, u = np.mgrid[0:canvas, 0:canvas]
    placed: list[tuple[int, int, int]] = []
    objects = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):
            side = int(rng.integers(min_size, max_size + 1))
            box = (int(rng.integers(0, canvas - side + 1)), int(rng.integers(0, canvas - side + 1)), side)
            if all(_covered(box, other) <= MAX_COVERED for other in placed):
                break
        else:
            continue  # a crowded canvas: fewer objects
        placed.append(box)
        shape = int(rng.integers(0, len(CLASSES)))
        mask = _mask(shape, u - box[0], v - box[1], side)
        image[mask] = rng.integers(130, 256, size=3)
        rows, cols = np.nonzero(mask)
        objects.append({
            "category_id": shape + 1,
            "bbox": [int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1), int(rows.max() - rows.min() + 1)],
            "area": int(mask.sum()),
        })
    return image, objects


def write_split(folder: Path, split: str, count: int, seed: int, **drawing: int) -> int:
    """folder/<split>/*.png and folder/annotations/instances_<split>.json; returns the number of boxes."""
    rng = np.random.default_rng([seed, {"train": 0, "test": 1}[split]])
    (folder / split).mkdir(parents=True)
    (folder / "annotations").mkdir(exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, count + 1):
        pixels, objects = draw(rng, **drawing)
        name = f"{image_id:06d}.png"
        Image.fromarray(pixels).save(folder / split / name)
        images.append({"id": image_id, "file_name": name, "width": pixels.shape[1], "height": pixels.shape[0]})
        for obj in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "iscrowd": 0, **obj})
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CLASSES)]
    instances = {"info": {"description": f"spikesweep detect_shapes {split}, seed {seed}"},
                 "images": images, "annotations": annotations, "categories": categories}
    (folder / "annotations" / f"instances_{split}.json").write_text(json.dumps(instances))
    return len(annotations)


@register_dataset("detect_shapes")
def build_detect_shapes(
    data_dir: Path, T: int, num_classes: int, image_size: int, mean: list[float], std: list[float],
    cache_dir: str, augment: dict[str, Any] | None = None, canvas: int = 64, train_images: int = 1600,
    test_images: int = 400, min_size: int = 10, max_size: int = 30, max_objects: int = 4, seed: int = 0,
) -> DataBundle:
    """Written under cache_dir on first use (keyed by every drawing option), then read by the coco loader."""
    del data_dir  # generated, nothing to read
    if not 1 <= min_size <= max_size <= canvas:
        raise DataError(f"dataset.min_size={min_size}, max_size={max_size}, canvas={canvas}: need "
                        f"1 <= min_size <= max_size <= canvas")
    drawing = {"canvas": int(canvas), "min_size": int(min_size), "max_size": int(max_size),
               "max_objects": int(max_objects)}
    options = {**drawing, "train_images": int(train_images), "test_images": int(test_images), "seed": int(seed),
               "format": FORMAT}

    def build(folder: Path) -> dict[str, Any]:
        boxes = sum(write_split(folder, split, options[f"{split}_images"], int(seed), **drawing)
                    for split in ("train", "test"))
        return {"samples": int(train_images) + int(test_images), "boxes": boxes}

    root = cached(Path(cache_dir), "detect_shapes", options, build)
    fix = f"delete {root} and run again to rewrite it"  # only a damaged cache can lack files
    return load_detection(root, "train", "test", fix, T, num_classes, image_size, mean, std, augment,
                          box_tolerance=0.0, empty_boxes="error")
