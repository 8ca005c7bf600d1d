"""COCO-format detection through the real loader (pycocotools over a tiny real-format folder), and the
embedded detect_shapes set, written once in that format and read back by the same loader."""

import json
import random
from pathlib import Path

import pytest
import torch
from pycocotools.coco import COCO

from spikesweep import cli
from spikesweep.data import DataError, build_datasets
from spikesweep.data.coco import GREY
from tests.conftest import compose
from tests.data import fixtures

SPLITS = ("dataset.train_split=train", "dataset.test_split=val", "dataset.num_classes=3")  # the fixture's
NO_AUG = ("dataset/augment=none", "dataset.image_size=64", *SPLITS)
SMALL_SHAPES = ("dataset=detect_shapes", "dataset.train_images=12", "dataset.test_images=4")


def _build(data_dir: Path, *overrides: str):
    cfg = compose("dataset=coco", f"paths.data_dir={data_dir}", *overrides)
    return build_datasets(cfg.dataset, cfg.paths.data_dir)


def _instances(root: Path, split: str = "train") -> tuple[Path, dict]:
    path = root / "annotations" / f"instances_{split}.json"
    return path, json.loads(path.read_text())


def _one_line_error(data_dir: Path, *overrides: str) -> str:
    with pytest.raises(DataError) as err:
        _build(data_dir, *overrides)
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.fixture()
def coco_dir(tmp_path) -> Path:
    fixtures.make_coco(tmp_path)
    return tmp_path


def test_letterboxed_targets_in_the_contract_format(coco_dir):
    bundle = _build(coco_dir, *NO_AUG)
    assert bundle.meta.num_classes == 3 and bundle.meta.input_shape == (3, 64, 64) and not bundle.meta.temporal
    assert (len(bundle.train), len(bundle.test)) == (3, 1)
    image, target = bundle.train[0]  # wide.jpg, 100x50 -> 64x32, 16 px of grey above and below
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and target.dtype == torch.float32
    assert torch.allclose(image[:, :16], torch.tensor(GREY / 255))  # mean 0, std 1: pixels in [0, 1]
    # category ids 2, 5, 9 -> classes 0, 1, 2; [10, 5, 20, 10] * 0.64, +16 px in y
    expected = torch.tensor([[1, 6.4, 19.2, 19.2, 25.6, 0], [2, 38.4, 28.8, 64.0, 48.0, 0]])
    assert torch.allclose(target, expected, atol=1e-4)
    _, tall = bundle.train[1]  # 40x80 -> 32x64, 16 px left; a crowd box keeps iscrowd 1
    assert torch.allclose(tall, torch.tensor([[0, 16.0, 0.0, 48.0, 32.0, 1]]), atol=1e-4)
    _, empty = bundle.train[2]
    assert empty.shape == (0, 6)  # an image without annotations is kept
    _, val = bundle.test[0]  # 64x32 at 64: no resize, 16 px above
    assert torch.allclose(val, torch.tensor([[0, 8.0, 24.0, 24.0, 40.0, 0]]))


def test_flip_mirrors_the_boxes(coco_dir):
    bundle = _build(coco_dir, *NO_AUG, "dataset/augment=detection_flip", "dataset.augment.hflip=1.0")
    image, target = bundle.train[0]
    plain, _ = _build(coco_dir, *NO_AUG).train[0]
    assert torch.equal(image, plain.flip(-1))
    assert torch.allclose(target[:, 1:5], torch.tensor([[44.8, 19.2, 57.6, 25.6], [0.0, 28.8, 25.6, 48.0]]), atol=1e-4)
    assert bundle.test[0][1][0, 1] == 8.0  # evaluation is never augmented


def test_mosaic_boxes_stay_inside_the_canvas_and_repeat_under_a_seed(coco_dir):
    bundle = _build(coco_dir, *SPLITS, "dataset.image_size=64", "dataset/augment=mosaic_flip")
    boxes = 0
    for seed in range(20):
        random.seed(seed)
        image, target = bundle.train[seed % 3]
        assert image.shape == (3, 64, 64)
        assert (target[:, 1:5] >= 0).all() and (target[:, 1:5] <= 64).all()
        assert (target[:, 3] - target[:, 1] > 2).all() and (target[:, 4] - target[:, 2] > 2).all()
        assert set(target[:, 0].tolist()) <= {0.0, 1.0, 2.0}
        boxes += len(target)
    assert boxes > 20  # four images a sample: most boxes survive the zoom and shift
    random.seed(7)
    first = bundle.train[1]
    random.seed(7)
    again = bundle.train[1]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def test_missing_annotation_file_is_named(coco_dir):
    (coco_dir / "coco" / "annotations" / "instances_val.json").unlink()
    message = _one_line_error(coco_dir, *SPLITS)
    assert "instances_val.json not found" in message and "cocodataset.org" in message


