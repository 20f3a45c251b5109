"""scikit-learn's 8x8 digits (1,797 images, bundled, no download) split in memory."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch

from moonas.data._info import DIGITS_INFO
from moonas.data._splits import (
    DataSplits,
    SplitView,
    TensorImages,
    split_indices,
    split_seeds,
    tensor_preprocess,
)

__all__ = ["DIGITS_INFO", "digits_preprocess", "load_digits_splits"]

logger = logging.getLogger(__name__)

#: sklearn's digit pixels count set pixels of 4x4 blocks, 0..16: dividing by it gives [0, 1].
DIGITS_MAX = 16.0


def _resized_side(image_size: int | None) -> int | None:
    """The side the images are stretched to, or None: used at their native 8x8."""
    return None if image_size in (None, DIGITS_INFO.input_size) else image_size


def digits_preprocess(image_size: int | None) -> dict:
    """How `load_digits_splits(image_size=...)` turns a digit into a network input (see
    `tensor_preprocess`)."""
    return tensor_preprocess(DIGITS_INFO.in_channels, DIGITS_MAX,
                             "sklearn digits' pixel values 0..16", _resized_side(image_size))


def load_digits_splits(
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    image_size: int | None,
    augment: bool,
    max_train: int | None,
) -> DataSplits:
    """Stratified train/val/test splits of the digits; `image_size` resizes (bilinear) on access."""
    from sklearn.datasets import load_digits  # imported here: sklearn is slow to import

    bunch = load_digits()
    # images: (N, 1, 8, 8)
    images = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / DIGITS_MAX)
    images = images.unsqueeze(1)
    labels = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    source = TensorImages(images, labels, size=_resized_side(image_size))
    split_rng, _ = split_seeds(seed)
    train, val, test = split_indices(
        labels.numpy(), val_fraction, test_fraction, split_rng, max_train=max_train
    )
    if augment:
        logger.info("digits has no augmentation; augment=True changes nothing")
    info = dataclasses.replace(DIGITS_INFO, input_size=image_size or DIGITS_INFO.input_size)
    mean, std = info.mean, info.std
    logger.info("digits: %d train, %d val, %d test", len(train), len(val), len(test))
    return DataSplits(
        info=info,
        train=SplitView(source, train, labels[train], mean, std),
        val=SplitView(source, val, labels[val], mean, std),
        test=SplitView(source, test, labels[test], mean, std),
    )
