"""Event-camera detection in Prophesee's Gen1 layout: root/<split>/<name>_td.dat + <name>_bbox.npy.

One sample per labelled timestamp of a recording: the `window_ms` of events before it (SFOD's 100 ms),
binned into SFOD's tensor [T, 2 * time_bins, H, W] of event counts, and that timestamp's boxes as the
detection contract's [N, 6] target (class_id, x1, y1, x2, y2, iscrowd=0) in sensor pixels.

Building the index reads the box files and each .dat header only: Gen1 holds ~750 GB of events, so a
sample's events are found when it is read, by a binary search in the memory-mapped file (prophesee_dat.py).
What fails at build time does so in one line naming the file: a missing split, a .dat without its boxes (or
the reverse), a truncated .dat, a box far outside the sensor, a split left without samples.

Boxes (SFOD's GEN1DetectionDataset): at one timestamp only the last row of each track_id is kept, boxes are
clipped to the sensor and those left empty dropped; a timestamp left without boxes is no sample.
Evaluation filter (Prophesee's automotive toolbox, src/psee_evaluator.py with --camera GEN1, calling
src/io/box_filtering.py's filter_boxes): labels at t <= 0.1 s are skipped, and boxes with a diagonal under
30 px or a side under 20 px dropped. SFOD (models/SSD_utils.py filter_boxes) uses the same 30 / 20 px on its
clipped boxes but skips no time; set dataset.skip_us=0 for its test set. Both filter ground truth and
detections alike, so the task must drop detections under the same sizes for upstream-equal mAP.
"""

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from spikesweep.data import augment as augmentation
from spikesweep.data.augment import DetectionAugment
from spikesweep.data.prophesee_dat import DatFile, DatHeader, read_header
from spikesweep.data.registry import DataBundle, DataError, DatasetMeta, register_dataset

EVENTS_SUFFIX, BOXES_SUFFIX = "_td.dat", "_bbox.npy"
CLASSES = ("car", "pedestrian")  # class_id 0, 1 (the toolbox's src/visualize/vis_utils.py LABELMAP)
GEN1_FILES = ("the Gen1 Automotive Detection Dataset from https://www.prophesee.ai/2020/01/24/prophesee-gen1-automotive"
              "-detection-dataset/ (train, val and test archives)")


@dataclass(frozen=True)
class BoxFilter:
    """Which labels a split keeps: none at or before skip_us, no box under min_diag or min_side (px)."""

    skip_us: int = 0
    min_diag: float = 0.0
    min_side: float = 0.0

    def sizes_kept(self, xyxy: np.ndarray) -> np.ndarray:
        w, h = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
        return (w * w + h * h >= self.min_diag**2) & (w >= self.min_side) & (h >= self.min_side)


@dataclass(frozen=True)
class Recording:
    events: Path
    header: DatHeader


@dataclass(frozen=True)
class EventIndex:
    """One split: sample i is recording `recording[i]` at time `ts[i]` (µs), with boxes
    boxes[offsets[i]:offsets[i + 1]] as rows (class_id, x1, y1, x2, y2, 0) in sensor pixels."""

    recordings: tuple[Recording, ...]
    recording: np.ndarray  # [samples] int64
    ts: np.ndarray  # [samples] int64
    boxes: np.ndarray  # [boxes, 6] float32
    offsets: np.ndarray  # [samples + 1] int64


def read_boxes(path: Path) -> np.ndarray:
    """A _bbox.npy file as a structured array with (at least) t, x, y, w, h, class_id; Gen1 names the time
    field `ts` (later Prophesee sets `t`), the dtype is read from the file."""
    try:
        boxes = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path} is not a readable .npy box file ({type(err).__name__}: {err})") from err
    names = boxes.dtype.names or ()
    time = "ts" if "ts" in names else "t"
    missing = [k for k in (time, "x", "y", "w", "h", "class_id") if k not in names]
    if boxes.ndim != 1 or missing:
        raise DataError(f"{path} lacks the box fields {missing or 'of a 1-D structured array'} (found {list(names)}): "
                        f"not a Prophesee _bbox.npy file")
    return boxes if time == "t" else _renamed(boxes, "ts", "t")


