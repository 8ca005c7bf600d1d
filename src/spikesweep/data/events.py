"""Event datasets read by spikingjelly 2.x: CIFAR10-DVS and DVS128 Gesture (integrated to frames, cached),
SHD and SSC (binned on the fly).

spikingjelly turns the original archives under <root>/download/ into <root>/events_np/ (DVS) or
<root>/events_h5/ (SHD/SSC) once, and reads those. We check the archives (names, md5) before it runs, so it
never tries to download or deletes a file, and we refuse a leftover `*.building` marker with the command
that clears it. Frames are integrated with spikingjelly's own functions but written to our cache
(cache.py), keyed by every option (T, split_by or duration, size), so concurrent runs never race.
"""

import logging
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np
import torch
from filelock import FileLock
from spikingjelly.datasets import utils as sj_utils
from spikingjelly.datasets.cifar10_dvs import CIFAR10DVS
from spikingjelly.datasets.dvs128_gesture import DVS128Gesture
from spikingjelly.datasets.shd import SpikingHeidelbergDigits, SpikingSpeechCommands
from torch.nn import functional as F
from torch.utils.data import Dataset
from torchvision.datasets.utils import check_integrity

from spikesweep.data import augment as augmentation
from spikesweep.data.cache import cached, progress
from spikesweep.data.registry import DataBundle, DataError, DatasetMeta, register_dataset

log = logging.getLogger("spikesweep.data")
S = TypeVar("S")


def check_root(root: Path, name: str, resources: list[tuple[str, str, str]], raw: str, verify_checksums: bool) -> bool:
    """Refuse what spikingjelly would trip on; True when <root>/<raw> must still be built from the archives
    listed in `resources` (file, url, md5)."""
    archives = "; ".join(f"{file} (md5 {md5}, {url})" for file, url, md5 in resources)
    if not root.is_dir():
        raise DataError(
            f"{root} not found: create it and put the original archives in {root / 'download'}: {archives} "
            f"(or a pre-built {raw}/); see docs/datasets.md"
        )
    markers = sorted(root.glob("*.building"))
    if markers:
        partial = markers[0].with_suffix("")
        raise DataError(
            f"{markers[0]} is left by an interrupted spikingjelly preparation: run `rm -rf {partial} {markers[0]}` "
            f"and then `spikesweep prepare dataset={name}`"
        )
    if (root / raw).is_dir():
        return False
    download = root / "download"
    for file, url, md5 in resources:
        path = download / file
        if not path.is_file():
            raise DataError(f"{path} not found: download it from {url} (md5 {md5}); all of: {archives}")
        if verify_checksums and not check_integrity(str(path), md5):
            raise DataError(f"{path} fails its md5 check ({md5}): download it again from {url}")
    return True


def open_source(root: Path, name: str, needs_build: bool, make: Callable[[], S]) -> S:
    """Run a spikingjelly constructor; the first one to build <root>/events_* holds a lock while it does."""
    if not needs_build:
        return make()
    log.info("spikingjelly is converting the archives in %s (once)", root / "download")
    with FileLock(str(root / ".spikesweep-prepare.lock")):
        try:
            return make()
        except (OSError, ValueError, RuntimeError, EOFError) as err:
            raise DataError(
                f"spikingjelly could not convert the archives in {root / 'download'} ({type(err).__name__}: {err}); "
                f"remove the partial folders and *.building markers in {root} and run `spikesweep prepare "
                f"dataset={name}` again"
            ) from err


def integrate(events: dict[str, np.ndarray], T: int, split_by: str, duration: int | None, size: int) -> np.ndarray:
    """Events (t, x, y, p) of a 128x128 sensor -> frames [n, 2, size, size] of event counts per polarity.

    Fixed count: T frames, split by event number or by time (spikingjelly's rules). Fixed duration: one
    frame per `duration` µs, as many as the sample lasts. Resizing averages each block of pixels ("area").
    """
    if duration is None:
        frames = sj_utils.integrate_events_by_fixed_frames_number(events, split_by, T, 128, 128)
    else:
        frames = sj_utils.integrate_events_by_fixed_duration(events, duration, 128, 128)
    tensor = torch.from_numpy(frames).float()
    if size != 128:
        tensor = F.interpolate(tensor, size=(size, size), mode="area")
    return tensor.numpy()


