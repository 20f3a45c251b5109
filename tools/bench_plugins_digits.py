"""The seed plug-ins in the one-shot search on digits -> results/plugins_digits.md.

The embedded default (`configs/default.yaml`: digits, nb201 cell, 5 budgets) run with each
plug-in off, alone and all together, on the same seeds, interleaved (seed by seed) so machine
load hits every variant alike. Every returned architecture is retrained standalone with one
recipe (cached across variants) and the hypervolume of each variant's retrained front (test
error, params) is compared, with the wall time of the search itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import (CURRENT_DEFAULTS, PRE_PRUNE_DEFAULTS, at_least, check_out_file,  # noqa: E402
                     header, run_tool, scratch)
from bench_search_digits import _hv, _retrain, digits_setup  # noqa: E402

import moonas  # noqa: E402
from moonas.atomic import write_text  # noqa: E402
from moonas.retrain import TrainRecipe  # noqa: E402

VARIANTS: dict[str, tuple[str, ...]] = {
    "no plug-in": (),
    "+ pvll": ("search.pvll.enabled=true",),
    "+ pvll (archs as drawn)": ("search.pvll.enabled=true", "search.pvll.pruned=false"),
    "+ pvll (no crossover)": ("search.pvll.enabled=true", "search.pvll.crossover=0"),
    "+ eoi": ("search.eoi.enabled=true",),
    "+ angle": ("search.angle.enabled=true",),
    "+ split (per-budget weights)": ("search.split.enabled=true",),
    "+ pvll + eoi + angle": ("search.pvll.enabled=true", "search.eoi.enabled=true",
                             "search.angle.enabled=true"),
    "+ pvll + eoi + split": ("search.pvll.enabled=true", "search.eoi.enabled=true",
                             "search.split.enabled=true"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--retrain-epochs", type=int, default=30)
    parser.add_argument("--set", action="append", default=[], help="config override for all runs")
    parser.add_argument("--current", action="store_true",
                        help="today's search defaults (pruning, pvll pairs and neighbours when "
                             "on) instead of those the page was first recorded with")
    parser.add_argument("--only", nargs="+", metavar="VARIANT", choices=list(VARIANTS),
                        help="run these variants only ('no plug-in' is always run: the wall "
                             "ratio's reference)")
    parser.add_argument("--out", default="results/plugins_digits.md")
    args = parser.parse_args()
    at_least("--seeds", args.seeds, 1)
    at_least("--retrain-epochs", args.retrain_epochs, 1)
    check_out_file(args.out)
    with scratch("moonas-plugins-digits-") as work:
        bench(args, work)


def bench(args: argparse.Namespace, work: Path) -> None:
    """Every variant on every seed (run directories under `work`), then the page."""
    variants = {label: extra for label, extra in VARIANTS.items()
                if args.only is None or label == "no plug-in" or label in args.only}
    if args.current:
        args.set = [*CURRENT_DEFAULTS, *args.set]
    torch.set_num_threads(1)
    recipe = TrainRecipe(epochs=args.retrain_epochs)
    cache: dict[tuple[int, ...], float] = {}
    data, space, low, high = digits_setup(args.set)
    rows: dict[str, list[dict]] = {v: [] for v in variants}
    # Warm-up (imports, dataset, first allocations) so the first timed run is not penalised.
    moonas.search(None, work / "warm-up", overrides=(*PRE_PRUNE_DEFAULTS, *args.set,
                                                      "search.epochs=2",
                                                      "search.warmup_epochs=1"))
    for seed in range(args.seeds):
        for label, extra in variants.items():
            start = time.perf_counter()
            run = moonas.search(None, work / f"{len(rows[label])}-{seed}-{abs(hash(label))}",
                                overrides=(*PRE_PRUNE_DEFAULTS, *args.set, *extra,
                                           f"seed={seed}"))
            wall = time.perf_counter() - start
            front = [(a.arch, a.params) for a in run.front.architectures]
            retrained = np.array([[1 - _retrain(space, data, arch, recipe, cache), params]
                                  for arch, params in front], dtype=np.float64)
            rows[label].append({"seed": seed, "wall": wall, "front": len(front),
                                "hv": _hv(retrained, low, high),
                                "best": float(1 - retrained[:, 0].min()),
                                "supernet_best": float(max(a.accuracy
                                                           for a in run.front.architectures)),
                                })
            print(json.dumps({"variant": label, **rows[label][-1]}), flush=True)

    def med(label: str, key: str) -> float:
        return float(np.median([r[key] for r in rows[label]]))

    ref = med("no plug-in", "wall")
    lines = [header("Seed plug-ins in the one-shot search on digits"), "",
             f"Config: the embedded default (`configs/default.yaml`) with overrides "
             f"{args.set or 'none'}; {args.seeds} seeds, variants interleaved per seed; "
             "plug-ins at "
             "their defaults. Every returned architecture retrained standalone for "
             f"{args.retrain_epochs} epochs (SGD 0.05, cosine, seed 0), scored on the test split. "
             "HV: (test error, params normalised by the space's min/max), reference 1.1.", "",
             "| variant | median wall (s) | wall / no plug-in | front size (median) | median HV of "
             "retrained front | HV per seed | best retrained test acc (median) | best supernet "
             "val acc (median) |",
             "|---|---:|---:|---:|---:|---|---:|---:|"]
    for label in variants:
        lines.append(f"| {label} | {med(label, 'wall'):.1f} | {med(label, 'wall') / ref:.2f} | "
                     f"{med(label, 'front'):.0f} | {med(label, 'hv'):.4f} | "
                     f"{', '.join(format(r['hv'], '.4f') for r in rows[label])} | "
                     f"{med(label, 'best'):.4f} | {med(label, 'supernet_best'):.4f} |")
    lines.append("")
    write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(run_tool(main))