def _renamed(boxes: np.ndarray, old: str, new: str) -> np.ndarray:
    dtype = boxes.dtype
    names = [new if n == old else n for n in dtype.names]
    return boxes.view(np.dtype({"names": names, "formats": [dtype.fields[n][0] for n in dtype.names],
                                "offsets": [dtype.fields[n][1] for n in dtype.names], "itemsize": dtype.itemsize}))


def label_rows(boxes: np.ndarray, path: Path, width: int, height: int, num_classes: int,
               tolerance: float) -> np.ndarray:
    """All boxes of a recording as [n, 6] (t, class_id, x1, y1, x2, y2), clipped to the sensor; a box
    passing its edge by more than `tolerance` px, or an unknown class, fails naming the file."""
    x, y = boxes["x"].astype(np.float64), boxes["y"].astype(np.float64)
    x2, y2 = x + boxes["w"], y + boxes["h"]
    bad = (x < -tolerance) | (y < -tolerance) | (x2 > width + tolerance) | (y2 > height + tolerance)
    bad |= ~np.isfinite(x + y + x2 + y2) | (boxes["w"] < 0) | (boxes["h"] < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{path}: box {i} at t={int(boxes['t'][i])} us, [x, y, w, h]="
                        f"{[round(float(boxes[k][i]), 1) for k in 'xywh']}, lies outside the {width}x{height} sensor by "
                        f"more than dataset.box_tolerance={tolerance} px (boxes of another camera?); "
                        f"{int(bad.sum())} such boxes")
    classes = boxes["class_id"].astype(np.int64)
    if classes.size and (classes.min() < 0 or classes.max() >= num_classes):
        raise DataError(f"{path} has class_id {int(classes.max())} but dataset.num_classes={num_classes}")
    return np.stack([boxes["t"].astype(np.float64), classes, x.clip(0, width), y.clip(0, height),
                     x2.clip(0, width), y2.clip(0, height)], axis=1)


def last_per_track(boxes: np.ndarray) -> np.ndarray:
    """Indices of the rows kept at one timestamp: the last of each track_id (SFOD), all without track ids."""
    if "track_id" not in (boxes.dtype.names or ()):
        return np.arange(len(boxes))
    reversed_ids = boxes["track_id"][::-1]
    _, first_in_reversed = np.unique(reversed_ids, return_index=True)
    return np.sort(len(boxes) - 1 - first_in_reversed)