class FrameFiles(Dataset):
    """Cached frames [n, 2, H, W] -> [T, 2, H, W] float (duration mode: truncated or padded with empty frames)."""

    def __init__(self, items: list[tuple[Path, int]], T: int, transform: Callable | None = None) -> None:
        self.items, self.T, self.transform = items, T, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.items[index]
        try:
            frames = torch.from_numpy(sj_utils.load_npz_frames(path))
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"{path} is corrupt ({err}): delete its cache folder and run `spikesweep prepare`") from err
        if frames.shape[0] != self.T:
            frames = frames[: self.T]
            if frames.shape[0] < self.T:
                frames = torch.cat([frames, frames.new_zeros(self.T - frames.shape[0], *frames.shape[1:])])
        if self.transform is not None:
            frames = self.transform(frames)
        return frames, label


def frame_cache(
    samples: list[tuple[Path, int]], events_root: Path, cache_root: Path, name: str,
    T: int, split_by: str, duration: int | None, size: int,
) -> list[tuple[Path, int]]:
    """Integrate every sample into the cache once; return (cached file, label) in the order given."""
    options = {"dataset": name, "T": None if duration else T, "split_by": None if duration else split_by,
               "duration": duration, "size": size, "format": 1}
    label = f"{name}_dur{duration}us" if duration else f"{name}_T{T}_{split_by}"

    def build(tmp: Path) -> dict[str, Any]:
        n_events = 0
        for path, _ in progress(samples, len(samples), f"integrating {name} to frames"):
            try:
                events = dict(np.load(path))
            except (OSError, ValueError, EOFError) as err:
                raise DataError(f"{path} is corrupt ({err}): rebuild {events_root} from the archives") from err
            n_events += len(events["t"])
            out = tmp / path.relative_to(events_root)
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                frames = integrate(events, T, split_by, duration, size)
            except IndexError as err:  # spikingjelly cannot split a recording with an empty time window
                raise DataError(
                    f"{path}: a time window of split_by=time with T={T} holds no event; use split_by=number or "
                    f"duration for this dataset"
                ) from err
            np.savez_compressed(out, frames=frames)
        return {"samples": len(samples), "events": n_events}

    folder = cached(cache_root, f"{label}_{size}px", options, build)
    return [(folder / path.relative_to(events_root), y) for path, y in samples]


def _dvs_meta(num_classes: int, T: int, size: int, source: Path) -> DatasetMeta:
    return DatasetMeta(num_classes, (2, size, size), T, temporal=True, source=str(source))


def _check_frame_options(T: int, split_by: str, duration: int | None, size: int) -> None:
    if duration is None and split_by not in ("number", "time"):
        raise DataError(f"dataset.split_by={split_by!r} is not one of number, time")
    if duration is not None and duration <= 0:
        raise DataError(f"dataset.duration={duration} must be a positive number of microseconds")
    if not 1 <= size <= 128:
        raise DataError(f"dataset.size={size} must be between 1 and 128 (the sensor is 128x128)")


def split_per_class(samples: list[tuple[Path, int]], split: str, seed: int) -> tuple[list, list]:
    """CIFAR10-DVS has no official split. first_90_10: the first 90% of each class in file-name order
    (spikingjelly's split_to_train_test_set, as Spikingformer); random_90_10: a seeded random 90% per class;
    tebn: samples 0-99 of each class test, 100-999 train (spikingjelly's CIFAR10DVSTEBNSplit)."""
    by_class: dict[int, list[tuple[Path, int]]] = {}
    for item in samples:
        by_class.setdefault(item[1], []).append(item)
    train, test = [], []
    for label in sorted(by_class):
        items = by_class[label]
        if split == "tebn":
            index = {it: int(it[0].stem.rsplit("_", 1)[1]) for it in items}
            test += [it for it in items if index[it] < 100]
            train += [it for it in items if index[it] >= 100]
            continue
        if split == "random_90_10":
            items = items.copy()
            random.Random(seed * 1000 + label).shuffle(items)
        elif split != "first_90_10":
            raise DataError(f"dataset.split={split!r} is not one of first_90_10, random_90_10, tebn")
        cut = math.ceil(len(items) * 0.9)
        train += items[:cut]
        test += items[cut:]
    return train, test


