"""Supernet measurements: validation losses of sampled paths, accuracy of candidates on a split."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator, Literal

import numpy as np
import torch
from torch import nn

from moonas.nets import Supernet

__all__ = ["path_losses", "split_accuracy", "frozen_bn_stats", "calibration_batches",
           "CALIBRATION_EPOCH"]

#: Epoch index of the fixed training batches that recalibrate batch-norm statistics; the
#: front's evaluation and every export of supernet weights use the same ones.
CALIBRATION_EPOCH = 10**6


@contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """Batch-norm in train mode (batch statistics) without touching the running statistics,
    so validation data never leaks into them."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    was_training = model.training
    model.train()
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(bns, saved):
            m.momentum = momentum
        model.train(was_training)


def calibration_batches(train_batches, n: int):
    """The first `n` batches of the fixed calibration epoch of `train_batches` (a `Batches`)."""
    import itertools

    return itertools.islice(train_batches.epoch(CALIBRATION_EPOCH), n)


@torch.no_grad()
def path_losses(supernet: Supernet, archs: np.ndarray, x: torch.Tensor,
                y: torch.Tensor, dists: np.ndarray | None = None) -> np.ndarray:
    """Cross-entropy of every architecture `(M, D)` on one batch -> `(M,)`; repeats run once.

    `dists` `(M,)`: on a split supernet (search.split), the distribution whose copy each row
    runs (a repeat is a row with the same architecture and the same copy)."""
    keys = np.asarray(archs)
    if dists is not None:
        copies = [supernet.copy_for(tuple(int(v) for v in a), int(k)) for a, k in zip(archs, dists)]
        keys = np.column_stack([keys, [-1 if c is None else c for c in copies]])
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    losses = np.empty(len(unique))
    with frozen_bn_stats(supernet):
        for i, row in enumerate(unique):
            if dists is None:
                logits = supernet(x, tuple(int(v) for v in row))
            else:
                copy = None if row[-1] < 0 else int(row[-1])
                logits = supernet(x, tuple(int(v) for v in row[:-1]), dist=copy)
            losses[i] = float(nn.functional.cross_entropy(logits, y))
    return losses[np.asarray(inverse).reshape(-1)]


@torch.no_grad()
def split_accuracy(supernet: Supernet, arch: tuple[int, ...],
                   batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                   bn: Literal["train", "recalibrate"] = "train",
                   calibration: Iterable[tuple[torch.Tensor, torch.Tensor]] = (),
                   dist: int | None = None) -> tuple[float, float]:
    """(accuracy, mean loss) of `arch` over `batches` with the shared weights (on a split
    supernet: copy `dist` of the split options).

    `bn="train"` normalises with each batch's statistics; `"recalibrate"` first re-estimates
    the running statistics of the path on `calibration` batches and evaluates in eval mode.
    Under torchrun the front measures each candidate in one process on whole batches
    (`Batches.whole`), so the figures are those one process gets with the same weights.
    """
    if bn == "recalibrate":
        bns = [m for m in supernet.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone(),
                  m.num_batches_tracked.clone()) for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        supernet.train()
        for x, _ in calibration:
            supernet(x, arch, dist=dist)
        supernet.eval()
        try:
            return _accuracy(supernet, arch, batches, dist)
        finally:
            for m, (momentum, mean, var, count) in zip(bns, saved):
                m.momentum = momentum
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)
            supernet.train()
    with frozen_bn_stats(supernet):
        return _accuracy(supernet, arch, batches, dist)


def _accuracy(supernet: Supernet, arch: tuple[int, ...],
              batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
              dist: int | None = None) -> tuple[float, float]:
    correct, total, loss_sum = 0, 0, 0.0
    for x, y in batches:
        logits = supernet(x, arch, dist=dist)
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        total += len(y)
    return correct / max(total, 1), loss_sum / max(total, 1)
