"""Dataset records, seeded stratified splits, split views with augmentation, and loaders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from moonas.data._info import DatasetInfo
from moonas.errors import ConfigError, DataError

__all__ = [
    "DatasetInfo",
    "DataSplits",
    "ImageSource",
    "TensorImages",
    "SplitView",
    "RandomCropFlip",
    "split_indices",
    "split_seeds",
    "make_loader",
    "RESIZE_INTERPOLATION",
    "RESIZE_ANTIALIAS",
    "UINT8_MAX",
    "NORMALISE",
    "channels_name",
    "resize_step",
    "tensor_preprocess",
]

#: How the pipeline resizes, wherever it does (`TensorImages` with torch; imagefolder with PIL
#: through torchvision's Resize): one setting, so the export's description cannot drift.
RESIZE_INTERPOLATION = "bilinear"
RESIZE_ANTIALIAS = True
#: Stored 8-bit images are divided by this to [0, 1].
UINT8_MAX = 255.0
#: What `SplitView` does last, with the dataset's mean and std.
NORMALISE = "(x - mean) / std per channel"


@dataclass(frozen=True)
class DataSplits:
    """The three splits of one dataset; items are (x float (C, H, W) normalised, y int64)."""

    info: DatasetInfo
    train: Dataset
    val: Dataset  # never augmented: the search ranks architectures on it
    test: Dataset


class ImageSource(Protocol):
    """Indexable images: item i is (x float (C, H, W) in [0, 1], integer label)."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]: ...

    def __len__(self) -> int: ...


