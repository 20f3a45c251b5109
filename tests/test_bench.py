"""The NAS-Bench-201 harness: loader, HV and regret on hand cases, the true front, a quick run."""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from moonas.bench.harness import STRATEGY_NAMES, BenchJob, run_bench
from moonas.bench.runners import RunOptions, TableEvaluator, run_strategy, search_config
from moonas.bench.scoring import (REFERENCE, build_scorer, budget_percentiles, front_2d, picks,
                                  returned_set, signal_regret)
from moonas.bench.table import BenchProblem, load_problem, load_table
from moonas.errors import ConfigError, DataError, MoonasError
from moonas.pareto import hypervolume, non_dominated, normalise
from moonas.spaces import ArchError, NB201Space

from conftest import NB201_CSV


@pytest.fixture(scope="module")
def table():
    assert NB201_CSV.is_file(), f"NAS-Bench-201 table expected at {NB201_CSV}"
    return load_table(NB201_CSV)


def _hand_problem() -> BenchProblem:
    """Four archs (2 x 2 options), costs 1..4, test accuracy 60/80/70/90.

    Normalised (error, cost): (1, 0), (1/3, 1/3), (2/3, 2/3) (dominated), (0, 1).
    """
    return BenchProblem(
        dataset="c10", cost_name="params", cost_unit="M params", n_options=(2, 2),
        signal=np.array([50.0, 45.0, 60.0, 70.0]), score=np.array([60.0, 80.0, 70.0, 90.0]),
        cost=np.array([1.0, 2.0, 3.0, 4.0]), arch_strs=("a", "b", "c", "d"),
    )


def _sweep_hv(points: np.ndarray, ref: float) -> float:
    """2-D hypervolume by a sweep, independent of pymoo (minimised, reference `ref`)."""
    points = points[np.all(points < ref, axis=1)]
    points = points[np.argsort(points[:, 0])]
    area, best_y = 0.0, ref
    for i, (x, y) in enumerate(points):
        nxt = points[i + 1, 0] if i + 1 < len(points) else ref
        best_y = min(best_y, y)
        area += (nxt - x) * (ref - best_y)
    return area


# ------------------------------------------------------------------------------ hypervolume
def test_hypervolume_hand_cases() -> None:
    problem = _hand_problem()
    scorer = build_scorer(problem, budgets=(2.5, 4.0))
    assert scorer.true_front.tolist() == [0, 1, 3]
    # (0,1): 1/3 * 0.1; (1/3,1/3): 2/3 * (1.1 - 1/3); (1,0): 0.1 * 1.1
    expected = 1 / 30 + (2 / 3) * (1.1 - 1 / 3) + 0.11
    assert scorer.true_hv == pytest.approx(expected, abs=1e-12)
    assert scorer.hv(np.array([1])) == pytest.approx((1.1 - 1 / 3) ** 2)
    # The dominated arch adds nothing; the ideal point alone is 1.1^2.
    assert scorer.hv(np.array([0, 1, 2, 3])) == pytest.approx(expected)
    assert hypervolume(np.array([[0.0, 0.0]]), REFERENCE) == pytest.approx(1.21)
    assert scorer.hv_ratio(np.array([0, 1, 3])) == pytest.approx(1.0)
    assert scorer.hv(np.array([], dtype=np.int64)) == 0.0


def test_hypervolume_against_pymoo_and_a_sweep() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        points = rng.random((30, 2)) * 1.2  # some beyond the reference point
        assert hypervolume(points, REFERENCE) == pytest.approx(_sweep_hv(points, REFERENCE))


def test_front_2d_matches_the_general_filter() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        points = rng.integers(0, 6, size=(40, 2)).astype(float)  # many ties and duplicates
        fast = np.zeros(len(points), dtype=bool)
        fast[front_2d(points[:, 0], points[:, 1])] = True
        assert np.array_equal(fast, non_dominated(points))


# ----------------------------------------------------------------------------- the table
def test_loader_matches_known_values(table) -> None:
    problem = table.problem("c10", "params")
    assert problem.size == 15_625
    assert problem.score.max() == pytest.approx(94.373333)
    assert 6111 in table.official_index[problem.score == problem.score.max()]
    assert problem.cost.min() == pytest.approx(0.073306)
    assert problem.cost.max() == pytest.approx(1.531546)
    macs = table.problem("c10", "macs").cost
    assert (macs.min(), macs.max()) == pytest.approx((7.78305, 220.11969))
    # Rows are in mixed-radix order of the arch, and strings round-trip.
    rows = np.array([0, 1, 4, 5, 15_624])
    assert np.array_equal(problem.index(problem.arch(rows)), rows)
    assert table.archs[5].tolist() == [0, 0, 0, 0, 1, 0]
    assert {"raspi4", "pixel3", "fpga", "eyeriss", "titan_rtx_1"} <= set(table.devices)
    assert table.problem("c10", "latency:raspi4").cost_unit == "ms"


def test_true_front_of_the_table(table) -> None:
    problem = table.problem("c10", "params")
    scorer = build_scorer(problem)
    points = np.stack([100 - problem.score, problem.cost], axis=1)
    assert set(scorer.true_front.tolist()) == set(np.flatnonzero(non_dominated(points)).tolist())
    assert problem.score[scorer.true_front].max() == pytest.approx(94.373333)
    assert problem.cost[scorer.true_front].min() == pytest.approx(0.073306)
    normalised = normalise(points[scorer.true_front], scorer.low, scorer.high)
    assert scorer.true_hv == pytest.approx(hypervolume(normalised, REFERENCE))
    # Everything evaluated, scored: the ceiling set by the 12-epoch signal, recomputed here
    # from the table's columns without moonas' fronts, picks or hypervolume.
    rows = np.arange(problem.size)
    hv_ratio, regret = _exhaustive_ceiling(problem.signal, problem.score, problem.cost)
    assert scorer.hv_ratio(returned_set(rows, problem.signal, problem.cost)) == pytest.approx(
        hv_ratio, abs=1e-9)
    got = scorer.regret(picks(rows, problem.signal, problem.cost, scorer.budgets)).mean()
    assert got == pytest.approx(regret, abs=1e-9)
    # Regression anchors, not derivations: issue #4's figures (README: exhaustive loses 0.369).
    assert hv_ratio == pytest.approx(0.9988, abs=5e-5) and regret == pytest.approx(0.369, abs=5e-4)
    assert scorer.budgets == pytest.approx(np.percentile(problem.cost, [10, 25, 50, 75, 90]))


