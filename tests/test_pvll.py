"""The PVLL plug-in: predictor, FIFO memory, refit schedule, screening, resume, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import kendalltau

from moonas.asng import MultiASNG
from moonas.errors import ConfigError
from moonas.plugins import gae
from moonas.plugins.predictors import (KernelPredictor, PairsRidgePredictor, RidgePredictor,
                                       encode)
from moonas.plugins.pvll import PVLLConfig, PVLLPlugin, make_predictor

N_OPTIONS = (5, 5, 5, 5, 3, 4)


def _additive(archs: np.ndarray, seed: int = 0) -> np.ndarray:
    """A toy loss additive over choices, (n,)."""
    table = np.random.default_rng(seed).normal(size=(len(N_OPTIONS), max(N_OPTIONS)))
    return table[np.arange(len(N_OPTIONS))[None, :], archs].sum(axis=1)


def _random_archs(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, np.asarray(N_OPTIONS), size=(n, len(N_OPTIONS)))


def test_encode_shapes_and_one_hot():
    archs = _random_archs(np.random.default_rng(0), 7)
    x = encode(archs, N_OPTIONS)
    assert x.shape == (7, sum(N_OPTIONS))
    assert np.all(x.sum(axis=1) == len(N_OPTIONS))
    pairs = encode(archs, N_OPTIONS, "pairs")
    n_pairs = sum(a * b for i, a in enumerate(N_OPTIONS) for b in N_OPTIONS[i + 1:])
    assert pairs.shape == (7, sum(N_OPTIONS) + n_pairs)


def test_predictor_fits_additive_function():
    rng = np.random.default_rng(1)
    train, test = _random_archs(rng, 80), _random_archs(rng, 500)
    model = RidgePredictor(N_OPTIONS, ridge=0.1)
    model.fit(train, _additive(train))
    tau = kendalltau(model.predict(test), _additive(test)).statistic
    assert tau > 0.9


def test_fifo_memory_bound_keeps_most_recent():
    plugin = PVLLPlugin(PVLLConfig(enabled=True, memory=10, min_observations=5), N_OPTIONS, 2, 0)
    archs = _random_archs(np.random.default_rng(2), 25)
    for i in range(0, 25, 5):
        plugin.add(archs[i:i + 5], np.arange(i, i + 5, dtype=float))
    kept_archs, kept_losses = plugin.memory
    assert len(kept_losses) == 10
    np.testing.assert_array_equal(kept_losses, np.arange(15, 25))
    np.testing.assert_array_equal(kept_archs, archs[15:])


def _blas_threads_now() -> int:
    import threadpoolctl

    return max(p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")


def test_refits_run_on_one_blas_thread_and_leave_the_default_after():
    from moonas.threads import blas_threads

    default = _blas_threads_now()
    with blas_threads(None):
        assert _blas_threads_now() == default
    plugin = PVLLPlugin(PVLLConfig(enabled=True, memory=10, min_observations=5), N_OPTIONS, 2, 0)
    seen: list[int] = []
    fit = plugin.predictor.fit
    plugin.predictor.fit = lambda *a: (seen.append(_blas_threads_now()), fit(*a))
    assert plugin.add(_random_archs(np.random.default_rng(3), 6), np.arange(6.0))
    assert seen == [1] and plugin.predictor.fitted
    assert _blas_threads_now() == default


def test_refit_schedule():
    config = PVLLConfig(enabled=True, refit_every=10, min_observations=20)
    plugin = PVLLPlugin(config, N_OPTIONS, 2, 0)
    rng = np.random.default_rng(3)
    fits = []
    for _ in range(12):
        archs = _random_archs(rng, 5)
        plugin.add(archs, _additive(archs))
        fits.append(plugin.n_fits)
    # 5 pairs a step: first fit at 20 observations, then one every 10 (every second step).
    assert fits == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    assert plugin.active


def _fitted_plugin(config: PVLLConfig, K: int = 3) -> PVLLPlugin:
    plugin = PVLLPlugin(config, N_OPTIONS, K, 0)
    archs = _random_archs(np.random.default_rng(4), 60)
    plugin.add(archs, _additive(archs))
    assert plugin.active
    return plugin


def _screening_case(greedy_until: int) -> tuple[PVLLPlugin, MultiASNG, np.random.Generator]:
    """A plug-in fitted on 60 pairs (explore 0.25, pool 32), a 3 x 4-row core, a generator."""
    config = PVLLConfig(enabled=True, explore=0.25, pool=32, min_observations=10,
                        greedy_until=greedy_until)
    core = MultiASNG(N_OPTIONS, 3, coefficients=[0.0, 0.1, 0.2], n_per_dist=4)
    return _fitted_plugin(config), core, np.random.default_rng(5)


def test_screening_shape_exploration_share_and_improvement():
    # No greedy phase: the explore share holds from the first fit on.
    plugin, core, rng = _screening_case(greedy_until=0)
    before, after = [], []
    for _ in range(20):
        asked = core.ask(rng)
        out = plugin.propose(rng, core, asked)
        assert out.shape == asked.shape == (12, len(N_OPTIONS))
        assert out.dtype == np.int64
        told = plugin.tell_mask(len(out))
        assert told.sum() == 3  # round(0.25 * 12) rows kept as drawn
        np.testing.assert_array_equal(out[told], asked[told])
        before.append(_additive(asked[~told]).mean())
        after.append(_additive(out[~told]).mean())
    assert np.mean(after) < np.mean(before) - 0.5


def test_greedy_phase_screens_every_row_until_enough_observations():
    # 60 remembered pairs: with greedy_until 100 every row is screened (none told, the
    # distributions wait); 40 more pairs end the phase and the explore share comes back.
    plugin, core, rng = _screening_case(greedy_until=100)
    asked = core.ask(rng)
    out = plugin.propose(rng, core, asked)
    assert not plugin.tell_mask(len(out)).any()
    assert _additive(out).mean() < _additive(asked).mean() - 0.5
    extra = _random_archs(np.random.default_rng(9), 40)
    plugin.add(extra, _additive(extra))
    plugin.propose(rng, core, core.ask(rng))
    assert plugin.tell_mask(len(out)).sum() == 3  # round(0.25 * 12)


def test_explore_share_schedule_and_bad_greedy_until():
    config = PVLLConfig(explore=0.5, greedy_until=150)
    assert config.explore_share(0) == config.explore_share(149) == 0.0
    assert config.explore_share(150) == 0.5
    assert PVLLConfig(explore=0.5, greedy_until=0).explore_share(0) == 0.5
    # explore 1 records without screening, greedy phase or not.
    assert PVLLConfig(explore=1.0, greedy_until=150).explore_share(0) == 1.0
    with pytest.raises(ConfigError, match="greedy_until"):
        PVLLConfig(greedy_until=-1)


def test_distributions_wait_through_the_greedy_phase():
    # The strategy tells the core only unscreened rows: none in the greedy phase, so the
    # thetas stay where the steps before the first fit left them until greedy_until
    # observations, and move after.
    from moonas.config import SearchConfig
    from moonas.search.objective import Objective
    from moonas.search.strategies import build_strategy

    def thetas_after(greedy_until: int, steps: int) -> tuple[np.ndarray, int]:
        search = SearchConfig(strategy="multi-asng", budgets=None, n_budgets=3,
                              coefficients=(0.0, 0.5, 1.0), samples_per_dist=2,
                              pvll=PVLLConfig(min_observations=10, greedy_until=greedy_until))
        objective = Objective("params", None, (0.0, 0.5, 1.0), 0.0, 40.0)
        strategy = build_strategy("multi-asng", N_OPTIONS, objective, search,
                                  price=lambda a: np.asarray(a).sum(axis=1).astype(float))
        rng = np.random.default_rng(0)
        for _ in range(steps):
            archs = strategy.ask(rng)
            strategy.tell(archs, _additive(archs), np.asarray(archs).sum(axis=1).astype(float))
        return strategy.core.thetas, strategy.pvll.n_observed

    uniform = MultiASNG(N_OPTIONS, 3, coefficients=[0.0, 0.5, 1.0]).thetas
    # 6 rows a step: 2 steps (12 pairs) told before the first fit, then greedy up to 60 pairs.
    waited, seen = thetas_after(60, 10)
    assert seen == 60
    before_fit, _ = thetas_after(60, 2)
    assert not np.allclose(before_fit, uniform)
    np.testing.assert_allclose(waited, before_fit)  # nothing told in the greedy phase
    later, _ = thetas_after(60, 20)
    never_greedy, _ = thetas_after(0, 10)
    assert not np.allclose(later, waited)
    assert not np.allclose(never_greedy, waited)


def test_neighbours_of_moves_one_choice_each():
    from moonas.plugins.pvll import neighbours_of

    arch = np.array([0, 4, 2, 1, 2, 3])
    moves = neighbours_of(arch, N_OPTIONS)
    assert moves.shape == (sum(n - 1 for n in N_OPTIONS), len(N_OPTIONS))
    assert ((moves != arch).sum(axis=1) == 1).all()
    assert len(np.unique(moves, axis=0)) == len(moves)
    assert (moves < np.asarray(N_OPTIONS)).all() and (moves >= 0).all()


def test_neighbours_of_several_archs_are_each_archs_moves_in_turn():
    from moonas.plugins.pvll import neighbours_of

    archs = _random_archs(np.random.default_rng(5), 4)
    np.testing.assert_array_equal(neighbours_of(archs, N_OPTIONS),
                                  np.concatenate([neighbours_of(a, N_OPTIONS) for a in archs]))


def test_front_screening_measures_the_largest_predicted_hypervolume_gains(monkeypatch):
    # Screening by the front: every screened row becomes a fresh, distinct architecture; the
    # first chosen has the largest predicted hypervolume gain over the remembered front in a
    # pool holding every fresh one-choice move of a front member; the rows are not told.
    from moonas.pareto import front_2d, improvements_2d
    from moonas.plugins import pvll
    from moonas.plugins.pvll import neighbours_of

    calls = []

    def spy(front, candidates, reference):
        calls.append((front.copy(), candidates.copy(), reference.copy()))
        return improvements_2d(front, candidates, reference)

    monkeypatch.setattr(pvll, "improvements_2d", spy)
    cost_of = lambda a: np.asarray(a).sum(axis=1).astype(float)  # noqa: E731
    config = PVLLConfig(enabled=True, explore=0.0, pool=8, min_observations=10, screen="front")
    plugin = PVLLPlugin(config, N_OPTIONS, 2, 0)
    archs = np.unique(_random_archs(np.random.default_rng(6), 80), axis=0)
    losses = _additive(archs)
    plugin.add(archs, losses)
    plugin.set_objective(cost_of, coefficients=np.array([0.0, 1.0]), cost_max=21.0)
    core = MultiASNG(N_OPTIONS, 2, coefficients=[0.0, 1.0], n_per_dist=3)
    rng = np.random.default_rng(7)
    out = plugin.propose(rng, core, core.ask(rng))
    assert out.shape == (6, len(N_OPTIONS))
    assert len(np.unique(out, axis=0)) == 6
    remembered = {tuple(a) for a in archs.tolist()}
    assert not any(tuple(a) in remembered for a in out.tolist())
    assert not plugin.tell_mask(6).any()
    assert len(calls) == 6  # one choice at a time, each joining the front
    front, candidates, reference = calls[0]
    observed = np.stack([losses, cost_of(archs)], axis=1)
    np.testing.assert_allclose(np.sort(front, axis=0),
                               np.sort(observed[front_2d(*observed.T)], axis=0))
    predicted = np.stack([plugin.predict(out[:1]), cost_of(out[:1])], axis=1)[0].round(9)
    gains = improvements_2d(front, candidates, reference)
    assert gains.max() > 0
    assert predicted.tolist() in candidates[gains == gains.max()].round(9).tolist()
    moves = neighbours_of(archs[front_2d(*observed.T)], N_OPTIONS)
    moves = moves[[tuple(m) not in remembered for m in moves.tolist()]]
    in_pool = {tuple(c) for c in candidates.round(9).tolist()}
    move_points = np.stack([plugin.predict(moves), cost_of(moves)], axis=1).round(9)
    assert len(moves) > 20 and all(tuple(p) in in_pool for p in move_points.tolist())
    assert len(calls[1][0]) == len(front) + 1  # the chosen one joined the front
    # Objective screening of the same case keeps to each distribution's own objective: the
    # rows differ.
    plugin.config = dataclasses.replace(config, screen="objective")
    rng = np.random.default_rng(7)
    assert not np.array_equal(plugin.propose(rng, core, core.ask(rng)), out)


def test_incumbent_is_the_best_remembered_under_each_objective():
    plugin = PVLLPlugin(PVLLConfig(neighbours=True), N_OPTIONS, 2, 0)
    assert plugin.incumbent(0) is None
    archs = np.array([[0, 0, 0, 0, 0, 0], [4, 4, 4, 4, 2, 3], [1, 1, 1, 1, 1, 1]])
    losses = np.array([0.9, 0.1, 0.5])  # the dearest arch has the lowest loss
    plugin.add(archs, losses)
    np.testing.assert_array_equal(plugin.incumbent(1), archs[1])  # no cost: loss alone
    cost_of = lambda a: np.asarray(a).sum(axis=1).astype(float)  # noqa: E731
    plugin.set_objective(cost_of, budgets=np.array([8.0, 30.0]))
    np.testing.assert_array_equal(plugin.incumbent(0), archs[2])  # best that fits 8
    np.testing.assert_array_equal(plugin.incumbent(1), archs[1])
    plugin.set_objective(cost_of, coefficients=np.array([0.0, 10.0]), cost_max=21.0)
    np.testing.assert_array_equal(plugin.incumbent(0), archs[1])
    np.testing.assert_array_equal(plugin.incumbent(1), archs[0])  # cost dominates the key


def test_neighbour_screening_moves_off_the_remembered_incumbent():
    # A distribution settled on its incumbent draws nothing but remembered cells; with
    # neighbours on, screening measures the incumbent's best-predicted one-choice moves instead
    # (no crossover, whose children would join the pool).
    config = PVLLConfig(enabled=True, explore=0.0, pool=4, min_observations=10, crossover=0)
    archs = _random_archs(np.random.default_rng(2), 60)
    losses = _additive(archs)
    incumbent = archs[np.argmin(losses)]
    outs = {}
    for neighbours in (False, True):
        plugin = PVLLPlugin(PVLLConfig(**{**config.__dict__, "neighbours": neighbours}),
                            N_OPTIONS, 1, 0)
        plugin.add(archs, losses)
        core = MultiASNG(N_OPTIONS, 1, budgets=[1e9], n_per_dist=4)
        theta = np.zeros_like(core.thetas[0])
        for d, n in enumerate(N_OPTIONS):
            theta[d, :n] = 1e-4
            theta[d, incumbent[d]] = 1 - 1e-4 * (n - 1)
        core.stack.set_theta(0, theta)
        rng = np.random.default_rng(3)
        outs[neighbours] = plugin.propose(rng, core, core.ask(rng))
    remembered = {tuple(a) for a in archs.tolist()}
    assert all(tuple(a) in remembered for a in outs[False].tolist())
    assert not any(tuple(a) in remembered for a in outs[True].tolist())
    assert ((outs[True] != incumbent).sum(axis=1) == 1).all()
    assert len(np.unique(outs[True], axis=0)) == len(outs[True])
    # The moves kept are the best predicted ones among all of the incumbent's moves.
    from moonas.plugins.pvll import neighbours_of

    moves = neighbours_of(incumbent, N_OPTIONS)
    fresh = moves[[tuple(m) not in remembered for m in moves.tolist()]]
    best = np.sort(plugin.predict(fresh))[:4]
    np.testing.assert_allclose(np.sort(plugin.predict(outs[True])), best)
    # An option the distribution removed never comes back through a move.
    removed = outs[True][0]
    d = int(np.flatnonzero(removed != incumbent)[0])
    core.stack.remove_option(0, d, int(removed[d]))
    again = plugin.propose(np.random.default_rng(4), core, core.ask(np.random.default_rng(4)))
    assert not (again[:, d] == removed[d]).any()


def test_children_mix_two_of_the_best_remembered_cells():
    """Every child takes each choice from one of two different parents among k's `parents`
    best remembered cells under k's objective, and mixes them (it is neither parent)."""
    plugin = PVLLPlugin(PVLLConfig(crossover=4, parents=3), N_OPTIONS, 2, 0)
    allowed = np.ones((len(N_OPTIONS), max(N_OPTIONS)), dtype=bool)
    rng = np.random.default_rng(0)
    assert len(plugin._children(rng, 0, 8, allowed)) == 0  # nothing remembered yet
    archs = _random_archs(np.random.default_rng(6), 40)
    losses = _additive(archs)
    plugin.add(archs, losses)
    cost_of = lambda a: np.asarray(a).sum(axis=1).astype(float)  # noqa: E731
    plugin.set_objective(cost_of, coefficients=np.array([0.0, 5.0]), cost_max=21.0)
    for k, key in enumerate((losses, losses + 5.0 * cost_of(archs) / 21.0)):
        parents = archs[np.argsort(key)[:3]]
        kids = plugin._children(rng, k, 400, allowed)
        assert kids.shape == (400, len(N_OPTIONS))
        # Each child: some pair of the parents gives every one of its choices.
        fits = [[((kid == parents[i]) | (kid == parents[j])).all()
                 for i in range(3) for j in range(3) if i != j] for kid in kids]
        assert all(any(f) for f in fits)
        mixed = ~(kids[:, None, :] == parents[None]).all(axis=2).any(axis=1)
        assert mixed.mean() > 0.3  # parents differ on most choices: most children are new


