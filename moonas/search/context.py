"""Everything a search run is built from, assembled once from the resolved config."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from moonas.config import RunConfig
from moonas.costs import CostTable, build_cost_table
from moonas.data import DataSplits, load_dataset
from moonas.distributed import World, check_batch_size, join, main_first
from moonas.nets import Supernet, build_supernet
from moonas.search.batches import Batches
from moonas.search.objective import Objective, measured_floor, resolve_objective
from moonas.search.strategies import SINGLE_DISTRIBUTION, STRATEGIES, Strategy, build_strategy
from moonas.spaces import SearchSpace

__all__ = ["SearchContext", "build_context", "cost_model", "run_objective"]

# Independent random streams of one run, by purpose.
STREAM_OBJECTIVE, STREAM_SEARCH, STREAM_TRAIN_BATCHES, STREAM_VAL_BATCHES = 1, 2, 3, 4


@dataclass
class SearchContext:
    """The components of one run (mutable ones: supernet, optimizer, scheduler, strategy, rng)."""

    config: RunConfig
    data: DataSplits
    space: SearchSpace
    table: CostTable
    objective: Objective
    strategy: Strategy
    supernet: Supernet
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    rng: np.random.Generator
    train_batches: Batches
    val_batches: Batches
    eval_batches: Batches
    device: torch.device  # where the supernet and every batch live (config.device)
    world: World  # this process under torchrun (moonas.distributed); a world of one otherwise

    def evaluated(self, archs: np.ndarray) -> np.ndarray:
        """What the search measures, prices and returns for the architectures `(n, D)` a
        strategy asked for: them with the operations `search.prune` names removed
        (`SearchSpace.prune`)."""
        return self.space.prune(archs, self.config.search.prune)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_batches)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.search.epochs


def seeds(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def run_objective(config: RunConfig, space: SearchSpace, table: CostTable) -> Objective:
    """The run's objective, its unset budgets drawn from the run's own seed stream: what the
    search resolves, and what a reader of its files resolves again."""
    floor = measured_floor(space, table, config.search.cost, config.search.prune)
    return resolve_objective(config.search, table, seeds(config.seed, STREAM_OBJECTIVE),
                             single=config.search.strategy in SINGLE_DISTRIBUTION, floor=floor)


def cost_model(space: SearchSpace, search) -> CostTable:
    """The space's params/MACs table, with the configured latency model as a third column."""
    table = build_cost_table(space)
    if search.latency_table is None:
        return table
    from moonas.costs.latency import device_name, load_latency, with_latency

    device = device_name(search.cost) if search.cost.startswith("latency:") else None
    return with_latency(table, load_latency(search.latency_table, device, space=space))


def build_context(config: RunConfig) -> SearchContext:
    """Load the data and build every component, seeded from `config.seed`."""
    STRATEGIES.get(config.search.strategy)  # unknown strategy -> one line before any work
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    # A missing GPU: one line before the data loads. Under torchrun: this rank's device.
    world, device = join(config.device)
    d = config.data
    check_batch_size(d.batch_size, world, "data.batch_size")
    data = main_first(world, lambda: load_dataset(
        d.name, root=d.root, download=d.download, seed=config.split_seed,
        val_fraction=d.val_fraction, test_fraction=d.test_fraction, image_size=d.image_size,
        augment=d.augment, max_train=d.max_train, check_images=d.check_images))
    # A split smaller than the batch is one batch of its own size: equal shards there too.
    check_batch_size(d.batch_size, world, "data.batch_size",
                     {"training": len(data.train), "validation": len(data.val)})
    info = data.info
    space = config.space.build(info.input_size, info.in_channels, info.n_classes, info.name)
    search = config.search
    table = cost_model(space, search)
    objective = run_objective(config, space, table)
    def cells(archs: np.ndarray) -> np.ndarray:  # what the search measures: the pruned cells
        return space.prune(archs, search.prune)

    strategy = build_strategy(search.strategy, space.n_options, objective, search,
                              price=lambda archs: table.cost(objective.cost, cells(archs)),
                              seed=config.seed, cells=cells)
    torch.manual_seed(config.seed)
    supernet = build_supernet(space).to(device)
    t = config.train
    optimizer = torch.optim.SGD(supernet.parameters(), lr=t.lr, momentum=t.momentum,
                                nesterov=t.nesterov and t.momentum > 0,
                                weight_decay=t.weight_decay)
    train_batches = Batches(data.train, d.batch_size, config.seed, STREAM_TRAIN_BATCHES,
                            drop_last=True, device=device, world=world, workers=d.workers)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=len(train_batches) * search.epochs, eta_min=t.lr_min)
    return SearchContext(
        config=config, data=data, space=space, table=table, objective=objective,
        strategy=strategy, supernet=supernet, optimizer=optimizer, scheduler=scheduler,
        rng=seeds(config.seed, STREAM_SEARCH), train_batches=train_batches,
        val_batches=Batches(data.val, d.batch_size, config.seed, STREAM_VAL_BATCHES,
                            drop_last=True, device=device, world=world, workers=d.workers),
        # Whole batches on every process: the front deals out candidates, not batch shards.
        eval_batches=Batches(data.val, max(d.batch_size, 256), config.seed, 0, drop_last=False,
                             device=device, workers=d.workers),
        device=device, world=world,
    )
