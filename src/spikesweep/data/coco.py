"""COCO-format object detection: `annotations/instances_<split>.json` plus a `<split>/` image folder.

Every image is letterboxed to a square `image_size` (aspect kept, grey 114 padding, as YOLOv5 feeds its
network), so a sample's boxes are already in the model's input frame: a float32 [N, 6] target of rows
(class_id, x1, y1, x2, y2, iscrowd), class ids contiguous 0..K-1 in category-id order (COCO's 80 ids run
1..90 with gaps). Training adds YOLOv5's mosaic and horizontal flip (`dataset.augment`, a DetectionAugment).

The annotation file is read once, with pycocotools, when the dataset is built: a missing file, an image it
lists but the folder lacks, an empty or negative box, or a box outside its image fails then, in one line
naming the file, rather than as a shape error in the middle of an epoch. What the loader keeps afterwards is
a few flat arrays (one block of boxes and offsets), not pycocotools' dicts: DataLoader workers are forked
from it and would otherwise copy the dicts page by page as reference counts change.

Random draws use Python's `random`, which a run seeds and each DataLoader worker reseeds from the run's
loader generator, so a run's augmentations repeat under its seed, as the frame datasets' do.
"""

import contextlib
import io
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from spikesweep.data import augment as augmentation
from spikesweep.data.augment import DetectionAugment
from spikesweep.data.registry import DataBundle, DataError, DatasetMeta, register_dataset

GREY = 114  # YOLOv5's padding value
COCO_FILES = "train2017.zip, val2017.zip and annotations_trainval2017.zip from https://cocodataset.org/#download"
MIN_SIDE = 2.0  # px: a box a mosaic shrinks or cuts below this is dropped (YOLOv5's box_candidates)
MIN_KEPT = 0.1  # and one that keeps less than this fraction of its area inside the output


@dataclass(frozen=True)
class CocoIndex:
    """One split's annotations as flat arrays: image i's boxes are boxes[offsets[i]:offsets[i + 1]], rows
    (class_id, x1, y1, x2, y2, iscrowd) in the image's own pixels."""

    category_ids: tuple[int, ...]
    category_names: tuple[str, ...]
    files: np.ndarray  # [images] file names relative to the image folder
    sizes: np.ndarray  # [images, 2] (width, height) as the annotation file states them
    boxes: np.ndarray  # [boxes, 6] float32
    offsets: np.ndarray  # [images + 1]


def _load_coco(ann_file: Path) -> Any:
    from pycocotools.coco import COCO

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress on every load
            coco = COCO(str(ann_file))
    except (ValueError, AssertionError, KeyError, TypeError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise DataError(f"{ann_file} is not a COCO annotation file ({type(err).__name__}: {err})") from err
    for key in ("images", "categories"):
        if not coco.dataset.get(key):
            raise DataError(f"{ann_file} has no '{key}' list: not a COCO instances file")
    return coco


def _box_row(ann: dict, image: dict, to_class: dict[int, int], tolerance: float, where: str) -> list[float] | None:
    """The annotation as (class_id, x1, y1, x2, y2, iscrowd) clipped to its image, or None when clipping
    leaves nothing; a box that is malformed, empty, or outside the image by more than `tolerance` raises."""
    what = f"{where}: annotation {ann.get('id')} (image {ann.get('image_id')})"
    try:
        x, y, w, h = (float(v) for v in ann["bbox"])
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{what} has no [x, y, width, height] bbox ({type(err).__name__}: {err})") from err
    if ann.get("category_id") not in to_class:
        raise DataError(f"{what} has category_id {ann.get('category_id')!r}, which 'categories' does not list")
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise DataError(f"{what} has an empty or negative box {[x, y, w, h]} ([x, y, width, height]; width and "
                        f"height must be > 0): fix or remove it{'' if min(w, h) < 0 else ', or set dataset.empty_boxes=drop'}")
    width, height = float(image["width"]), float(image["height"])
    if x < -tolerance or y < -tolerance or x + w > width + tolerance or y + h > height + tolerance:
        raise DataError(f"{what} has box {[x, y, w, h]} outside its {image['width']}x{image['height']} image by more "
                        f"than dataset.box_tolerance={tolerance} px: fix the box or the image's width/height")
    x1, y1, x2, y2 = max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)
    if x2 <= x1 or y2 <= y1:
        return None
    return [float(to_class[ann["category_id"]]), x1, y1, x2, y2, float(bool(ann.get("iscrowd", 0)))]


