"""Event and sequence datasets through spikingjelly's real readers (events_np / events_h5 layouts), frame
integration against hand-computed examples, the frame cache under concurrency, and one training step each."""

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from spikesweep.data import DataError, build_datasets
from spikesweep.data.augment import FrameAugment, FrameTransform
from spikesweep.data.cache import cache_key, cached
from spikesweep.data.events import bin_spikes, integrate, split_per_class
from spikesweep.run import train
from tests.conftest import compose
from tests.data import fixtures

ONE_STEP = ("trainer.epochs=1", "trainer.max_steps_per_epoch=1", "logger=none", "trainer.batch_size=4",
            "trainer.device=cpu")
SMALL_DVS = ("dataset.size=16", "dataset.T=4", "model.channels=[4,8]")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("events")
    fixtures.make_cifar10_dvs(root)
    fixtures.make_dvs128_gesture(root)
    fixtures.make_shd(root)
    fixtures.make_shd(root, name="ssc", n_classes=35)
    fixtures.make_cifar10(root)
    return root


def _paths(data_dir: Path, cache: Path) -> tuple[str, str]:
    return f"paths.data_dir={data_dir}", f"paths.cache_dir={cache}"


def _build(data_dir: Path, cache: Path, *overrides: str):
    cfg = compose(*_paths(data_dir, cache), *overrides)
    return build_datasets(cfg.dataset, cfg.paths.data_dir)


@pytest.mark.parametrize(
    ("overrides", "shape", "classes", "n_train", "n_test"),
    [
        (("dataset=cifar10_dvs", *SMALL_DVS), (4, 2, 16, 16), 10, 90, 10),
        (("dataset=dvs128_gesture", *SMALL_DVS), (4, 2, 16, 16), 11, 11, 11),
        (("dataset=shd", "model=spiking_mlp", "model.hidden=[16]", "dataset.T=20"), (20, 140), 20, 20, 20),
        (("dataset=seq_cifar10", "model=spiking_mlp", "model.hidden=[16]", "dataset.verify_checksums=false"),
         (32, 96), 10, 50, 10),
    ],
)
def test_loads_and_trains_one_step(data_dir, tmp_path, overrides, shape, classes, n_train, n_test):
    bundle = _build(data_dir, tmp_path / "cache", *overrides)
    assert bundle.meta.temporal and bundle.meta.num_classes == classes and bundle.meta.time_steps == shape[0]
    assert (len(bundle.train), len(bundle.test)) == (n_train, n_test)
    labels = set()
    for i in range(len(bundle.test)):
        x, y = bundle.test[i]
        assert tuple(x.shape) == shape and x.dtype == torch.float32
        labels.add(int(y))
    assert labels == set(range(classes))
    full = (*overrides, *_paths(data_dir, tmp_path / "cache"), *ONE_STEP)
    summary = train(compose(*full), tmp_path / "run", list(full))
    assert summary["status"] == "completed" and summary["num_classes"] == classes


def test_ssc_reads_its_h5_files(data_dir, tmp_path):
    bundle = _build(data_dir, tmp_path, "dataset=ssc", "dataset.T=10", "dataset.channel_pool=7",
                    "dataset.input_shape=[100]")
    assert bundle.meta.num_classes == 35 and bundle.train[0][0].shape == (10, 100)


def test_gesture_labels_follow_the_folder_ids(data_dir, tmp_path):
    bundle = _build(data_dir, tmp_path, "dataset=dvs128_gesture", *SMALL_DVS[:2])
    by_folder = {int(path.parent.name): label for path, label in bundle.train.items}
    assert by_folder == {i: i for i in range(11)}  # "10" is label 10, not the text-sorted third folder


def test_fixed_count_integration_by_hand():
    events = {"t": np.array([0, 1, 2, 3]), "x": np.array([1, 1, 3, 0]), "y": np.array([2, 2, 0, 0]),
              "p": np.array([0, 0, 1, 1])}
    frames = integrate(events, T=2, split_by="number", duration=None, size=128)
    assert frames.shape == (2, 2, 128, 128) and frames.sum() == 4
    assert frames[0, 0, 2, 1] == 2  # two OFF events at (y=2, x=1) in the first half of the events
    assert frames[1, 1, 0, 3] == 1 and frames[1, 1, 0, 0] == 1 and frames[1, 0].sum() == 0
    small = integrate(events, T=2, split_by="number", duration=None, size=64)
    assert small[0, 0, 1, 0] == 0.5  # the 2x2 block average of two events: 2 / 4