@register_dataset("cifar10_dvs")
def build_cifar10_dvs(
    data_dir: Path, T: int, num_classes: int, cache_dir: str, root: str = "CIFAR10DVS", split_by: str = "number",
    duration: int | None = None, size: int = 128, split: str = "first_90_10", split_seed: int = 0,
    augment: dict[str, Any] | None = None, verify_checksums: bool = True,
) -> DataBundle:
    """CIFAR10-DVS (10,000 recordings of CIFAR10 images on a 128x128 DVS), 10 classes, split per class."""
    _check_frame_options(T, split_by, duration, size)
    base = data_dir / root
    needs_build = check_root(base, "cifar10_dvs", CIFAR10DVS.resource_url_md5(), "events_np", verify_checksums)
    source = open_source(base, "cifar10_dvs", needs_build, lambda: CIFAR10DVS(str(base), data_type="event"))
    if len(source.classes) != num_classes:
        raise DataError(f"dataset.num_classes={num_classes} but {base / 'events_np'} holds {len(source.classes)}")
    samples = [(Path(p), y) for p, y in source.samples]
    train_items, test_items = split_per_class(samples, split, split_seed)
    all_cached = frame_cache(samples, base / "events_np", Path(cache_dir), "cifar10_dvs", T, split_by, duration, size)
    lookup = dict(zip(samples, all_cached))
    transform = augmentation.FrameTransform(augmentation.parse(augmentation.FrameAugment, augment))
    train = FrameFiles([lookup[it] for it in train_items], T, transform)
    test = FrameFiles([lookup[it] for it in test_items], T)
    return DataBundle(train, test, _dvs_meta(num_classes, T, size, all_cached[0][0].parents[1]))


@register_dataset("dvs128_gesture")
def build_dvs128_gesture(
    data_dir: Path, T: int, num_classes: int, cache_dir: str, root: str = "DVS128Gesture", split_by: str = "number",
    duration: int | None = None, size: int = 128, augment: dict[str, Any] | None = None, verify_checksums: bool = True,
) -> DataBundle:
    """DVS128 Gesture: 11 hand gestures of 29 subjects, the dataset's own train/test split of subjects."""
    _check_frame_options(T, split_by, duration, size)
    base = data_dir / root
    needs_build = check_root(base, "dvs128_gesture", DVS128Gesture.resource_url_md5(), "events_np", verify_checksums)
    splits = {}
    for split in ("train", "test"):
        source = open_source(base, "dvs128_gesture", needs_build and split == "train",
                             lambda s=split: DVS128Gesture(str(base), train=s == "train", data_type="event"))
        # folders are named by gesture id 0..10; DatasetFolder sorts them as text ("10" before "2")
        splits[split] = [(Path(p), int(source.classes[y])) for p, y in source.samples]
    found = len({y for _, y in splits["train"]})
    if found != num_classes:
        raise DataError(f"dataset.num_classes={num_classes} but {base / 'events_np' / 'train'} holds {found} classes")
    samples = splits["train"] + splits["test"]
    cached_items = frame_cache(samples, base / "events_np", Path(cache_dir), "dvs128_gesture", T, split_by, duration,
                               size)
    n = len(splits["train"])
    transform = augmentation.FrameTransform(augmentation.parse(augmentation.FrameAugment, augment))
    train = FrameFiles(cached_items[:n], T, transform)
    test = FrameFiles(cached_items[n:], T)
    return DataBundle(train, test, _dvs_meta(num_classes, T, size, cached_items[0][0].parents[2]))


def bin_spikes(times_s: np.ndarray, units: np.ndarray, T: int, dt_ms: float, channel_pool: int,
               channels: int = 700) -> np.ndarray:
    """Spike times (s) and channel ids -> counts [T, channels / channel_pool] in bins of dt_ms; spikes after
    T * dt_ms are dropped (SHD and SSC samples last at most ~1.4 s)."""
    width = channels // channel_pool
    steps = np.floor(np.asarray(times_s, dtype=np.float64) * 1000.0 / dt_ms).astype(np.int64)
    keep = steps < T
    index = steps[keep] * width + np.asarray(units, dtype=np.int64)[keep] // channel_pool
    return np.bincount(index, minlength=T * width).reshape(T, width).astype(np.float32)


