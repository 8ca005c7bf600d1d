"""The embedded event-detection default: rectangles and discs gliding over a small sensor, no download.

Each recording is simulated at 1 ms steps: bright objects move at constant speed, bouncing off the sensor's
edges; a pixel an object starts to cover emits an ON event, one it leaves an OFF event (at a random time
within that millisecond), plus a little uniform noise. Every `label_ms` each object's tight box is labelled.
The recordings are written once, as real Gen1-format files (<name>_td.dat + <name>_bbox.npy in
train/val/test), to a cache folder built atomically under a lock (data/cache.py), and then read by the gen1
loader like any Gen1 copy: the demo runs the same reader, index and binning as Gen1 itself.
"""

from pathlib import Path
from typing import Any

import numpy as np

from spikesweep.data.cache import cached
from spikesweep.data.gen1 import BOXES_SUFFIX, EVENTS_SUFFIX, BoxFilter, load_event_detection
from spikesweep.data.prophesee_dat import EVENTS, write_dat
from spikesweep.data.registry import DataBundle, DataError, register_dataset

CLASSES = ("rectangle", "disc")  # class_id 0, 1
FORMAT = 1  # bump when the simulation changes, so older caches are not reused
STEP_US = 1000
SPLITS = ("train", "val", "test")
# Gen1's box file layout (ts in µs, box in pixels, then class, confidence, track)
BOX_DTYPE = np.dtype([("ts", "<u8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"), ("h", "<f4"), ("class_id", "u1"),
                      ("confidence", "<f4"), ("track_id", "<u4")])


def _bounce(start: float, speed: float, low: float, high: float, t_s: np.ndarray) -> np.ndarray:
    """Position at times t_s of a point moving at `speed` from `start`, reflected between low and high."""
    span = high - low
    s = np.mod(start - low + speed * t_s, 2 * span)
    return low + np.where(s <= span, s, 2 * span - s)


def _masks(shape: int, cx: np.ndarray, cy: np.ndarray, w: float, h: float, sensor: int) -> np.ndarray:
    """[steps, sensor, sensor] pixels whose centres the object covers."""
    centres = np.arange(sensor, dtype=np.float32) + 0.5
    du = centres[None, None, :] - cx[:, None, None].astype(np.float32)  # [steps, 1, sensor]: separable
    dv = centres[None, :, None] - cy[:, None, None].astype(np.float32)  # [steps, sensor, 1]
    if CLASSES[shape] == "disc":
        return du**2 + dv**2 <= (w / 2) ** 2
    return (np.abs(du) <= w / 2) & (np.abs(dv) <= h / 2)


def simulate(rng: np.random.Generator, sensor: int, duration_ms: int, label_ms: int, max_objects: int,
             min_size: int, max_size: int, min_speed: float, max_speed: float,
             noise_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """One recording: events (EVENTS dtype, sorted by t) and boxes (BOX_DTYPE, sorted by ts)."""
    steps = duration_ms * 1000 // STEP_US
    t_s = np.arange(steps + 1) * STEP_US / 1e6
    label_steps = np.arange(label_ms, duration_ms + 1, label_ms) * 1000 // STEP_US
    covered = np.zeros((steps + 1, sensor, sensor), dtype=bool)
    boxes = []
    for track in range(int(rng.integers(1, max_objects + 1))):
        shape = int(rng.integers(0, len(CLASSES)))
        w = float(rng.integers(min_size, max_size + 1))
        h = w if CLASSES[shape] == "disc" else float(rng.integers(min_size, max_size + 1))
        angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(min_speed, max_speed)
        cx = _bounce(rng.uniform(w / 2, sensor - w / 2), speed * np.cos(angle), w / 2, sensor - w / 2, t_s)
        cy = _bounce(rng.uniform(h / 2, sensor - h / 2), speed * np.sin(angle), h / 2, sensor - h / 2, t_s)
        mask = _masks(shape, cx, cy, w, h, sensor)
        covered |= mask
        for k in label_steps:
            rows, cols = np.nonzero(mask[k].any(axis=1))[0], np.nonzero(mask[k].any(axis=0))[0]
            boxes.append((k * STEP_US, cols[0], rows[0], cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0], shape, 1.0,
                          track))
    step, y, x = np.nonzero(covered[1:] != covered[:-1])
    polarity = covered[1:][step, y, x]  # covered now: a bright object arrived, ON
    n_noise = int(rng.poisson(noise_hz * duration_ms / 1000))
    events = np.empty(len(step) + n_noise, dtype=EVENTS)
    events["t"] = np.concatenate([step * STEP_US + rng.integers(0, STEP_US, len(step)),
                                  rng.integers(0, steps * STEP_US, n_noise)])
    events["x"] = np.concatenate([x, rng.integers(0, sensor, n_noise)])
    events["y"] = np.concatenate([y, rng.integers(0, sensor, n_noise)])
    events["p"] = np.concatenate([polarity, rng.integers(0, 2, n_noise)])
    labels = np.array(boxes, dtype=BOX_DTYPE)
    return events[np.argsort(events["t"], kind="stable")], labels[np.argsort(labels["ts"], kind="stable")]


