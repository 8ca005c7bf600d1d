"""The embedded default: scikit-learn's 1,797 real 8x8 handwritten digits, no download needed."""

from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import TensorDataset

from spikesweep.data.registry import DataBundle, DatasetMeta, register_dataset


@register_dataset("digits")
def build_digits(
    data_dir: Path, T: int = 4, test_fraction: float = 0.2, split_seed: int = 0, num_classes: int = 10
) -> DataBundle:
    """A stratified split fixed by `split_seed`, so every run of a sweep sees the same test set."""
    del data_dir  # shipped inside scikit-learn
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # [N, 1, 8, 8] in [0, 1]
    labels = torch.tensor(digits.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(
        range(len(labels)), test_size=test_fraction, random_state=split_seed, stratify=digits.target
    )
    mean, std = images[train_idx].mean(), images[train_idx].std()
    images = (images - mean) / std
    if num_classes != len(digits.target_names):
        raise ValueError(f"dataset.num_classes={num_classes} but digits has {len(digits.target_names)} classes")
    meta = DatasetMeta(num_classes=num_classes, input_shape=(1, 8, 8), time_steps=T, temporal=False)
    return DataBundle(
        train=TensorDataset(images[train_idx], labels[train_idx]),
        test=TensorDataset(images[test_idx], labels[test_idx]),
        meta=meta,
    )