def _exhaustive_ceiling(signal: np.ndarray, score: np.ndarray, cost: np.ndarray
                        ) -> tuple[float, float]:
    """HV ratio and mean regret of evaluating every arch, by hand: the set returned is the
    archs no other beats on (12-epoch signal, cost); each budget's pick the best signal under
    it (ties: the lowest row), its regret the best test score under it minus the pick's."""
    # Non-dominated on (max signal, min cost): the best signal of its cost, and strictly
    # better than every cheaper arch's.
    costs, group = np.unique(cost, return_inverse=True)
    best_of_cost = np.full(len(costs), -np.inf)
    np.maximum.at(best_of_cost, group, signal)
    cheaper_best = np.concatenate([[-np.inf], np.maximum.accumulate(best_of_cost)[:-1]])
    returned = (signal == best_of_cost[group]) & (signal > cheaper_best[group])
    error = 100 - score
    scaled = np.stack([(error - error.min()) / np.ptp(error), (cost - cost.min()) / np.ptp(cost)],
                      axis=1)
    hv_ratio = _sweep_hv(scaled[returned], REFERENCE) / _sweep_hv(scaled, REFERENCE)
    regrets = []
    for budget in np.percentile(cost, [10, 25, 50, 75, 90]):
        feasible = np.flatnonzero(cost <= budget)
        pick = feasible[np.argmax(signal[feasible])]
        regrets.append(score[feasible].max() - score[pick])
    return float(hv_ratio), float(np.mean(regrets))


def test_regret_on_a_hand_made_table() -> None:
    problem = _hand_problem()
    scorer = build_scorer(problem, budgets=(2.5, 4.0))
    assert scorer.best.tolist() == [80.0, 90.0]
    assert scorer.worst.tolist() == [60.0, 60.0]
    # Arch 0 has the better 12-epoch signal under 2.5 (50 > 45) but is 20 points worse.
    picked = picks(np.array([0, 1, 3]), problem.signal, problem.cost, scorer.budgets)
    assert picked.tolist() == [0, 3]
    assert scorer.regret(picked).tolist() == [20.0, 0.0]
    # The search found the best signal under both budgets: no signal regret, though 20 points
    # of regret (the signal's noise).
    signal_args = (problem.signal, problem.cost, scorer.budgets)
    assert signal_regret(picked, *signal_args).tolist() == [0.0, 0.0]
    assert signal_regret(np.array([1, 1]), *signal_args).tolist() == [5.0, 25.0]
    # Nothing feasible evaluated for a budget: scored as the worst feasible arch.
    picked = picks(np.array([3]), problem.signal, problem.cost, scorer.budgets)
    assert picked.tolist() == [-1, 3]
    assert scorer.regret(picked).tolist() == [20.0, 0.0]
    assert signal_regret(picked, *signal_args).tolist() == [5.0, 0.0]  # as the worst feasible
    assert returned_set(np.array([0, 1, 2, 3]), problem.signal, problem.cost).tolist() == [0, 2, 3]


