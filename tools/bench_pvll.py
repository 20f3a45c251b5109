"""How well the PVLL plug-in's loss predictors rank NAS-Bench-201 cells (issue #6 section 1).

Each predictor is fitted on 50, 100 and 300 observations and scored by two figures (`assess`):
Kendall tau between its predicted loss and the true 12-epoch validation accuracy (c10) of
held-out cells, and the *miss*: per harness budget, the best 12-epoch accuracy among the cells
not yet observed within it minus the best among the 10 the predictor ranks first (what a
screening by it would lose). The observations come two ways:

1. uniform: the observations are drawn uniformly from the cells the search can measure (each
   architecture pruned at ``search.prune`` "dead", as the search measures, prices and, with
   ``search.pvll.pruned``, learns it), the held-out cells from the rest;
2. in a search: the observations are what one shipped harness run of ``multi-asng`` (the
   benchmarks' tuned settings, every plug-in default) evaluated first, the held-out cells
   drawn from the cells it had not evaluated by 300.

The product's predictors are built as the plug-in builds them (``make_predictor`` on a
``PVLLConfig``); two sklearn regressors on the one-hot encoding are references outside the
product. Last, the wall time of a 1000-evaluation harness run with the plug-in on and off.

    .venv/bin/python tools/bench_pvll.py --table ../shared/data/nb201/nb201.csv

The harness comparison of the plug-in against the plain search and the baselines is
``tools/bench_plugins.py`` (results/plugins.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

# One BLAS thread: on a shared 2-core machine a threaded 500 x 500 solve (the kernel ridge's
# refit) runs ~35x slower than a single-threaded one. Set before numpy loads OpenBLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import at_least, check_out_file, header, run_tool  # noqa: E402
from bench_plugins import TUNED  # noqa: E402

from moonas.atomic import write_text  # noqa: E402
from moonas.bench.runners import RunOptions, run_strategy  # noqa: E402
from moonas.bench.scoring import bootstrap_interval, budget_percentiles  # noqa: E402
from moonas.bench.table import BenchProblem, load_problem  # noqa: E402
from moonas.errors import MoonasError  # noqa: E402
from moonas.plugins.predictors import encode  # noqa: E402
from moonas.plugins.pvll import PVLLConfig, make_predictor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OBSERVATIONS = (50, 100, 300)
PRUNE = "dead"  # the search's default (search.prune)
TOP = 10  # cells a screening takes from the predictor's ranking, for the miss

#: The product's predictors, as ``search.pvll`` settings (label -> config); the first is the
#: shipped default.
PRODUCT = {
    "ridge, one-hot + pairs (`features: pairs`, the default)": PVLLConfig(),
    "ridge, one-hot (`features: onehot`)": PVLLConfig(features="onehot"),
    "kernel ridge, one-hot (`predictor: kernel, features: onehot`)":
        PVLLConfig(predictor="kernel", features="onehot"),
    "ridge, GAE embedding (`features: gae`)": PVLLConfig(features="gae"),
    "kernel ridge, GAE embedding (`predictor: kernel, features: gae`)":
        PVLLConfig(predictor="kernel", features="gae"),
}


class _OneHot:
    """An sklearn regressor on the one-hot encoding, with the predictors' fit/predict."""

    def __init__(self, model: Any, n_options: tuple[int, ...]) -> None:
        self.model, self.n_options = model, n_options

    def fit(self, archs: np.ndarray, losses: np.ndarray) -> None:
        self.model.fit(encode(archs, self.n_options), losses)

    def predict(self, archs: np.ndarray) -> np.ndarray:
        return self.model.predict(encode(archs, self.n_options))


