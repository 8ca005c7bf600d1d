"""The embedded default: scikit-learn's 1,797 real 8x8 handwritten digits, no download needed.

The split is computed once with scikit-learn and kept as one small tensor file under the cache directory:
importing scikit-learn costs about a second, a third of what a one-step demo run spends before training.
"""

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

from spikesweep.data.cache import cached
from spikesweep.data.registry import DataBundle, DatasetMeta, register_dataset

SPLIT_FILE = "split.pt"


def _split(test_fraction: float, split_seed: int) -> dict[str, torch.Tensor]:
    """Pixels in [0, 1], labels, and a stratified train/test split fixed by `split_seed`."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    train_idx, test_idx = train_test_split(
        range(len(digits.target)), test_size=test_fraction, random_state=split_seed, stratify=digits.target
    )
    return {
        "images": torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0,  # [N, 1, 8, 8]
        "labels": torch.tensor(digits.target, dtype=torch.long),
        "train_idx": torch.tensor(train_idx),
        "test_idx": torch.tensor(test_idx),
    }


def _cached_split(cache_dir: Path, options: dict[str, Any]) -> dict[str, torch.Tensor]:
    def build(folder: Path) -> dict[str, Any]:
        arrays = _split(**options)
        torch.save(arrays, folder / SPLIT_FILE)
        return {"samples": len(arrays["labels"])}

    return torch.load(cached(cache_dir, "digits", options, build) / SPLIT_FILE, weights_only=True)


@register_dataset("digits")
def build_digits(
    data_dir: Path,
    T: int = 4,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    num_classes: int = 10,
    cache_dir: str | None = None,
) -> DataBundle:
    """A stratified split fixed by `split_seed`, so every run of a sweep sees the same test set; with
    `cache_dir` the split is read from the cache after the first run."""
    del data_dir  # shipped inside scikit-learn
    options = {"test_fraction": float(test_fraction), "split_seed": int(split_seed)}
    arrays = _split(**options) if cache_dir is None else _cached_split(Path(cache_dir), options)
    images, labels, train_idx, test_idx = arrays["images"], arrays["labels"], arrays["train_idx"], arrays["test_idx"]
    mean, std = images[train_idx].mean(), images[train_idx].std()
    images = (images - mean) / std
    classes = int(labels.max()) + 1
    if num_classes != classes:
        raise ValueError(f"dataset.num_classes={num_classes} but digits has {classes} classes")
    meta = DatasetMeta(num_classes=num_classes, input_shape=(1, 8, 8), time_steps=T, temporal=False)
    return DataBundle(
        train=TensorDataset(images[train_idx], labels[train_idx]),
        test=TensorDataset(images[test_idx], labels[test_idx]),
        meta=meta,
    )