def _check_images(image_dir: Path, files: list[str], ann_file: Path) -> None:
    """Every image the annotation file lists is in the folder (one directory listing, not a stat each)."""
    present = set(os.listdir(image_dir))
    missing = [f for f in files if (f not in present if "/" not in f else not (image_dir / f).is_file())]
    if missing:
        raise DataError(f"{image_dir / missing[0]} is missing ({len(missing)} of the {len(files)} images {ann_file} "
                        f"lists are not in {image_dir})")


def read_annotations(ann_file: Path, image_dir: Path, box_tolerance: float = 1.0,
                     empty_boxes: str = "error") -> CocoIndex:
    """Read and check one split. `empty_boxes=drop` skips boxes of zero width or height instead of failing
    (COCO 2017's train set has two of zero height, annotations 918 and 2206849); negative sizes always fail."""
    if empty_boxes not in ("error", "drop"):
        raise DataError(f"dataset.empty_boxes={empty_boxes!r} is not one of error, drop")
    coco = _load_coco(ann_file)
    category_ids = sorted(coco.cats)
    to_class = {c: i for i, c in enumerate(category_ids)}
    files, sizes, rows, offsets = [], [], [], [0]
    for image_id in sorted(coco.imgs):
        image = coco.imgs[image_id]
        try:
            files.append(str(image["file_name"]))
            sizes.append((int(image["width"]), int(image["height"])))
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{ann_file}: image {image_id} lacks a valid {err} (file_name, width and height are "
                            f"required)") from err
        for ann in coco.imgToAnns.get(image_id, []):
            if empty_boxes == "drop" and _is_empty(ann):
                continue
            row = _box_row(ann, image, to_class, box_tolerance, str(ann_file))
            if row is not None:
                rows.append(row)
        offsets.append(len(rows))
    _check_images(image_dir, files, ann_file)
    return CocoIndex(
        category_ids=tuple(category_ids),
        category_names=tuple(str(coco.cats[c].get("name", c)) for c in category_ids),
        files=np.array(files),
        sizes=np.array(sizes, dtype=np.int64).reshape(-1, 2),
        boxes=np.array(rows, dtype=np.float32).reshape(-1, 6),
        offsets=np.array(offsets, dtype=np.int64),
    )


def _is_empty(ann: dict) -> bool:
    """A box of zero width or height; a negative or malformed one is not merely empty (_box_row names it)."""
    try:
        _, _, w, h = (float(v) for v in ann["bbox"])
    except (KeyError, TypeError, ValueError):
        return False
    return min(w, h) == 0 and max(w, h) >= 0


def letterbox(image: Image.Image, boxes: np.ndarray, size: int) -> tuple[Image.Image, np.ndarray]:
    """Resize so the long side is `size`, centre on a grey size x size canvas; boxes follow exactly."""
    w, h = image.size
    r = size / max(w, h)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    left, top = (size - nw) // 2, (size - nh) // 2
    canvas = Image.new("RGB", (size, size), (GREY,) * 3)
    canvas.paste(image if (nw, nh) == (w, h) else image.resize((nw, nh), Image.Resampling.BILINEAR), (left, top))
    out = boxes.copy()
    out[:, [1, 3]] = out[:, [1, 3]] * (nw / w) + left
    out[:, [2, 4]] = out[:, [2, 4]] * (nh / h) + top
    return canvas, out