def test_crossover_screening_measures_children_of_the_incumbents():
    # A distribution settled on a remembered cell draws only remembered cells. With crossover
    # and no neighbours, the screened rows are new cells bred from the best remembered ones,
    # the best predicted of them; with crossover 0 they stay remembered cells.
    archs = _random_archs(np.random.default_rng(2), 60)
    losses = _additive(archs)
    best = archs[np.argsort(losses)[:4]]
    outs = {}
    for crossover in (0, 32):
        config = PVLLConfig(enabled=True, explore=0.0, pool=4, min_observations=10,
                            neighbours=False, crossover=crossover, parents=4)
        plugin = PVLLPlugin(config, N_OPTIONS, 1, 0)
        plugin.add(archs, losses)
        core = MultiASNG(N_OPTIONS, 1, budgets=[1e9], n_per_dist=4)
        theta = np.zeros_like(core.thetas[0])
        for d, n in enumerate(N_OPTIONS):
            theta[d, :n] = 1e-4
            theta[d, best[0, d]] = 1 - 1e-4 * (n - 1)
        core.stack.set_theta(0, theta)
        rng = np.random.default_rng(3)
        outs[crossover] = plugin.propose(rng, core, core.ask(rng))
    remembered = {tuple(a) for a in archs.tolist()}
    assert all(tuple(a) in remembered for a in outs[0].tolist())
    assert not any(tuple(a) in remembered for a in outs[32].tolist())
    assert len(np.unique(outs[32], axis=0)) == len(outs[32])
    # Each screened cell takes every choice from the four parents, and is predicted better
    # than the average child of theirs.
    assert all((cell[None] == best).any(axis=0).all() for cell in outs[32])
    kids = plugin._children(np.random.default_rng(9), 0, 200, theta > 0)
    assert plugin.predict(outs[32]).mean() < plugin.predict(kids).mean()


