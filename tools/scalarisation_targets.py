"""Where multi-asng's cost coefficients aim on NAS-Bench-201, and where the regret per budget sits.

In coefficient mode a distribution with coefficient c ranks cells by
``loss + c * cost / cost_max`` (`moonas.asng.importance.coefficient_keys`; loss = 1 - the
12-epoch validation accuracy, what the search observes; cost_max = the dearest cell's cost).
With the loss known exactly, the best cell under that key is where the distribution is drawn.
A linear key only reaches the *supported* points of the (cost, loss) front, those on its convex
hull; a budget whose best cell lies in a dent of the front is the target of no coefficient.

The page shows, per cost:

1. the harness's budgets (10/25/50/75/90th cost percentiles), the table's best 12-epoch cell
   under each, and whether any coefficient in [0, 10] aims at it (a dense sweep);
2. the cell each coefficient of a grid aims at (the shipped ones among them);
3. with ``--compare``, the mean regret per budget of benchmark folders, from their
   summary.json (``regret_per_budget``), at each count they list.

    .venv/bin/python tools/scalarisation_targets.py --table ../shared/data/nb201/nb201.csv \\
        --compare 'ours=results/plugins/params/pvll-shipped-defaults:multi-asng' \\
                  'optuna-tpe=results/plugins/params/baselines:optuna-tpe'
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import check_out_file, header, run_tool  # noqa: E402
from bench_plugins import TUNED  # noqa: E402

from moonas.asng.importance import coefficient_keys  # noqa: E402
from moonas.atomic import write_text  # noqa: E402
from moonas.bench.scoring import PERCENTILES, budget_percentiles  # noqa: E402
from moonas.bench.table import load_problem  # noqa: E402
from moonas.errors import MoonasError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: Coefficients listed in the grid; the tuned set the benchmarks run (bench_plugins.TUNED,
#: results/nb201_tuning.json) among them.
GRID = (0.0, 0.02, 0.05, 0.07, 0.1, 0.15, 0.2, 0.25, 0.26, 0.3, 0.5, 1.0)
SHIPPED = tuple(dict(TUNED)["coefficients"])
#: The dense sweep that decides whether a budget's best cell is any coefficient's target.
SWEEP = np.concatenate([[0.0], np.geomspace(1e-4, 10.0, 4001)])


def targets(loss: np.ndarray, cost: np.ndarray, coefficients) -> np.ndarray:
    """Row index (len(coefficients),) of the cell with the lowest linear key per coefficient
    (ties: the cheaper cell)."""
    cost_max = float(cost.max())
    out = []
    for c in coefficients:  # one at a time: the sweep's (K, cells) keys would not fit memory
        key = coefficient_keys(loss, cost, np.array([c]), cost_max)[0]
        best = np.flatnonzero(key <= key.min() + 1e-12)
        out.append(int(best[np.argmin(cost[best])]))
    return np.array(out, dtype=np.int64)


def cost_section(table: str, dataset: str, cost_name: str) -> list[str]:
    problem = load_problem(table, dataset, cost_name)
    cost = np.asarray(problem.cost, dtype=np.float64)
    signal = np.asarray(problem.signal, dtype=np.float64)
    loss = 1.0 - signal / 100.0
    unit = problem.cost_unit
    reached = set(targets(loss, cost, SWEEP).tolist())
    lines = [f"## {dataset} / {cost_name}", "",
             "Budgets (the harness's) and the table's best 12-epoch cell under each; *aimed at*: "
             f"whether some coefficient in [0, 10] ranks that cell first ({len(SWEEP)} values).",
             "", f"| percentile | budget ({unit}) | best cell's cost | its 12-epoch accuracy "
                 "| aimed at |", "|---:|---:|---:|---:|---|"]
    for pct, budget in zip(PERCENTILES, budget_percentiles(cost)):
        under = np.flatnonzero(cost <= budget + 1e-9)
        best = int(under[np.argmax(signal[under])])
        lines.append(f"| {pct:g} | {budget:.4g} | {cost[best]:.4g} | {signal[best]:.2f} | "
                     f"{'yes' if best in reached else 'no'} |")
    lines += ["", "The cell each coefficient aims at (shipped set in bold):", "",
              f"| coefficient | cost ({unit}) | 12-epoch accuracy |", "|---:|---:|---:|"]
    for c, row in zip(GRID, targets(loss, cost, GRID)):
        label = f"**{c:g}**" if c in SHIPPED else f"{c:g}"
        lines.append(f"| {label} | {cost[row]:.4g} | {signal[row]:.2f} |")
    return lines + [""]


def compare_section(entries: list[str]) -> list[str]:
    """Mean regret per budget of each LABEL=DIR:STRATEGY, per cost and count."""
    by_cost: dict[str, list[str]] = {}
    for entry in entries:
        if "=" not in entry or ":" not in entry.split("=", 1)[1]:
            raise SystemExit(f"--compare {entry!r}: use LABEL=DIR:STRATEGY")
        label, rest = entry.split("=", 1)
        folder, strategy = rest.rsplit(":", 1)
        path = Path(folder) / "summary.json"
        if not path.is_file():
            raise SystemExit(f"--compare {entry!r}: {path} does not exist; give a folder "
                             "written by 'moonas bench nb201'")
        summary = json.loads(path.read_text())
        rows = [r for r in summary["rows"] if r["strategy"] == strategy]
        if not rows:
            raise SystemExit(f"--compare {entry!r}: {folder} has no strategy {strategy!r}")
        seeds = f"{summary['first_seed']}-{summary['first_seed'] + summary['seeds'] - 1}"
        for r in rows:
            cells = " | ".join(f"{v:.3f}" for v in r["regret_per_budget"])
            by_cost.setdefault(summary["cost"], []).append(
                f"| {label} | {seeds} | {r['evals']} | {cells} | {r['regret_mean']:.3f} |")
    lines = ["## Mean regret per budget (points), from the folders' summaries", ""]
    for cost_name, rows in by_cost.items():
        pct = " | ".join(f"{p:g}th" for p in PERCENTILES)
        lines += [f"{cost_name}:", "", f"| entry | seeds | evaluations | {pct} | mean |",
                  "|---|---|---:|" + "---:|" * (len(PERCENTILES) + 1), *rows, ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True, help="NAS-Bench-201 csv (its README)")
    parser.add_argument("--dataset", default="c10")
    parser.add_argument("--costs", nargs="+", default=["params", "macs"])
    parser.add_argument("--compare", nargs="*", default=[], metavar="LABEL=DIR:STRATEGY")
    parser.add_argument("--out", default=str(ROOT / "results" / "plugins_targets.md"))
    args = parser.parse_args(argv)
    if not Path(args.table).is_file():
        raise SystemExit(f"--table {args.table}: no such file; pass the NAS-Bench-201 csv")
    check_out_file(args.out)
    lines = [header("Where the cost coefficients aim on NAS-Bench-201, and the regret per "
                    "budget"), __doc__.split("\n\n")[1].replace("\n", " "), ""]
    try:
        for cost_name in args.costs:
            lines += cost_section(args.table, args.dataset, cost_name)
    except MoonasError as err:  # an unknown dataset or cost: one line
        raise SystemExit(f"scalarisation_targets: {err}") from None
    if args.compare:
        lines += compare_section(args.compare)
    write_text(args.out, "\n".join(lines) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
