"""Benchmark of the seed plug-ins on NAS-Bench-201 -> results/plugins.md.

One job, on c10 with params and with MACs, 20 seeds, 100/300/1000 distinct evaluations, all
through `moonas.bench.run_bench` on the same seeds: multi-asng in budget mode, multi-asng with
the harness-tuned settings, the tuned settings with each plug-in alone and combined, and the
baselines (pymoo NSGA-II, optuna's NSGA-II and TPE, random search, K separate ASNG runs) run in
this job, not read from an earlier one. Exhaustive evaluation gives the ceiling the 12-epoch
signal sets on the regret. Each summary also lands in results/plugins/<cost>/<variant>/.
Every strategy's pick per budget follows one rule (`--pick`, smoothed by default, as every
page since results/plugins_seeded.md). Below each cost's table, the shipped search minus each
baseline seed by seed, with bootstrap intervals: what "ahead of every baseline" rests on.
Every strategy's cells are pruned (`--prune dead`, the harness default); a last table per cost
runs the tuned multi-asng, NSGA-II, random search and exhaustive evaluation at each pruning
level (`keep`, `unreachable`, `dead`) on the same seeds, to show what pruning does.

`--replicate N --first-seed S` runs only the multi-asng variants on seeds S..S+N-1 (fresh seeds,
so a difference seen on 20 seeds can be checked on more) ->
results/plugins_replication_S-E.md (E the last seed; results/plugins_replication.md is the
record of 2026-11-25, made with that day's variants, and is not overwritten).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import at_least, header, NO_NEIGHBOURS_BENCH, run_tool  # noqa: E402
from bench_compare import load  # noqa: E402

from moonas.atomic import check_out_folder, write_text  # noqa: E402
from moonas.bench.harness import BenchJob, run_bench  # noqa: E402
from moonas.bench.scoring import PICK_RULES, bootstrap_interval  # noqa: E402
from moonas.bench.table import load_problem  # noqa: E402

#: Every plug-in off (pvll is on by default).
PLAIN = (("pvll.enabled", False),)
TUNED = (("coefficients", (0.0, 0.05, 0.1, 0.2, 0.5)), ("delta0", 0.5), ("samples_per_dist", 1))
#: PVLL as first measured (session 3): one-hot ridge, no incumbents' neighbours, the archs as
#: drawn, no greedy phase, no crossover. Neighbours, pairs, the greedy phase, pruned cells and
#: crossover became defaults in sessions 4, 5, 9, 12 and 14; the other "+ pvll" rows take one
#: of them back at a time.
PVLL_FIRST = NO_NEIGHBOURS_BENCH + (("pvll.greedy_until", 0),)
EOI = (("eoi.enabled", True),)
#: The row every baseline is compared with: the shipped search (every default, tuned settings).
SHIPPED = "+ pvll (shipped defaults)"
VARIANTS: dict[str, tuple[tuple[str, object], ...]] = {
    "multi-asng (budget mode), no plug-in": PLAIN,
    "multi-asng (tuned), no plug-in": TUNED + PLAIN,
    "+ eoi": TUNED + PLAIN + EOI,
    "+ pvll (first form: one-hot, no neighbours, archs as drawn, no greedy phase, no crossover)":
        TUNED + PVLL_FIRST,
    "+ pvll (archs as drawn)": TUNED + (("pvll.pruned", False),),
    "+ pvll (no crossover)": TUNED + (("pvll.crossover", 0),),
    "+ pvll (gae, kernel)": TUNED + (("pvll.features", "gae"), ("pvll.predictor", "kernel")),
    SHIPPED: TUNED,
    "+ pvll + eoi": TUNED + EOI,
}
#: Where the hand-written readings of an earlier page begin: kept below a re-run's tables.
READINGS = "## Reading (hand-written"
BASELINES = ("nsga2", "optuna-nsga2", "optuna-tpe", "random", "asng-separate", "exhaustive")
#: Strategies re-run at every pruning level (the cheap ones).
PRUNE_STRATEGIES = ("multi-asng", "nsga2", "random", "exhaustive")
PRUNE_LEVELS = ("keep", "unreachable", "dead")
COUNTS = (100, 300, 1000)
TARGET_HV = (0.9945, 0.9975, 0.9990)
TARGET_REGRET = (0.60, 0.33, 0.30)


def _rows(summary: dict, strategy: str) -> list[dict]:
    return sorted((r for r in summary["rows"] if r["strategy"] == strategy),
                  key=lambda r: r["evals"])


def _line(label: str, rows: list[dict]) -> str:
    """A table row; a strategy with one count (exhaustive: every cell) fills every column."""
    if len(rows) == 1:
        label += f" ({rows[0]['reached_median']:,.0f} cells)"
    by = {r["evals"]: r for r in rows}
    cells = [by.get(c, rows[-1]) for c in COUNTS]
    hv = " | ".join(f"{r['hv_ratio']['median']:.4f}" for r in cells)
    regret = " | ".join(f"{r['regret_mean']:.3f}" for r in cells)
    signal = " | ".join(f"{r['signal_regret_mean']:.3f}" for r in cells)
    return f"| {label} | {hv} | {regret} | {signal} | {rows[-1]['wall_s_median']:.2f} |"


def _slug(label: str) -> str:
    keep = "".join(c if c.isalnum() else "-" for c in label.lower())
    return "-".join(part for part in keep.split("-") if part)


def _paired(ours: dict, theirs: dict, label: str) -> str:
    """A row of the shipped search minus a baseline, seed by seed: mean regret difference and
    median HV-ratio difference at each count, with 95% bootstrap intervals over the seeds
    (negative regret and positive HV: ours is better); bold where the interval excludes 0.
    `ours`, `theirs`: `bench_compare.Entry.data` (per count: per-seed "hv", "regret", "seeds")."""
    cells_regret, cells_hv = [], []
    for count in COUNTS:
        mine = ours[count]
        other = theirs[count] if count in theirs else theirs[max(theirs)]
        if len(other["seeds"]) == 1:  # one run (exhaustive evaluation) stands for every seed
            keep = np.ones(len(mine["seeds"]), dtype=bool)
            at = np.zeros(len(mine["seeds"]), dtype=np.int64)
        else:  # seed against seed
            keep = np.isin(mine["seeds"], other["seeds"])
            at = np.searchsorted(other["seeds"], mine["seeds"][keep])
        regret = mine["regret"][keep] - other["regret"][at]
        hv = mine["hv"][keep] - other["hv"][at]
        for values, stat, digits, cells in ((regret, np.mean, 3, cells_regret),
                                            (hv, np.median, 4, cells_hv)):
            low, high = bootstrap_interval(values, stat=stat)
            text = f"{stat(values):+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"
            cells.append(f"**{text}**" if low > 0 or high < 0 else text)
    return f"| {label} | " + " | ".join(cells_regret + cells_hv) + " |"


def _run(job: BenchJob, report: bool) -> dict:
    """The job's summary: run now, or (`report`) read from its folder."""
    if not report:
        return run_bench(job)
    path = Path(job.out) / "summary.json"
    if not path.is_file():
        sys.exit(f"--report: {path} is missing; run the job first (without --report)")
    return json.loads(path.read_text())


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad counts and unknown cost names before the first job (each job is minutes)."""
    at_least("--seeds", args.seeds, 1)
    at_least("--workers", args.workers, 1)
    at_least("--replicate", args.replicate, 0, "0: the main table")
    at_least("--first-seed", args.first_seed, 0)
    if args.report:
        return
    check_out_folder(args.results, "--results")
    for cost in dict.fromkeys(args.costs.split(",")):
        load_problem(args.table, "c10", cost)  # an unknown name: one line, valid ones


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", default=str(Path(__file__).resolve().parents[2] / "shared" /
                                               "data" / "nb201" / "nb201.csv"))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--costs", default="params,macs")
    parser.add_argument("--pick", default="smoothed", choices=sorted(PICK_RULES),
                        help="the pick rule of every strategy (default: smoothed)")
    parser.add_argument("--results", default="results")
    parser.add_argument("--report", action="store_true",
                        help="re-make the page from the job folders already under --results "
                             "(their summary.json and fronts.jsonl), running nothing")
    parser.add_argument("--replicate", type=int, default=0,
                        help="only the multi-asng variants, on this many fresh seeds")
    parser.add_argument("--first-seed", type=int, default=200)
    args = parser.parse_args()
    check_args(args)
    results = Path(args.results)
    if args.replicate:
        replicate(args, results)
        return
    lines = [header(f"Seed plug-ins on NAS-Bench-201 (c10, {args.seeds} seeds, 100/300/1000 "
                    "distinct evaluations)")]
    if args.report:
        lines.append(f"- runs: re-made from the job folders under {results / 'plugins'}/ (each "
                     "folder's summary.md gives the command, machine and date of its runs)")
    lines += ["", "Every row of a table comes from this one job, on seeds 0.."
             f"{args.seeds - 1}. multi-asng (budget mode): the default mode, budgets at the "
             "table's 10/25/50/75/90th cost percentiles, `delta0` 0.5 capped. Tuned: `"
             + ", ".join(f"{k}={v}" for k, v in TUNED) + "` (chosen on other seeds, "
             "results/nb201_tuning.json). Plug-ins with their defaults (`moonas/plugins/`) "
             "unless the row says otherwise. Angle-based shrinking needs a supernet and does "
             "not apply to a table; see results/angle_2026-12-08.md and the current digits page "
             "(results/README.md). "
             "Every strategy's cells are pruned before the look-up (`--prune dead`, the default: "
             "operations that cannot reach the cell output or only see zeros set to none; "
             f"README). Picks: {PICK_RULES[args.pick]}. Targets (issue #4): HV ratio >= "
             f"{' / '.join(map(str, TARGET_HV))}, mean regret <= "
             f"{' / '.join(map(str, TARGET_REGRET))}. Signal regret: the same loss in 12-epoch "
             "validation points (the table's best under the budget minus the pick's), what the "
             "search missed apart from the signal's noise. Wall: median seconds of one run to "
             "1000 evaluations (runs of a job share the machine's cores).", ""]
    for cost in args.costs.split(","):
        started = time.perf_counter()
        folder = results / "plugins" / cost
        lines += [f"## c10 / {cost}", "",
                  "| strategy | HV @100 | HV @300 | HV @1000 | regret @100 | regret @300 | "
                  "regret @1000 | signal regret @100 | @300 | @1000 | wall (s) |",
                  "|---|" + "---:|" * 10]
        for label, search in VARIANTS.items():
            job = BenchJob(table=args.table, out=str(folder / _slug(label)), cost=cost,
                           strategies=("multi-asng",), seeds=args.seeds, workers=args.workers,
                           search=search, pick=args.pick)
            summary = _run(job, args.report)
            lines.append(_line(label, _rows(summary, "multi-asng")))
            print(lines[-1], file=sys.stderr, flush=True)
        job = BenchJob(table=args.table, out=str(folder / "baselines"), cost=cost,
                       strategies=BASELINES, seeds=args.seeds, workers=args.workers,
                       pick=args.pick)
        summary = _run(job, args.report)
        for name in BASELINES:
            lines.append(_line(name, _rows(summary, name)))
        ours = load(f"shipped={folder / _slug(SHIPPED)}:multi-asng").data
        lines += ["", f"### c10 / {cost}: the shipped search minus each baseline, seed by seed",
                  "", f"Row `{SHIPPED}` minus the baseline on the same seeds: mean regret "
                  "(negative: ours lower) and median HV ratio (positive: ours higher), 95% "
                  "bootstrap intervals over the seeds; bold where the interval excludes 0. "
                  "Exhaustive evaluation is compared at every count with its one run.", "",
                  "| baseline | regret @100 | @300 | @1000 | HV @100 | @300 | @1000 |",
                  "|---|" + "---:|" * 6]
        for name in BASELINES:
            lines.append(_paired(ours, load(f"{name}={folder / 'baselines'}:{name}").data, name))
        lines += ["", f"### c10 / {cost}: pruning levels (same seeds; multi-asng tuned, "
                  "no plug-in)", "",
                  "| strategy | prune | HV @100 | HV @300 | HV @1000 | regret @100 | "
                  "regret @300 | regret @1000 | signal regret @100 | @300 | @1000 | wall (s) |",
                  "|---|---|" + "---:|" * 10]
        for level in PRUNE_LEVELS:
            job = BenchJob(table=args.table, out=str(folder / f"prune-{level}"), cost=cost,
                           strategies=PRUNE_STRATEGIES, seeds=args.seeds, workers=args.workers,
                           search=TUNED + PLAIN, prune=level, pick=args.pick)
            summary = _run(job, args.report)
            for name in PRUNE_STRATEGIES:
                row = _line(name, _rows(summary, name))
                label, rest = row[2:].split(" | ", 1)
                lines.append(f"| {label} | {level} | {rest}")
        took = ("re-made from the recorded runs" if args.report
                else f"{time.perf_counter() - started:.0f} s")
        lines += ["", f"({cost}: {took})", ""]
        print("\n".join(lines[-len(BASELINES) - 3:]), file=sys.stderr, flush=True)
    page = results / "plugins.md"
    earlier = page.read_text() if page.is_file() else ""
    readings = earlier[earlier.index(READINGS):] if READINGS in earlier else ""
    write_text(page, "\n".join(lines) + "\n" + (f"\n{readings}" if readings else ""))
    print("\n".join(lines))


def replicate(args: argparse.Namespace, results: Path) -> None:
    """The multi-asng variants on seeds first_seed.. (none of the main table's)."""
    last = args.first_seed + args.replicate - 1
    lines = [header(f"Seed plug-ins on NAS-Bench-201, replication on seeds {args.first_seed}.."
                    f"{last}"), "",
             f"The multi-asng rows of results/plugins.md on {args.replicate} other seeds "
             f"({args.first_seed}..{last}), same settings.", ""]
    for cost in args.costs.split(","):
        lines += [f"## c10 / {cost}", "",
                  "| strategy | HV @100 | HV @300 | HV @1000 | regret @100 | regret @300 | "
                  "regret @1000 | signal regret @100 | @300 | @1000 | wall (s) |",
                  "|---|" + "---:|" * 10]
        for label, search in VARIANTS.items():
            with tempfile.TemporaryDirectory() as tmp:
                job = BenchJob(table=args.table, out=tmp, cost=cost, strategies=("multi-asng",),
                               seeds=args.replicate, first_seed=args.first_seed,
                               workers=args.workers, search=search, pick=args.pick)
                lines.append(_line(label, _rows(run_bench(job), "multi-asng")))
            print(lines[-1], file=sys.stderr, flush=True)
        lines.append("")
    write_text(results / f"plugins_replication_{args.first_seed}-{last}.md",
               "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(run_tool(main))