def write_recordings(folder: Path, split: str, count: int, seed: int, sensor: int,
                     **simulation: Any) -> tuple[int, int]:
    """folder/<split>/<i>_td.dat + <i>_bbox.npy; returns (labelled timestamps, events)."""
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    (folder / split).mkdir(parents=True)
    stamps = n_events = 0
    for i in range(count):
        events, boxes = simulate(rng, sensor, **simulation)
        name = f"{split}_{i:04d}"
        write_dat(folder / split / f"{name}{EVENTS_SUFFIX}", events, sensor, sensor)
        np.save(folder / split / f"{name}{BOXES_SUFFIX}", boxes)
        stamps += len(np.unique(boxes["ts"]))
        n_events += len(events)
    return stamps, n_events


@register_dataset("detect_events")
def build_detect_events(
    data_dir: Path, T: int, num_classes: int, cache_dir: str, sensor: int = 64, train_recordings: int = 40,
    val_recordings: int = 10, test_recordings: int = 10, duration_ms: int = 2000, label_ms: int = 50,
    max_objects: int = 3, min_size: int = 10, max_size: int = 24, min_speed: float = 30.0, max_speed: float = 90.0,
    noise_hz: float = 2000.0, seed: int = 0, test_split: str = "test", window_ms: float = 100.0, time_bins: int = 2,
    pad_multiple: int = 32, skip_us: int = 100_000, min_box_diag: float = 0.0, min_box_side: float = 0.0,
    augment: dict[str, Any] | None = None,
) -> DataBundle:
    """Written under cache_dir on first use (keyed by every simulation option), then read by the gen1 loader."""
    del data_dir  # generated, nothing to read
    if num_classes != len(CLASSES):
        raise DataError(f"dataset.num_classes={num_classes} but detect_events draws {len(CLASSES)} classes {CLASSES}")
    if not 1 <= min_size <= max_size < sensor or not 0 <= min_speed <= max_speed:
        raise DataError(f"dataset.min_size={min_size}, max_size={max_size}, sensor={sensor}, speeds {min_speed}.."
                        f"{max_speed}: need 1 <= min_size <= max_size < sensor and 0 <= min_speed <= max_speed")
    simulation = {"duration_ms": int(duration_ms), "label_ms": int(label_ms), "max_objects": int(max_objects),
                  "min_size": int(min_size), "max_size": int(max_size), "min_speed": float(min_speed),
                  "max_speed": float(max_speed), "noise_hz": float(noise_hz)}
    counts = {"train": int(train_recordings), "val": int(val_recordings), "test": int(test_recordings)}
    options = {**simulation, "sensor": int(sensor), "recordings": counts, "seed": int(seed), "format": FORMAT}

    def build(folder: Path) -> dict[str, Any]:
        stamps = n_events = 0
        for split in SPLITS:
            s, e = write_recordings(folder, split, counts[split], int(seed), int(sensor), **simulation)
            stamps, n_events = stamps + s, n_events + e
        return {"samples": stamps, "events": n_events}

    root = cached(Path(cache_dir), "detect_events", options, build)
    fix = f"delete {root} and run again to rewrite it"  # only a damaged cache can lack files
    return load_event_detection(root, "train", test_split, fix, T, num_classes, sensor, sensor, window_ms, time_bins,
                                pad_multiple, BoxFilter(skip_us, min_box_diag, min_box_side), False, 0.0, augment)