def _write_csv(path: Path, drop: str) -> None:
    with NB201_CSV.open(newline="") as src, path.open("w", newline="") as dst:
        reader = csv.DictReader(src)
        fields = [f for f in reader.fieldnames if f != drop]
        writer = csv.DictWriter(dst, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(reader)


def test_loader_errors(tmp_path: Path, table) -> None:
    lacking = tmp_path / "lacking.csv"
    _write_csv(lacking, drop="c10_test_200ep")
    short = tmp_path / "short.csv"
    short.write_text("index,arch_str\n0,|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n")
    for call, error, message in (
            (lambda: load_table(tmp_path / "missing.csv"), DataError, "not found: pass --table"),
            (lambda: load_problem(lacking, "c10", "params"), DataError,
             "lacks column 'c10_test_200ep' needed for --dataset c10"),
            (lambda: table.problem("c11", "params"), ConfigError,
             "unknown dataset 'c11'.*valid: c10, c100, in16"),
            (lambda: table.problem("c10", "latency:raspi5"), ConfigError,
             "unknown latency device 'raspi5'.*valid: .*raspi4"),
            (lambda: table.problem("c10", "flops"), ConfigError,
             "unknown cost 'flops'.*params, macs, latency:DEVICE"),
            (lambda: load_table(short), DataError, "has 1 architectures")):
        with pytest.raises(error, match=message) as info:
            call()
        assert "\n" not in str(info.value), str(info.value)  # each refusal is one line
    load_problem(lacking, "c100", "params")  # other datasets still load


# --------------------------------------------------------------------------- the runners
def test_evaluator_counts_distinct_archs_in_order(table) -> None:
    problem = table.problem("c10", "params")
    evaluator = TableEvaluator(problem, prune="keep")
    archs = problem.arch(np.array([7, 3, 7, 9]))
    losses, costs = evaluator(archs)
    evaluator(problem.arch(np.array([3, 11])))
    assert evaluator.n_distinct == 4
    assert evaluator.part()[0].tolist() == [7, 3, 9, 11]
    assert losses[0] == losses[2] == pytest.approx(1 - problem.signal[7] / 100)
    assert costs.tolist() == problem.cost[[7, 3, 7, 9]].tolist()


def _iso_rows(table) -> np.ndarray:
    """Per row, the row of its NAS-Bench-201 isomorphism class representative."""
    row_of = np.empty(table.size, dtype=np.int64)
    row_of[table.official_index] = np.arange(table.size)
    return row_of[table.columns["iso_rep_index"].astype(np.int64)]


def test_pruning_levels_on_every_cell(table) -> None:
    problem = table.problem("c10", "params")
    rows = np.arange(table.size)
    params, macs = table.columns["params_MB_c10"], table.columns["flops_M_c10"]
    iso = _iso_rows(table)
    pruned = {}
    for level in ("keep", "unreachable", "dead"):
        once = problem.prune(table.archs, level)
        assert (problem.prune(once, level) == once).all()  # idempotent
        pruned[level] = problem.index(once)
        assert (params[pruned[level]] <= params).all()
        assert (macs[pruned[level]] <= macs + 1e-9).all()
    assert (pruned["keep"] == rows).all()
    # Unreachable operations never change the cell: the benchmark's own isomorphism agrees.
    assert (iso[pruned["unreachable"]] == iso).all()
    assert (pruned["unreachable"] != rows).sum() > 1000
    # Dead goes further (convolutions that only see zeros), so it merges more cells.
    assert (iso[pruned["dead"]] != iso).any()
    assert len(np.unique(pruned["dead"])) < len(np.unique(pruned["unreachable"])) < table.size
    # Pruning keeps every operation that matters: a cell without dead edges is left alone.
    plain = problem.arch(np.array([table.arch_strs.index(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
        "skip_connect~2|")]))
    assert (problem.prune(plain, "dead") == plain).all()


def test_evaluator_looks_up_pruned_cells(table) -> None:
    problem = table.problem("c10", "params")
    space = NB201Space()
    # Node 1 feeds nothing that reaches the output (edges 2<-1 and 3<-1 are none), so its
    # 3x3 convolution is unreachable; node 2 only sees zeros, so 3<-2's convolution is dead.
    raw = space.from_str("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|"
                         "nor_conv_1x1~2|")
    want = {"unreachable": "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|",
            "dead": "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"}
    for level, text in want.items():
        evaluator = TableEvaluator(problem, prune=level)
        row = problem.index(np.array([space.from_str(text)]))[0]
        losses, costs = evaluator(np.array([raw, space.from_str(text)]))
        assert evaluator.n_distinct == 1 and evaluator.part()[0].tolist() == [row]
        assert costs.tolist() == [problem.cost[row]] * 2
        assert losses[0] == pytest.approx(1 - problem.signal[row] / 100)
    with pytest.raises(ArchError, match="unknown prune level 'all'; valid: keep, unreachable"):
        TableEvaluator(problem, prune="all")
    with pytest.raises(ConfigError, match="--prune 'all' is unknown"):
        BenchJob(table=str(NB201_CSV), out="x", prune="all")


def test_runners_stop_at_the_count_and_use_the_strategy_layer(table) -> None:
    problem = table.problem("c10", "params")
    options = RunOptions(budgets=budget_percentiles(problem.cost))
    for name in ("multi-asng", "asng-separate", "random", "nsga2"):
        trace = run_strategy(name, problem, 60, np.random.default_rng(0), options, (30, 60))
        assert len(trace.rows_at(60)) == 60 and len(trace.rows_at(30)) == 30
        if name.startswith(("multi", "asng")):
            assert trace.modes_at(60).shape == (5, 6)
    full = run_strategy("asng-separate-full", problem, 20, np.random.default_rng(0), options)
    # Five searches of 20 each (a last batch may overshoot; the snapshot takes the first 20).
    assert len(full.parts) == 5 and all(len(rows) >= 20 for rows, _ in full.parts)
    assert 20 < len(full.rows_at(20)) <= 100
    config = search_config(RunOptions((1.0, 2.0), (("coefficients", [0, 0.1]),)), "params")
    assert config.budgets is None and config.coefficients == (0.0, 0.1)
    with pytest.raises(ConfigError, match="unknown search setting 'delta'"):
        search_config(RunOptions((1.0,), (("delta", 1),)), "params")


def test_a_latency_cost_searches_with_the_table_as_its_latency_table(table) -> None:
    """multi-asng and the separate ASNG runs on a measured latency: their search configs name
    the benchmark's table as the latency table (without one the config layer fails with its
    one-line error), and the cells are priced by that device's column."""
    problem = table.problem("c10", "latency:pixel3")
    budgets = budget_percentiles(problem.cost)
    config = search_config(RunOptions(budgets, table=str(NB201_CSV)), "latency:pixel3")
    assert config.latency_table == str(NB201_CSV) and config.cost == "latency:pixel3"
    with pytest.raises(ConfigError, match="needs search.latency_table"):
        search_config(RunOptions(budgets), "latency:pixel3")
    options = RunOptions(budgets=budgets, table=str(NB201_CSV))
    for name in ("multi-asng", "asng-separate", "asng-separate-full"):
        trace = run_strategy(name, problem, 40, np.random.default_rng(0), options, (40,))
        rows = trace.rows_at(40)
        assert len(rows) >= 40
        assert not np.allclose(problem.cost[rows], table.problem("c10", "params").cost[rows])


def test_each_run_seeds_its_plug_ins_from_its_own_generator(table, monkeypatch) -> None:
    """PVLL's generator (which rows stay unscreened) follows the run's seed, and deriving its
    seed leaves the run's own stream where it was."""
    from moonas.bench import runners
    from moonas.bench.harness import strategy_rng

    rng, twin = strategy_rng("multi-asng", 3), strategy_rng("multi-asng", 3)
    seed = runners.plugin_seed(rng)
    assert seed == runners.plugin_seed(twin)
    assert seed != runners.plugin_seed(strategy_rng("multi-asng", 4))
    np.testing.assert_array_equal(rng.random(4), strategy_rng("multi-asng", 3).random(4))

    seen = []
    real = runners._strategy

    def spy(name, problem, search, seed=0):
        strategy = real(name, problem, search, seed)
        seen.append(strategy.pvll.rng.random())
        return strategy

    monkeypatch.setattr(runners, "_strategy", spy)
    problem = table.problem("c10", "params")
    options = RunOptions(budgets=budget_percentiles(problem.cost))
    for s in (3, 3, 4):
        run_strategy("multi-asng", problem, 10, strategy_rng("multi-asng", s), options)
    assert seen[0] == seen[1] != seen[2]


@pytest.mark.parametrize("pruned", [True, False])
def test_multi_asng_proxy_learns_the_cells_the_table_prices(table, monkeypatch, pruned) -> None:
    """The harness hands PVLL the pruning it looks cells up with: with `pvll.pruned` (the
    default) the proxy's memory holds dead-pruned cells; switched off, the archs as drawn
    (some of which carry dead operations)."""
    from moonas.bench import runners

    built = []
    real = runners._strategy

    def spy(name, problem, search, seed=0):
        built.append(real(name, problem, search, seed))
        return built[-1]

    monkeypatch.setattr(runners, "_strategy", spy)
    problem = table.problem("c10", "params")
    options = RunOptions(budgets=budget_percentiles(problem.cost),
                         search=(("pvll.pruned", pruned),))
    run_strategy("multi-asng", problem, 80, np.random.default_rng(0), options)
    memory, _ = built[0].pvll.memory
    dead = (problem.prune(memory, "dead") != memory).any(axis=1)
    assert len(memory) >= 80
    assert not dead.any() if pruned else dead.any()


@pytest.mark.parametrize("argv0, shown", [("/venv/bin/moonas", "moonas"),
                                           ("/repo/moonas/__main__.py", "python -m moonas")])
def test_provenance_names_the_command_as_typed(monkeypatch, argv0, shown) -> None:
    from moonas.bench import harness

    monkeypatch.setattr("sys.argv", [argv0, "bench", "nb201", "--out", "a b"])
    command = harness._provenance(BenchJob(table="t.csv", out="a b"))["command"]
    assert command == f"{shown} bench nb201 --out 'a b'"


# ------------------------------------------------------------------------------ a quick run
QUICK = ("multi-asng", "asng-separate", "nsga2", "optuna-tpe", "random", "exhaustive")


def _quick_job(out: Path, **kw) -> BenchJob:
    return BenchJob(table=str(NB201_CSV), out=str(out), strategies=QUICK, evals=(50, 100),
                    seeds=2, plot_counts=(20,), **kw)


def test_every_strategy_runs_a_latency_job(tmp_path: Path) -> None:
    """`--cost latency:DEVICE` (offered by the CLI) through the whole harness, every strategy
    but the exhaustive one: each gets a row, in the device's unit."""
    strategies = tuple(s for s in STRATEGY_NAMES if s != "exhaustive")
    summary = run_bench(BenchJob(table=str(NB201_CSV), out=str(tmp_path), cost="latency:eyeriss",
                                 strategies=strategies, evals=(30,), seeds=1, plot_counts=(10,)))
    assert {r["strategy"] for r in summary["rows"]} == set(strategies)
    assert summary["cost"] == "latency:eyeriss" and summary["cost_unit"] == "ms"
    assert "latency:eyeriss" in (tmp_path / "summary.md").read_text()


def test_quick_run_writes_every_file_and_a_seed_reproduces(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    first = run_bench(_quick_job(tmp_path / "a"), progress=lambda d, t: calls.append((d, t)))
    n_runs = 2 * (len(QUICK) - 1) + 1
    assert calls[0] == (0, n_runs) and calls[-1] == (n_runs, n_runs)
    for name in ("summary.json", "summary.md", "fronts.jsonl", "anytime.png"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert {(r["strategy"], r["evals"]) for r in summary["rows"]} == {
        *((s, e) for s in QUICK[:-1] for e in (50, 100)), ("exhaustive", 15_625)}
    for row in summary["rows"]:
        hv = row["hv_ratio"]
        assert 0.9 < hv["p25"] <= hv["median"] <= hv["p75"] <= 1
        assert row["regret_mean"] >= 0 and row["wall_s_median"] >= 0
        low, high = row["regret_ci95"]
        assert low <= row["regret_mean"] <= high
        assert row["signal_regret_mean"] >= 0
    text = (tmp_path / "a" / "fronts.jsonl").read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 2 * 2 * (len(QUICK) - 1) + 1
    line = next(x for x in lines if x["strategy"] == "multi-asng" and x["evals"] == 100)
    assert {"strategy", "evals", "seed", "returned", "picks", "modes", "signal_regret"} <= set(line)
    assert len(line["picks"]) == 5 and len(line["modes"]) == 5
    assert all(s.startswith("|") for s in line["returned"])
    page = (tmp_path / "a" / "summary.md").read_text()
    assert "| multi-asng |" in page and "## Mean signal regret" in page
    assert set(summary["provenance"]) == {"command", "machine", "date"}
    assert f"- command: `{summary['provenance']['command']}`" in page
    assert f"- date: {summary['provenance']['date']}" in page
    # The same job again (in two processes) gives the same numbers and fronts.
    second = run_bench(_quick_job(tmp_path / "b", workers=2))
    for r1, r2 in zip(first["rows"], second["rows"]):
        assert (r1["strategy"], r1["evals"]) == (r2["strategy"], r2["evals"])
        assert r1["hv_ratio"] == r2["hv_ratio"] and r1["regret_mean"] == r2["regret_mean"]
    assert text == (tmp_path / "b" / "fronts.jsonl").read_text()


def test_exhaustive_search_has_no_signal_regret_only_the_signals_noise(tmp_path: Path) -> None:
    job = BenchJob(table=str(NB201_CSV), out=str(tmp_path), strategies=("exhaustive",),
                   seeds=1, prune="keep")
    (row,) = run_bench(job)["rows"]
    assert row["signal_regret_mean"] == 0.0
    assert row["regret_mean"] > 0.1  # the 12-epoch signal misleads on some budgets
    # It evaluated everything, so it found the best under every budget: all its regret is the
    # pick's, none the search's.
    assert row["found_regret_mean"] == 0.0 and row["found_regret_per_budget"] == [0.0] * 5


def test_smoothed_picks_rank_by_the_smoothed_signal_and_keep_the_observed_regret(
        tmp_path: Path) -> None:
    from moonas.bench.scoring import pick_signal
    from moonas.plugins.predictors import smoothed_scores

    kw = dict(table=str(NB201_CSV), strategies=("multi-asng", "random"), evals=(100, 300),
              seeds=2, plot_counts=(20,))
    observed = run_bench(BenchJob(out=str(tmp_path / "o"), **kw))
    smoothed = run_bench(BenchJob(out=str(tmp_path / "s"), pick="smoothed", **kw))
    assert smoothed["pick"] == "smoothed" and observed["pick"] == "observed"
    for o, s in zip(observed["rows"], smoothed["rows"]):
        assert o["hv_ratio"] == s["hv_ratio"]  # the same runs: only the picks differ
        assert s["observed_regret_mean"] == pytest.approx(o["regret_mean"])
        assert "observed_regret_mean" not in o
    lines = {name: [json.loads(x) for x in (tmp_path / name / "fronts.jsonl").read_text()
                    .splitlines()] for name in ("o", "s")}
    assert any(a["picks"] != b["picks"] for a, b in zip(lines["o"], lines["s"]))
    assert all(b["observed_regret"] == a["regret"] for a, b in zip(lines["o"], lines["s"]))
    # What the evaluations held does not depend on the pick rule, and no rule beats it.
    assert all(b["found_regret"] == a["found_regret"] for a, b in zip(lines["o"], lines["s"]))
    for line in lines["o"] + lines["s"]:
        assert all(0 <= f <= r + 1e-9 for f, r in zip(line["found_regret"], line["regret"]))
    assert any(line["found_regret"] != line["regret"] for line in lines["s"])
    page = (tmp_path / "s" / "summary.md").read_text()
    assert "with observed picks (--pick observed)" in page and "--pick smoothed" in page
    assert "## Mean found regret" in page
    # The rule itself: the evaluated rows' signal smoothed, every other row as it was.
    problem = load_problem(NB201_CSV, "c10", "params")
    rows = np.arange(0, 3000, 7)
    ranked = pick_signal("smoothed", rows, problem)
    np.testing.assert_allclose(ranked[rows], smoothed_scores(problem.arch(rows),
                                                             problem.signal[rows],
                                                             problem.n_options))
    others = np.setdiff1d(np.arange(problem.size), rows)
    np.testing.assert_array_equal(ranked[others], problem.signal[others])
    assert pick_signal("observed", rows, problem) is problem.signal
    with pytest.raises(ConfigError, match="--pick 'best' is unknown; valid: observed, smoothed"):
        BenchJob(out=str(tmp_path), pick="best", **kw)


def test_each_run_gets_the_blas_threads_asked_for_and_the_same_result(tmp_path: Path,
                                                                      monkeypatch) -> None:
    import threadpoolctl

    import moonas.bench.harness as harness

    seen: list[int] = []
    real = harness.run_strategy

    def spy(*args, **kw):
        seen.append(max(p["num_threads"] for p in threadpoolctl.threadpool_info()
                        if p["user_api"] == "blas"))
        return real(*args, **kw)

    monkeypatch.setattr(harness, "run_strategy", spy)
    jobs = {threads: BenchJob(table=str(NB201_CSV), out=str(tmp_path / str(threads)),
                              strategies=("multi-asng",), evals=(60,), seeds=1,
                              plot_counts=(20,), blas_threads=threads) for threads in (1, None)}
    rows = {threads: run_bench(job)["rows"] for threads, job in jobs.items()}
    assert seen[0] == 1
    assert seen[1] == max(p["num_threads"] for p in threadpoolctl.threadpool_info()
                          if p["user_api"] == "blas")  # left alone
    assert rows[1][0]["regret_mean"] == rows[None][0]["regret_mean"]
    with pytest.raises(ConfigError, match="blas_threads must be >= 1"):
        BenchJob(table=str(NB201_CSV), out=str(tmp_path), blas_threads=0)


def test_plot_anytime_returns_what_it_drew(tmp_path: Path) -> None:
    from moonas.plotting import plot_anytime

    curves = {"a": {"evals": [300, 100], "median": [0.99, 0.98], "p25": [0.985, 0.97],
                    "p75": [0.995, 0.985]}}
    drawn = plot_anytime(curves, tmp_path / "p.png", reference={"ceiling": 0.999})
    assert drawn["lines"][0]["evals"] == [100.0, 300.0]
    assert drawn["lines"][0]["median"] == [0.98, 0.99]
    assert drawn["reference"] == {"ceiling": 0.999}
    assert (tmp_path / "p.png").stat().st_size > 0


def test_cli_register_runs_and_rejects_bad_input(tmp_path: Path, monkeypatch) -> None:
    from moonas.bench.cli import register

    parser = argparse.ArgumentParser(prog="moonas")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "nb201", "--table", str(NB201_CSV), "--strategies",
                              "random", "--evals", "30", "--seeds", "1", "--set", "delta0=0.5",
                              "--out", str(tmp_path / "cli")])
    assert args.func(args) == 0
    assert json.loads((tmp_path / "cli" / "summary.json").read_text())["multi_asng_search"][
        "delta0"] == 0.5
    drawn = []  # -q: no bar is opened
    monkeypatch.setattr("moonas.bench.cli.progress_bar", lambda *a, **k: drawn.append(a))
    args = parser.parse_args(["bench", "nb201", "--table", str(NB201_CSV), "--strategies",
                              "random", "--evals", "30", "--seeds", "1", "-q",
                              "--out", str(tmp_path / "quiet")])
    assert args.func(args) == 0 and not drawn
    assert (tmp_path / "quiet" / "summary.json").is_file()
    for bad, message in ((["--strategies", "nsga3"], "unknown benchmark strategy 'nsga3'"),
                         (["--evals", "1e2x"], "--evals"),
                         (["--set", "step=1"], "unknown key 'step'"),
                         (["--pick", "mean"], "--pick 'mean' is unknown")):
        args = parser.parse_args(["bench", "nb201", "--table", str(NB201_CSV), "--out",
                                  str(tmp_path / "bad"), *bad])
        with pytest.raises(ConfigError, match=message):
            args.func(args)


def test_bootstrap_interval_brackets_the_statistic_and_narrows_with_more_seeds() -> None:
    from moonas.bench.scoring import bootstrap_interval

    rng = np.random.default_rng(3)
    few, many = rng.normal(0.4, 0.2, 10), rng.normal(0.4, 0.2, 200)
    for values in (few, many):
        low, high = bootstrap_interval(values)
        assert low < values.mean() < high
    assert np.ptp(bootstrap_interval(many)) < 0.5 * np.ptp(bootstrap_interval(few))
    assert bootstrap_interval(few) == bootstrap_interval(few.copy())  # deterministic
    assert bootstrap_interval([0.3]) == (0.3, 0.3)
    low, high = bootstrap_interval(few, stat=np.median)
    assert low <= np.median(few) <= high
    # A wider level gives a wider interval.
    assert np.ptp(bootstrap_interval(few, level=0.99)) > np.ptp(bootstrap_interval(few, level=0.5))
    with pytest.raises(ValueError, match="no values"):
        bootstrap_interval([])



# ----------------------------------------------------------------- bad input, caught early
def test_a_non_numeric_cell_is_named_by_row_and_column(tmp_path: Path) -> None:
    """A cell that is not a number: the error names it, not a missing column; columns the
    run does not need may hold anything."""
    bad = tmp_path / "bad.csv"
    rows = NB201_CSV.read_text().splitlines()
    header = rows[0].split(",")
    col = header.index("c10_test_200ep")
    cells = rows[50].split(",")
    cells[col] = "n/a"
    rows[50] = ",".join(cells)
    lat = header.index("hwnb_c10_eyeriss_latency_ms")
    cells = rows[7].split(",")
    cells[lat] = ""
    rows[7] = ",".join(cells)
    bad.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"row 51, column 'c10_test_200ep': 'n/a' is not a number"):
        load_problem(bad, "c10", "params")
    with pytest.raises(DataError, match=r"row 8, column 'hwnb_c10_eyeriss_latency_ms': ''"):
        load_problem(bad, "c100", "latency:eyeriss")
    assert load_problem(bad, "c100", "params").size == 15_625
    with pytest.raises(DataError, match="is a folder: pass --table"):
        load_table(tmp_path)