def hflip(image: Image.Image, boxes: np.ndarray) -> tuple[Image.Image, np.ndarray]:
    width = image.size[0]
    out = boxes.copy()
    out[:, 1], out[:, 3] = width - boxes[:, 3], width - boxes[:, 1]
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), out


def _clip(boxes: np.ndarray, limit: float) -> np.ndarray:
    out = boxes.copy()
    out[:, 1:5] = out[:, 1:5].clip(0, limit)
    return out


class CocoDetection(Dataset):
    """One split, `(image [3, S, S] normalised, target [N, 6])` per item; `train` applies the augmentation."""

    def __init__(self, index: CocoIndex, image_dir: Path, image_size: int, mean: tuple[float, ...],
                 std: tuple[float, ...], augment: DetectionAugment, train: bool) -> None:
        self.index, self.image_dir, self.size = index, image_dir, image_size
        self.mean = np.array(mean, dtype=np.float32) * 255
        self.std = np.array(std, dtype=np.float32) * 255
        self.augment = augment if train else DetectionAugment()

    def __len__(self) -> int:
        return len(self.index.files)

    def load(self, i: int) -> tuple[Image.Image, np.ndarray]:
        """Image i as stored, with its boxes in its own pixels."""
        path = self.image_dir / str(self.index.files[i])
        try:
            with open(path, "rb") as f:
                image = Image.open(f).convert("RGB")
        except OSError as err:
            raise DataError(f"{path} is not a readable image ({err}): replace it") from err
        if image.size != tuple(self.index.sizes[i]):
            w, h = self.index.sizes[i]
            raise DataError(f"{path} is {image.size[0]}x{image.size[1]} but its annotation file says {w}x{h}: "
                            f"the boxes would be misplaced; fix the file or its width/height")
        return image, self.index.boxes[self.index.offsets[i]:self.index.offsets[i + 1]].copy()

    def mosaic(self, i: int) -> tuple[Image.Image, np.ndarray]:
        """YOLOv5's mosaic: image i and three random others, each resized to long side S, meet at a random
        centre of a 2S x 2S canvas; a random zoom and shift of its middle becomes the S x S sample."""
        s, aug = self.size, self.augment
        xc, yc = (round(random.uniform(s / 2, 3 * s / 2)) for _ in range(2))
        order = [i, *random.choices(range(len(self)), k=3)]
        random.shuffle(order)
        canvas = Image.new("RGB", (2 * s, 2 * s), (GREY,) * 3)
        placed = []
        for corner, j in enumerate(order):
            image, boxes = self.load(j)
            w, h = image.size
            r = s / max(w, h)
            nw, nh = max(1, round(w * r)), max(1, round(h * r))
            left = xc - nw if corner in (0, 2) else xc  # corners: top-left, top-right, bottom-left, bottom-right
            top = yc - nh if corner in (0, 1) else yc
            canvas.paste(image.resize((nw, nh), Image.Resampling.BILINEAR), (left, top))
            boxes[:, [1, 3]] = boxes[:, [1, 3]] * (nw / w) + left
            boxes[:, [2, 4]] = boxes[:, [2, 4]] * (nh / h) + top
            placed.append(_clip(boxes, 2 * s))  # the parts of an image pasted outside the canvas are gone
        boxes = np.concatenate(placed)
        gain = random.uniform(1 - aug.mosaic_scale, 1 + aug.mosaic_scale)
        cx, cy = (s / 2 + random.uniform(-aug.mosaic_translate, aug.mosaic_translate) * s for _ in range(2))
        # output = gain * (canvas - s) + (cx, cy); PIL's AFFINE wants the inverse map, output -> canvas
        inverse = (1 / gain, 0.0, s - cx / gain, 0.0, 1 / gain, s - cy / gain)
        sample = canvas.transform((s, s), Image.Transform.AFFINE, inverse, resample=Image.Resampling.BILINEAR,
                                  fillcolor=(GREY,) * 3)
        moved = boxes.copy()
        moved[:, [1, 3]] = gain * (boxes[:, [1, 3]] - s) + cx
        moved[:, [2, 4]] = gain * (boxes[:, [2, 4]] - s) + cy
        kept = _clip(moved, s)
        w, h = kept[:, 3] - kept[:, 1], kept[:, 4] - kept[:, 2]
        area = (moved[:, 3] - moved[:, 1]) * (moved[:, 4] - moved[:, 2])
        return sample, kept[(w > MIN_SIDE) & (h > MIN_SIDE) & (w * h > MIN_KEPT * area)]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        aug = self.augment
        if aug.mosaic > 0 and random.random() < aug.mosaic:
            image, boxes = self.mosaic(i)
        else:
            image, boxes = letterbox(*self.load(i), self.size)
        if aug.hflip > 0 and random.random() < aug.hflip:
            image, boxes = hflip(image, boxes)
        boxes = _clip(boxes, self.size)
        boxes = boxes[(boxes[:, 3] > boxes[:, 1]) & (boxes[:, 4] > boxes[:, 2])]
        pixels = (np.asarray(image, dtype=np.float32) - self.mean) / self.std
        return torch.from_numpy(pixels.transpose(2, 0, 1).copy()), torch.from_numpy(boxes.astype(np.float32))