def index_split(folder: Path, width: int, height: int, num_classes: int, keep: BoxFilter,
                tolerance: float) -> EventIndex:
    """Pair every <name>_td.dat with its <name>_bbox.npy and list the samples; reads no event."""
    if not folder.is_dir():
        raise DataError(f"{folder} not found")
    names = sorted(p.name for p in folder.iterdir())
    events = {n[: -len(EVENTS_SUFFIX)] for n in names if n.endswith(EVENTS_SUFFIX)}
    labels = {n[: -len(BOXES_SUFFIX)] for n in names if n.endswith(BOXES_SUFFIX)}
    for alone, has, lacks in ((events - labels, EVENTS_SUFFIX, BOXES_SUFFIX), (labels - events, BOXES_SUFFIX,
                                                                               EVENTS_SUFFIX)):
        if alone:
            stem = sorted(alone)[0]
            raise DataError(f"{folder / (stem + has)} has no {stem + lacks} beside it ({len(alone)} such files in "
                            f"{folder}): restore it or remove both")
    recordings, recording_of, times, rows, offsets = [], [], [], [], [0]
    for stem in sorted(events):
        dat = folder / (stem + EVENTS_SUFFIX)
        header = read_header(dat)
        if header.width is not None and (header.width, header.height) != (width, height):
            raise DataError(f"{dat} is from a {header.width}x{header.height} sensor, not dataset.width x height = "
                            f"{width}x{height}")
        box_file = folder / (stem + BOXES_SUFFIX)
        boxes = read_boxes(box_file)
        boxes = boxes[np.argsort(boxes["t"], kind="stable")]
        clipped = label_rows(boxes, box_file, width, height, num_classes, tolerance)
        r = len(recordings)
        recordings.append(Recording(dat, header))
        stamps, starts = np.unique(boxes["t"], return_index=True)
        ends = np.append(starts[1:], len(boxes))
        for t, a, b in zip(stamps.tolist(), starts.tolist(), ends.tolist()):
            if t <= keep.skip_us:
                continue
            here = clipped[a:b][last_per_track(boxes[a:b])]
            here = here[(here[:, 4] > here[:, 2]) & (here[:, 5] > here[:, 3])]
            if not len(here):
                continue  # nothing left on the sensor: SFOD makes no sample of it
            here = here[keep.sizes_kept(here[:, 2:6])]  # may leave none: a frame that must stay empty
            recording_of.append(r)
            times.append(int(t))
            rows.extend(np.concatenate([here[:, 1:6], np.zeros((len(here), 1))], axis=1).tolist())
            offsets.append(len(rows))
    if not times:
        raise DataError(f"{folder} holds no labelled timestamp after t > {keep.skip_us} us with a box on the sensor "
                        f"({len(recordings)} recordings): an empty split")
    return EventIndex(tuple(recordings), np.array(recording_of, dtype=np.int64), np.array(times, dtype=np.int64),
                      np.array(rows, dtype=np.float32).reshape(-1, 6), np.array(offsets, dtype=np.int64))


def bin_events(events: np.ndarray, t0: int, window_us: int, T: int, time_bins: int, width: int, height: int,
               canvas: tuple[int, int] | None = None) -> np.ndarray:
    """Events (t, x, y, p) in [t0, t0 + window_us) -> counts [T, 2 * time_bins, H, W] float32, where (H, W) is
    `canvas` (the sensor in its top-left corner, the rest empty: padding without a copy) or the sensor.

    SFOD's tensor: the window splits into T steps, each step into time_bins bins; a step's channels are
    the OFF bins latest first, then the ON bins earliest first (with 2 bins: OFF b1, OFF b0, ON b0, ON b1),
    the order SFOD's one-hot of polarity * (bin + 1) produces, so its backbones see their own layout.
    Unlike SFOD, time counts from the window's start, not from its first event, and the channel offset is
    fixed (SFOD's shifts by one when no event of a window falls in its second bin). Coordinates beyond the
    sensor are clipped to its edge, as SFOD does."""
    d = events["t"].astype(np.int64) - t0
    inside = (d >= 0) & (d < window_us)
    sub = d[inside] * (T * time_bins) // window_us
    step, b = np.divmod(sub, time_bins)
    channel = np.where(events["p"][inside] > 0, time_bins + b, time_bins - 1 - b)
    x = np.minimum(events["x"][inside].astype(np.int64), width - 1)
    y = np.minimum(events["y"][inside].astype(np.int64), height - 1)
    channels, (rows, cols) = 2 * time_bins, canvas or (height, width)
    flat = ((step * channels + channel) * rows + y) * cols + x
    counts = np.bincount(flat, minlength=T * channels * rows * cols)
    return counts.reshape(T, channels, rows, cols).astype(np.float32)