class TensorImages:
    """Images held in memory as one (N, C, H, W) tensor, uint8 (0..255) or float ([0, 1])."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, size: int | None = None) -> None:
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(
                f"expected images (N, C, H, W) and N labels, got {tuple(images.shape)}, "
                f"{len(labels)}"
            )
        self.images = images
        self.labels = labels.to(torch.int64)
        self.size = size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.images[index]
        x = self.as_float(x)
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = _resize(x.unsqueeze(0), self.size).squeeze(0)
        return x, int(self.labels[index])

    def take(self, index: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
        """The images at `index` (n,) as one batch (n, C, H, W) on `device`: as stored (uint8
        travels and crops 4x lighter) unless resizing makes them float in [0, 1]; `as_float`
        finishes what `__getitem__` gives per item."""
        x = self.images[index]
        if device is not None:
            x = x.to(device, non_blocking=True)
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = _resize(self.as_float(x), self.size)
        return x

    @staticmethod
    def as_float(x: torch.Tensor) -> torch.Tensor:
        """A batch from `take` as float in [0, 1]."""
        return x.float().div_(UINT8_MAX) if x.dtype == torch.uint8 else x.float()


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """A float batch (n, C, H, W) in [0, 1] stretched to (size, size), as `resize_step` says."""
    return F.interpolate(x, size=(size, size), mode=RESIZE_INTERPOLATION, align_corners=False,
                         antialias=RESIZE_ANTIALIAS).clamp_(0.0, 1.0)


def channels_name(in_channels: int) -> str:
    """The images a network of `in_channels` channels takes: 1 grayscale, 3 RGB."""
    return {1: "grayscale", 3: "RGB"}[in_channels]


def resize_step(size: int, *, on: Literal["uint8", "float"]) -> dict[str, Any]:
    """How the pipeline stretches an image to `size` x `size` (no crop, aspect ratio not
    kept): on 8-bit pixels with PIL (imagefolder, before scaling) or on floats in [0, 1] with
    torch (`TensorImages`, after scaling)."""
    if on == "uint8":
        how = (f"PIL (torchvision's Resize): image.resize(({size}, {size}), Image.Resampling."
               f"{RESIZE_INTERPOLATION.upper()}) on the 8-bit image, before scale (PIL rounds "
               "the result to 8 bits)")
    else:
        how = (f"torch.nn.functional.interpolate(x, size=({size}, {size}), "
               f"mode='{RESIZE_INTERPOLATION}', align_corners=False, "
               f"antialias={RESIZE_ANTIALIAS}) on the float image after scale, then clipped to "
               f"[0, 1]; PIL's image.resize(({size}, {size}), Image.Resampling."
               f"{RESIZE_INTERPOLATION.upper()}) of each channel as a float ('F') image "
               "matches it to about 1e-6")
    return {"to": [size, size], "mode": "stretch", "keeps_aspect_ratio": False,
            "interpolation": RESIZE_INTERPOLATION, "antialias": RESIZE_ANTIALIAS, "on": on,
            "how": how}


def tensor_preprocess(in_channels: int, divide_by: float, values: str,
                      size: int | None) -> dict[str, Any]:
    """What `TensorImages` then an unaugmented `SplitView` do to a stored image of
    `in_channels` channels holding `values`: divide by `divide_by` to [0, 1], stretch to
    `size` (None: used at its stored side), normalise."""
    steps = ["channels", "scale", *(["resize"] if size is not None else []), "normalise"]
    return {"steps": steps, "channels": channels_name(in_channels),
            "scale": {"divide_by": divide_by, "from": values, "to": [0.0, 1.0]},
            "resize": None if size is None else resize_step(size, on="float"),
            "normalise": NORMALISE}


class RandomCropFlip:
    """Random crop after zero padding, then a horizontal flip with probability 1/2.

    Works on one (C, H, W) tensor before normalisation (zero padding = black, as in the
    usual CIFAR recipe) and draws from its own generator, so a seed fixes the sequence.
    """

    def __init__(self, padding: int, generator: torch.Generator, *, flip: bool = True) -> None:
        self.padding = padding
        self.generator = generator
        self.flip = flip

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        p = self.padding
        if p > 0:
            h, w = x.shape[-2:]
            padded = F.pad(x, (p, p, p, p))
            top, left = torch.randint(0, 2 * p + 1, (2,), generator=self.generator).tolist()
            x = padded[..., top : top + h, left : left + w]
        if self.flip and torch.rand(1, generator=self.generator).item() < 0.5:
            x = x.flip(-1)
        return x.contiguous()

    def batch(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The same transform on a whole batch (n, C, H, W) at once, on its device: item i is
        cropped at offsets `randint(0, 2p + 1, (n, 2))[i]` (top, left) and flipped where
        `rand(n)[i] < 1/2`, both drawn from `generator` (on the CPU) in that order. Crop and
        flip are one pair of gathers (a flipped item reads its crop's columns backwards)."""
        n, c, h, w = x.shape
        p = self.padding
        offsets = (torch.randint(0, 2 * p + 1, (n, 2), generator=generator) if p > 0
                   else torch.zeros(n, 2, dtype=torch.int64))
        flips = (torch.rand(n, generator=generator) < 0.5 if self.flip
                 else torch.zeros(n, dtype=torch.bool))
        if p == 0 and not bool(flips.any()):
            return x.contiguous()
        padded = F.pad(x, (p, p, p, p)) if p > 0 else x
        across = torch.arange(w)
        cols = offsets[:, 1:] + torch.where(flips.view(n, 1), w - 1 - across, across)
        rows = offsets[:, :1] + torch.arange(h)
        rows = rows.to(x.device).view(n, 1, h, 1).expand(n, c, h, padded.shape[-1])
        cols = cols.to(x.device).view(n, 1, 1, w).expand(n, c, h, w)
        return padded.gather(2, rows).gather(3, cols)