def test_children_of_pruned_cells_never_bring_back_a_removed_option():
    """A removed option never comes back through a child, unless the pruning put it there
    (a dead choice reads option 0 whatever the distribution allows, as for moves)."""
    plugin = PVLLPlugin(PVLLConfig(crossover=4, parents=2), N_OPTIONS, 1, 0, cells=_dead_second)
    plugin.add(np.array([[0, 0, 3, 3, 1, 1], [1, 2, 2, 2, 2, 2]]), np.array([0.1, 0.2]))
    allowed = np.ones((len(N_OPTIONS), max(N_OPTIONS)), dtype=bool)
    allowed[2, 3] = False  # option 3 of choice 2: in the best parent, removed since
    allowed[1, 0] = False  # option 0 of choice 1: only ever read where choice 1 is dead
    kids = plugin._children(np.random.default_rng(1), 0, 200, allowed)
    assert len(kids) > 0 and not (kids[:, 2] == 3).any()
    np.testing.assert_array_equal(kids, _dead_second(kids))
    assert ((kids[:, 1] != 0) | (kids[:, 0] == 0)).all()  # a 0 in choice 1 only where dead
    assert (kids[:, 0] == 0).any()  # and such children are kept


def _dead_second(archs: np.ndarray) -> np.ndarray:
    """A toy pruning: option 0 of choice 0 cuts choice 1 off, which then reads option 0."""
    cells = np.array(archs, dtype=np.int64)
    cells[cells[:, 0] == 0, 1] = 0
    return cells