def _with_cells(path: Path, cells: dict[tuple[int, str], str]) -> Path:
    """The full table with some cells replaced: {(line index, column): value}."""
    rows = NB201_CSV.read_text().splitlines()
    header = rows[0].split(",")
    for (line, column), value in cells.items():
        fields = rows[line].split(",")
        fields[header.index(column)] = value
        rows[line] = ",".join(fields)
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_non_finite_cell_is_refused_where_a_run_needs_it(tmp_path: Path) -> None:
    """nan and inf parse as floats: a NaN score or cost gave a ZeroDivisionError, a NaN budget
    or a silently wrong regret. Now one line names the cell, as for any non-number."""
    bad = _with_cells(tmp_path / "nonfinite.csv", {
        (7, "c10_test_200ep"): "nan", (9, "params_MB_c10"): "-inf",
        (5, "c10valid_val_12ep"): "NaN", (5, "hwnb_c10_pixel3_latency_ms"): "inf"})
    table = load_table(bad)
    for call, message in (
            (lambda: table.problem("c10", "macs"), r"row 6, column 'c10valid_val_12ep': 'NaN'"),
            (lambda: table.cost("params", "c10"), r"row 10, column 'params_MB_c10': '-inf'"),
            (lambda: table.problem("c100", "latency:pixel3"),
             r"row 6, column 'hwnb_c10_pixel3_latency_ms': 'inf' is not a finite number \("
             r"needed for --cost latency:pixel3\): use the full nb201.csv")):
        with pytest.raises(DataError, match=message):
            call()
    with pytest.raises(DataError, match=r"row 8, column 'c10_test_200ep': 'nan' is not a finite"):
        table.column("c10_test_200ep", "--dataset c10")
    assert table.problem("c100", "macs").size == 15_625  # the other columns still serve
    with pytest.raises(DataError, match="'params_MB_c10': '-inf' is not a finite number"):
        run_bench(BenchJob(table=str(bad), out=str(tmp_path / "o"), strategies=("random",),
                           evals=(10,), seeds=1))
    assert not (tmp_path / "o").exists()