def test_split_by_time_and_duration_by_hand():
    events = {"t": np.array([0, 10, 20, 60, 100]), "x": np.zeros(5, int), "y": np.zeros(5, int), "p": np.ones(5, int)}
    by_time = integrate(events, T=2, split_by="time", duration=None, size=128)
    assert by_time[:, 1, 0, 0].tolist() == [3, 2]  # windows of 50 us: t=0,10,20 | t=60,100
    events = {k: np.delete(v, 3) for k, v in events.items()}  # t = 0, 10, 20, 100
    by_duration = integrate(events, T=0, split_by="number", duration=30, size=128)
    assert by_duration[:, 1, 0, 0].tolist() == [3, 0, 0, 1]  # ceil(100 / 30) = 4 frames of 30 us


def test_shd_binning_by_hand():
    frames = bin_spikes(np.array([0.001, 0.0095, 0.012, 2.0]), np.array([0, 4, 5, 699]), T=3, dt_ms=10, channel_pool=5)
    assert frames.shape == (3, 140)
    assert frames[0, 0] == 2 and frames[1, 1] == 1 and frames.sum() == 3  # the spike at 2 s is past T*dt


def test_duration_frames_are_padded_to_T(data_dir, tmp_path):
    bundle = _build(data_dir, tmp_path, "dataset=dvs128_gesture", "dataset.size=16", "dataset.T=40",
                    "dataset.duration=100000")
    x, _ = bundle.test[0]
    assert x.shape == (40, 2, 16, 16) and x[-1].sum() == 0  # fixture recordings last <= 1 s: 10 frames + padding


def test_cifar10_dvs_splits(data_dir, tmp_path):
    bundle = _build(data_dir, tmp_path, "dataset=cifar10_dvs", *SMALL_DVS[:2])
    test_names = sorted(path.stem for path, _ in bundle.test.items)
    assert test_names == sorted(f"cifar10_{c}_9" for c in fixtures.CIFAR10_CLASSES)  # last 10% in name order
    items = [(Path(f"cifar10_cat_{i}.npz"), 3) for i in range(120)]
    train_items, test_items = split_per_class(items, "tebn", 0)
    assert len(test_items) == 100 and all(int(p.stem.split("_")[-1]) < 100 for p, _ in test_items)
    a = split_per_class(items, "random_90_10", 1)
    assert len(a[0]) == 108 and a == split_per_class(items, "random_90_10", 1)
    assert a != split_per_class(items, "random_90_10", 2)
    with pytest.raises(DataError, match="dataset.split='halves' is not one of"):
        split_per_class(items, "halves", 0)


def test_cache_is_keyed_by_every_option_and_reused(data_dir, tmp_path):
    cache = tmp_path / "cache"
    first = _build(data_dir, cache, "dataset=dvs128_gesture", *SMALL_DVS[:2]).meta.source
    stamp = (Path(first) / "prepare.json").stat().st_mtime_ns
    again = _build(data_dir, cache, "dataset=dvs128_gesture", *SMALL_DVS[:2]).meta.source
    assert again == first and (Path(first) / "prepare.json").stat().st_mtime_ns == stamp
    others = {_build(data_dir, cache, "dataset=dvs128_gesture", *o).meta.source
              for o in (("dataset.size=8", "dataset.T=4"), ("dataset.size=16", "dataset.T=5"),
                        ("dataset.size=16", "dataset.T=4", "dataset.split_by=time"))}
    assert len(others | {first}) == 4
    stats = json.loads((Path(first) / "prepare.json").read_text())
    assert stats["samples"] == 22 and stats["events"] == 2200 and stats["events_per_s"] > 0
    assert stats["options"]["size"] == 16


