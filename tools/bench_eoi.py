"""Benchmark: the EoiNAS plug-in (operation importance, Markov slimming) on NAS-Bench-201 -> results/eoi.md."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import at_least, check_out_file, header, run_tool  # noqa: E402

from moonas.atomic import write_text  # noqa: E402
from moonas.bench.harness import BenchJob, run_bench  # noqa: E402
from moonas.bench.runners import (RUNNERS, RunOptions, Trace, TableEvaluator, _drive,  # noqa: E402
                                  _strategy, search_config)
from moonas.bench.table import BenchProblem  # noqa: E402
from moonas.errors import DataError  # noqa: E402
from moonas.plugins.eoi import EoiConfig, EoiPlugin, freed_options  # noqa: E402
from moonas.search.strategies import MultiASNGStrategy  # noqa: E402

#: Plug-in settings tried (each a runner `multi-asng+eoi-<name>`).
SETTINGS: dict[str, EoiConfig] = {
    "early": EoiConfig(enabled=True, warmup=40, interval=10),
    "late": EoiConfig(enabled=True),  # the defaults
    "keep1": EoiConfig(enabled=True, min_options=1, gate=float("inf"), warmup=20, interval=5, R=4),
}
BASELINES = ("nsga2", "optuna-tpe", "random")
TUNED = {"coefficients": [0, 0.05, 0.1, 0.2, 0.5], "delta0": 0.5, "samples_per_dist": 1}


class EoiStrategy:
    """MultiASNGStrategy with the plug-in called after every tell (what the lead's hook does)."""

    def __init__(self, inner: MultiASNGStrategy, config: EoiConfig) -> None:
        self.inner = inner
        cost_max = inner.objective.cost_max if inner.objective.coefficients is not None else None
        self.plugin = EoiPlugin.for_core(config, inner.core, cost_max)
        self.n_removed = 0

    def ask(self, rng: np.random.Generator) -> np.ndarray:
        return self.plugin.propose(rng, self.inner.core, self.inner.ask(rng))

    def tell(self, archs: np.ndarray, losses: np.ndarray, costs: np.ndarray) -> dict[str, Any]:
        log = self.inner.tell(archs, losses, costs)
        extra = self.plugin.observe(archs, losses, costs, self.inner.core)
        self.n_removed += len(extra.get("eoi_removed", []))
        return {**log, **extra}

    def modes(self) -> np.ndarray:
        return self.inner.modes()


def _runner(config: EoiConfig):
    def run(problem: BenchProblem, max_evals: int, rng: np.random.Generator,
            options: RunOptions, counts: Sequence[int]) -> Trace:
        inner = _strategy("multi-asng", problem, search_config(options, problem.cost_name))
        strategy = EoiStrategy(inner, config)
        evaluator = TableEvaluator(problem, prune="keep")  # as recorded in results/
        trace = Trace()
        _drive([strategy], evaluator, rng, max_evals, counts, trace)
        trace.parts.append(evaluator.part())
        return trace

    run.__doc__ = f"multi-asng with the EoiNAS plug-in ({config})."
    return run


for _name, _config in SETTINGS.items():
    RUNNERS.register(f"multi-asng+eoi-{_name}")(_runner(_config))


def removal_stats(table: str, cost: str, search: dict, config: EoiConfig, seeds: int,
                  max_evals: int) -> dict[str, float]:
    """Mean over seeds of options removed (all distributions) and of options freed everywhere."""
    from moonas.bench.harness import _problem, strategy_rng

    problem, scorer = _problem(table, "c10", cost)
    options = RunOptions(budgets=scorer.budgets, search=tuple(search.items()))
    removed, freed = [], []
    for seed in range(seeds):
        inner = _strategy("multi-asng", problem, search_config(options, cost))
        strategy = EoiStrategy(inner, config)
        evaluator = TableEvaluator(problem, prune="keep")  # as recorded in results/
        _drive([strategy], evaluator, strategy_rng("eoi", seed), max_evals, (), Trace())
        removed.append(strategy.n_removed)
        freed.append(len(freed_options(inner.core)))
    return {"removed": float(np.mean(removed)), "freed": float(np.mean(freed))}


def rows_from_fronts(path: Path, seeds: int) -> list[dict]:
    """Summary rows (median / quartiles of HV ratio, mean regret) of the baselines over seeds
    0..seeds-1, from a harness run's fronts.jsonl."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record["strategy"] in BASELINES and record["seed"] < seeds:
            groups.setdefault((record["strategy"], record["evals"]), []).append(record)
    rows = []
    for (name, count), group in groups.items():
        hv = np.array([r["hv_ratio"] for r in group])
        rows.append({"strategy": name, "evals": count, "n_seeds": len(group),
                     "hv_ratio": {"median": float(np.median(hv)),
                                  "p25": float(np.percentile(hv, 25)),
                                  "p75": float(np.percentile(hv, 75))},
                     "regret_mean": float(np.mean([r["regret"] for r in group]))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", default="../shared/data/nb201/nb201.csv")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="results/eoi")
    parser.add_argument("--report", default="results/eoi.md")
    parser.add_argument("--baselines-from", default=None,
                        help="output folder of a harness run that includes nsga2,optuna-tpe,random "
                             "(its fronts.jsonl; seeds 0..SEEDS-1 are used: a run is "
                             "deterministic per strategy and seed)")
    args = parser.parse_args()
    at_least("--seeds", args.seeds, 1)
    at_least("--workers", args.workers, 1)
    check_out_file(args.report, "--report")
    fronts = Path(args.baselines_from or ".") / "fronts.jsonl"
    if args.baselines_from is not None and not fronts.is_file():
        raise DataError(f"--baselines-from {args.baselines_from}: no fronts.jsonl there; pass the "
                        "output folder of a harness run of nsga2,optuna-tpe,random")
    variants = tuple(f"multi-asng+eoi-{n}" for n in SETTINGS)
    runs = {}
    started = time.perf_counter()
    for label, search in (("defaults", {}), ("tuned", TUNED)):
        strategies = ("multi-asng", *variants)
        if label == "defaults" and args.baselines_from is None:
            strategies += BASELINES
        job = BenchJob(table=args.table, out=f"{args.out}_{label}", cost="params",
                       strategies=strategies, seeds=args.seeds, workers=args.workers,
                       search=tuple(search.items()))
        runs[label] = run_bench(job)
    if args.baselines_from is not None:
        baseline_rows = rows_from_fronts(fronts, args.seeds)
    else:
        baseline_rows = [r for r in runs["defaults"]["rows"] if r["strategy"] in BASELINES]
    stats = {(label, name): removal_stats(args.table, "params", search, SETTINGS[name],
                                          3, 1000)
             for label, search in (("defaults", {}), ("tuned", TUNED)) for name in SETTINGS}
    minutes = (time.perf_counter() - started) / 60
    write_text(args.report, report(args, runs, baseline_rows, stats, minutes))


def report(args: argparse.Namespace, runs: dict, baseline_rows: list, stats: dict,
           minutes: float) -> str:
    counts = (100, 300, 1000)
    lines = [header("EoiNAS plug-in (issue #6 section 3): operation importance and Markov "
                    "slimming on NAS-Bench-201"), ""]
    lines += [
        f"Protocol: c10 / params, {args.seeds} seeds (0..{args.seeds - 1}), the harness of "
        "results/nb201.md (distinct evaluations 100 / 300 / 1000, budgets at the 10/25/50/75/90th "
        "cost percentiles, HV ratio median (25th-75th percentile), regret = mean over budgets and "
        f"seeds, accuracy points). Took {minutes:.1f} min.",
        "",
        "multi-asng settings: *defaults* (budget mode) and *tuned* (`coefficients=0,0.05,0.1,0.2,"
        "0.5 delta0=0.5 samples_per_dist=1`). The plug-in runs after every `core.tell`.",
        "",
        ("Baselines (nsga2, optuna-tpe, random): " + (
            f"seeds 0..{args.seeds - 1} of `{args.baselines_from}/fronts.jsonl` (same harness; a "
            "(strategy, seed) run is deterministic, so these are the runs this job would make)."
            if args.baselines_from else "run in the same job, same seeds.")),
        "",
        "Plug-in settings: " + "; ".join(f"`{n}`: {_cfg(c)}" for n, c in SETTINGS.items()),
        "",
        "| multi-asng | strategy | HV @100 | HV @300 | HV @1000 | regret @100 | regret @300 | "
        "regret @1000 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]

    def row_line(setting: str, name: str, rows: list) -> str:
        by = {r["evals"]: r for r in rows if r["strategy"] == name}
        hv = [f"{by[c]['hv_ratio']['median']:.4f} ({by[c]['hv_ratio']['p25']:.4f}-"
              f"{by[c]['hv_ratio']['p75']:.4f})" if c in by else "" for c in counts]
        rg = [f"{by[c]['regret_mean']:.3f}" if c in by else "" for c in counts]
        return f"| {setting} | {name} | " + " | ".join(hv + rg) + " |"

    for label, summary in runs.items():
        names = [n for n in summary["strategies"] if n not in BASELINES]
        for name in names:
            lines.append(row_line(label, name, summary["rows"]))
    for name in BASELINES:
        lines.append(row_line("-", name, baseline_rows))
    lines += ["", "Options removed by 1000 evaluations (mean over 3 seeds, all K=5 distributions; "
              "the space has 6 choices x 5 options = 30 per distribution) and options no "
              "distribution keeps (their supernet weights could be freed):", "",
              "| multi-asng | plug-in | removed | freed everywhere |", "|---|---|---:|---:|"]
    for (label, name), s in stats.items():
        lines.append(f"| {label} | {name} | {s['removed']:.1f} | {s['freed']:.1f} |")
    lines += ["", "Full harness output (summary.md, fronts.jsonl, anytime.png): "
              f"`{args.out}_defaults/`, `{args.out}_tuned/`.", ""]
    return "\n".join(lines)


def _cfg(config: EoiConfig) -> str:
    keys = ("interval", "R", "warmup", "smoothing", "adv_decay", "w_prob", "w_trend", "w_adv",
            "min_options", "gate")
    return ", ".join(f"{k}={getattr(config, k)}" for k in keys)


if __name__ == "__main__":
    sys.exit(run_tool(main))