def test_a_table_cut_mid_row_names_the_row_and_the_fix(tmp_path: Path) -> None:
    cut = tmp_path / "cut.csv"
    text = NB201_CSV.read_text()
    cut.write_text(text[:text.index("\n", 20_000) + 40])
    with pytest.raises(DataError, match=r"cut.csv row \d+ has \d+ fields, the header 28 \(a "
                                        r"file cut short or edited\): use the full nb201.csv"):
        load_table(cut)


def test_bench_job_refuses_bad_settings_before_any_run(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    table = str(NB201_CSV)
    for kw, message in (({"out": str(afile)}, "is a file: choose a folder"),
                        ({"out": str(afile / "sub")}, "afile is a file, not a folder"),
                        ({"first_seed": -1}, "--first-seed must be >= 0, got -1"),
                        ({"population": 1}, "--population must be >= 2")):
        with pytest.raises(MoonasError, match=message):
            BenchJob(**{"table": table, "out": str(tmp_path / "o"), **kw})
    calls = []
    # The cells left distinct when the default pruning (dead) is applied to all 5^6 of them.
    every = np.stack(np.unravel_index(np.arange(5 ** 6), (5,) * 6), axis=1)
    distinct = len(np.unique(NB201Space().prune(every, "dead"), axis=0))
    assert distinct < 10_000  # the premise (README: "the 9,445 pruned cells")
    job = BenchJob(table=table, out=str(tmp_path / "o"), strategies=("random",), evals=(10_000,),
                   seeds=1)
    with pytest.raises(ConfigError, match=f"--evals 10000 is more than the {distinct:,} distinct "
                                          "cells"):
        run_bench(job, progress=lambda d, t: calls.append(d))
    assert not calls and not (tmp_path / "o").exists()
    for setting, message in ((("coefficients", 1), "coefficients=1: expected a non-empty list"),
                             (("coefficients", ()), r"coefficients=\[\]: expected"),
                             (("budgets", None), "budgets=null: expected")):
        with pytest.raises(ConfigError, match=message):
            run_bench(BenchJob(table=table, out=str(tmp_path / "o"), strategies=("random",),
                               evals=(10,), seeds=1, search=(setting,)))


def test_summary_is_strict_json_and_names_plug_ins_overrides_and_the_latency_source(
        tmp_path: Path) -> None:
    job = BenchJob(table=str(NB201_CSV), out=str(tmp_path), strategies=("multi-asng", "random"),
                   evals=(20,), seeds=1, plot_counts=(10,), cost="latency:eyeriss",
                   dataset="c100", search=(("delta_max", float("inf")), ("pvll.enabled", False)))
    run_bench(job)

    def refuse(constant: str):
        raise ValueError(f"non-standard JSON constant {constant}")

    summary = json.loads((tmp_path / "summary.json").read_text(), parse_constant=refuse)
    assert summary["multi_asng_search"]["delta_max"] == "inf"
    assert summary["cost_column"] == "hwnb_c10_eyeriss_latency_ms"
    page = (tmp_path / "summary.md").read_text()
    assert "plug-ins on: none" in page and "pvll.enabled=false" in page
    assert "`hwnb_c10_eyeriss_latency_ms` is used as is for c100" in page
    assert "- 1 seed (0..0)" in page
    random = next(line for line in page.splitlines() if line.startswith("- random:"))
    assert random.endswith(").")  # the runner's whole first paragraph, not its first line


def test_an_interrupted_job_continues_from_its_finished_runs(tmp_path: Path, caplog) -> None:
    """Ctrl-C (or a kill) after some runs: they are on disk, and the same job on the same --out
    (any --workers) runs only the others and writes the files an uninterrupted job writes."""
    import logging

    from moonas.bench.partial import PARTIAL_NAME

    settings = dict(table=str(NB201_CSV), strategies=("multi-asng", "random", "nsga2"),
                    evals=(30, 100), seeds=2)
    whole = tmp_path / "whole"
    run_bench(BenchJob(out=str(whole), **settings))

    class Stop(KeyboardInterrupt):
        pass

    def stop_after_three(done: int, total: int) -> None:
        if done == 3:
            raise Stop

    out = tmp_path / "cut"
    with caplog.at_level(logging.INFO, logger="moonas"), pytest.raises(Stop):
        run_bench(BenchJob(out=str(out), **settings), stop_after_three)
    assert [p.name for p in out.iterdir()] == [PARTIAL_NAME]
    assert any("3 of 6 runs are kept" in r.getMessage() for r in caplog.records)
    with (out / PARTIAL_NAME).open("a") as handle:  # a kill mid-line
        handle.write('{"strategy": "nsga2", "seed": 1, "rec')
    seen: list[int] = []
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="moonas"):
        run_bench(BenchJob(out=str(out), workers=2, **settings), lambda d, t: seen.append(d))
    assert seen == [3, 4, 5, 6]
    assert any("3 of 6 runs were finished by an interrupted run" in r.getMessage()
               for r in caplog.records)
    assert (out / "fronts.jsonl").read_text() == (whole / "fronts.jsonl").read_text()
    assert not (out / PARTIAL_NAME).exists()
    # Runs of other settings are never mixed in: they are set aside, with a warning.
    with pytest.raises(Stop):
        run_bench(BenchJob(out=str(out), **settings), stop_after_three)
    other = {**settings, "evals": (30, 300)}
    seen.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="moonas"):
        run_bench(BenchJob(out=str(out), **other), lambda d, t: seen.append(d))
    assert seen == [0, 1, 2, 3, 4, 5, 6]
    assert any("a job with other settings" in r.getMessage() for r in caplog.records)


