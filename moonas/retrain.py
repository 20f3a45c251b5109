"""Standalone training of one extracted network (SGD, cosine schedule), resumable per epoch."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from moonas.checkpoint import load_checkpoint, save_checkpoint
from moonas.data import DataSplits
from moonas.distributed import (SINGLE, World, average_buffers, average_gradients,
                                check_batch_size, sum_values)
from moonas.errors import CheckpointError, MoonasError
from moonas.search.batches import Batches

__all__ = ["TrainRecipe", "TrainResult", "train_standalone", "evaluate"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainRecipe:
    """How a standalone network is trained (the same recipe for every compared network)."""

    epochs: int = 30
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    grad_clip: float | None = 5.0


@dataclass(frozen=True)
class TrainResult:
    """Accuracies in [0, 1] after training; `history` holds (epoch, train loss) pairs."""

    val_accuracy: float
    test_accuracy: float
    epochs: int
    history: tuple[tuple[int, float], ...]


@torch.no_grad()
def evaluate(net: nn.Module, batches, world: World = SINGLE) -> float:
    """Accuracy of `net` in eval mode over `batches` (under torchrun: this process's shards,
    the counts summed over the processes)."""
    net.eval()
    correct = total = 0
    for x, y in batches:
        correct += int((net(x).argmax(1) == y).sum())
        total += len(y)
    if world.parallel:
        correct, total = sum_values(np.array([correct, total]), world)
    return correct / max(total, 1)


def train_standalone(net: nn.Module, data: DataSplits, recipe: TrainRecipe, seed: int = 0,
                     checkpoint: Path | None = None,
                     progress: Callable[[int, int, dict], None] | None = None,
                     device: torch.device | None = None, world: World = SINGLE,
                     workers: int = 0) -> TrainResult:
    """Train `net` in place on `data.train`; report validation and test accuracy.

    With `checkpoint`, the state is saved atomically after every epoch and an existing
    checkpoint is resumed from (same result as an uninterrupted run). With `device`, `net` is
    moved there and trained there (its weights stay there). Under torchrun (`world`), each
    process trains on its shard of every batch with the gradients averaged over the processes
    (`moonas.distributed`), and rank 0 writes the checkpoint. `workers`: DataLoader worker
    processes for splits read item by item (`data.workers`).
    """
    if device is not None:
        net.to(device)
    check_batch_size(recipe.batch_size, world, "the training batch size (data.batch_size)",
                     {"training": len(data.train)})
    train = Batches(data.train, recipe.batch_size, seed, stream=11, drop_last=True, device=device,
                    world=world, workers=workers)
    optimizer = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=recipe.momentum > 0, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, len(train) * recipe.epochs)
    start, history = 0, []
    if checkpoint is not None and checkpoint.is_file():
        state = load_checkpoint(checkpoint)
        try:
            net.load_state_dict(state["net"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start, history = int(state["epoch"]), [tuple(h) for h in state["history"]]
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(f"{checkpoint} is not a training checkpoint of this network "
                                  f"({str(err).splitlines()[0][:100]}): delete it to start over"
                                  ) from None
    total = len(train) * recipe.epochs
    for epoch in range(start, recipe.epochs):
        net.train()
        loss_sum, n = 0.0, 0
        for step, (x, y) in enumerate(train.epoch(epoch)):
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(net(x), y)
            loss.backward()
            # Under torchrun: the whole batch's gradients and loss (a NaN reaches every rank).
            value = float(average_gradients(net.parameters(), world, [float(loss.detach())])[0])
            if not np.isfinite(value):
                raise MoonasError(f"training loss became {value} in epoch {epoch}: "
                                  f"lower the learning rate (now {recipe.lr:g})")
            if recipe.grad_clip is not None:
                nn.utils.clip_grad_norm_(net.parameters(), recipe.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_sum += value * len(y)
            n += len(y)
            if progress is not None:
                progress(epoch * len(train) + step + 1, total,
                         {"phase": "train", "epoch": epoch, "train_loss": value})
        history.append((epoch, round(loss_sum / max(n, 1), 6)))
        # Running statistics of the shards -> one set, so the saved network is every rank's.
        average_buffers(net, world)
        if checkpoint is not None and world.main:
            save_checkpoint(checkpoint, {"net": net.state_dict(),
                                         "optimizer": optimizer.state_dict(),
                                         "scheduler": scheduler.state_dict(), "epoch": epoch + 1,
                                         "history": [list(h) for h in history]})
    val = evaluate(net, Batches(data.val, 256, seed, stream=12, drop_last=False, device=device,
                                world=world, workers=workers).epoch(0, False), world)
    test = evaluate(net, Batches(data.test, 256, seed, stream=13, drop_last=False, device=device,
                                 world=world, workers=workers).epoch(0, False), world)
    return TrainResult(val_accuracy=val, test_accuracy=test, epochs=recipe.epochs,
                       history=tuple(history))