def references(n_options: tuple[int, ...], seed: int) -> dict[str, Callable[[], Any]]:
    """Regressors outside the product (sklearn, one-hot), label -> factory."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.neural_network import MLPRegressor

    return {
        "random forest, one-hot (sklearn, 200 trees; reference)": lambda: _OneHot(
            RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=1), n_options),
        "MLP 64x64, one-hot (sklearn; reference)": lambda: _OneHot(
            MLPRegressor(hidden_layer_sizes=(64, 64), alpha=1e-3, max_iter=2000,
                         random_state=seed), n_options),
    }


def measured_rows(problem: BenchProblem, prune: str = PRUNE) -> np.ndarray:
    """Rows (sorted) of the distinct cells the search can measure: every architecture of the
    table pruned at `prune`."""
    cells = problem.prune(problem.arch(np.arange(problem.size)), prune)
    return np.unique(problem.index(cells))


def assess(model: Any, problem: BenchProblem, train: np.ndarray, test: np.ndarray,
           unseen: np.ndarray, budgets: Sequence[float], top: int = TOP) -> tuple[float, float]:
    """Fit `model` on rows `train` (loss = 1 - 12-epoch accuracy / 100, what the search
    observes) and return (tau, miss).

    tau: Kendall tau of -predicted loss against the accuracy of rows `test`.
    miss: what screening by this model would miss, in 12-epoch points: per budget, the best
    accuracy among rows `unseen` within it minus the best among the `top` of them the model
    ranks first; the mean over `budgets`."""
    acc = np.asarray(problem.signal, dtype=np.float64)
    cost = np.asarray(problem.cost, dtype=np.float64)
    model.fit(problem.arch(train), 1.0 - acc[train] / 100.0)
    tau = float(kendalltau(-model.predict(problem.arch(test)), acc[test]).statistic)
    predicted = model.predict(problem.arch(unseen))
    gaps = []
    for budget in budgets:
        within = cost[unseen] <= budget + 1e-9
        rows = unseen[within]
        chosen = rows[np.argsort(predicted[within], kind="stable")[:top]]
        gaps.append(acc[rows].max() - acc[chosen].max())
    return tau, float(np.mean(gaps))


def _factories(problem: BenchProblem, seed: int, labels: Sequence[str],
               with_references: bool) -> dict[str, Callable[[], Any]]:
    out: dict[str, Callable[[], Any]] = {
        label: (lambda c=PRODUCT[label]: make_predictor(c, problem.n_options)) for label in labels}
    if with_references:
        out.update(references(problem.n_options, seed))
    return out


#: label -> observations -> one (tau, miss) per draw or run.
Scores = dict[str, dict[int, list[tuple[float, float]]]]


def _score_prefixes(out: Scores, factories: dict[str, Callable[[], Any]], problem: BenchProblem,
                    rows: np.ndarray, test: np.ndarray, pool: np.ndarray,
                    budgets: Sequence[float], observations: Sequence[int],
                    score: Callable) -> None:
    """Append to `out` each predictor's `score` after fitting on the first n of `rows`, for
    each n of `observations`; the miss counts the cells of `pool` not among those n."""
    for name, make in factories.items():
        for n in observations:
            out.setdefault(name, {}).setdefault(n, []).append(
                score(make(), problem, rows[:n], test, np.setdiff1d(pool, rows[:n]), budgets))


def uniform_scores(problem: BenchProblem, seeds: Sequence[int], held_out: int,
                   labels: Sequence[str] = tuple(PRODUCT), with_references: bool = True,
                   observations: Sequence[int] = OBSERVATIONS) -> Scores:
    """`assess` after fitting on the first n of a random order of the measurable cells: tau on
    the last `held_out` of it, the miss among every measurable cell not fitted on."""
    pool = measured_rows(problem)
    budgets = budget_percentiles(np.asarray(problem.cost))
    out: Scores = {}
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(pool)
        test = order[-held_out:]
        _score_prefixes(out, _factories(problem, seed, labels, with_references), problem,
                        order, test, pool, budgets, observations, assess)
    return out


def search_scores(problem: BenchProblem, seeds: Sequence[int], held_out: int,
                  search: tuple = TUNED, labels: Sequence[str] = tuple(PRODUCT),
                  observations: Sequence[int] = OBSERVATIONS, score: Callable = assess) -> Scores:
    """`assess` with each predictor fitted on the first n cells a harness run of `multi-asng`
    (settings `search`, plug-in defaults) evaluated: tau on `held_out` measurable cells that
    run had not evaluated by max(observations), the miss among every cell not yet evaluated
    at n. `score` has `assess`'s signature (for tests)."""
    pool = measured_rows(problem)
    budgets = budget_percentiles(np.asarray(problem.cost))
    options = RunOptions(budgets=tuple(budgets), search=tuple(search), prune=PRUNE)
    out: Scores = {}
    last = max(observations)
    for seed in seeds:
        trace = run_strategy("multi-asng", problem, last, np.random.default_rng(seed), options)
        rows = trace.parts[0][0]  # distinct rows in order of first evaluation
        rest = np.setdiff1d(pool, rows[:last])
        test = np.random.default_rng(seed).choice(rest, size=min(held_out, len(rest)),
                                                  replace=False)
        _score_prefixes(out, _factories(problem, seed, labels, False), problem, rows, test,
                        pool, budgets, observations, score)
    return out


def run_seconds(problem: BenchProblem, seeds: Sequence[int], variants: dict[str, tuple],
                evals: int = 1000) -> dict[str, list[float]]:
    """Wall seconds of `evals`-evaluation harness runs of `multi-asng`, per settings variant."""
    budgets = tuple(budget_percentiles(np.asarray(problem.cost)))
    out: dict[str, list[float]] = {}
    for name, search in variants.items():
        for seed in seeds:
            options = RunOptions(budgets=budgets, search=tuple(search), prune=PRUNE)
            started = time.perf_counter()
            run_strategy("multi-asng", problem, evals, np.random.default_rng(seed), options)
            out.setdefault(name, []).append(time.perf_counter() - started)
    return out


def _median(values: Sequence[float]) -> str:
    return (f"{np.median(values):.3f} ({np.percentile(values, 25):.3f}-"
            f"{np.percentile(values, 75):.3f})")


def _mean(values: Sequence[float]) -> str:
    low, high = bootstrap_interval(np.asarray(values))
    return f"{np.mean(values):.3f} ({low:.3f}-{high:.3f})"