def test_a_stop_right_after_a_run_reached_the_disk_counts_that_run(tmp_path: Path, caplog,
                                                                   monkeypatch) -> None:
    """Ctrl-C between a run's line being synced and the job counting it: the message says how
    many runs the file holds, not one fewer."""
    import logging

    from moonas.bench.partial import PartialRuns

    class Stop(KeyboardInterrupt):
        pass

    written = PartialRuns._write
    lines = []

    def write_then_stop(self, data) -> None:
        written(self, data)
        lines.append(data)
        if len(lines) == 3:  # the head and two runs are on disk
            raise Stop

    monkeypatch.setattr(PartialRuns, "_write", write_then_stop)
    with caplog.at_level(logging.INFO, logger="moonas"), pytest.raises(Stop):
        run_bench(BenchJob(table=str(NB201_CSV), out=str(tmp_path), strategies=("random",),
                           evals=(30,), seeds=3))
    assert any("2 of 3 runs are kept" in r.getMessage() for r in caplog.records)


def _random_partial(out: Path, *runs: object) -> Path:
    """A partial file of a random-search job (evals 10, seeds 2) holding `runs` after its
    settings line; the job itself."""
    from moonas.bench.harness import job_settings
    from moonas.bench.partial import PARTIAL_NAME

    job = BenchJob(table=str(NB201_CSV), out=str(out), strategies=("random",), evals=(10,),
                   seeds=2, plot_counts=(10,))
    out.mkdir()
    lines = [json.dumps({"settings": job_settings(job)}), *map(json.dumps, runs)]
    (out / PARTIAL_NAME).write_text("\n".join(lines) + "\n")
    return job


