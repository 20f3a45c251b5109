"""Price architectures of a configured space without training: what `moonas cost` prints."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from moonas.config import RunConfig, config_to_dict, load_config
from moonas.costs import CostTable, build_cost_table
from moonas.errors import ConfigError
from moonas.spaces import SearchSpace
from moonas.threads import torch_threads

__all__ = ["static_space", "run_space", "price_architectures", "space_extremes", "cost_record",
           "LatencyPricer", "latency_pricer"]


def static_space(config: RunConfig) -> SearchSpace:
    """The configured space, its data shape from the settings or the dataset's static info."""
    from moonas.data import dataset_info

    info = dataset_info(config.data.name, image_size=config.data.image_size)
    shape = {"input_size": info.input_size, "in_channels": info.in_channels,
             "n_classes": info.n_classes}
    for key, value in shape.items():
        if config.space.get(key) is None and value is None:
            raise ConfigError(
                f"space.{key} is unknown before loading {config.data.name!r}: "
                f"set it, e.g. --set space.{key}=10"
            )
    return config.space.build(**shape, data=config.data.name)


def run_space(run) -> SearchSpace:
    """The space of `run` (a `moonas.run.Run`) with the data shape filled in: from the static
    dataset info (no torch), else, where the shape is known only after loading (imagefolder),
    from the run's data loaded as the search loaded it."""
    try:
        return static_space(run.config)
    except ConfigError:
        from moonas.deploy.weights import run_data

        info = run_data(run).info
        return run.config.space.build(info.input_size, info.in_channels, info.n_classes,
                                      info.name)


def cost_record(space: SearchSpace, table: CostTable, arch: Sequence[int]) -> dict:
    """`{"arch", "arch_str", "params", "macs"}` of one architecture (costs as ints)."""
    costs = table.price(np.asarray(arch))[0]
    record: dict = {"arch": list(arch), "arch_str": space.to_str(arch)}
    record.update({name: int(round(value)) for name, value in zip(table.names, costs)})
    return record


def _config(source: RunConfig | str | Path | Mapping | None,
            overrides: Sequence[str]) -> RunConfig:
    """`source` itself when it is a resolved config (a caller that loaded it once), else the
    config it names with `overrides`."""
    if isinstance(source, RunConfig):
        return load_config(config_to_dict(source), list(overrides)) if overrides else source
    return load_config(source, list(overrides))


def _resolve(source: RunConfig | str | Path | Mapping | None, overrides: Sequence[str]):
    config = _config(source, overrides)
    space = static_space(config)
    with torch_threads(config.threads):  # thop counts small networks: more threads contend
        return config, space, build_cost_table(space)


def price_architectures(source: RunConfig | str | Path | Mapping | None, texts: Sequence[str],
                        overrides: Sequence[str] = ()) -> Iterator[dict]:
    """One cost record per architecture text (arch_str, JSON list or ints). The config and
    space are resolved (and their errors raised) at the call, the records as iterated.

    A record prices the architecture as given. When the config's `search.prune` changes it,
    the record also holds `pruned`: the cell a search measures, returns and deploys in its
    place, with its costs (the record of `cost_record`)."""
    config, space, table = _resolve(source, overrides)
    return (_priced(space, table, space.parse(text), config.search.prune) for text in texts)


def _priced(space: SearchSpace, table: CostTable, arch: Sequence[int], prune: str) -> dict:
    record = cost_record(space, table, arch)
    pruned = [int(v) for v in space.prune(np.asarray(arch), prune)[0]]
    if pruned != list(arch):
        record["pruned"] = cost_record(space, table, pruned)
    return record


def space_extremes(source: RunConfig | str | Path | Mapping | None,
                   overrides: Sequence[str] = ()) -> Iterator[dict]:
    """The cheapest and dearest architecture under each cost, with `extreme` and `cost` keys."""
    _, space, table = _resolve(source, overrides)
    for name in table.names:
        for cheapest in (True, False):
            _, arch = table.extreme(name, cheapest)
            record = cost_record(space, table, arch)
            yield {"extreme": f"{'min' if cheapest else 'max'}_{name}", **record}


class LatencyPricer:
    """The latency (ms) of the config's `search.latency_table`, priced as the search prices
    it (`moonas.search.context.cost_model`): `add` puts `latency_ms` and `device` into a cost
    record (and its pruned cell's). `prune`: the config's `search.prune`, for the extremes."""

    def __init__(self, space, table, prune: str = "keep") -> None:
        self.space = space
        self.table = table
        self.prune = prune
        self.name = table.names[-1]  # the latency column comes last
        self.device = self.name.split(":", 1)[1]

    def ms(self, arch: list[int]) -> float:
        """Latency of one architecture in ms (6 decimals, as a profile table holds them)."""
        return round(float(self.table.cost(self.name, np.asarray([arch]))[0]), 6)

    def add(self, record: dict) -> dict:
        """`record` with `device` and `latency_ms` (its pruned cell's too)."""
        out = {k: v for k, v in record.items() if k != "pruned"}
        out.update(device=self.device, latency_ms=self.ms(record["arch"]))
        if "pruned" in record:  # the cell a search measures in its place, last as before
            out["pruned"] = self.add(record["pruned"])
        return out

    def extremes(self) -> list[dict]:
        """The fastest and slowest architecture, as `space_extremes` gives the others."""
        out = []
        for cheapest in (True, False):
            _, arch = self.table.extreme(self.name, cheapest)
            # With its pruned cell, which a search measures in its place (and which may not be
            # as fast: the table's latencies are measurements, not sums).
            record = _priced(self.space, build_cost_table(self.space), list(arch), self.prune)
            out.append({"extreme": f"{'min' if cheapest else 'max'}_latency", **self.add(record)})
        return out


def latency_pricer(source: RunConfig | str | Path | Mapping | None, overrides: Sequence[str]
                   ) -> LatencyPricer | None:
    """The config's latency model for `moonas cost`, None when it names no latency table."""
    config = _config(source, overrides)
    if config.search.latency_table is None:
        return None
    from moonas.search.context import cost_model

    space = static_space(config)
    return LatencyPricer(space, cost_model(space, config.search), config.search.prune)
