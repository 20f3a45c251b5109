"""tools/bench_pvll.py: Kendall tau of the PVLL predictors on the NAS-Bench-201 table."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import NB201_CSV

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import bench_pvll as bp  # noqa: E402

from moonas.bench.table import load_problem  # noqa: E402


@pytest.fixture(scope="module")
def problem():
    return load_problem(NB201_CSV, "c10", "params")


def test_measured_rows_are_the_distinct_pruned_cells(problem):
    rows = bp.measured_rows(problem)
    assert len(np.unique(rows)) == len(rows) < problem.size
    cells = problem.arch(rows)
    # Each is its own pruned cell, and pruning any architecture lands on one of them.
    assert (problem.prune(cells, "dead") == cells).all()
    some = problem.arch(np.random.default_rng(0).integers(0, problem.size, 200))
    assert np.isin(problem.index(problem.prune(some, "dead")), rows).all()


class PermutedLosses:
    """A predictor fitted on the losses in a shuffled order: a control that must not rank."""

    def __init__(self, model) -> None:
        self.model = model

    def fit(self, archs, losses):
        self.model.fit(archs, np.random.default_rng(1).permutation(losses))

    def predict(self, archs):
        return self.model.predict(archs)


def test_the_default_predictor_ranks_held_out_cells_and_a_shuffled_fit_does_not(problem):
    default = next(iter(bp.PRODUCT))
    scores = bp.uniform_scores(problem, [0], 400, labels=[default], with_references=False,
                               observations=(100,))
    assert set(scores) == {default}
    (tau, miss), = scores[default][100]
    assert tau > 0.25 and miss >= 0.0
    # The same model fitted on losses that belong to other cells learns nothing.
    pool = bp.measured_rows(problem)
    order = np.random.default_rng(0).permutation(pool)
    budgets = bp.budget_percentiles(np.asarray(problem.cost))
    shuffled = PermutedLosses(bp.make_predictor(bp.PRODUCT[default], problem.n_options))
    control, control_miss = bp.assess(shuffled, problem, order[:100], order[-400:],
                                      np.sort(order[100:]), budgets)
    assert abs(control) < 0.2 and control < tau - 0.2
    assert control_miss > miss


class Oracle:
    """Predicts the true loss: tau 1 and nothing missed."""

    def __init__(self, problem) -> None:
        self.problem = problem

    def fit(self, archs, losses):
        pass

    def predict(self, archs):
        return 1.0 - np.asarray(self.problem.signal)[self.problem.index(archs)] / 100.0


def test_the_miss_is_zero_for_an_oracle_and_counts_only_unseen_cells_within_each_budget(problem):
    pool = bp.measured_rows(problem)
    cost, acc = np.asarray(problem.cost), np.asarray(problem.signal)
    test = pool[:300]
    tau, miss = bp.assess(Oracle(problem), problem, pool[:5], test, pool, [cost.max()])
    assert tau == pytest.approx(1.0, abs=0.02) and miss == 0.0
    # A model that ranks by cost (cheapest first) misses, at a budget, the best cell minus the
    # best of the 10 cheapest; seen cells (the best one among them) are not candidates.
    budget = float(np.median(cost[pool]))
    within = pool[cost[pool] <= budget]
    best = within[np.argmax(acc[within])]
    unseen = np.setdiff1d(pool, [best])

    class Cheapest(Oracle):
        def predict(self, archs):
            return np.asarray(self.problem.cost)[self.problem.index(archs)]

    _, missed = bp.assess(Cheapest(problem), problem, pool[:5], test, unseen, [budget], top=10)
    rows = unseen[cost[unseen] <= budget]
    cheapest = rows[np.argsort(cost[rows], kind="stable")[:10]]
    assert missed == pytest.approx(acc[rows].max() - acc[cheapest].max())
    assert acc[rows].max() < acc[best]


def test_search_scores_hold_out_cells_the_run_did_not_evaluate(problem):
    default = next(iter(bp.PRODUCT))
    seen = []

    def spy(model, problem_, train, test, unseen, budgets):
        seen.append((train, test, unseen))
        return bp.assess(model, problem_, train, test, unseen, budgets)

    scores = bp.search_scores(problem, [7], 300, labels=[default], observations=(20, 40),
                              score=spy)
    assert len(scores[default][20]) == len(scores[default][40]) == 1
    (train20, test, unseen20), (train40, test40, unseen40) = seen
    assert len(train20) == 20 and len(train40) == 40 and (train40[:20] == train20).all()
    assert len(test) == 300 and (test == test40).all()
    assert not np.isin(test, train40).any()
    assert np.isin(test, bp.measured_rows(problem)).all()
    assert not np.isin(unseen40, train40).any() and np.isin(train40[20:], unseen20).all()


def test_a_missing_table_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="no such file"):
        bp.main(["--table", str(tmp_path / "nope.csv")])