def load_detection(
    root: Path, train_split: str, test_split: str, fix: str, T: int, num_classes: int, image_size: int,
    mean: list[float], std: list[float], augment: dict[str, Any] | None, box_tolerance: float, empty_boxes: str,
) -> DataBundle:
    """Both splits of a COCO-format folder; `fix` says how to get what is missing. Shared by every dataset
    stored in COCO format (coco, detect_shapes), so they have one reader."""
    aug = augmentation.parse(DetectionAugment, augment)
    splits = (train_split, test_split)
    missing = [p for s in splits for p in (root / "annotations" / f"instances_{s}.json", root / s) if not p.exists()]
    if missing:
        raise DataError(f"{', '.join(map(str, missing))} not found: {fix}")
    train_index, test_index = (read_annotations(root / "annotations" / f"instances_{s}.json", root / s,
                                                box_tolerance, empty_boxes) for s in splits)
    train_file = root / "annotations" / f"instances_{train_split}.json"
    if train_index.category_ids != test_index.category_ids:
        raise DataError(f"{train_file} and instances_{test_split}.json list different category ids: the class "
                        f"ids would disagree between the splits")
    if len(train_index.category_ids) != num_classes:
        raise DataError(f"dataset.num_classes={num_classes} but {train_file} lists "
                        f"{len(train_index.category_ids)} categories")
    train, test = (CocoDetection(index, root / split, image_size, tuple(mean), tuple(std), aug, is_train)
                   for index, split, is_train in ((train_index, train_split, True), (test_index, test_split, False)))
    meta = DatasetMeta(num_classes, (3, image_size, image_size), T, temporal=False, mean=tuple(mean),
                       std=tuple(std), source=str(root))
    return DataBundle(train, test, meta)


@register_dataset("coco")
def build_coco(
    data_dir: Path, T: int, num_classes: int, image_size: int, mean: list[float], std: list[float],
    augment: dict[str, Any] | None = None, root: str = "coco", train_split: str = "train2017",
    test_split: str = "val2017", box_tolerance: float = 1.0, empty_boxes: str = "error",
) -> DataBundle:
    """COCO 2017 (or any COCO-format folder) under data_dir/root: annotations/instances_<split>.json and
    <split>/ for train_split and test_split."""
    base = Path(data_dir) / root
    fix = f"unpack {COCO_FILES} into {base} (or point dataset.root, under paths.data_dir, at a COCO-format copy)"
    return load_detection(base, train_split, test_split, fix, T, num_classes, image_size, mean, std, augment,
                          box_tolerance, empty_boxes)