def test_partial_lines_of_the_wrong_shape_are_run_again_with_one_warning(tmp_path: Path,
                                                                          caplog) -> None:
    """Valid JSON that is not a whole run (a record without keys, records not a list or
    empty, a record of another seed, other counts) crashed the summary or silently lost a
    seed; each such run is run again, with one warning naming the first bad line."""
    import logging

    run_bench(BenchJob(table=str(NB201_CSV), out=str(tmp_path / "whole"),
                       strategies=("random",), evals=(10,), seeds=2, plot_counts=(10,)))
    fronts = (tmp_path / "whole" / "fronts.jsonl").read_text()
    good = [json.loads(x) for x in fronts.splitlines()]
    assert len(good) == 2
    record = {**good[0], "wall_s": 0.0, "listed": True,
              "picks": [-1] * 5, "returned": [0], "signal_regret": [0.0] * 5}
    other_seed = {**record, "seed": 1}
    for i, runs in enumerate((
            [{"strategy": "random", "seed": 0, "records": [{}]}],
            [{"strategy": "random", "seed": 0, "records": []},
             {"strategy": "random", "seed": 1, "records": "x"}],
            [{"strategy": "random", "seed": 0, "records": [other_seed]}],
            [{"strategy": "random", "seed": 0, "records": [{**record, "evals": 20}]}],
            [{"strategy": "random", "seed": 0, "records": [{**record, "regret": [1.0]}]}],
            [["not", "a", "run"], 7])):
        out = tmp_path / f"p{i}"
        job = _random_partial(out, *runs)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="moonas"):
            summary = run_bench(job)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "not whole runs of this job" in warnings[0], warnings
        assert f"{len(runs)} line(s)" in warnings[0]
        assert summary["rows"][0]["n_seeds"] == 2
        assert (out / "fronts.jsonl").read_text() == fronts
    # A whole run of the job is still reused, without a warning: seed 0's line is the
    # partial's record (its made-up picks and signal regret), not a run of seed 0 again.
    out = tmp_path / "ok"
    job = _random_partial(out, {"strategy": "random", "seed": 0, "records": [record]})
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="moonas"):
        seen: list[int] = []
        reused = run_bench(job, lambda d, t: seen.append(d))
    assert seen == [1, 2] and not caplog.records
    assert reused["rows"][0]["n_seeds"] == 2
    lines = [json.loads(x) for x in (out / "fronts.jsonl").read_text().splitlines()]
    assert [line["seed"] for line in lines] == [0, 1]
    assert lines[0]["picks"] == [None] * 5 and lines[0]["signal_regret"] == [0.0] * 5
    assert good[0]["signal_regret"] != [0.0] * 5  # so a rerun of seed 0 would differ
    assert lines[1] == good[1]


