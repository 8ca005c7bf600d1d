"""Static image datasets read by torchvision from `paths.data_dir`: CIFAR10/100, MNIST, an ImageNet subset.

Every builder checks the files it needs before torchvision touches them, so a missing or damaged dataset
fails with one line naming the file and what to place there, never with torchvision's generic message or
an attempted download (downloads happen only with dataset.download=true).
"""

import gzip
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock
from PIL import Image
from torchvision.datasets import CIFAR10, CIFAR100, MNIST, ImageFolder, VisionDataset
from torchvision.datasets.utils import check_integrity, download_and_extract_archive, extract_archive

from spikesweep.data import augment as augmentation
from spikesweep.data import safe_pickle
from spikesweep.data.imagenet_classes import SUBSETS
from spikesweep.data.registry import DataBundle, DataError, DatasetMeta, register_dataset

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"


@contextmanager
def downloads_reported(where: Path, by_hand: str) -> Iterator[None]:
    """A failed download (offline, proxy, server down) as one line saying where to put the files instead."""
    try:
        yield
    except (OSError, RuntimeError) as err:  # urllib's URLError is an OSError; torchvision wraps some in RuntimeError
        reason = str(getattr(err, "reason", None) or err).strip().splitlines()[-1]  # MNIST: one line per mirror
        raise DataError(
            f"dataset.download=true: downloading into {where} failed ({reason}); {by_hand} by hand and set "
            f"dataset.download=false"
        ) from err


def _check_cifar(cls: type[CIFAR10], root: Path, download: bool, verify_checksums: bool) -> None:
    """Make sure root/<base_folder>/ holds every batch file: extract the archive if only it is there."""
    folder = root / cls.base_folder
    files = [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    archive = root / cls.filename
    if not folder.is_dir():
        if download:
            with downloads_reported(root, f"place {cls.filename} (from {CIFAR_URL}) in {root}"):
                download_and_extract_archive(cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5)
        elif archive.is_file():
            with FileLock(str(root / f".{cls.filename}.lock")):
                if not folder.is_dir():
                    if verify_checksums and not check_integrity(str(archive), cls.tgz_md5):
                        raise DataError(f"{archive} fails its md5 check ({cls.tgz_md5}): download it again")
                    extract_archive(str(archive), str(root))
        else:
            raise DataError(
                f"{folder} not found: place {cls.filename} (from {CIFAR_URL}) or its extracted "
                f"{cls.base_folder}/ in {root}, or set dataset.download=true"
            )
    for name, md5 in [*(cls.train_list + cls.test_list), (cls.meta["filename"], cls.meta["md5"])]:
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path} is missing ({', '.join(files)} expected): extract {cls.filename} again")
        if verify_checksums and not check_integrity(str(path), md5):
            raise DataError(
                f"{path} fails its md5 check ({md5}): extract {cls.filename} again "
                f"(dataset.verify_checksums=false skips the check)"
            )


def _cifar_class(base: type[CIFAR10]) -> type[CIFAR10]:
    """torchvision's dataset, read by our own code: its reader unpickles with Python's plain unpickler, which
    runs whatever a crafted batch file names. Ours builds only arrays and plain values, and names a bad file."""

    class Checked(base):  # type: ignore[misc, valid-type]
        def __init__(self, root: str, train: bool = True, transform: Any = None, target_transform: Any = None) -> None:
            VisionDataset.__init__(self, root, transform=transform, target_transform=target_transform)
            self.train = train
            folder = Path(root) / base.base_folder
            data, self.targets = [], []
            fix = f"extract {base.filename} again"
            for name, _ in base.train_list if train else base.test_list:
                entry = safe_pickle.load(folder / name, fix)
                try:
                    data.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                    labels = [int(y) for y in entry["labels" if "labels" in entry else "fine_labels"]]
                except (KeyError, TypeError, ValueError) as err:
                    raise DataError(f"{folder / name} is not a CIFAR batch ({type(err).__name__}: {err}): {fix}") from err
                if len(labels) != len(data[-1]):
                    raise DataError(f"{folder / name} holds {len(data[-1])} images but {len(labels)} labels: {fix}")
                self.targets.extend(labels)
            self.data = np.vstack(data).transpose((0, 2, 3, 1))  # HWC, as torchvision keeps it
            meta = safe_pickle.load(folder / base.meta["filename"], fix)
            try:
                self.classes = list(meta[base.meta["key"]])
            except (KeyError, TypeError) as err:
                raise DataError(f"{folder / base.meta['filename']} has no {base.meta['key']!r}: {fix}") from err
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    Checked.__name__ = base.__name__
    return Checked