def score_tables(scores: Scores, observations: Sequence[int] = OBSERVATIONS) -> list[str]:
    """Two markdown tables: the median (quartiles) tau and the mean (95% bootstrap interval)
    miss per observation count, a row per predictor."""
    counts = " | ".join(f"@{n}" for n in observations)
    rule = "|---|" + "---:|" * len(observations)
    lines = ["Kendall tau on the held-out cells, median (25th-75th percentile):", "",
             f"| predictor | {counts} |", rule]
    lines += [f"| {name} | " + " | ".join(_median([t for t, _ in per[n]]) for n in observations)
              + " |" for name, per in scores.items()]
    lines += ["", f"Miss of a screening by the predictor's {TOP} first cells (12-epoch points), "
              "mean (95% bootstrap interval):", "", f"| predictor | {counts} |", rule]
    lines += [f"| {name} | " + " | ".join(_mean([m for _, m in per[n]]) for n in observations)
              + " |" for name, per in scores.items()]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True, help="NAS-Bench-201 csv (its README)")
    parser.add_argument("--seeds", type=int, default=20, help="draws of the uniform part")
    parser.add_argument("--search-seeds", type=int, default=20, help="harness runs")
    parser.add_argument("--timing-seeds", type=int, default=3)
    parser.add_argument("--held-out", type=int, default=2000)
    parser.add_argument("--out", default=str(ROOT / "results" / "pvll_tau.md"))
    args = parser.parse_args(argv)
    if not Path(args.table).is_file():
        raise SystemExit(f"--table {args.table}: no such file; pass the NAS-Bench-201 csv")
    for flag in ("--seeds", "--search-seeds", "--timing-seeds"):
        at_least(flag, getattr(args, flag[2:].replace("-", "_")), 1)
    at_least("--held-out", args.held_out, 2, "Kendall tau ranks at least two cells")
    check_out_file(args.out)
    import torch

    torch.set_num_threads(1)  # the graph autoencoder's one-off training
    try:
        problem = load_problem(args.table, "c10", "params")
    except MoonasError as err:
        raise SystemExit(f"bench_pvll: {err}") from None
    started = time.perf_counter()
    uniform = uniform_scores(problem, range(args.seeds), args.held_out)
    uniform_s = time.perf_counter() - started
    started = time.perf_counter()
    searched = search_scores(problem, range(1000, 1000 + args.search_seeds), args.held_out)
    searched_s = time.perf_counter() - started
    timing = run_seconds(problem, range(args.timing_seeds), {
        "plug-in on (shipped)": TUNED,
        "plug-in off (`pvll.enabled=false`)": TUNED + (("pvll.enabled", False),),
        "plug-in on, `predictor: kernel, features: gae`":
            TUNED + (("pvll.predictor", "kernel"), ("pvll.features", "gae"))})
    settings = ", ".join(f"{k}={v}" for k, v in TUNED)
    lines = [header("PVLL predictors on NAS-Bench-201: ranking and screening (issue #6 "
                    "section 1)"), "",
             "Each predictor is fitted on 50 / 100 / 300 observations (the loss is 1 - the "
             "12-epoch validation accuracy on c10, what the search observes), then scored two "
             "ways:", "",
             "- **tau**: Kendall tau between its predicted loss and the true 12-epoch accuracy "
             f"of {args.held_out} held-out cells, the figure the issue asks for;",
             f"- **miss**: what a screening by it would miss. Per harness budget (the 10/25/50/"
             f"75/90th params percentiles) the best 12-epoch accuracy among all cells not yet "
             f"observed within it, minus the best among the {TOP} of them it ranks first; the "
             "mean over the five budgets. Screening picks the predicted best candidates, so "
             "this is the part of the ranking a search uses.", "",
             "Cells are architectures pruned at `dead` "
             f"({len(measured_rows(problem))} distinct cells out of {problem.size} "
             "architectures), as the search measures and, with `search.pvll.pruned` (default), "
             "learns them. The product's predictors are built as the plug-in builds them "
             "(`moonas.plugins.pvll.make_predictor`, default penalties); the sklearn rows are "
             "references outside the product.", "",
             f"## Observations drawn uniformly ({args.seeds} draws, {uniform_s:.0f} s)", "",
             *score_tables(uniform), "",
             f"## Observations a search made ({args.search_seeds} harness runs of "
             f"`multi-asng`, c10/params, {settings}, plug-in defaults; seeds "
             f"1000-{999 + args.search_seeds}; {searched_s:.0f} s)", "",
             "The runs' first 50 / 100 / 300 distinct evaluations, which the shipped predictor "
             "fits (its memory holds 500). Held-out cells for tau: ones the run had not "
             "evaluated by 300.", "", *score_tables(searched), "",
             "## Wall time of a 1000-evaluation harness run (c10/params, "
             f"{settings}, seeds 0-{args.timing_seeds - 1}, one process, OPENBLAS_NUM_THREADS="
             f"{os.environ.get('OPENBLAS_NUM_THREADS')})", "",
             "| search | seconds per run (median, min-max) |", "|---|---:|"]
    for name, secs in timing.items():
        lines.append(f"| {name} | {np.median(secs):.1f} ({min(secs):.1f}-{max(secs):.1f}) |")
    lines.append("")
    write_text(args.out, "\n".join(lines) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