@pytest.mark.parametrize("pruned", [True, False])
def test_pvll_learns_and_screens_the_measured_cells(pruned):
    """With `pruned` (the default) the memory holds the cells as measured and the screened
    rows are measured cells not yet remembered; without it, the archs as drawn."""
    config = PVLLConfig(enabled=True, explore=0.0, pool=8, min_observations=10, pruned=pruned)
    plugin = PVLLPlugin(config, N_OPTIONS, 1, 0, cells=_dead_second)
    archs = _random_archs(np.random.default_rng(2), 60)
    archs[:30, 0] = 0  # half of them with a dead choice 1
    archs[:30, 1] = 1 + np.arange(30) % 4
    core = MultiASNG(N_OPTIONS, 1, coefficients=[0.0], n_per_dist=6)
    plugin.observe(archs, _additive(archs), np.zeros(len(archs)), core)
    memory, _ = plugin.memory
    np.testing.assert_array_equal(memory, _dead_second(archs) if pruned else archs)
    out = plugin.propose(np.random.default_rng(3), core, core.ask(np.random.default_rng(3)))
    remembered = {tuple(a) for a in _dead_second(archs).tolist()}
    cells = _dead_second(out)
    if pruned:
        np.testing.assert_array_equal(out, cells)
        assert not any(tuple(c) in remembered for c in cells.tolist())
        assert len(np.unique(cells, axis=0)) == len(cells)
    # Switched off, the plug-in ignores the cells it was given.
    assert (plugin._cells is None) == (not pruned)