def test_missing_layout_lists_everything_missing(tmp_path, capsys):
    assert cli.main(["prepare", "dataset=coco", f"paths.data_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    for missing in ("instances_train2017.json", "instances_val2017.json", "train2017", "val2017"):
        assert missing in err


def test_missing_image_is_named(coco_dir):
    (coco_dir / "coco" / "train" / "tall.jpg").unlink()
    assert f"{coco_dir / 'coco' / 'train' / 'tall.jpg'} is missing" in _one_line_error(coco_dir, *SPLITS)


@pytest.mark.parametrize(("bbox", "says"), [([10, 5, 0, 10], "empty or negative box"),
                                            ([10, 5, -3, 10], "empty or negative box"),
                                            ([90, 5, 20, 10], "outside its 100x50 image")])
def test_bad_box_is_named(coco_dir, bbox, says):
    path, instances = _instances(coco_dir / "coco")
    instances["annotations"][0]["bbox"] = bbox
    path.write_text(json.dumps(instances))
    message = _one_line_error(coco_dir, *SPLITS, "dataset.empty_boxes=error")  # coco.yaml drops zero sizes
    assert message.startswith(f"{path}: annotation 1 (image 1)") and says in message


def test_empty_boxes_can_be_dropped_and_small_overhangs_are_clipped(coco_dir):
    path, instances = _instances(coco_dir / "coco")
    instances["annotations"][0]["bbox"] = [10, 5, 20, 0]  # as COCO 2017's two zero-height boxes
    instances["annotations"][1]["bbox"] = [60, 20, 40.5, 30.5]  # half a pixel past the edge
    path.write_text(json.dumps(instances))
    _, target = _build(coco_dir, *NO_AUG).train[0]  # coco.yaml: empty_boxes=drop
    assert torch.allclose(target, torch.tensor([[2, 38.4, 28.8, 64.0, 48.0, 0]]), atol=1e-4)
    instances["annotations"][0]["bbox"] = [10, 5, 20, -1]  # a negative size is never dropped silently
    path.write_text(json.dumps(instances))
    assert "empty or negative box" in _one_line_error(coco_dir, *NO_AUG)


def test_class_count_must_match_the_categories(coco_dir):
    assert "dataset.num_classes=80 but" in _one_line_error(coco_dir, *SPLITS, "dataset.num_classes=80")


def test_detection_augment_refuses_image_keys(coco_dir):
    assert "dataset.augment.crop is not a DetectionAugment key" in _one_line_error(
        coco_dir, *SPLITS, "dataset/augment=crop_flip")


def test_detect_shapes_is_written_once_in_coco_format_and_read_back(tmp_path, monkeypatch):
    cfg = compose(*SMALL_SHAPES, f"paths.cache_dir={tmp_path}")
    bundle = build_datasets(cfg.dataset, cfg.paths.data_dir)
    (root,) = [p for p in (tmp_path / "detect_shapes").iterdir() if p.is_dir()]
    assert bundle.meta.source == str(root) and bundle.meta.num_classes == 3 and bundle.meta.time_steps == 2
    coco = COCO(str(root / "annotations" / "instances_train.json"))  # any COCO tool reads it
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["square", "circle", "triangle"]
    assert len(coco.getImgIds()) == 12 and len(list((root / "train").glob("*.png"))) == 12
    for ann in coco.dataset["annotations"]:
        x, y, w, h = ann["bbox"]
        assert ann["iscrowd"] == 0 and 0 < ann["area"] <= w * h and 0 <= x < x + w <= 64 and 0 <= y < y + h <= 64
    image, target = bundle.test[0]
    assert image.shape == (3, 64, 64) and 1 <= len(target) <= 4
    test = COCO(str(root / "annotations" / "instances_test.json"))
    rows = [[a["category_id"] - 1, a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
             a["bbox"][1] + a["bbox"][3], 0] for a in test.imgToAnns[min(test.getImgIds())]]
    assert torch.equal(target, torch.tensor(rows, dtype=torch.float32))  # canvas == image_size: boxes unchanged
    written = (root / "annotations" / "instances_train.json").stat().st_mtime_ns

    def no_rewrite(*args, **kwargs):
        raise AssertionError("detect_shapes was written twice")

    monkeypatch.setattr("spikesweep.data.detect_shapes.write_split", no_rewrite)
    again = build_datasets(cfg.dataset, cfg.paths.data_dir)
    assert (root / "annotations" / "instances_train.json").stat().st_mtime_ns == written
    assert torch.equal(again.test[0][1], target)


def test_prepare_writes_detect_shapes(tmp_path, capsys):
    assert cli.main(["prepare", *SMALL_SHAPES, f"paths.cache_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "detect_shapes: 12 train / 4 test samples, 3 classes, [3, 64, 64] per step, T=2" in out
    assert "cache built from 16 samples in" in out
