"""Tiny datasets written in each dataset's real on-disk format, for tests that go through the real loaders.

Every builder takes `data_dir` (what `paths.data_dir` points at) and writes the layout the matching
`conf/dataset/<name>.yaml` reads, with `per_class` samples per class in each split. Pixels and events are
random but reproducible; labels are known, so tests can check them. Reuse them in any test:

    from tests.data.fixtures import make_cifar10
    make_cifar10(tmp_path)  # then compose with paths.data_dir=<tmp_path> dataset=cifar10
"""

import gzip
import json
import pickle
import struct
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _cifar_batch(n_classes: int, per_class: int, seed: int, label_key: str) -> dict:
    labels = [c for c in range(n_classes) for _ in range(per_class)]
    data = _rng(seed).integers(0, 256, size=(len(labels), 3 * 32 * 32), dtype=np.uint8)
    return {"batch_label": "fixture", label_key: labels, "data": data, "filenames": [f"{i}.png" for i in labels]}


def _dump(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the real files are python-2 pickles; torchvision loads them latin1


def make_cifar10(data_dir: Path, per_class: int = 1) -> Path:
    """data_dir/cifar10/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}."""
    folder = Path(data_dir) / "cifar10" / "cifar-10-batches-py"
    for i in range(1, 6):
        _dump(_cifar_batch(10, per_class, i, "labels"), folder / f"data_batch_{i}")
    _dump(_cifar_batch(10, per_class, 0, "labels"), folder / "test_batch")
    _dump({"label_names": CIFAR10_CLASSES, "num_cases_per_batch": 10 * per_class}, folder / "batches.meta")
    return folder


def make_cifar100(data_dir: Path, per_class: int = 1) -> Path:
    """data_dir/cifar100/cifar-100-python/{train, test, meta} with fine and coarse labels."""
    folder = Path(data_dir) / "cifar100" / "cifar-100-python"
    for name, seed in (("train", 1), ("test", 2)):
        batch = _cifar_batch(100, per_class, seed, "fine_labels")
        batch["coarse_labels"] = [label // 5 for label in batch["fine_labels"]]
        _dump(batch, folder / name)
    _dump({"fine_label_names": [f"class{i:02d}" for i in range(100)],
           "coarse_label_names": [f"super{i:02d}" for i in range(20)]}, folder / "meta")
    return folder


def _idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_mnist(data_dir: Path, per_class: int = 1) -> Path:
    """data_dir/mnist/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz, as distributed."""
    raw = Path(data_dir) / "mnist" / "MNIST" / "raw"
    for prefix, seed in (("train", 1), ("t10k", 2)):
        labels = np.repeat(np.arange(10), per_class)
        images = _rng(seed).integers(0, 256, size=(len(labels), 28, 28))
        _idx(raw / f"{prefix}-images-idx3-ubyte.gz", images, 2051)
        _idx(raw / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
    return raw


def make_imagenet(data_dir: Path, wnids: list[str], per_class: int = 1, extra: int = 1) -> Path:
    """data_dir/imagenet/{train,val}/<wnid>/*.JPEG for the listed ids, plus `extra` unlisted classes."""
    root = Path(data_dir) / "imagenet"
    others = [f"n9{i:07d}" for i in range(extra)]
    rng = _rng(3)
    for split in ("train", "val"):
        for wnid in [*wnids, *others]:
            folder = root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                pixels = rng.integers(0, 256, size=(36 + 4 * k, 44, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{wnid}_{k}.JPEG", quality=80)
    return root


def make_shd(data_dir: Path, per_class: int = 1, name: str = "shd", n_classes: int = 20) -> Path:
    """data_dir/SHD/events_h5/shd_{train,test}.h5 with the real keys: spikes/times (s, float), spikes/units
    (0..699), labels, extra/speaker, extra/keys, extra/meta_info. (SSC: name="ssc", n_classes=35, + valid.)"""
    folder = Path(data_dir) / name.upper() / "events_h5"
    folder.mkdir(parents=True, exist_ok=True)
    rng = _rng(4)
    splits = ("train", "valid", "test") if name == "ssc" else ("train", "test")
    for split in splits:
        labels = np.repeat(np.arange(n_classes), per_class).astype(np.uint16)
        with h5py.File(folder / f"{name}_{split}.h5", "w") as f:
            times = f.create_dataset("spikes/times", (len(labels),), dtype=h5py.vlen_dtype(np.float32))
            units = f.create_dataset("spikes/units", (len(labels),), dtype=h5py.vlen_dtype(np.uint16))
            for i in range(len(labels)):
                n = int(rng.integers(20, 60))
                times[i] = np.sort(rng.uniform(0.0, 0.9, n)).astype(np.float32)
                units[i] = rng.integers(0, 700, n).astype(np.uint16)
            f.create_dataset("labels", data=labels)
            f.create_dataset("extra/speaker", data=np.zeros(len(labels), dtype=np.uint16))
            f.create_dataset("extra/keys", data=np.array([f"word{i}".encode() for i in range(n_classes)]))
            f.create_dataset("extra/meta_info/gender", data=np.array([b"female"]))
    return folder


def _events(rng: np.random.Generator, n: int, size: int = 128) -> dict[str, np.ndarray]:
    return {
        "t": np.sort(rng.integers(0, 1_000_000, n)).astype(np.int64),
        "x": rng.integers(0, size, n).astype(np.uint16),
        "y": rng.integers(0, size, n).astype(np.uint16),
        "p": rng.integers(0, 2, n).astype(np.uint8),
    }


def make_cifar10_dvs(data_dir: Path, per_class: int = 10) -> Path:
    """data_dir/CIFAR10DVS/events_np/<class>/cifar10_<class>_<i>.npz with t, x, y, p: the layout spikingjelly
    2.x writes after converting the original aedat archives (and reads when events_np/ already exists)."""
    root = Path(data_dir) / "CIFAR10DVS" / "events_np"
    rng = _rng(5)
    for name in CIFAR10_CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            np.savez(root / name / f"cifar10_{name}_{i}.npz", **_events(rng, int(rng.integers(50, 200))))
    return root.parent


def make_dvs128_gesture(data_dir: Path, per_class: int = 1) -> Path:
    """data_dir/DVS128Gesture/events_np/{train,test}/<label 0..10>/user<k>_<lighting>_<j>.npz (spikingjelly 2.x)."""
    root = Path(data_dir) / "DVS128Gesture" / "events_np"
    rng = _rng(6)
    for split in ("train", "test"):
        for label in range(11):
            (root / split / str(label)).mkdir(parents=True, exist_ok=True)
            for j in range(per_class):
                np.savez(root / split / str(label) / f"user01_fluorescent_{j}.npz", **_events(rng, 100))
    return root.parent


# COCO-format detection: category ids out of order and with gaps (as COCO's 1..90 for 80 classes), images of
# three shapes (wide, tall, square) and one image without annotations. Boxes are COCO's [x, y, width, height].
COCO_CATEGORIES = [{"id": 5, "name": "five"}, {"id": 2, "name": "two"}, {"id": 9, "name": "nine"}]
COCO_IMAGES = {
    "train": [
        ({"id": 1, "file_name": "wide.jpg", "width": 100, "height": 50},
         [{"category_id": 5, "bbox": [10, 5, 20, 10], "iscrowd": 0},
          {"category_id": 9, "bbox": [60, 20, 40, 30], "iscrowd": 0}]),
        ({"id": 2, "file_name": "tall.jpg", "width": 40, "height": 80},
         [{"category_id": 2, "bbox": [0, 0, 40, 40], "iscrowd": 1}]),
        ({"id": 3, "file_name": "empty.jpg", "width": 60, "height": 60}, []),
    ],
    "val": [
        ({"id": 7, "file_name": "val.jpg", "width": 64, "height": 32},
         [{"category_id": 2, "bbox": [8, 8, 16, 16], "iscrowd": 0}]),
    ],
}


def make_coco(data_dir: Path, name: str = "coco") -> Path:
    """data_dir/<name>/{train,val}/*.jpg and annotations/instances_{train,val}.json (COCO's layout)."""
    root = Path(data_dir) / name
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    ann_id = 0
    for split, entries in COCO_IMAGES.items():
        (root / split).mkdir(exist_ok=True)
        images, annotations = [], []
        for image, anns in entries:
            pixels = _rng(image["id"]).integers(0, 256, size=(image["height"], image["width"], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / image["file_name"], quality=95)
            images.append(image)
            for ann in anns:
                ann_id += 1
                x, y, w, h = ann["bbox"]
                annotations.append({"id": ann_id, "image_id": image["id"], "area": w * h, **ann})
        instances = {"images": images, "annotations": annotations, "categories": COCO_CATEGORIES}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(instances))
    return root


# Gen1 (Prophesee automotive) detection: <split>/<name>_td.dat + <name>_bbox.npy. The .dat bytes are packed here
# with struct, independently of the loader's writer. Each recording holds one event per millisecond from 0 to
# 599 ms whose x, y, p follow from its time (gen1_event), so a test can say which events a window holds.
GEN1_BOX_DTYPE = np.dtype([("ts", "<u8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"), ("h", "<f4"), ("class_id", "u1"),
                           ("confidence", "<f4"), ("track_id", "<u4")])  # as Gen1's files store them
GEN1_BOXES = [  # (ts us, x, y, w, h, class_id, track_id)
    (50_000, 10, 10, 60, 40, 0, 1),  # inside the first 0.1 s: skipped by the evaluation filter
    (200_000, 12, 11, 50, 30, 0, 1),  # track 1 twice at one time: only its last row is kept
    (200_000, 10, 10, 60, 40, 0, 1),
    (200_000, 100, 50, 25, 50, 1, 2),  # a pedestrian
    (200_000, 200, 100, 15, 15, 0, 3),  # diagonal 21 px, side 15: dropped from the test split
    (400_000, -5, 200, 60, 60, 0, 4),  # partly outside the sensor: clipped to (0, 200, 55, 240)
    (500_000, 150, 100, 25, 15, 1, 5),  # its only box has a side of 15: an empty test sample
]


def gen1_event(t_ms: int) -> tuple[int, int, int, int]:
    """The fixture's event at millisecond t_ms: (t us, x, y, p)."""
    return t_ms * 1000, (t_ms * 7) % 304, (t_ms * 3) % 240, t_ms % 2


def gen1_dat_bytes(events: list[tuple[int, int, int, int]], width: int = 304, height: int = 240) -> bytes:
    """A .dat file's bytes: '% ' header lines, the type (0) and size (8) bytes, then <u4 t, <u4 x|y<<14|p<<28."""
    header = f"% Data file containing Event2D events.\n% Version 2\n% Height {height}\n% Width {width}\n".encode()
    body = b"".join(struct.pack("<II", t, x | (y << 14) | (p << 28)) for t, x, y, p in events)
    return header + bytes([0, 8]) + body


def gen1_boxes(rows: list[tuple[int, ...]]) -> np.ndarray:
    out = np.zeros(len(rows), dtype=GEN1_BOX_DTYPE)
    for i, (ts, x, y, w, h, class_id, track_id) in enumerate(rows):
        out[i] = (ts, x, y, w, h, class_id, 1.0, track_id)
    return out


def make_gen1(data_dir: Path, recordings: int = 2, name: str = "gen1") -> Path:
    """data_dir/<name>/{train,val,test}/rec<i>_td.dat + rec<i>_bbox.npy, each recording with GEN1_BOXES."""
    root = Path(data_dir) / name
    for split in ("train", "val", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(recordings):
            (root / split / f"rec{i}_td.dat").write_bytes(gen1_dat_bytes([gen1_event(t) for t in range(600)]))
            np.save(root / split / f"rec{i}_bbox.npy", gen1_boxes(GEN1_BOXES))
    return root