def test_moves_of_a_pruned_cell_check_only_the_choice_they_change():
    """A distribution that removed option 0 of choice 1 still gets moves off a measured cell
    whose dead choice 1 reads 0; no move sets a removed option."""
    plugin = PVLLPlugin(PVLLConfig(), N_OPTIONS, 1, 0, cells=_dead_second)
    allowed = np.ones((len(N_OPTIONS), max(N_OPTIONS)), dtype=bool)
    allowed[1, 0] = False
    allowed[2, 3] = False
    base = np.array([[0, 0, 1, 1, 1, 1]])
    moves = plugin._moves(base, allowed)
    assert len(moves) > 0
    assert not (moves[:, 2] == 3).any()
    np.testing.assert_array_equal(moves, _dead_second(moves))
    # On archs as drawn every choice must be allowed: only the moves off choice 1's 0 remain.
    raw = PVLLPlugin(PVLLConfig(pruned=False), N_OPTIONS, 1, 0, cells=_dead_second)
    raw_moves = raw._moves(base, allowed)
    assert len(raw_moves) == N_OPTIONS[1] - 1 and (raw_moves[:, 1] != 0).all()


def test_moves_never_keep_a_removed_option_of_the_base():
    """The incumbent a move starts from may use an option the distribution removed since
    (it predates the removal, or another distribution found it): a move that leaves that
    choice alone is no cell the distribution can draw, and is not screened. Where pruning
    writes the removed option (a dead choice), it may stand."""
    plugin = PVLLPlugin(PVLLConfig(), N_OPTIONS, 1, 0, cells=_dead_second)
    allowed = np.ones((len(N_OPTIONS), max(N_OPTIONS)), dtype=bool)
    allowed[2, 3] = False
    allowed[1, 0] = False
    moves = plugin._moves(np.array([[1, 2, 3, 1, 1, 1]]), allowed)
    # Only the moves of choice 2 itself, to an allowed option, remain.
    assert len(moves) == N_OPTIONS[2] - 1 and (moves[:, 2] != 3).all()
    assert (moves[:, [0, 1, 3, 4, 5]] == [1, 2, 1, 1, 1]).all()
    # Off a cell whose choice 1 is dead (reads 0), a move that revives choice 1 would keep
    # the removed 0 there, live: refused; the moves that keep it dead stay.
    moves = plugin._moves(np.array([[0, 0, 1, 1, 1, 1]]), allowed)
    live = moves[:, 0] != 0
    assert not (live & (moves[:, 1] == 0)).any() and (~live).any()
    assert ((moves[:, 1] != 0) | ~live).all()
    # As do children (crossover) of such parents.
    plugin.add(np.array([[1, 2, 3, 1, 1, 1], [1, 3, 2, 2, 2, 2]]), np.array([0.1, 0.2]))
    kids = plugin._children(np.random.default_rng(1), 0, 200, allowed)
    assert len(kids) > 0 and not (kids[:, 2] == 3).any()


def test_front_samples_rank_candidates_by_the_predictor():
    config = PVLLConfig(enabled=True, explore=0.25, pool=16, min_observations=10)
    plugin = _fitted_plugin(config)
    core = MultiASNG(N_OPTIONS, 3, coefficients=[0.0, 0.1, 0.2], n_per_dist=4)
    rng = np.random.default_rng(8)
    out = plugin.front_samples(rng, core, 8)
    assert out.shape == (24, len(N_OPTIONS)) and out.dtype == np.int64
    kept = np.concatenate([out[k * 8:k * 8 + 6] for k in range(3)])  # 8 - round(0.25 * 8)
    drawn, _ = core.stack.sample(rng, 8)
    assert _additive(kept).mean() < _additive(drawn).mean() - 0.5
    # Each distribution's kept candidates are distinct.
    for k in range(3):
        assert len(np.unique(out[k * 8:k * 8 + 6], axis=0)) == 6
    # Not fitted yet: plain draws from each distribution.
    fresh = PVLLPlugin(config, N_OPTIONS, 3, 0)
    assert fresh.front_samples(np.random.default_rng(0), core, 5).shape == (15, len(N_OPTIONS))


