"""The angle-based shrinking plug-in: the decomposed angle, the drop rule, config, the search."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import moonas
from moonas.asng import MultiASNG
from moonas.config import load_config
from moonas.errors import ConfigError
from moonas.nets import build_supernet
from moonas.plugins.angle import (AngleConfig, AnglePlugin, AngleTerms, angle_terms, snapshot,
                                  vector_angle, weight_groups)
from moonas.run import RunFiles
from moonas.spaces import build_space

SMALL = {
    "nb201": dict(channels=4, cells_per_stage=1),
    "mobilenet": dict(stem_channels=8, stages=((8, 2, 1), (12, 2, 2)), head_channels=16),
}


def _trained_looking(name: str):
    """A small supernet, its V0, and the same supernet with every parameter moved."""
    space = build_space(name, input_size=8, in_channels=1, n_classes=10, **SMALL[name])
    torch.manual_seed(0)
    supernet = build_supernet(space)
    v0 = snapshot(supernet)
    initial = copy.deepcopy(supernet)
    with torch.no_grad():
        for p in supernet.parameters():
            p.add_(0.3 * p.abs().mean() * torch.randn_like(p) + 0.05)
    return supernet, initial, v0


def _flat(net: torch.nn.Module, parameters: str) -> np.ndarray:
    kept = [p for p in net.parameters() if parameters == "all" or p.dim() >= 2]
    return torch.cat([p.detach().double().reshape(-1) for p in kept]).numpy()


@pytest.mark.parametrize("parameters", ["weights", "all"])
@pytest.mark.parametrize("name", ["nb201", "mobilenet"])
def test_decomposed_angle_equals_the_standalone_networks_angle(name: str, parameters: str) -> None:
    supernet, initial, v0 = _trained_looking(name)
    terms = angle_terms(supernet, v0, parameters=parameters)
    archs = supernet.space.sample(np.random.default_rng(1), 12)
    fast = terms.angles(archs)
    for arch, angle in zip(archs, fast):
        arch = tuple(int(v) for v in arch)
        direct = vector_angle(_flat(initial.extract(arch), parameters),
                              _flat(supernet.extract(arch), parameters))
        assert angle == pytest.approx(direct, rel=1e-9, abs=1e-12)
    assert fast.std() > 1e-4, "all angles equal: the test cannot tell architectures apart"


def test_parameter_free_options_add_nothing_and_leave_the_shared_weights() -> None:
    supernet, initial, v0 = _trained_looking("nb201")
    terms = angle_terms(supernet, v0)
    # none, skip_connect, avg_pool_3x3 own no parameters.
    assert np.all(terms.options[:, :, [0, 1, 4]] == 0)
    assert np.all(terms.options[1:, :, [2, 3]] > 0)
    shared, _ = weight_groups(supernet)
    now = dict(supernet.named_parameters())
    direct = vector_angle(np.concatenate([v0[n].reshape(-1) for n in shared]),
                          np.concatenate([now[n].detach().numpy().reshape(-1) for n in shared]))
    for arch in ((1,) * 6, (4,) * 6, (0, 1, 4, 1, 0, 4)):
        assert terms.angles(np.array([arch]))[0] == pytest.approx(direct, rel=1e-9)


def test_angle_is_zero_before_training() -> None:
    supernet = build_supernet(build_space("nb201", input_size=8, in_channels=1, n_classes=10,
                                          **SMALL["nb201"]))
    terms = angle_terms(supernet, snapshot(supernet))
    assert np.allclose(terms.angles(supernet.space.sample(np.random.default_rng(0), 20)), 0,
                       atol=1e-6)


# ------------------------------------------------------------------------ the drop rule
N_OPTIONS = (4, 4, 4)
#: Angle of option j's block (unit norms), and its cost: option 2 is the worst but dear.
BLOCK_ANGLE = np.array([0.40, 0.50, 0.20, 0.60])
COST = np.array([1.0, 0.0, 5.0, 2.0])


def _terms() -> AngleTerms:
    options = np.zeros((3, 3, 4))
    options[0] = np.cos(BLOCK_ANGLE)[None, :]
    options[1:] = 1.0
    return AngleTerms(np.array([1.0, 1.0, 1.0]), options)


def _price(archs: np.ndarray) -> np.ndarray:
    return COST[np.asarray(archs)].sum(axis=1)


def _plugin(core: MultiASNG, **overrides) -> AnglePlugin:
    config = AngleConfig(enabled=True, **{"min_options": 1, **overrides})
    return AnglePlugin(config, N_OPTIONS, core.K, 10, budgets=(4.0, 15.0), price=_price)


def test_each_distribution_drops_within_its_budget() -> None:
    core = MultiASNG(N_OPTIONS, 2, budgets=(4.0, 15.0))
    plugin = _plugin(core, drops=3)
    removed = plugin.shrink(_terms(), core)
    by_k = {k: {(d, j) for kk, d, j in removed if kk == k} for k in range(2)}
    # The loose budget drops its worst option (2) in every choice.
    assert by_k[1] == {(0, 2), (1, 2), (2, 2)}
    # Option 2 never fits budget 4 (cost 5): unscored there, so budget 0 drops its next worst.
    assert by_k[0] == {(0, 0), (1, 0), (2, 0)}
    assert np.isnan(plugin.last_scores[0, :, 2]).all()


@pytest.mark.parametrize("min_options", [1, 2])
def test_shrinking_keeps_min_options_and_the_cheapest_architecture(min_options: int) -> None:
    core = MultiASNG(N_OPTIONS, 2, budgets=(4.0, 15.0))
    plugin = _plugin(core, drops=2, min_options=min_options)
    for _ in range(20):
        plugin.shrink(_terms(), core)
    mask = core.stack.mask
    assert (mask.sum(axis=-1) >= min_options).all()
    assert (mask[1].sum(axis=-1) == min_options).all()  # shrunk as far as allowed
    assert mask[:, :, 1].all()  # option 1 (cost 0) is the cheapest: never dropped
    # Option 2 never fits budget 4: never scored there, so never dropped there.
    assert mask[0, :, 2].all() and not mask[1, :, 2].any()
    for k, budget in enumerate((4.0, 15.0)):
        archs, _ = core.stack.sample(np.random.default_rng(k), 50)
        assert (_price(archs[k * 50:(k + 1) * 50]) <= budget).any()


def test_options_with_too_few_scored_children_stay() -> None:
    core = MultiASNG(N_OPTIONS, 1, budgets=(15.0,))
    plugin = AnglePlugin(AngleConfig(enabled=True, samples=16, min_count=100), N_OPTIONS, 1,
                         10, budgets=(15.0,), price=_price)
    assert plugin.shrink(_terms(), core) == []


def test_schedule_warms_up_then_shrinks_every_few_percent() -> None:
    assert AngleConfig().shrink_epochs(60) == tuple(range(30, 60, 3))
    assert AngleConfig(warmup=0.4, interval=0.01).shrink_epochs(10) == tuple(range(4, 10))


def test_state_round_trip_continues_identically() -> None:
    def shrinks(plugin, core, n):
        return [plugin.shrink(_terms(), core) for _ in range(n)]

    core = MultiASNG(N_OPTIONS, 2, budgets=(4.0, 15.0))
    plugin = _plugin(core, samples=64)
    plugin.rng.random(3)
    twin_core, twin = MultiASNG(N_OPTIONS, 2, budgets=(4.0, 15.0)), _plugin(core, samples=64)
    twin_core.load_state_dict(copy.deepcopy(core.state_dict()))
    twin.load_state_dict(copy.deepcopy(plugin.state_dict()))
    assert shrinks(plugin, core, 3) == shrinks(twin, twin_core, 3)


# ------------------------------------------------------------------------------- config
@pytest.mark.parametrize("override, message", [
    ("search.angle.warmup=1.0", r"search.angle.warmup=1.0: use 0 <= warmup < 1"),
    ("search.angle.interval=0", r"search.angle.interval=0.0: use 0 < interval <= 1"),
    ("search.angle.drops=0", r"search.angle.drops=0: use drops >= 1"),
    ("search.angle.min_options=0", r"search.angle.min_options=0: use min_options >= 1"),
    ("search.angle.samples=0", r"search.angle.samples=0: use samples >= 1"),
    ("search.angle.parameters=bn", r"search.angle.parameters.*allowed values: 'weights', 'all'"),
    ("search.angle.warmpu=0.3", r"did you mean 'search.angle.warmup'"),
    ("search.angle.enabled=maybe", r"search.angle.enabled.*expected true or false"),
])
def test_bad_config_is_one_line_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_config("smoke", [override])
    assert "\n" not in str(info.value)


def test_a_warmup_that_would_never_shrink_is_one_line() -> None:
    # round(0.95 * 10) is 10, the last epoch: no shrink would ever happen.
    with pytest.raises(ConfigError, match=r"search.angle.warmup=0.95 shrinks first after "
                                          r"epoch 10 of 10, so no option would be removed: "
                                          r"use warmup <= 0.949"):
        load_config("smoke", ["search.angle.enabled=true", "search.epochs=10",
                              "search.angle.warmup=0.95"])
    assert load_config("smoke", ["search.angle.enabled=true", "search.epochs=10",
                                 "search.angle.warmup=0.949"]).search.angle.shrink_epochs(10)


def test_off_by_default() -> None:
    assert not load_config(None).search.angle.enabled


def test_without_a_supernet_it_refuses_to_search() -> None:
    from moonas.search.objective import Objective
    from moonas.search.strategies import build_strategy

    search = load_config("smoke", ["search.angle.enabled=true"]).search
    objective = Objective("params", (4.0, 8.0), None, 0.0, 24.0)
    strategy = build_strategy("multi-asng", (5,) * 6, objective, search)
    with pytest.raises(ConfigError, match="needs a supernet"):
        strategy.ask(np.random.default_rng(0))


def test_bench_refuses_it_with_one_line(tmp_path: Path, capsys) -> None:
    from moonas.cli import main

    code = main(["bench", "nb201", "--table", str(tmp_path / "absent.csv"), "--out",
                 str(tmp_path / "b"), "--set", "search.angle.enabled=true"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "needs a supernet" in err and "\n" not in err
    assert not (tmp_path / "b").exists()


# --------------------------------------------------------------------- in the search loop
TINY = ["space.channels=4", "data.max_train=192", "data.batch_size=32", "search.epochs=6",
        "search.warmup_epochs=1", "search.front_samples=4", "threads=1",
        "search.angle.enabled=true", "search.angle.warmup=0.3", "search.angle.interval=0.15",
        "search.angle.samples=256"]
STEPS_PER_EPOCH = 6


class _Killed(Exception):
    pass


def test_supernet_search_shrinks_logs_and_resumes_identically(tmp_path: Path) -> None:
    reference = moonas.search("smoke", tmp_path / "ref", overrides=TINY)
    lines = [json.loads(s) for s in RunFiles(reference.dir).log.read_text().splitlines()]
    epochs = [line for line in lines if line.get("kind") == "epoch"]
    shrunk = [e for e in epochs if "angle_removed" in e]
    assert [e["epoch"] + 1 for e in shrunk] == [2, 3, 4, 5]
    assert all(len(e["angle_modes"]) == 5 for e in epochs)
    assert sum(len(e["angle_removed"]) for e in shrunk) > 0
    assert shrunk[-1]["angle_active"] == [30 - sum(1 for e in shrunk for r in e["angle_removed"]
                                                   if r[0] == k) for k in range(5)]
    state = torch.load(RunFiles(reference.dir).checkpoint, weights_only=True)["strategy"]
    assert "angle" in state["plugins"]

    # Killed inside epoch 4 (after two shrinks), then resumed from the epoch-3 checkpoint.
    def kill(step: int, total: int, info: dict) -> None:
        if step == 3 * STEPS_PER_EPOCH + 2:
            raise _Killed

    out = tmp_path / "killed"
    with pytest.raises(_Killed):
        moonas.search("smoke", out, overrides=TINY, progress=kill)
    assert not RunFiles(out).pareto_json.exists()
    moonas.search(None, out, resume=True)
    for name in ("pareto_json", "log", "candidates"):
        assert (getattr(RunFiles(out), name).read_text()
                == getattr(RunFiles(reference.dir), name).read_text()), name