class SplitView(Dataset):
    """The items of `source` at `indices`, optionally augmented, then normalised.

    Attributes: `indices` (n,) positions in the source, `labels` (n,) int64 labels.
    """

    def __init__(
        self,
        source: ImageSource,
        indices: np.ndarray,
        labels: torch.Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        if len(self.labels) != len(self.indices):
            raise ValueError("labels must match indices")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.augment = augment
        self.augment_seed: int | None = None  # set per epoch by `seed_augmentation`

    def __len__(self) -> int:
        return len(self.indices)

    def seed_augmentation(self, seed: int) -> None:
        """From now on item i's augmentation draws from a generator seeded by (`seed`, i):
        the same augmented items whichever process (DataLoader worker) reads them, and in
        whatever order."""
        self.augment_seed = int(seed)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.source[int(self.indices[index])]
        if self.augment is not None:
            generator = getattr(self.augment, "generator", None)
            if self.augment_seed is not None and isinstance(generator, torch.Generator):
                generator.manual_seed(_item_seed(self.augment_seed, index))
            x = self.augment(x)
        x = (x - self.mean) / self.std
        return x, torch.tensor(y, dtype=torch.int64)

    def batchable(self) -> bool:
        """Whether `batch` can build whole batches: images held in memory, and an
        augmentation (if any) that transforms a batch at once."""
        return isinstance(self.source, TensorImages) and (
            self.augment is None or callable(getattr(self.augment, "batch", None)))

    def batch(self, positions: np.ndarray, generator: torch.Generator,
              device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Items `positions` (n,) of this split as one batch, built on `device` with
        vectorised ops (`batchable` views only): what `__getitem__` gives per item, except
        that the augmentation draws from `generator` for the whole batch."""
        positions = np.asarray(positions, dtype=np.int64)
        x = self.source.take(torch.from_numpy(self.indices[positions]), device)
        if self.augment is not None:  # on the stored bytes where the images are not resized
            x = self.augment.batch(x, generator)
        x = self.source.as_float(x).sub_(self.mean.to(x.device)).div_(self.std.to(x.device))
        y = self.labels[torch.from_numpy(positions)]
        return x, y if device is None else y.to(device, non_blocking=True)


def _item_seed(seed: int, index: int) -> int:
    """A 63-bit seed for item `index` of an epoch seeded `seed` (a multiplicative hash)."""
    return (seed * 0x9E3779B97F4A7C15 + int(index) * 0xBF58476D1CE4E5B9) % (2**63 - 1)


def split_seeds(seed: int) -> tuple[np.random.Generator, torch.Generator]:
    """Independent streams from one seed: (numpy rng for the split, torch generator for augmentation)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed={seed!r} is not a non-negative integer: use e.g. seed=0")
    split_ss, augment_ss = np.random.SeedSequence(int(seed)).spawn(2)
    generator = torch.Generator().manual_seed(int(augment_ss.generate_state(1)[0]))
    return np.random.default_rng(split_ss), generator


def _count(n: int, fraction: float) -> int:
    return 0 if fraction <= 0.0 else max(1, int(round(n * fraction)))


def split_indices(
    labels: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    rng: np.random.Generator,
    *,
    max_train: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint (train, val, test) index arrays, stratified by label, each sorted.

    Sizes are round(n * fraction) (at least 1 for a positive fraction); train keeps the rest,
    capped at `max_train` by a stratified subset. Raises DataError if train would be empty.
    """
    labels = np.asarray(labels)
    n = len(labels)
    n_val, n_test = _count(n, val_fraction), _count(n, test_fraction)
    if n - n_val - n_test < 1:
        raise DataError(
            f"only {n} samples, too few for val_fraction={val_fraction:g} and "
            f"test_fraction={test_fraction:g}: "
            "use more data or smaller fractions"
        )
    # Each class spreads evenly over [0, 1) in random order; cutting the global order by rank
    # gives every prefix (and so every split) about the class proportions of the whole.
    rank = np.empty(n, dtype=np.float64)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        rank[members] = (np.arange(len(members)) + rng.random()) / len(members)
    order = np.argsort(rank, kind="stable")
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    if max_train is not None:
        if (
            isinstance(max_train, bool)
            or not isinstance(max_train, (int, np.integer))
            or max_train < 1
        ):
            raise ConfigError(f"data.max_train={max_train!r} must be a positive integer or null")
        train = train[:max_train]
    return np.sort(train), np.sort(val), np.sort(test)


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int,
                drop_last: bool = False, batches: list[list[int]] | None = None,
                workers: int = 0) -> DataLoader:
    """A DataLoader whose order is fixed by `seed` (its own torch.Generator); with `batches`,
    exactly those lists of item indices, in that order. `workers` > 0 reads items in that many
    worker processes (same batches, same order)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be a positive integer, e.g. 64")
    extra: dict = {"num_workers": workers}
    if workers > 0:
        extra["prefetch_factor"] = 4
    if batches is not None:
        return DataLoader(dataset, batch_sampler=batches, **extra)
    generator = torch.Generator().manual_seed(int(seed))
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=generator,
        **extra,
    )