def load_cifar(
    which: str, root: Path, download: bool, verify_checksums: bool, train_transform: Any, test_transform: Any
) -> tuple[CIFAR10, CIFAR10]:
    """The torchvision CIFAR10/100 train and test sets from root (shared with the sequential variants)."""
    base = {"cifar10": CIFAR10, "cifar100": CIFAR100}[which]
    if download:
        root.mkdir(parents=True, exist_ok=True)
    _check_cifar(base, root, download, verify_checksums)
    cls = _cifar_class(base)
    return cls(str(root), train=True, transform=train_transform), cls(str(root), train=False, transform=test_transform)


def _check_classes(dataset: Any, num_classes: int, where: Path) -> int:
    found = len(dataset.classes)
    if found != num_classes:
        raise DataError(f"dataset.num_classes={num_classes} but {where} holds {found} classes")
    return found


def _build_cifar(
    which: str, data_dir: Path, T: int, num_classes: int, mean: list[float], std: list[float],
    augment_cfg: dict[str, Any] | None, download: bool, verify_checksums: bool,
) -> DataBundle:
    aug = augmentation.parse(augmentation.ImageAugment, augment_cfg)
    train_tf, test_tf = augmentation.image_transforms(aug, 32, tuple(mean), tuple(std), resize_eval=False)
    root = data_dir / which
    train, test = load_cifar(which, root, download, verify_checksums, train_tf, test_tf)
    n = _check_classes(train, num_classes, root / train.base_folder)
    meta = DatasetMeta(n, (3, 32, 32), T, temporal=False, mean=tuple(mean), std=tuple(std), source=str(root))
    return DataBundle(train, test, meta)


@register_dataset("cifar10")
def build_cifar10(
    data_dir: Path, T: int, num_classes: int, mean: list[float], std: list[float],
    augment: dict[str, Any] | None = None, download: bool = False, verify_checksums: bool = True,
) -> DataBundle:
    """CIFAR10 from data_dir/cifar10/cifar-10-batches-py (python pickles)."""
    return _build_cifar("cifar10", data_dir, T, num_classes, mean, std, augment, download, verify_checksums)


@register_dataset("cifar100")
def build_cifar100(
    data_dir: Path, T: int, num_classes: int, mean: list[float], std: list[float],
    augment: dict[str, Any] | None = None, download: bool = False, verify_checksums: bool = True,
) -> DataBundle:
    """CIFAR100 (fine labels) from data_dir/cifar100/cifar-100-python/{train,test,meta}."""
    return _build_cifar("cifar100", data_dir, T, num_classes, mean, std, augment, download, verify_checksums)


