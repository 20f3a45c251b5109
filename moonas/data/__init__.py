"""Datasets by name: static info, seeded train/val/test splits, and deterministic loaders."""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from moonas.data._info import DIGITS_INFO, IMAGEFOLDER_INFO, VISION_INFOS, DatasetInfo
from moonas.errors import ConfigError, DataError
from moonas.registry import closest

if TYPE_CHECKING:
    from moonas.data._splits import DataSplits, make_loader

__all__ = ["DATASETS", "DatasetInfo", "DataSplits", "check_split_fractions", "dataset_info",
           "load_dataset", "make_loader", "preprocess_description"]

DATASETS: tuple[str, ...] = (
    "digits", "cifar10", "cifar100", "mnist", "fashion_mnist", "imagefolder"
)

#: Names loaded on first use (PEP 562): the loaders need torch; a config check (the names and
#: split fractions a config may give, `moonas pick` reading a run back) needs none.
_LAZY = {"DataSplits": "moonas.data._splits", "make_loader": "moonas.data._splits",
         # loader functions this package exposed before its names loaded on use
         "load_digits_splits": "moonas.data._digits", "digits_preprocess": "moonas.data._digits",
         "load_torchvision_splits": "moonas.data._vision",
         "load_imagefolder_splits": "moonas.data._vision",
         "vision_preprocess": "moonas.data._vision",
         "imagefolder_preprocess": "moonas.data._vision"}


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'moonas.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


_INFOS: dict[str, DatasetInfo] = {
    "digits": DIGITS_INFO, **VISION_INFOS, "imagefolder": IMAGEFOLDER_INFO
}


def _check_name(name: str) -> None:
    if name in DATASETS:
        return
    raise DataError(f"unknown dataset {name!r}{closest(str(name), DATASETS)}: valid names are "
                    f"{', '.join(DATASETS)}")


def _check_image_size(image_size: int | None) -> None:
    if image_size is None:
        return
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(
            f"data.image_size={image_size!r} must be a positive integer (e.g. 32) or null"
        )


def dataset_info(name: str, *, image_size: int | None = None) -> DatasetInfo:
    """What is known about `name` without loading it; `image_size` overrides the native side.

    For imagefolder, n_classes and class_names are None, and input_size is None unless
    `image_size` is given (loading then resizes to 32).
    """
    _check_name(name)
    _check_image_size(image_size)
    info = _INFOS[name]
    if image_size is None:
        return info
    return DatasetInfo(
        info.name, image_size, info.in_channels, info.n_classes, info.class_names, info.mean,
        info.std,
    )


def preprocess_description(name: str, *, image_size: int | None = None) -> dict:
    """How `load_dataset(name, image_size=...)` turns one image into a network input at
    inference (no augmentation), built from the constants the loaders use; JSON-ready.

    `steps` names the other keys in the order they apply: `channels` ("RGB" or "grayscale";
    `convert` says how imagefolder gets there), `scale` (`divide_by` to [0, 1]), `resize` (a
    stretch to `to`, on 8-bit (`on: uint8`) or [0, 1] float pixels (`on: float`); None when
    images keep their native side), `normalise` (with the dataset's mean and std).
    """
    from moonas.data._digits import digits_preprocess
    from moonas.data._vision import imagefolder_preprocess, vision_preprocess

    _check_name(name)
    _check_image_size(image_size)
    if name == "digits":
        return digits_preprocess(image_size)
    if name == "imagefolder":
        return imagefolder_preprocess(image_size)
    return vision_preprocess(name, image_size)


def check_split_fractions(name: str, val_fraction: float, test_fraction: float) -> None:
    """ConfigError unless the fractions split dataset `name`: the torchvision sets hold out
    `val_fraction` of their training set and ignore `test_fraction` (their official test set
    is the test split); digits and imagefolder carve both, so their sum must stay below 1."""
    _check_fractions(val_fraction, test_fraction, uses_test=name in ("digits", "imagefolder"))


def _check_fractions(val_fraction: float, test_fraction: float, *, uses_test: bool = True) -> None:
    """Raise ConfigError unless 0 < val, 0 <= test and (when the test split is carved) val + test < 1."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(
            f"data.val_fraction={val_fraction} is out of range: use a value in (0, 1), e.g. 0.2"
        )
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(
            f"data.test_fraction={test_fraction} is out of range: use a value in [0, 1), e.g. 0.2"
        )
    if uses_test and val_fraction + test_fraction >= 1.0:
        raise ConfigError(
            f"data.val_fraction + data.test_fraction = {val_fraction + test_fraction:g} "
            "leaves no training data: "
            "make their sum below 1, e.g. 0.2 and 0.2"
        )


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    image_size: int | None = None,
    augment: bool = False,
    max_train: int | None = None,
    check_images: bool = True,
) -> DataSplits:
    """Load `name` and split it deterministically from `seed`.

    - digits: scikit-learn's bundled 8x8 digits; `root` and `download` are unused.
    - cifar10, cifar100, mnist, fashion_mnist: torchvision under `root` (default ./data);
      the official train set is split into train/val by `val_fraction`, the official test
      set is the test split, and `test_fraction` is ignored.
    - imagefolder: one subfolder of images per class under `root`, resized to `image_size`
      (default 32), split into train/val/test by the fractions.

    Splits are stratified by class; `max_train` caps the train split (a stratified subset).
    Only the train split is augmented, and only when `augment` is true (random crop with
    padding and horizontal flip for CIFAR and imagefolder; nothing for the others).
    `image_size` other than the native side resizes every image. `check_images` (imagefolder
    only): decode every image now, so a damaged file is named before any training (about
    0.5 ms per photo-sized JPEG on a 2-core machine); False leaves it to the read that needs
    it, which names the file then.
    """
    from moonas.data._digits import load_digits_splits
    from moonas.data._vision import load_imagefolder_splits, load_torchvision_splits

    _check_name(name)
    _check_image_size(image_size)
    check_split_fractions(name, val_fraction, test_fraction)
    if name == "digits":
        return load_digits_splits(
            seed=seed,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            image_size=image_size,
            augment=augment,
            max_train=max_train,
        )
    root_str = None if root is None else os.fspath(root)
    if name == "imagefolder":
        return load_imagefolder_splits(
            root=root_str,
            seed=seed,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            image_size=image_size,
            augment=augment,
            max_train=max_train,
            check_images=check_images,
        )
    return load_torchvision_splits(
        name,
        root=root_str,
        download=download,
        seed=seed,
        val_fraction=val_fraction,
        image_size=image_size,
        augment=augment,
        max_train=max_train,
    )
