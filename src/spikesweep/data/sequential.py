"""Sequential CIFAR: an image read one column (or row) per time step, as the surrogate-gradient survey and
the PSN paper do. T=32 steps of 3x32=96 features; the model sees [B, 32, 96] and keeps state across steps.
"""

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from spikesweep.data import augment as augmentation
from spikesweep.data.images import load_cifar
from spikesweep.data.registry import DataBundle, DataError, DatasetMeta, register_dataset


class ImageAsSequence(Dataset):
    """[C, H, W] -> [W, C*H] (order=column: step t is column t) or [H, C*W] (order=row)."""

    def __init__(self, images: Dataset, order: str) -> None:
        self.images, self.order = images, order

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        x, y = self.images[index]
        c, h, w = x.shape
        steps = x.permute(2, 0, 1).reshape(w, c * h) if self.order == "column" else x.permute(1, 0, 2).reshape(h, c * w)
        return steps.contiguous(), y


def _build(
    which: str, data_dir: Path, T: int, num_classes: int, order: str, mean: list[float], std: list[float],
    augment: dict[str, Any] | None, download: bool, verify_checksums: bool,
) -> DataBundle:
    if order not in ("column", "row"):
        raise DataError(f"dataset.order={order!r} is not one of column, row")
    if T != 32:
        raise DataError(f"dataset.T={T} but a sequential CIFAR image has 32 {order}s: T must be 32")
    aug = augmentation.parse(augmentation.ImageAugment, augment)
    train_tf, test_tf = augmentation.image_transforms(aug, 32, tuple(mean), tuple(std), resize_eval=False)
    root = data_dir / which
    train, test = load_cifar(which, root, download, verify_checksums, train_tf, test_tf)
    if len(train.classes) != num_classes:
        raise DataError(f"dataset.num_classes={num_classes} but {root / train.base_folder} holds {len(train.classes)}")
    meta = DatasetMeta(num_classes, (96,), T, temporal=True, mean=tuple(mean), std=tuple(std), source=str(root))
    return DataBundle(ImageAsSequence(train, order), ImageAsSequence(test, order), meta)


@register_dataset("seq_cifar10")
def build_seq_cifar10(
    data_dir: Path, T: int, num_classes: int, mean: list[float], std: list[float], order: str = "column",
    augment: dict[str, Any] | None = None, download: bool = False, verify_checksums: bool = True,
) -> DataBundle:
    return _build("cifar10", data_dir, T, num_classes, order, mean, std, augment, download, verify_checksums)


@register_dataset("seq_cifar100")
def build_seq_cifar100(
    data_dir: Path, T: int, num_classes: int, mean: list[float], std: list[float], order: str = "column",
    augment: dict[str, Any] | None = None, download: bool = False, verify_checksums: bool = True,
) -> DataBundle:
    return _build("cifar100", data_dir, T, num_classes, order, mean, std, augment, download, verify_checksums)