def _check_mnist(root: Path, download: bool) -> None:
    """torchvision reads the unpacked idx files in root/MNIST/raw; unpack the .gz archives placed there."""
    raw = root / "MNIST" / "raw"
    if download:
        names = ", ".join(name for name, _ in MNIST.resources)
        with downloads_reported(raw, f"place {names} in {raw}"):
            MNIST(str(root), train=True, download=True)
        return
    for archive, _ in MNIST.resources:
        unpacked = raw / archive.removesuffix(".gz")
        if unpacked.is_file():
            continue
        packed = raw / archive
        if not packed.is_file():
            names = ", ".join(name for name, _ in MNIST.resources)
            raise DataError(f"{packed} not found: place {names} in {raw}, or set dataset.download=true")
        with FileLock(str(raw / f".{archive}.lock")):
            if unpacked.is_file():
                continue
            tmp = unpacked.with_suffix(".tmp")
            try:
                with gzip.open(packed, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (OSError, EOFError) as err:
                tmp.unlink(missing_ok=True)
                raise DataError(f"{packed} is corrupt ({err}): download it again") from err
            tmp.replace(unpacked)  # atomic: a concurrent reader never sees half a file


@register_dataset("mnist")
def build_mnist(
    data_dir: Path, T: int, num_classes: int, mean: list[float], std: list[float],
    augment: dict[str, Any] | None = None, download: bool = False,
) -> DataBundle:
    """MNIST from data_dir/mnist/MNIST/raw (idx files, gzipped as distributed or unpacked)."""
    aug = augmentation.parse(augmentation.ImageAugment, augment)
    train_tf, test_tf = augmentation.image_transforms(aug, 28, tuple(mean), tuple(std), resize_eval=False)
    root = data_dir / "mnist"
    _check_mnist(root, download)
    try:
        train = MNIST(str(root), train=True, transform=train_tf)
        test = MNIST(str(root), train=False, transform=test_tf)
    except (RuntimeError, ValueError, IndexError) as err:
        raise DataError(f"an idx file under {root / 'MNIST' / 'raw'} is corrupt ({err}): download it again") from err
    n = _check_classes(train, num_classes, root / "MNIST" / "raw")
    meta = DatasetMeta(n, (1, 28, 28), T, temporal=False, mean=tuple(mean), std=tuple(std), source=str(root))
    return DataBundle(train, test, meta)


class ClassSubsetFolder(ImageFolder):
    """ImageFolder over only the listed WordNet ids; label i is the i-th id of the list as given."""

    def __init__(self, root: str, wnids: list[str], **kwargs: Any) -> None:
        self.wnids = wnids
        super().__init__(root, loader=_load_rgb, **kwargs)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        missing = [w for w in self.wnids if not (Path(directory) / w).is_dir()]
        if missing:
            raise DataError(
                f"{len(missing)} listed class(es) missing from {directory}: {', '.join(missing[:5])}"
                f"{' ...' if len(missing) > 5 else ''}; check dataset.classes and the folder layout "
                f"(one folder per WordNet id, also for val/)"
            )
        return list(self.wnids), {w: i for i, w in enumerate(self.wnids)}


def _load_rgb(path: str) -> Image.Image:
    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except OSError as err:
        raise DataError(f"{path} is not a readable image ({err}): replace or remove it") from err


def resolve_classes(classes: str | list[str], num_classes: int, train_dir: Path) -> list[str]:
    """A named list of imagenet_classes.SUBSETS, `all` (every class folder of train/, sorted: ImageNet-1k's
    usual label order, the one upstream checkpoints use), or an explicit list of WordNet ids."""
    if classes == "all":
        wnids = sorted(d.name for d in train_dir.iterdir() if d.is_dir())
    elif isinstance(classes, str):
        if classes not in SUBSETS:
            raise DataError(
                f"dataset.classes={classes!r} is not a named subset ({', '.join(SUBSETS)}), 'all' nor a list"
            )
        wnids = list(SUBSETS[classes])
    else:
        wnids = [str(c) for c in classes]
    bad = [w for w in wnids if not (len(w) == 9 and w[0] == "n" and w[1:].isdigit())]
    if bad:
        raise DataError(f"dataset.classes: {bad[0]!r} is not a WordNet id like n01440764")
    if len(set(wnids)) != len(wnids):
        raise DataError("dataset.classes lists a WordNet id twice")
    if len(wnids) != num_classes:
        raise DataError(f"dataset.num_classes={num_classes} but dataset.classes lists {len(wnids)} WordNet ids")
    return wnids


@register_dataset("imagenet_subset")
def build_imagenet_subset(
    data_dir: Path, T: int, num_classes: int, classes: str | list[str], image_size: int,
    mean: list[float], std: list[float], augment: dict[str, Any] | None = None, root: str = "imagenet",
) -> DataBundle:
    """ImageNet train/ and val/ (one folder per WordNet id) restricted to a class list (or all of it)."""
    aug = augmentation.parse(augmentation.ImageAugment, augment)
    train_tf, test_tf = augmentation.image_transforms(aug, image_size, tuple(mean), tuple(std), resize_eval=True)
    base = data_dir / root
    for split in ("train", "val"):
        if not (base / split).is_dir():
            raise DataError(
                f"{base / split} not found: point dataset.root (under paths.data_dir) at an ImageNet copy with "
                f"train/ and val/ in one-folder-per-WordNet-id layout"
            )
    wnids = resolve_classes(classes, num_classes, base / "train")
    train = ClassSubsetFolder(str(base / "train"), wnids, transform=train_tf)
    test = ClassSubsetFolder(str(base / "val"), wnids, transform=test_tf)
    meta = DatasetMeta(len(wnids), (3, image_size, image_size), T, temporal=False, mean=tuple(mean), std=tuple(std),
                       source=str(base))
    return DataBundle(train, test, meta)