def test_a_folder_where_the_partial_file_goes_is_one_line(tmp_path: Path) -> None:
    from moonas.bench.partial import PARTIAL_NAME

    (tmp_path / "o" / PARTIAL_NAME).mkdir(parents=True)
    with pytest.raises(MoonasError, match=f"{PARTIAL_NAME} is not a file .a folder..: moonas "
                                          "bench keeps .*move it away, or choose another --out"):
        run_bench(BenchJob(table=str(NB201_CSV), out=str(tmp_path / "o"),
                           strategies=("random",), evals=(10,), seeds=1))


def test_a_partial_file_of_other_settings_is_set_aside_not_deleted(tmp_path: Path,
                                                                   caplog) -> None:
    """README: runs of other settings are "set aside with a warning"; they were deleted."""
    import logging

    from moonas.bench.partial import PARTIAL_NAME

    out = tmp_path / "o"
    out.mkdir()
    held = '{"settings": {"table": "another"}}\n{"strategy": "random", "seed": 0}\n'
    (out / PARTIAL_NAME).write_text(held)
    job = BenchJob(table=str(NB201_CSV), out=str(out), strategies=("random",), evals=(10,),
                   seeds=1)
    texts = []
    for _ in range(2):  # twice: a second set-aside file never overwrites the first
        (out / PARTIAL_NAME).write_text(held)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="moonas"):
            run_bench(job)
        texts += [r.getMessage() for r in caplog.records]
    aside = sorted(out.glob(".runs.partial.*.jsonl"))
    assert len(aside) == 2 and not (out / PARTIAL_NAME).exists()
    assert all(p.read_text() == held for p in aside)
    assert all(re.fullmatch(r"\.runs\.partial\.\d{8}T\d{6}Z(-2)?\.jsonl", p.name) for p in aside)
    named = [text.split("set aside as ")[1].split(";")[0] for text in texts]
    assert sorted(named) == [str(p) for p in aside]
    assert all("a job with other settings" in text for text in texts)


def test_impossible_table_values_are_refused_where_a_run_needs_them(tmp_path: Path) -> None:
    """A negative cost or an accuracy outside [0, 100] ran to the end (only finiteness was
    checked); a latency of 0 is kept (HW-NAS-Bench's ~0 of a disconnected cell)."""
    bad = _with_cells(tmp_path / "impossible.csv", {
        (9, "params_MB_c10"): "-1", (5, "c10valid_val_12ep"): "150",
        (7, "c100_test_200ep"): "-0.5", (3, "hwnb_c10_fpga_latency_ms"): "-0.001",
        (4, "hwnb_c10_pixel3_latency_ms"): "0"})
    table = load_table(bad)
    for call, message in (
            (lambda: table.cost("params", "c10"),
             r"impossible.csv row 10, column 'params_MB_c10': '-1' is negative \(a cost or "
             r"latency cannot be\) \(needed for --cost params\): use the full nb201.csv"),
            (lambda: table.problem("c10", "macs"),
             r"row 6, column 'c10valid_val_12ep': '150' is outside \[0, 100\] \(an accuracy in "
             r"%\) \(needed for --dataset c10\)"),
            (lambda: table.problem("c100", "macs"), r"row 8, column 'c100_test_200ep': '-0.5'"),
            (lambda: table.latency("fpga"), r"row 4, column 'hwnb_c10_fpga_latency_ms': "
                                            r"'-0.001' is negative")):
        with pytest.raises(DataError, match=message):
            call()
    assert table.latency("pixel3").min() == 0.0  # 0 ms: kept
    with pytest.raises(DataError, match="'params_MB_c10': '-1' is negative"):
        run_bench(BenchJob(table=str(bad), out=str(tmp_path / "o"), strategies=("random",),
                           evals=(10,), seeds=1))
    assert not (tmp_path / "o").exists()


def test_every_value_of_the_real_table_is_possible(table) -> None:
    assert dict(table.unparsed) == {}
    assert len(table.columns) == 27 and table.size == 15_625


def test_a_garbage_line_in_the_partial_file_is_skipped_with_one_warning(tmp_path: Path,
                                                                        caplog) -> None:
    """Every line that was not JSON was taken for one a kill cut short, and dropped silently;
    only a cut-short last line (no newline) is, and `add` drops it from the file."""
    import logging

    from moonas.bench.partial import PARTIAL_NAME, PartialRuns

    job = _random_partial(tmp_path / "g")
    path = tmp_path / "g" / PARTIAL_NAME
    head = path.read_text()
    path.write_text(head + "garbage\n{also not json\n" + '{"strategy": "random", "se')
    with caplog.at_level(logging.WARNING, logger="moonas"):
        summary = run_bench(job)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2 line(s) are not whole runs of this job (line 2: not " \
        "JSON)" in warnings[0], warnings
    assert summary["rows"][0]["n_seeds"] == 2
    # A cut-short last line alone is silent; the next run's line replaces it.
    path.write_text(head + '{"strategy": "random", "se')
    partial = PartialRuns(tmp_path / "g", json.loads(head)["settings"])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="moonas"):
        assert partial.load() == {}
    assert not caplog.records
    partial.add("random", 1, [{"x": 1}])
    partial.close()
    assert path.read_text() == head + '{"strategy":"random","seed":1,"records":[{"x":1}]}\n'
