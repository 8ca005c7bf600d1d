"""Augmentation recipes as plain config: built from timm's and torchvision's transforms, not hand-written ops.

`dataset.augment` is one node of the `dataset/augment` config group (conf/dataset/augment/*.yaml). Image
datasets read it as an ImageAugment, frame datasets (DVS) as a FrameAugment, detection datasets as a
DetectionAugment; an unknown key fails with its name. Mixup/CutMix are batch-level and live in the engine (`trainer.mixup.*`).
"""

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import torch
from timm.data.auto_augment import augment_and_mix_transform, auto_augment_transform, rand_augment_transform
from timm.data.random_erasing import RandomErasing
from timm.data.transforms import RandomResizedCropAndInterpolation, str_to_interp_mode
from torchvision import transforms as tv
from torchvision.transforms.v2 import functional as tvf

from spikesweep.data.registry import DataError

Transform = Callable[[Any], Any]


@dataclass(frozen=True)
class ImageAugment:
    """Train-time image transforms, in this order: crop, flip, auto-augment, to tensor, normalise, erase."""

    crop: str = "none"  # none | pad_crop (RandomCrop with padding) | random_resized_crop (timm RRC)
    crop_padding: int = 4
    scale: tuple[float, float] = (0.08, 1.0)  # random_resized_crop area range
    hflip: float = 0.0
    # timm strings ("rand-m9-n1-mstd0.4-inc1", "augmix-m5-w4-d2", "original", "v0") or torchvision's
    # "trivial_augment_wide", "autoaugment_cifar10", "autoaugment_imagenet"
    auto_augment: str | None = None
    interpolation: str = "bilinear"
    reprob: float = 0.0  # timm RandomErasing probability (after normalisation)
    remode: str = "pixel"
    recount: int = 1
    eval_crop_pct: float = 1.0  # eval: resize to size / crop_pct, centre-crop size (ImageNet 224/232)


@dataclass(frozen=True)
class FrameAugment:
    """Train-time transforms of event frames [T, C, H, W]: the same random op for all T frames."""

    hflip: float = 0.0
    # "SNNAugmentWide" (Spikingformer/CML on CIFAR10-DVS): one op drawn uniformly from identity, shearX,
    # translate, rotate, cutout; magnitudes drawn uniformly in [-m, m].
    snn_augment_wide: bool = False
    shear: float = 0.3  # shear factor (tan of the angle)
    translate: int = 5  # pixels, at the frame size after resizing
    rotate: float = 30.0  # degrees
    cutout: float = 0.5  # side of the square cut out, as a fraction of the frame side (at most)


@dataclass(frozen=True)
class DetectionAugment:
    """Train-time transforms of detection images and their boxes (data/coco.py applies them), YOLOv5's:
    mosaic of four images, then horizontal flip. The defaults change nothing."""

    hflip: float = 0.0
    mosaic: float = 0.0  # probability that a training sample is a mosaic of four images
    mosaic_scale: float = 0.5  # the mosaic is zoomed by a factor drawn from [1 - scale, 1 + scale]
    mosaic_translate: float = 0.1  # and shifted by up to this fraction of the image size, per axis


A = TypeVar("A", ImageAugment, FrameAugment, DetectionAugment)


def parse(kind: type[A], node: Mapping[str, Any] | None) -> A:
    """Read a dataset.augment node; a key this kind of dataset cannot use fails with its name."""
    node = dict(node or {})
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(node) - known)
    if unknown:
        raise DataError(
            f"dataset.augment.{unknown[0]} is not a {kind.__name__} key (valid: {', '.join(sorted(known))}); "
            f"pick a preset of conf/dataset/augment/ made for this dataset"
        )
    if "scale" in node:
        node["scale"] = tuple(node["scale"])
    return kind(**node)