def test_screening_off_before_fit_and_tell_all():
    plugin = PVLLPlugin(PVLLConfig(enabled=True, tell="all"), N_OPTIONS, 2, 0)
    core = MultiASNG(N_OPTIONS, 2, budgets=[1.0, 2.0], n_per_dist=2)
    rng = np.random.default_rng(6)
    asked = core.ask(rng)
    np.testing.assert_array_equal(plugin.propose(rng, core, asked), asked)
    assert plugin.tell_mask(4).all()


def test_screening_respects_budget_with_cost():
    config = PVLLConfig(enabled=True, explore=0.0, pool=64, min_observations=10)
    plugin = _fitted_plugin(config, K=2)
    cost_of = lambda a: a.sum(axis=1).astype(float)  # noqa: E731
    plugin.set_objective(cost_of, budgets=np.array([4.0, 30.0]))
    core = MultiASNG(N_OPTIONS, 2, budgets=[4.0, 30.0], n_per_dist=8)
    rng = np.random.default_rng(7)
    out = plugin.propose(rng, core, core.ask(rng))
    assert np.mean(cost_of(out[:8]) <= 4.0) > np.mean(cost_of(core.ask(rng)[:8]) <= 4.0)


def test_importance_is_normalised():
    plugin = _fitted_plugin(PVLLConfig(enabled=True, min_observations=10))
    core = MultiASNG(N_OPTIONS, 3, coefficients=[0.0, 0.1, 0.2])
    d = plugin.importance(core)
    assert d.shape == (3, len(N_OPTIONS))
    np.testing.assert_allclose(d.sum(axis=1), 1.0)
    assert np.all(d >= 0)


def _run(steps: int, config: PVLLConfig, seed: int, state=None, rngs=None,
         n_options=N_OPTIONS, coefficients=(0.0, 0.5, 1.0), loss=None):
    """A plug-in MultiASNG run (the additive toy by default); returns (history, core, plugin,
    rng)."""
    loss = _additive if loss is None else loss
    k = len(coefficients)
    core = MultiASNG(n_options, k, coefficients=list(coefficients), n_per_dist=2, cost_max=30.0)
    plugin = PVLLPlugin(config, n_options, k, seed)
    rng = np.random.default_rng(seed)
    if state is not None:
        core.load_state_dict(state[0])
        plugin.load_state_dict(state[1])
        rng.bit_generator.state = state[2]
    history = []
    for _ in range(steps):
        archs = plugin.propose(rng, core, core.ask(rng))
        losses, costs = loss(archs), archs.sum(axis=1).astype(float)
        told = plugin.tell_mask(len(archs))
        if told.sum() >= 2:
            core.tell(archs[told], losses[told], costs[told])
        plugin.observe(archs, losses, costs, core)
        history.append(archs)
    return np.concatenate(history), core, plugin, rng


CONFIG = PVLLConfig(enabled=True, min_observations=12, refit_every=6, pool=8)


def test_plugin_run_is_deterministic_for_a_seed():
    a, core_a, _, _ = _run(40, CONFIG, 11)
    b, core_b, _, _ = _run(40, CONFIG, 11)
    c, _, _, _ = _run(40, CONFIG, 12)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(core_a.thetas, core_b.thetas)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("features", ["onehot", "pairs"])
def test_state_save_load_resumes_identically(features):
    config = dataclasses.replace(CONFIG, features=features)
    full, core_full, _, _ = _run(30, config, 13)
    first, core, plugin, rng = _run(17, config, 13)
    state = (core.state_dict(), plugin.state_dict(), rng.bit_generator.state)
    rest, core_rest, _, _ = _run(13, config, 13, state=state)
    np.testing.assert_array_equal(np.concatenate([first, rest]), full)
    np.testing.assert_array_equal(core_rest.thetas, core_full.thetas)


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match=r"^search.pvll.explore=1.5: use 0 <= explore <= 1$"):
        PVLLConfig(explore=1.5)
    with pytest.raises(ConfigError, match="screen='hv'.*'front'"):
        PVLLConfig(screen="hv")
    with pytest.raises(ConfigError, match=r"search.pvll.tell='some': use 'unscreened' or 'all'"):
        PVLLConfig(tell="some")
    with pytest.raises(ConfigError, match=r"search.pvll.memory=1: use memory >= 2"):
        PVLLConfig(memory=1)
    with pytest.raises(ConfigError, match="features='graph'.*'gae'"):
        PVLLConfig(features="graph")
    with pytest.raises(ConfigError, match="predictor='gp'.*'kernel'"):
        PVLLConfig(predictor="gp")
    with pytest.raises(ConfigError, match="ridge=0"):
        PVLLConfig(ridge=0)
    with pytest.raises(ConfigError, match="neighbours='yes'"):
        PVLLConfig(neighbours="yes")
    with pytest.raises(ConfigError, match="crossover=-1: use >= 0"):
        PVLLConfig(crossover=-1)
    with pytest.raises(ConfigError, match="parents=1: use >= 2"):
        PVLLConfig(parents=1)
    for damp in (-1.0, float("nan"), float("inf")):  # NaN made every screened row one cell
        with pytest.raises(ConfigError, match="search.pvll.damp="):
            PVLLConfig(damp=damp)
    assert PVLLConfig().l2 == 1.0 and PVLLConfig(predictor="kernel").l2 == 0.1
    assert PVLLConfig(predictor="kernel", ridge=2.0).l2 == 2.0


