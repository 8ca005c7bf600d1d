"""Static image datasets through their real loaders (torchvision over the real file formats), then one
training step through the real entry point."""

import gzip
from pathlib import Path

import pytest
import torch

from spikesweep.data import DataError, build_datasets
from spikesweep.data.imagenet_classes import SUBSETS
from spikesweep.run import RunError, train
from tests.conftest import compose
from tests.data import fixtures

NO_MD5 = "dataset.verify_checksums=false"  # fixtures cannot match the real archives' md5
ONE_STEP = ("trainer.epochs=1", "trainer.max_steps_per_epoch=1", "logger=none", "trainer.batch_size=4",
            "trainer.device=cpu", "model.channels=[4,8]")


def _build(data_dir: Path, *overrides: str):
    cfg = compose(f"paths.data_dir={data_dir}", *overrides)
    return build_datasets(cfg.dataset, cfg.paths.data_dir)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    fixtures.make_cifar10(root)
    fixtures.make_cifar100(root)
    fixtures.make_mnist(root)
    fixtures.make_imagenet(root, list(SUBSETS["imagenette10"]))
    return root


@pytest.mark.parametrize(
    ("dataset", "extra", "shape", "classes", "n_train"),
    [
        ("cifar10", (NO_MD5,), (3, 32, 32), 10, 50),
        ("cifar100", (NO_MD5,), (3, 32, 32), 100, 100),
        ("mnist", (), (1, 28, 28), 10, 10),
        ("imagenet_subset", ("dataset.image_size=32",), (3, 32, 32), 10, 10),
    ],
)
def test_loads_and_trains_one_step(data_dir, tmp_path, dataset, extra, shape, classes, n_train):
    bundle = _build(data_dir, f"dataset={dataset}", *extra)
    assert bundle.meta.num_classes == classes and bundle.meta.input_shape == shape and not bundle.meta.temporal
    assert len(bundle.train) == n_train
    labels = set()
    for i in range(len(bundle.test)):
        x, y = bundle.test[i]
        assert x.shape == shape and x.dtype == torch.float32
        labels.add(int(y))
    assert labels == set(range(classes))  # fixtures hold one test sample per class
    overrides = (f"dataset={dataset}", f"paths.data_dir={data_dir}", *extra, *ONE_STEP)
    summary = train(compose(*overrides), tmp_path, list(overrides))
    assert summary["status"] == "completed" and summary["num_classes"] == classes