class BinnedSpikes(Dataset):
    """spikingjelly's SHD/SSC event samples ({t, x}) binned into [T, channels] float counts."""

    def __init__(self, source: Dataset, T: int, dt_ms: float, channel_pool: int) -> None:
        self.source, self.T, self.dt_ms, self.channel_pool = source, T, dt_ms, channel_pool

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        events, label = self.source[index]
        frames = bin_spikes(events["t"], events["x"], self.T, self.dt_ms, self.channel_pool)
        return torch.from_numpy(frames), int(label)


def _build_audio(
    name: str, resources: list[tuple[str, str, str]] | None, data_dir: Path, root: str, T: int, num_classes: int,
    dt_ms: float, channel_pool: int,
    verify_checksums: bool, make: Callable[[Path, str], Dataset], splits: tuple[str, str],
) -> DataBundle:
    if channel_pool < 1 or 700 % channel_pool:
        raise DataError(f"dataset.channel_pool={channel_pool} must divide the 700 channels (1, 2, 4, 5, 7, 10, ...)")
    if dt_ms <= 0:
        raise DataError(f"dataset.dt_ms={dt_ms} must be > 0")
    base = data_dir / root
    if resources is None and not (base / "events_h5").is_dir():
        raise DataError(
            f"{base / 'events_h5'} not found: download {name}_train.h5.zip and {name}_test.h5.zip from "
            f"https://zenkelab.org/datasets/ and unzip them into it (spikingjelly 2.0.0 lists SHD's archives for SSC)"
        )
    needs_build = check_root(base, name, resources or [], "events_h5", verify_checksums)
    h5 = [base / "events_h5" / f"{name}_{s}.h5" for s in splits]
    if not needs_build:
        for path in h5:
            if not path.is_file():
                raise DataError(f"{path} not found: extract the {path.name} archive into {path.parent}")
    try:
        for path in h5 if not needs_build else []:  # before spikingjelly reads them: h5py's KeyError otherwise
            with h5py.File(path, "r") as f:
                for key in ("spikes/times", "spikes/units", "labels"):
                    if key not in f:
                        raise DataError(f"{path} has no '{key}': not an SHD/SSC file, extract it again")
        train_src, test_src = (open_source(base, name, needs_build, lambda s=s: make(base, s)) for s in splits)
        with h5py.File(h5[0], "r") as f:
            found = len(np.unique(f["labels"][:]))
    except OSError as err:
        raise DataError(f"an HDF5 file under {base / 'events_h5'} is corrupt ({err}): extract it again") from err
    if found != num_classes:
        raise DataError(f"dataset.num_classes={num_classes} but {h5[0]} holds {found} classes")
    meta = DatasetMeta(num_classes, (700 // channel_pool,), T, temporal=True, source=str(base / "events_h5"))
    return DataBundle(BinnedSpikes(train_src, T, dt_ms, channel_pool), BinnedSpikes(test_src, T, dt_ms, channel_pool),
                      meta)


@register_dataset("shd")
def build_shd(
    data_dir: Path, T: int, num_classes: int, root: str = "SHD", dt_ms: float = 10.0, channel_pool: int = 5,
    verify_checksums: bool = True,
) -> DataBundle:
    """Spiking Heidelberg Digits: 700-channel cochlea spikes of 20 spoken digits (8,156 train, 2,264 test)."""
    return _build_audio("shd", SpikingHeidelbergDigits.resource_url_md5(), data_dir, root, T, num_classes, dt_ms,
                        channel_pool,
                        verify_checksums, lambda b, s: SpikingHeidelbergDigits(str(b), train=s == "train",
                                                                                 data_type="event"),
                        ("train", "test"))


@register_dataset("ssc")
def build_ssc(
    data_dir: Path, T: int, num_classes: int, root: str = "SSC", dt_ms: float = 10.0, channel_pool: int = 5,
    verify_checksums: bool = True,
) -> DataBundle:
    """Spiking Speech Commands: 35 words. Trains on ssc_train.h5, tests on ssc_test.h5 (valid unused)."""
    return _build_audio("ssc", None, data_dir, root, T, num_classes, dt_ms, channel_pool,
                        verify_checksums, lambda b, s: SpikingSpeechCommands(str(b), split=s, data_type="event"),
                        ("train", "test"))
