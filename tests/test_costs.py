"""Costs: exact parameter counts, thop MACs, the additive table, and NAS-Bench-201's records."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from moonas.costs import build_cost_table, count_macs, count_params
from moonas.errors import ConfigError
from moonas.nets import build_supernet
from moonas.spaces import SPACES, NB201Space, build_space

from test_supernet_contract import SMALL


def test_counts_of_a_hand_computed_network() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),  # 8*3*9 = 216 params; 216 * 16 = 3456 MACs
        nn.BatchNorm2d(8),  # 16 params, 0 MACs
        nn.ReLU(),
        nn.AvgPool2d(2),  # 0 MACs (4x4 -> 2x2)
        nn.Conv2d(8, 4, 1, bias=True),  # 32 + 4 params; (8 + 1) * 4 * 4 = 144 MACs
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 5),  # 20 + 5 params; (4 + 1) * 5 = 25 MACs
    )
    assert count_params(net) == 216 + 16 + 36 + 25
    assert count_macs(net, (3, 4, 4)) == 3456 + 144 + 25


def test_thop_leaves_no_buffers_on_the_model() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    before = set(dict(net.named_buffers()))
    count_macs(net, (1, 8, 8))
    assert set(dict(net.named_buffers())) == before
    assert not any(hasattr(m, "total_ops") for m in net.modules())


def test_nb201_table_reproduces_the_benchmark_for_every_row(nb201_rows) -> None:
    space = NB201Space(channels=16, cells_per_stage=5, input_size=32, in_channels=3, n_classes=10)
    table = build_cost_table(space)
    archs = np.array([space.from_str(r["arch_str"]) for r in nb201_rows])
    costs = table.price(archs)
    params_mb = np.array([float(r["params_MB_c10"]) for r in nb201_rows])
    flops_m = np.array([float(r["flops_M_c10"]) for r in nb201_rows])
    np.testing.assert_array_equal(np.round(costs[:, 0] / 1e6, 6), params_mb)
    np.testing.assert_array_equal(np.round(costs[:, 1] / 1e6, 5), flops_m)


def test_counting_extracted_nb201_networks_matches_the_benchmark(nb201_rows) -> None:
    space = NB201Space(channels=16, cells_per_stage=5, input_size=32, in_channels=3, n_classes=10)
    torch.manual_seed(0)
    supernet = build_supernet(space)
    rng = np.random.default_rng(0)
    for i in rng.choice(len(nb201_rows), size=20, replace=False):
        row = nb201_rows[i]
        net = supernet.extract(space.from_str(row["arch_str"]))
        assert round(count_params(net) / 1e6, 6) == float(row["params_MB_c10"]), row["arch_str"]
        assert round(count_macs(net, (3, 32, 32)) / 1e6, 5) == float(row["flops_M_c10"])


def test_nb201_c100_head_changes_only_the_classifier(nb201_rows) -> None:
    space = NB201Space(channels=16, cells_per_stage=5, input_size=32, in_channels=3, n_classes=100)
    table = build_cost_table(space)
    archs = np.array([space.from_str(r["arch_str"]) for r in nb201_rows[:500]])
    params_mb = np.array([float(r["params_MB_c100"]) for r in nb201_rows[:500]])
    np.testing.assert_array_equal(np.round(table.cost("params", archs) / 1e6, 6), params_mb)


@pytest.mark.parametrize("name", SPACES.names())
@pytest.mark.parametrize("input_size", [8, 32])
def test_table_equals_counts_of_random_extracted_networks(name: str, input_size: int) -> None:
    space = build_space(name, input_size=input_size, in_channels=3, n_classes=7, **SMALL[name])
    table = build_cost_table(space)
    torch.manual_seed(1)
    supernet = build_supernet(space)
    archs = space.sample(np.random.default_rng(input_size), 8)
    costs = table.price(archs)
    for arch, (params, macs) in zip(archs, costs):
        net = supernet.extract(arch)
        assert count_params(net) == params
        assert count_macs(net, (3, input_size, input_size)) == macs


@pytest.mark.parametrize("name", SPACES.names())
def test_extremes_bound_the_space(name: str) -> None:
    space = build_space(name, input_size=8, in_channels=1, **SMALL[name])
    table = build_cost_table(space)
    costs = table.price(space.sample(np.random.default_rng(0), 2000))
    for i, cost in enumerate(table.names):
        low, low_arch = table.extreme(cost, cheapest=True)
        high, _ = table.extreme(cost, cheapest=False)
        assert low <= costs[:, i].min() and high >= costs[:, i].max()
        assert table.cost(cost, np.asarray(low_arch))[0] == low


def test_unknown_cost_lists_the_valid_ones() -> None:
    table = build_cost_table(NB201Space(input_size=8, in_channels=1, channels=4, cells_per_stage=1))
    with pytest.raises(ConfigError, match="did you mean 'params'.*valid: params, macs"):
        table.index("param")


def test_pricing_counts_with_the_configs_thread_count(monkeypatch) -> None:
    """`moonas cost` builds its cost table (thop on every option's network) with the config's
    `threads`, as the search does, and gives torch its own count back after."""
    import moonas.pricing as pricing

    seen = []
    built = pricing.build_cost_table
    monkeypatch.setattr(pricing, "build_cost_table",
                        lambda space: (seen.append(torch.get_num_threads()), built(space))[1])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        record = next(pricing.space_extremes(None, ["threads=1", "space.channels=4"]))
        assert seen == [1] and torch.get_num_threads() == 2
        assert record["params"] > 0
    finally:
        torch.set_num_threads(before)