def _auto_augment(name: str, size: int, mean: tuple[float, ...], interpolation: str) -> Transform:
    if name == "trivial_augment_wide":
        return tv.TrivialAugmentWide(interpolation=str_to_interp_mode(interpolation))
    if name in ("autoaugment_cifar10", "autoaugment_imagenet"):
        policy = tv.AutoAugmentPolicy.CIFAR10 if name.endswith("cifar10") else tv.AutoAugmentPolicy.IMAGENET
        return tv.AutoAugment(policy, interpolation=str_to_interp_mode(interpolation))
    # timm's hyper-parameters as its create_transform sets them: fill with the mean, translate 45% of size
    fill = tuple(min(255, round(255 * m)) for m in mean)
    hparams = {"translate_const": int(size * 0.45), "img_mean": fill if len(fill) == 3 else fill[0]}
    try:
        if name.startswith("rand"):
            return rand_augment_transform(name, hparams)
        if name.startswith("augmix"):
            return augment_and_mix_transform(name, hparams)
        return auto_augment_transform(name, hparams)
    except (AssertionError, KeyError, ValueError) as err:
        raise DataError(f"dataset.augment.auto_augment={name!r} is not a timm/torchvision policy ({err})") from err


def image_transforms(
    aug: ImageAugment, size: int, mean: tuple[float, ...], std: tuple[float, ...], resize_eval: bool
) -> tuple[Transform, Transform]:
    """(train, eval) transforms of PIL images to normalised [C, H, W] tensors.

    `resize_eval` is for datasets whose images come in many sizes (ImageNet): eval resizes the short side
    to size / eval_crop_pct and centre-crops; fixed-size datasets (CIFAR, MNIST) are only normalised.
    """
    interp = str_to_interp_mode(aug.interpolation)
    train: list[Transform] = []
    if aug.crop == "pad_crop":
        train.append(tv.RandomCrop(size, padding=aug.crop_padding))
    elif aug.crop == "random_resized_crop":
        train.append(RandomResizedCropAndInterpolation(size, scale=aug.scale, interpolation=aug.interpolation))
    elif aug.crop == "none":
        if resize_eval:
            train += [tv.Resize(size, interpolation=interp), tv.CenterCrop(size)]
    else:
        raise DataError(f"dataset.augment.crop={aug.crop!r} is not one of none, pad_crop, random_resized_crop")
    if aug.hflip > 0:
        train.append(tv.RandomHorizontalFlip(aug.hflip))
    if aug.auto_augment:
        train.append(_auto_augment(aug.auto_augment, size, mean, aug.interpolation))
    tail: list[Transform] = [tv.ToTensor(), tv.Normalize(mean, std)]
    erase = [RandomErasing(aug.reprob, mode=aug.remode, max_count=aug.recount, device="cpu")] if aug.reprob > 0 else []
    evaluation: list[Transform] = []
    if resize_eval:
        evaluation += [tv.Resize(int(math.floor(size / aug.eval_crop_pct)), interpolation=interp), tv.CenterCrop(size)]
    return tv.Compose(train + tail + erase), tv.Compose(evaluation + tail)


class FrameTransform:
    """Flip and SNNAugmentWide on a float tensor [T, C, H, W]; every frame of a sample gets the same op."""

    def __init__(self, aug: FrameAugment) -> None:
        self.aug = aug

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        aug = self.aug
        if aug.hflip > 0 and random.random() < aug.hflip:
            frames = tvf.horizontal_flip(frames)
        if not aug.snn_augment_wide:
            return frames
        op = random.choice(("identity", "shear_x", "translate", "rotate", "cutout"))
        if op == "shear_x":
            angle = math.degrees(math.atan(random.uniform(-aug.shear, aug.shear)))
            return tvf.affine(frames, angle=0.0, translate=[0, 0], scale=1.0, shear=[angle, 0.0])
        if op == "translate":
            dx, dy = (round(random.uniform(-aug.translate, aug.translate)) for _ in range(2))
            return tvf.affine(frames, angle=0.0, translate=[dx, dy], scale=1.0, shear=[0.0, 0.0])
        if op == "rotate":
            return tvf.affine(frames, angle=random.uniform(-aug.rotate, aug.rotate), translate=[0, 0], scale=1.0,
                              shear=[0.0, 0.0])
        if op == "cutout":
            h, w = frames.shape[-2:]
            side = max(1, round(random.uniform(0, aug.cutout) * min(h, w)))
            top, left = random.randint(0, h - side), random.randint(0, w - side)
            return tvf.erase(frames, top, left, side, side, torch.zeros((), dtype=frames.dtype))
        return frames
