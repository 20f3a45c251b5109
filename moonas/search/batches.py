"""Minibatches for the search, deterministic per (seed, epoch) so a resumed run sees the same data."""

from __future__ import annotations

import copy
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset

from moonas.data import make_loader
from moonas.distributed import SINGLE, World, shard

__all__ = ["Batches", "epoch_seed"]

#: Splits up to this many bytes are stacked into one tensor once (no per-item work per epoch).
_IN_MEMORY_BYTES = 512 * 2**20


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """An independent 32-bit seed for (run seed, epoch, stream)."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


class Batches:
    """Shuffled minibatches of one split; `epoch(e)` yields the same batches for the same e.

    A split without augmentation is stacked in memory (fast). An augmented split of images
    held in memory (the torchvision datasets) is built a whole batch at a time on the device,
    the augmentation drawn from a generator seeded per (epoch, batch, rank) (`batched`; False
    forces the item path). Any other augmented split (files on disk) goes through a seeded
    DataLoader, read by `workers` worker processes (`data.workers`), each item's augmentation
    seeded by (epoch, item) so the workers change nothing. Under torchrun (`world`), every process
    walks the same batches and yields only its shard of each (`moonas.distributed.shard`); a
    shard left empty (a short last batch) is skipped.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, stream: int,
                 drop_last: bool, device: torch.device | None = None,
                 world: World = SINGLE, batched: bool | None = None, workers: int = 0) -> None:
        self.dataset = dataset
        self.world = world
        self.workers = workers
        # Where the batches go (the network's device); None or the CPU: left where they are.
        self.device = None if device is None or device.type == "cpu" else device
        self.batch_size = batch_size
        self.seed = seed
        self.stream = stream
        self.drop_last = drop_last
        self._tensors: tuple[torch.Tensor, torch.Tensor] | None = None
        augment = getattr(dataset, "augment", None)
        # Augmented images in memory: whole batches at once, augmented on the device.
        self.batched = (augment is not None and batched is not False
                        and getattr(dataset, "batchable", lambda: False)())
        if augment is None and len(dataset) > 0:
            x0, _ = dataset[0]
            if x0.numel() * 4 * len(dataset) <= _IN_MEMORY_BYTES:
                self._tensors = stack(dataset)

    def whole(self) -> "Batches":
        """These batches as one process sees them: the same order, seeds and stored tensors,
        each batch whole on every process (for measurements that must not depend on the
        process count)."""
        if not self.world.parallel:
            return self
        out = copy.copy(self)
        out.world = SINGLE
        return out

    def __len__(self) -> int:
        n = len(self.dataset)
        if self.drop_last:
            return max(1, n // self.batch_size)
        return -(-n // self.batch_size)

    def epoch(
        self, epoch: int, shuffle: bool = True
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `epoch` (the same ones on every call), on this object's device."""
        if self.device is None:
            yield from self._epoch(epoch, shuffle)
            return
        for x, y in self._epoch(epoch, shuffle):
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def _positions(self, seed: int, shuffle: bool) -> Iterator[tuple[int, np.ndarray]]:
        """(batch number, this rank's item positions) of every batch of the epoch seeded
        `seed`; a rank's empty shard of a short last batch is skipped."""
        n = len(self.dataset)
        if n == 0:
            return
        order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
        size = min(self.batch_size, n)
        stop = n - n % size if self.drop_last else n
        for number, start in enumerate(range(0, stop, size)):
            positions = shard(order[start:start + size], self.world)
            if len(positions):
                yield number, positions

    def _epoch(self, epoch: int, shuffle: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        seed = epoch_seed(self.seed, epoch, self.stream)
        if self._tensors is not None:
            x, y = self._tensors
            for _, positions in self._positions(seed, shuffle):
                index = torch.from_numpy(positions)
                yield x[index], y[index]
            return
        if self.batched:
            for number, positions in self._positions(seed, shuffle):
                generator = torch.Generator().manual_seed(
                    _batch_seed(seed, number, self.world.rank))
                yield self.dataset.batch(positions, generator, self.device)
            return
        if callable(getattr(self.dataset, "seed_augmentation", None)):
            self.dataset.seed_augmentation(seed + self.world.rank)  # each shard its own
        else:
            generator = getattr(getattr(self.dataset, "augment", None), "generator", None)
            if isinstance(generator, torch.Generator):
                generator.manual_seed(seed + self.world.rank)
        if not self.world.parallel:
            drop_last = self.drop_last and len(self.dataset) >= self.batch_size
            yield from make_loader(self.dataset, self.batch_size, shuffle=shuffle, seed=seed,
                                   drop_last=drop_last, workers=self.workers)
            return
        yield from make_loader(self.dataset, self.batch_size, shuffle=False, seed=seed,
                               batches=[p.tolist() for _, p in self._positions(seed, shuffle)],
                               workers=self.workers)


def _batch_seed(seed: int, number: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, number, rank]).generate_state(1)[0])


def stack(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All items of `dataset` as `(x (N, C, H, W), y (N,))`."""
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(xs), torch.as_tensor([int(y) for y in ys], dtype=torch.int64)