def test_concurrent_builders_build_once(tmp_path):
    calls = []

    def build(folder: Path) -> dict:
        calls.append(folder)
        time.sleep(0.3)
        (folder / "sample.npz").write_bytes(b"x")
        return {"samples": 1}

    (tmp_path / f"x-{cache_key({'a': 1})}.tmp-999").mkdir()  # left by a crashed builder
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(cached(tmp_path, "x", {"a": 1}, build)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1 and (results[0] / "sample.npz").is_file()
    assert not list(tmp_path.glob("*.tmp-*"))


def test_failed_build_leaves_no_cache(tmp_path):
    def build(folder: Path) -> dict:
        (folder / "half").write_bytes(b"x")
        raise DataError("boom")

    with pytest.raises(DataError, match="boom"):
        cached(tmp_path, "x", {"a": 1}, build)
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # neither the cache nor its temporary folder


def test_snn_augment_wide_applies_one_op_to_all_frames():
    torch.manual_seed(0)
    frame = torch.rand(2, 16, 16)
    frames = frame.expand(4, 2, 16, 16).clone()
    transform = FrameTransform(FrameAugment(hflip=0.5, snn_augment_wide=True, translate=3, cutout=0.5))
    changed = 0
    for _ in range(20):
        out = transform(frames)
        assert out.shape == frames.shape and torch.equal(out[0], out[3])
        changed += not torch.equal(out, frames)
    assert changed > 5


def test_missing_root_lists_the_archives(tmp_path):
    with pytest.raises(DataError, match=r"CIFAR10DVS not found: create it .*airplane.zip \(md5 0afd5c4bf9ae06af"):
        _build(tmp_path, tmp_path, "dataset=cifar10_dvs")


def test_missing_archive_is_named_with_its_md5(tmp_path):
    (tmp_path / "DVS128Gesture" / "download").mkdir(parents=True)
    with pytest.raises(DataError, match=r"DvsGesture.tar.gz not found: download it from .* \(md5 8a5c71fb"):
        _build(tmp_path, tmp_path, "dataset=dvs128_gesture")


def test_wrong_archive_fails_md5_before_spikingjelly_runs(tmp_path):
    download = tmp_path / "SHD" / "download"
    download.mkdir(parents=True)
    for name in ("shd_train.h5.zip", "shd_test.h5.zip"):
        (download / name).write_bytes(b"not the archive")
    with pytest.raises(DataError, match="shd_train.h5.zip fails its md5 check"):
        _build(tmp_path, tmp_path, "dataset=shd")
    assert not (tmp_path / "SHD" / "events_h5.building").exists()


def test_leftover_building_marker_says_how_to_recover(tmp_path):
    root = fixtures.make_cifar10_dvs(tmp_path, per_class=1)
    (root / "events_np.building").touch()
    with pytest.raises(DataError, match=r"events_np.building is left by an interrupted spikingjelly preparation: "
                                        r"run `rm -rf .*events_np .*events_np.building` and then `spikesweep prepare"):
        _build(tmp_path, tmp_path / "cache", "dataset=cifar10_dvs")


def test_corrupt_event_file_is_named(tmp_path):
    root = fixtures.make_cifar10_dvs(tmp_path, per_class=1)
    bad = root / "events_np" / "cat" / "cifar10_cat_0.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"cifar10_cat_0.npz is corrupt"):
        _build(tmp_path, tmp_path / "cache", "dataset=cifar10_dvs", "dataset.size=16")
    assert not [p for p in (tmp_path / "cache" / "frames").iterdir() if p.is_dir()]  # nothing half-built published


@pytest.mark.parametrize("split", ["train", "test"])
def test_shd_file_without_labels_is_named(tmp_path, split):
    import h5py

    folder = fixtures.make_shd(tmp_path)
    with h5py.File(folder / f"shd_{split}.h5", "a") as f:
        del f["labels"]
    with pytest.raises(DataError) as err:
        _build(tmp_path, tmp_path, "dataset=shd")
    assert str(err.value) == f"{folder / f'shd_{split}.h5'} has no 'labels': not an SHD/SSC file, extract it again"


def test_corrupt_shd_file_is_named(tmp_path):
    folder = fixtures.make_shd(tmp_path)
    (folder / "shd_test.h5").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"under .*events_h5 is corrupt"):
        _build(tmp_path, tmp_path, "dataset=shd")


def test_bad_frame_options_are_named(data_dir, tmp_path):
    with pytest.raises(DataError, match="dataset.split_by='events' is not one of number, time"):
        _build(data_dir, tmp_path, "dataset=cifar10_dvs", "dataset.split_by=events")
    with pytest.raises(DataError, match="dataset.channel_pool=3 must divide the 700 channels"):
        _build(data_dir, tmp_path, "dataset=shd", "dataset.channel_pool=3")
    with pytest.raises(DataError, match=r"dataset.input_shape=\[140\] but shd yields \[350\]"):
        _build(data_dir, tmp_path, "dataset=shd", "dataset.channel_pool=2")


def test_empty_time_window_is_explained(tmp_path):
    root = tmp_path / "CIFAR10DVS" / "events_np"
    for name in fixtures.CIFAR10_CLASSES:
        (root / name).mkdir(parents=True)
        np.savez(root / name / f"cifar10_{name}_0.npz", t=np.array([0, 1, 1000]), x=np.zeros(3, np.uint16),
                 y=np.zeros(3, np.uint16), p=np.ones(3, np.uint8))
    with pytest.raises(DataError, match=r"cifar10_airplane_0.npz: a time window of split_by=time with T=4 holds no"):
        _build(tmp_path, tmp_path / "cache", "dataset=cifar10_dvs", "dataset.size=16", "dataset.T=4",
               "dataset.split_by=time")
