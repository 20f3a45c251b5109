"""Tuning study: the smoothed pick rule's weight and ridge on NAS-Bench-201 tuning seeds ->
results/picks_tuning.md.

Each strategy (multi-asng with the shipped settings, NSGA-II, random) runs once per tuning seed
to 1000 distinct evaluations, exactly as the harness runs it (same generator per strategy and
seed, cells pruned dead). Its evaluations up to each count are then picked from under every
rule of the grid: observed (the best 12-epoch accuracy under each budget) and smoothed with
each (weight, ridge) (`moonas.plugins.predictors.smoothed_scores`), and each pick is scored with the
200-epoch test accuracy (mean budget regret). The runs are shared by every rule, so the rules
are compared on the same evaluations. The reported seeds (0-19, 200-259) are not used here.

    python tools/tune_picks.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import at_least, check_out_file, header, known, run_tool  # noqa: E402

from moonas.atomic import write_text  # noqa: E402
from moonas.bench.harness import strategy_rng  # noqa: E402
from moonas.bench.runners import RUNNERS, RunOptions, run_strategy  # noqa: E402
from moonas.bench.scoring import build_scorer, picks  # noqa: E402
from moonas.bench.table import load_problem  # noqa: E402
from moonas.errors import ConfigError  # noqa: E402
from moonas.plugins.predictors import SMOOTHING, smoothed_scores  # noqa: E402
from moonas.threads import blas_threads  # noqa: E402

#: multi-asng's shipped benchmark settings (results/plugins_2026-12-02.md's default row).
SHIPPED = (("coefficients", (0.0, 0.05, 0.1, 0.2, 0.5)), ("delta0", 0.5),
           ("samples_per_dist", 1), ("pvll.enabled", True), ("pvll.neighbours", True),
           ("pvll.features", "pairs"))
COUNTS = (100, 300, 1000)
WEIGHTS = (0.05, 0.075, 0.1, 0.15, 0.25)
RIDGES = (3.0, 10.0, 30.0, 100.0)
#: (cost, first seed, seeds) of the tuning sets.
SETS = (("params", 100, 40), ("params", 140, 40), ("macs", 100, 40))


def _regrets(problem, scorer, order: np.ndarray) -> dict[str, list[float]]:
    """Rule name -> mean regret at each of COUNTS for one run's evaluation order."""
    out: dict[str, list[float]] = {}
    for count in COUNTS:
        rows = np.unique(order[:count])
        signal = problem.signal[rows]
        keys = {"observed": signal}
        for ridge in RIDGES:
            # weight 1 is the fit itself; every weight's smoothed scores blend it (one fit).
            fit = smoothed_scores(problem.arch(rows), signal, problem.n_options, weight=1.0,
                                  ridge=ridge)
            for weight in WEIGHTS:
                keys[f"w {weight:g}, ridge {ridge:g}"] = (1 - weight) * signal + weight * fit
        for name, key in keys.items():
            ranked = problem.signal.copy()
            ranked[rows] = key
            picked = picks(rows, ranked, problem.cost, scorer.budgets)
            out.setdefault(name, []).append(float(scorer.regret(picked).mean()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", default=str(Path(__file__).resolve().parents[2] / "shared" /
                                               "data" / "nb201" / "nb201.csv"))
    parser.add_argument("--strategies", default="multi-asng,nsga2,random")
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds per set (default: each set's 40); fewer for a quick look")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" /
                                             "picks_tuning.md"))
    args = parser.parse_args()
    strategies = [s for s in args.strategies.split(",") if s]
    if not strategies:
        raise ConfigError("--strategies names no strategy; e.g. multi-asng,nsga2,random")
    known("--strategies", strategies, RUNNERS.names())
    if args.seeds is not None:
        at_least("--seeds", args.seeds, 1)
    check_out_file(args.out)
    sections = []
    started = time.perf_counter()
    for cost, first, n in SETS:
        n = n if args.seeds is None else args.seeds
        problem = load_problem(args.table, "c10", cost)
        scorer = build_scorer(problem)
        table: dict[str, dict[str, np.ndarray]] = {}
        for name in strategies:
            options = RunOptions(budgets=scorer.budgets, prune="dead",
                                 search=SHIPPED if name == "multi-asng" else ())
            runs = []
            for seed in range(first, first + n):
                with blas_threads(1):
                    trace = run_strategy(name, problem, max(COUNTS), strategy_rng(name, seed),
                                         options, COUNTS)
                    runs.append(_regrets(problem, scorer, trace.parts[0][0]))
                print(f"{cost} {name} seed {seed}: {time.perf_counter() - started:.0f} s",
                      file=sys.stderr, flush=True)
            table[name] = {rule: np.mean([r[rule] for r in runs], axis=0) for rule in runs[0]}
        lines = [f"## c10 / {cost}, seeds {first}-{first + n - 1}", "",
                 "| rule | " + " | ".join(f"{s} @{c}" for s in strategies for c in COUNTS) + " |",
                 "|---|" + "---:|" * (len(strategies) * len(COUNTS))]
        for rule in table[strategies[0]]:
            mark = " (default)" if rule == (f"w {SMOOTHING['weight']:g}, ridge "
                                            f"{SMOOTHING['ridge']:g}") else ""
            cells = [f"{v:.3f}" for s in strategies for v in table[s][rule]]
            lines.append(f"| {rule}{mark} | " + " | ".join(cells) + " |")
        sections.append("\n".join(lines) + "\n")
    intro = (
        "Mean budget regret (accuracy points, mean over the five budgets and the seeds) of "
        "each pick rule on the same runs. Observed: the best 12-epoch validation accuracy "
        "under the budget. Smoothed: `(1 - w) x accuracy + w x fit`, the fit a pairs ridge "
        "(`PairsRidgePredictor`, the given ridge) on all the run's evaluations up to the count. "
        "multi-asng runs with the shipped benchmark settings "
        f"({', '.join(f'{k}={v}' for k, v in SHIPPED)}); NSGA-II and random as in the harness. "
        f"{time.perf_counter() - started:.0f} s in all.\n")
    write_text(args.out, header("Pick rules on NAS-Bench-201 tuning seeds") + "\n" + intro +
               "\n" + "\n".join(sections))


if __name__ == "__main__":
    sys.exit(run_tool(main))