def _interaction(archs: np.ndarray) -> np.ndarray:
    """A toy loss with an interaction of two choices no additive model can fit, (n,)."""
    pair = np.random.default_rng(1).normal(size=(N_OPTIONS[0], N_OPTIONS[1]))
    return 0.3 * _additive(archs) + 2.0 * pair[archs[:, 0], archs[:, 1]]


def test_kernel_predictor_fits_interactions_better_than_ridge():
    rng = np.random.default_rng(8)
    train, test = _random_archs(rng, 300), _random_archs(rng, 500)
    taus = {}
    for cls in (RidgePredictor, KernelPredictor):
        model = cls(N_OPTIONS, "onehot", 0.1)
        model.fit(train, _interaction(train))
        taus[cls] = kendalltau(model.predict(test), _interaction(test)).statistic
        assert model.option_weights().shape == (len(N_OPTIONS), max(N_OPTIONS))
    assert taus[KernelPredictor] > taus[RidgePredictor] + 0.05


@pytest.mark.parametrize("n", [40, 300])
def test_pairs_dual_is_the_explicit_pairs_ridge(n):
    """features=pairs builds the dual form: same predictions and one-hot weights as ridge on the
    explicit one-hot + pairs encoding, with repeated architectures in the memory too."""
    rng = np.random.default_rng(12)
    train = _random_archs(rng, n)
    train[n // 2:n // 2 + 10] = train[:10]
    losses = _interaction(train) + rng.normal(scale=0.1, size=n)
    model = make_predictor(PVLLConfig(features="pairs"), N_OPTIONS)
    assert isinstance(model, PairsRidgePredictor) and not model.fitted
    explicit = RidgePredictor(N_OPTIONS, "pairs", model.ridge)
    model.fit(train, losses)
    explicit.fit(train, losses)
    test = _random_archs(rng, 200)
    np.testing.assert_allclose(model.predict(test), explicit.predict(test), atol=1e-9)
    np.testing.assert_allclose(model.option_weights(), explicit.option_weights(), atol=1e-9)
    # Better than one-hot on a target with an interaction (what the pairs are for).
    onehot = RidgePredictor(N_OPTIONS, "onehot", model.ridge)
    onehot.fit(train, losses)
    truth = _interaction(test)
    assert (kendalltau(model.predict(test), truth).statistic
            > kendalltau(onehot.predict(test), truth).statistic + 0.05)


def test_pairs_state_round_trip_predicts_identically():
    rng = np.random.default_rng(13)
    train = _random_archs(rng, 60)
    model = PairsRidgePredictor(N_OPTIONS, 1.0)
    fresh = PairsRidgePredictor(N_OPTIONS, 1.0)
    fresh.load_state_dict(model.state_dict())  # unfitted round trip
    assert not fresh.fitted
    model.fit(train, _interaction(train))
    fresh.load_state_dict(model.state_dict())
    test = _random_archs(rng, 50)
    np.testing.assert_array_equal(fresh.predict(test), model.predict(test))
    with pytest.raises(RuntimeError, match="not fitted"):
        PairsRidgePredictor(N_OPTIONS).predict(test)


def test_partial_dependence_matches_ridge_coefficients_on_one_hot():
    """The kernel's additive part, on an additive target, orders options like ridge's."""
    train = _random_archs(np.random.default_rng(9), 400)
    ridge, kernel = RidgePredictor(N_OPTIONS, ridge=0.1), KernelPredictor(N_OPTIONS, "onehot")
    for model in (ridge, kernel):
        model.fit(train, _additive(train))
    a, b = ridge.option_weights(), kernel.option_weights()
    for d, n in enumerate(N_OPTIONS):
        assert kendalltau(a[d, :n], b[d, :n]).statistic > 0.6


# ------------------------------------------------------------------- graph-autoencoder features
NB201_OPTIONS = (5,) * 6


@pytest.fixture(scope="module")
def _short_gae():
    return gae.train_encoder(gae.nb201_graph(), gae.GAEConfig(epochs=2), seed=0)


@pytest.fixture
def fast_gae(monkeypatch, _short_gae):
    """A 2-epoch autoencoder in place of the default one (~20 s), for the plug-in's plumbing."""
    monkeypatch.setattr(gae, "cached_encoder", lambda graph: _short_gae)
    return _short_gae


def _nb201_loss(archs: np.ndarray) -> np.ndarray:
    """Toy NB201 loss: fewer convolutions on live paths is worse, (n,)."""
    adj, node = gae.arch_graphs(archs, gae.nb201_graph())
    return -(node >= 2).sum(axis=1) + 0.1 * _additive_nb201(archs)


def _additive_nb201(archs: np.ndarray) -> np.ndarray:
    table = np.random.default_rng(0).normal(size=(6, 5))
    return table[np.arange(6)[None, :], archs].sum(axis=1)


@pytest.mark.parametrize("predictor", ["ridge", "kernel"])
def test_gae_features_predict_nb201_toy(fast_gae, predictor):
    rng = np.random.default_rng(10)
    train, test = rng.integers(0, 5, (100, 6)), rng.integers(0, 5, (500, 6))
    x = encode(train, NB201_OPTIONS, "gae")
    assert x.shape == (100, fast_gae.dim)
    model = make_predictor(PVLLConfig(features="gae", predictor=predictor), NB201_OPTIONS)
    assert model.features == "gae"
    model.fit(train, _nb201_loss(train))
    assert kendalltau(model.predict(test), _nb201_loss(test)).statistic > 0.5
    weights = model.option_weights()
    assert weights.shape == (6, 5) and np.all(np.isfinite(weights))


def test_gae_falls_back_to_one_hot_without_a_graph(caplog):
    with caplog.at_level("WARNING", logger="moonas.plugins.pvll"):
        plugin = PVLLPlugin(PVLLConfig(enabled=True, features="gae"), N_OPTIONS, 2, 0)
    assert plugin.predictor.features == "onehot"
    assert "no cell graph" in caplog.text and "one-hot" in caplog.text
    with pytest.raises(ConfigError, match="features='onehot'"):
        encode(_random_archs(np.random.default_rng(0), 3), N_OPTIONS, "gae")


def test_gae_kernel_plugin_resumes_identically(fast_gae):
    config = PVLLConfig(enabled=True, min_observations=12, refit_every=6, pool=8,
                        features="gae", predictor="kernel", damp=1.0)

    def run(steps, state=None):
        history, core, plugin, rng = _run(steps, config, 3, state, n_options=NB201_OPTIONS,
                                          coefficients=(0.0, 1.0), loss=_nb201_loss)
        return history, (core.state_dict(), plugin.state_dict(), rng.bit_generator.state), plugin

    full, _, plugin = run(20)
    assert plugin.n_fits > 0
    first, state, _ = run(11)
    rest, _, _ = run(9, state)
    np.testing.assert_array_equal(np.concatenate([first, rest]), full)


def test_legacy_ridge_state_loads():
    # Legacy states come from the one-hot ridge (the default before pairs).
    config = PVLLConfig(enabled=True, min_observations=10, features="onehot")
    plugin = _fitted_plugin(config)
    state = plugin.state_dict()
    legacy = {k: v for k, v in state.items() if k != "predictor"}
    legacy.update({k: state["predictor"][k] for k in ("coef", "intercept", "scale")})
    other = PVLLPlugin(config, N_OPTIONS, 3, 0)
    other.load_state_dict(legacy)
    archs = _random_archs(np.random.default_rng(11), 20)
    np.testing.assert_array_equal(other.predict(archs), plugin.predict(archs))


def test_on_by_default_for_multi_asng_and_never_in_plain_asng() -> None:
    from moonas.config import load_config
    from moonas.search.objective import Objective
    from moonas.search.strategies import build_strategy

    search = load_config(None).search
    assert search.pvll.enabled and search.pvll.neighbours and not search.eoi.enabled
    price = lambda archs: np.asarray(archs, dtype=np.float64).sum(axis=1)  # noqa: E731
    joint = build_strategy("multi-asng", (5,) * 6, Objective("params", (4.0, 8.0), None, 0.0,
                                                              24.0), search, price=price)
    plain = build_strategy("asng", (5,) * 6, Objective("params", (8.0,), None, 0.0, 24.0),
                           load_config(None, ["search.eoi.enabled=true"]).search, price=price)
    assert joint.pvll is not None
    assert plain.pvll is None and plain.plugins == [] and plain.angle is None


def test_smoothed_scores_discount_an_inflated_score_and_blend_with_the_fit():
    from moonas.plugins.predictors import smoothed_scores

    rng = np.random.default_rng(0)
    n_options = (4, 4, 4, 4)
    archs = np.unique(rng.integers(0, 4, size=(200, 4)), axis=0)
    effect = rng.normal(size=(4, 4))
    scores = effect[np.arange(4), archs].sum(axis=1)
    best = int(np.argmax(scores))
    lucky = int(np.argsort(scores)[len(scores) // 2])  # a middling arch, measured far too high
    scores[lucky] = scores[best] + 0.01
    smooth = smoothed_scores(archs, scores, n_options, weight=0.1, ridge=1.0)
    assert np.argmax(scores) == lucky and np.argmax(smooth) == best
    # Exactly the blend of the scores with a pairs ridge fitted on them.
    model = PairsRidgePredictor(n_options, ridge=1.0)
    model.fit(archs, scores)
    np.testing.assert_allclose(smooth, 0.9 * scores + 0.1 * model.predict(archs))
    np.testing.assert_array_equal(smoothed_scores(archs, scores, n_options, weight=0.0), scores)
    np.testing.assert_array_equal(smoothed_scores(archs[:2], scores[:2], n_options), scores[:2])
    with pytest.raises(ConfigError, match=r"weight must be in \[0, 1\]"):
        smoothed_scores(archs, scores, n_options, weight=1.5)
    with pytest.raises(ConfigError, match="ridge must be > 0"):
        smoothed_scores(archs, scores, n_options, ridge=0.0)