def test_cifar10_labels_and_pixels_match_the_pickles(data_dir):
    import pickle

    bundle = _build(data_dir, "dataset=cifar10", NO_MD5, "dataset/augment=none")
    with open(data_dir / "cifar10" / "cifar-10-batches-py" / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    x, y = bundle.test[3]
    assert y == raw["labels"][3]
    first_pixel = raw["data"][3][0] / 255.0  # red channel, row 0, column 0
    assert x[0, 0, 0].item() == pytest.approx((first_pixel - 0.4914) / 0.2470, abs=1e-5)


@pytest.mark.parametrize("preset", ["crop_flip", "trivial_augment_wide", "autoaugment_cifar10", "spikingformer_cifar"])
def test_cifar_augment_presets_give_normalised_tensors(data_dir, preset):
    bundle = _build(data_dir, "dataset=cifar10", NO_MD5, f"dataset/augment={preset}")
    x, _ = bundle.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32


@pytest.mark.parametrize("preset", ["imagenet_randaug", "imagenet_autoaugment"])
def test_imagenet_augment_presets(data_dir, preset):
    bundle = _build(data_dir, "dataset=imagenet_subset", "dataset.image_size=32", f"dataset/augment={preset}")
    assert bundle.train[0][0].shape == (3, 32, 32) and bundle.test[0][0].shape == (3, 32, 32)


def test_frame_augment_on_images_is_refused(data_dir):
    with pytest.raises(DataError, match="dataset.augment.cutout is not a ImageAugment key"):
        _build(data_dir, "dataset=cifar10", NO_MD5, "dataset/augment=snn_augment_wide")


def test_bad_timm_policy_is_named(data_dir):
    with pytest.raises(DataError, match="auto_augment='rand-zz9' is not a timm/torchvision policy"):
        _build(data_dir, "dataset=cifar10", NO_MD5, "+dataset.augment.auto_augment=rand-zz9")


def test_cifar100_with_10_classes_is_impossible(data_dir, tmp_path):
    """Seed 000 trained CIFAR100 with --nb_classes 10: the stated class count is checked against the data."""
    overrides = ("dataset=cifar100", "dataset.num_classes=10", f"paths.data_dir={data_dir}", NO_MD5, *ONE_STEP)
    with pytest.raises(RunError, match="dataset.num_classes=10 but .*cifar-100-python holds 100 classes"):
        train(compose(*overrides), tmp_path, list(overrides))


def test_stated_input_shape_is_checked(data_dir):
    with pytest.raises(DataError, match=r"dataset.input_shape=\[3, 28, 28\] but cifar10 yields \[3, 32, 32\]"):
        _build(data_dir, "dataset=cifar10", NO_MD5, "dataset.input_shape=[3,28,28]")


def test_missing_cifar_names_the_archive(tmp_path):
    with pytest.raises(DataError, match=r"cifar-10-batches-py not found: place cifar-10-python.tar.gz"):
        _build(tmp_path, "dataset=cifar10")


def test_missing_batch_file_is_named(tmp_path):
    folder = fixtures.make_cifar10(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3 is missing"):
        _build(tmp_path, "dataset=cifar10", NO_MD5)


def test_checksums_are_verified_by_default(data_dir):
    with pytest.raises(DataError, match=r"data_batch_1 fails its md5 check"):
        _build(data_dir, "dataset=cifar10")


def test_corrupt_pickle_is_named(tmp_path):
    folder = fixtures.make_cifar100(tmp_path)
    (folder / "train").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DataError, match="cifar-100-python/train is corrupt .*extract cifar-100-python.tar.gz again"):
        _build(tmp_path, "dataset=cifar100", NO_MD5)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("checksums", [NO_MD5, "dataset.verify_checksums=true"])
def test_crafted_cifar_pickle_runs_nothing_and_is_named_in_one_line(tmp_path, checksums, monkeypatch):
    import pickle

    from spikesweep.data.images import CIFAR10

    folder = fixtures.make_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    batch = pickle.loads((folder / "data_batch_1").read_bytes())
    (folder / "data_batch_1").write_bytes(pickle.dumps({**batch, "filenames": _Exploit(marker)}, protocol=2))
    with open(folder / "data_batch_1", "rb") as f:  # the file is live: the plain unpickler runs it
        pickle.load(f)
    assert marker.exists()
    marker.unlink()
    monkeypatch.setattr(CIFAR10, "train_list", [[name, None] for name, _ in CIFAR10.train_list])  # md5s of fixtures
    monkeypatch.setattr(CIFAR10, "test_list", [[name, None] for name, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": None})
    with pytest.raises(DataError) as err:
        _build(tmp_path, "dataset=cifar10", checksums)
    message = str(err.value)
    assert message.startswith(f"{folder / 'data_batch_1'} refused: it would call ") and "\n" not in message
    assert message.endswith("not only build data (a crafted file?): extract cifar-10-python.tar.gz again")
    assert not marker.exists()


def test_plain_data_pickles_load_as_numpy_1_and_2_wrote_them(tmp_path):
    import pickle

    import numpy as np

    from spikesweep.data import safe_pickle

    value = {"data": np.arange(6, dtype=np.uint8).reshape(2, 3), "labels": [1, 2], "n": np.int64(3), "b": b"x",
             "f": 0.5, "s": "name"}
    new = pickle.dumps(value, protocol=2)
    old = new.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")  # CIFAR's own files (numpy 1)
    for raw in (new, old, pickle.dumps(value, protocol=5)):
        (tmp_path / "p").write_bytes(raw)
        loaded = safe_pickle.load(tmp_path / "p")
        assert loaded.keys() == value.keys() and loaded["data"].tolist() == [[0, 1, 2], [3, 4, 5]]
        assert loaded["n"] == 3 and loaded["b"] == b"x" and loaded["labels"] == [1, 2]


@pytest.mark.parametrize("dataset", ["cifar10", "mnist"])
def test_download_offline_is_one_line_saying_where_to_place_the_files(tmp_path, dataset, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(urllib.request.OpenerDirector, "open", offline)
    with pytest.raises(DataError) as err:
        _build(tmp_path, f"dataset={dataset}", "dataset.download=true")
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"dataset.download=true: downloading into {tmp_path / dataset}")
    assert "Temporary failure in name resolution" in message and "by hand and set dataset.download=false" in message


def test_cifar_archive_is_extracted_on_first_use(tmp_path):
    import tarfile

    fixtures.make_cifar10(tmp_path / "src")
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    with tarfile.open(tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar10" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    bundle = _build(tmp_path / "data", "dataset=cifar10", NO_MD5)
    assert len(bundle.train) == 50


def test_missing_mnist_names_the_files(tmp_path):
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz not found: place .*t10k-labels-idx1-ubyte.gz"):
        _build(tmp_path, "dataset=mnist")


def test_corrupt_mnist_archive_is_named(tmp_path):
    raw = fixtures.make_mnist(tmp_path)
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz is corrupt"):
        _build(tmp_path, "dataset=mnist")


def test_mnist_truncated_idx_is_named(tmp_path):
    raw = fixtures.make_mnist(tmp_path)
    packed = raw / "train-images-idx3-ubyte.gz"
    packed.write_bytes(gzip.compress(gzip.decompress(packed.read_bytes())[:100]))
    with pytest.raises(DataError, match="is corrupt"):
        _build(tmp_path, "dataset=mnist")


def test_imagenet_missing_class_is_named(tmp_path):
    wnids = list(SUBSETS["imagenette10"])
    fixtures.make_imagenet(tmp_path, wnids[:9])
    with pytest.raises(DataError, match=r"1 listed class\(es\) missing from .*train: n03888605"):
        _build(tmp_path, "dataset=imagenet_subset", "dataset.image_size=32")


def test_imagenet_class_list_must_match_num_classes(data_dir):
    with pytest.raises(DataError, match="num_classes=100 but dataset.classes lists 10"):
        _build(data_dir, "dataset=imagenet_subset", "dataset.num_classes=100")
    with pytest.raises(DataError, match="'cat' is not a WordNet id"):
        _build(data_dir, "dataset=imagenet_subset", "dataset.classes=[cat]", "dataset.num_classes=1")


def test_imagenet_explicit_class_list_sets_the_labels(data_dir):
    wnids = list(SUBSETS["imagenette10"])[:3][::-1]
    bundle = _build(data_dir, "dataset=imagenet_subset", "dataset.image_size=32",
                    f"dataset.classes=[{','.join(wnids)}]", "dataset.num_classes=3", "dataset.input_shape=[3,32,32]")
    assert bundle.train.classes == wnids
    assert [bundle.train[i][1] for i in range(3)] == [2, 1, 0]  # files sorted by folder; labels follow the list


def test_imagenet1k_takes_every_class_folder_in_sorted_order(tmp_path):
    wnids = ["n03000001", "n01000001", "n02000001"]
    fixtures.make_imagenet(tmp_path, wnids, extra=0)
    bundle = _build(tmp_path, "dataset=imagenet1k", "dataset.num_classes=3", "dataset.image_size=32",
                    "dataset.input_shape=[3,32,32]")
    assert bundle.train.classes == sorted(wnids) and bundle.meta.num_classes == 3
    assert sorted(bundle.test[i][1] for i in range(3)) == [0, 1, 2]
    with pytest.raises(DataError, match="num_classes=1000 but dataset.classes lists 3"):
        _build(tmp_path, "dataset=imagenet1k", "dataset.image_size=32")


def test_imagenet_missing_root_is_named(tmp_path):
    with pytest.raises(DataError, match=r"imagenet/train not found: point dataset.root"):
        _build(tmp_path, "dataset=imagenet_subset")


def test_corrupt_jpeg_is_named(tmp_path):
    root = fixtures.make_imagenet(tmp_path, list(SUBSETS["imagenette10"]))
    bad = next((root / "val" / "n01440764").iterdir())
    bad.write_bytes(b"\xff\xd8 truncated")
    bundle = _build(tmp_path, "dataset=imagenet_subset", "dataset.image_size=32")
    with pytest.raises(DataError, match="is not a readable image"):
        bundle.test[0]


def test_named_subsets_are_well_formed():
    assert {name: len(ids) for name, ids in SUBSETS.items()} == {"imagenette10": 10, "imagenet100": 100}
    for ids in SUBSETS.values():
        assert len(set(ids)) == len(ids)