def padded(side: int, multiple: int) -> int:
    return -(-side // multiple) * multiple


class EventDetection(Dataset):
    """One split, `(frames [T, 2 * time_bins, H', W'], target [N, 6])` per item. H', W' are the sensor's
    sides rounded up to `pad_multiple` with empty pixels below and right, so boxes keep their pixels."""

    def __init__(self, index: EventIndex, window_us: int, T: int, time_bins: int, width: int, height: int,
                 pad_multiple: int, augment: DetectionAugment, train: bool) -> None:
        self.index, self.window_us, self.T, self.time_bins = index, window_us, T, time_bins
        self.width, self.height = width, height
        self.shape = (T, 2 * time_bins, padded(height, pad_multiple), padded(width, pad_multiple))
        self.augment = augment if train else DetectionAugment()

    def __len__(self) -> int:
        return len(self.index.ts)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        recording = self.index.recordings[self.index.recording[i]]
        t = int(self.index.ts[i])
        events = DatFile(recording.events, recording.header).window(t - self.window_us, t)
        boxes = self.index.boxes[self.index.offsets[i]:self.index.offsets[i + 1]].copy()
        if self.augment.hflip > 0 and random.random() < self.augment.hflip:  # mirror events, not pixels
            events["x"] = self.width - 1 - np.minimum(events["x"], self.width - 1)
            boxes[:, 1], boxes[:, 3] = self.width - boxes[:, 3], self.width - boxes[:, 1]
        frames = bin_events(events, t - self.window_us, self.window_us, self.T, self.time_bins, self.width,
                            self.height, self.shape[2:])
        return torch.from_numpy(frames), torch.from_numpy(boxes)


def load_event_detection(
    root: Path, train_split: str, test_split: str, fix: str, T: int, num_classes: int, width: int, height: int,
    window_ms: float, time_bins: int, pad_multiple: int, evaluation: BoxFilter, filter_train: bool,
    box_tolerance: float, augment: dict[str, Any] | None,
) -> DataBundle:
    """Both splits of a Gen1-layout folder; `fix` says how to get what is missing. Shared by every dataset
    stored this way (gen1, detect_events), so they have one reader."""
    aug = augmentation.parse(DetectionAugment, augment)
    if aug.mosaic > 0:
        raise DataError("dataset.augment.mosaic > 0: a mosaic of event windows is not supported; use "
                        "dataset/augment=detection_flip or none")
    window_us = round(window_ms * 1000)
    if T < 1 or time_bins < 1 or window_us < T * time_bins or pad_multiple < 1:
        raise DataError(f"dataset.window_ms={window_ms}, T={T}, time_bins={time_bins}, pad_multiple={pad_multiple}: "
                        f"need T, time_bins, pad_multiple >= 1 and at least 1 us per bin")
    missing = [root / s for s in (train_split, test_split) if not (root / s).is_dir()]
    if missing:
        raise DataError(f"{', '.join(map(str, missing))} not found: {fix}")
    train_index = index_split(root / train_split, width, height, num_classes,
                              evaluation if filter_train else BoxFilter(), box_tolerance)
    test_index = index_split(root / test_split, width, height, num_classes, evaluation, box_tolerance)
    train, test = (EventDetection(index, window_us, T, time_bins, width, height, pad_multiple, aug, is_train)
                   for index, is_train in ((train_index, True), (test_index, False)))
    meta = DatasetMeta(num_classes, train.shape[1:], T, temporal=True, source=str(root))
    return DataBundle(train, test, meta)


@register_dataset("gen1")
def build_gen1(
    data_dir: Path, T: int, num_classes: int, root: str = "gen1", train_split: str = "train",
    test_split: str = "test", width: int = 304, height: int = 240, window_ms: float = 100.0, time_bins: int = 2,
    pad_multiple: int = 32, skip_us: int = 100_000, min_box_diag: float = 30.0, min_box_side: float = 20.0,
    filter_train: bool = False, box_tolerance: float = 100.0, augment: dict[str, Any] | None = None,
) -> DataBundle:
    """Prophesee's Gen1 automotive set under data_dir/root: <split>/<name>_td.dat and <name>_bbox.npy."""
    if num_classes != len(CLASSES):
        raise DataError(f"dataset.num_classes={num_classes} but Gen1 labels {len(CLASSES)} classes {CLASSES}")
    base = Path(data_dir) / root
    fix = (f"unpack {GEN1_FILES} into {base} so that each split folder holds the <name>_td.dat and <name>_bbox.npy "
           f"files directly (or point dataset.root, under paths.data_dir, at such a copy)")
    return load_event_detection(base, train_split, test_split, fix, T, num_classes, width, height, window_ms,
                                time_bins, pad_multiple, BoxFilter(skip_us, min_box_diag, min_box_side), filter_train,
                                box_tolerance, augment)
