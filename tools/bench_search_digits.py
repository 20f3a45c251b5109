"""Benchmark of the one-shot search on the embedded default (digits) -> results/search_digits.md.

Side by side per seed: the 5-budget joint run (multi-asng), one single-distribution ASNG run
of the same length, K separate ASNG runs (asng-separate) and SPOS + NSGA-II. Then every
returned architecture is retrained standalone with one recipe and the hypervolume of each
method's retrained front (test split) is compared; Kendall tau between the supernet's
accuracy and the standalone accuracy is measured on 30 random architectures, with batch norm
in train mode and recalibrated.
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
from _report import NO_NEIGHBOURS, at_least, check_out_file, header, run_tool, scratch  # noqa: E402

import moonas  # noqa: E402
from moonas.atomic import write_text  # noqa: E402
from moonas.checkpoint import load_checkpoint  # noqa: E402
from moonas.costs import build_cost_table  # noqa: E402
from moonas.data import load_dataset  # noqa: E402
from moonas.nets import SUPERNETS, build_supernet  # noqa: E402
from moonas.pareto import hypervolume, non_dominated, normalise  # noqa: E402
from moonas.retrain import TrainRecipe, train_standalone  # noqa: E402
from moonas.search.batches import Batches  # noqa: E402
from moonas.search.measure import split_accuracy  # noqa: E402

METHODS = ("multi-asng", "asng", "asng-separate", "spos-nsga2")


def _retrain(space, data, arch: tuple[int, ...], recipe: TrainRecipe, cache: dict) -> float:
    if arch not in cache:
        torch.manual_seed(0)
        net = SUPERNETS.get(space.name).standalone(space, arch)
        cache[arch] = train_standalone(net, data, recipe, seed=0).test_accuracy
    return cache[arch]


def _hv(points: np.ndarray, cost_low: float, cost_high: float) -> float:
    """HV of (test error, params) normalised to [0, 1] (error as is), reference 1.1."""
    points = points[non_dominated(points)]
    scaled = normalise(points, [0.0, cost_low], [1.0, cost_high])
    return hypervolume(scaled, 1.1)


def digits_setup(overrides: list[str]):
    """Digits data and the default config's space (with `overrides`), and the space's params
    range for the HV normalisation: (data, space, low, high)."""
    base = moonas.load_config(None, overrides)
    data = load_dataset("digits", seed=base.split_seed)
    space = base.space.build(data.info.input_size, data.info.in_channels, data.info.n_classes)
    table = build_cost_table(space)
    low, _ = table.extreme("params")
    high, _ = table.extreme("params", cheapest=False)
    return data, space, low, high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--random-archs", type=int, default=30)
    parser.add_argument("--retrain-epochs", type=int, default=30)
    parser.add_argument("--set", action="append", default=[], help="config override for all runs")
    parser.add_argument("--out", default="results/search_digits.md")
    args = parser.parse_args()
    at_least("--seeds", args.seeds, 1)
    at_least("--random-archs", args.random_archs, 2, "Kendall tau ranks at least two")
    at_least("--retrain-epochs", args.retrain_epochs, 1)
    check_out_file(args.out)
    with scratch("moonas-bench-") as work:
        bench(args, work)


def bench(args: argparse.Namespace, work: Path) -> None:
    """Every method on every seed (run directories under `work`), then the page."""
    torch.set_num_threads(1)
    recipe = TrainRecipe(epochs=args.retrain_epochs)
    rows: dict[str, list[dict]] = {m: [] for m in METHODS}
    taus: list[dict] = []
    cache: dict[tuple[int, ...], float] = {}
    data, space, low, high = digits_setup(args.set)
    rng = np.random.default_rng(123)
    random_archs = [tuple(int(v) for v in a) for a in space.sample(rng, args.random_archs)]
    for seed in range(args.seeds):
        for method in METHODS:
            start = time.perf_counter()
            run = moonas.search(None, work / f"{method}-{seed}",
                                overrides=(*NO_NEIGHBOURS, *args.set, f"seed={seed}",
                                           f"search.strategy={method}"))
            wall = time.perf_counter() - start
            front = [(a.arch, a.params) for a in run.front.architectures]
            retrained = np.array([[1 - _retrain(space, data, arch, recipe, cache), params]
                                  for arch, params in front], dtype=np.float64)
            rows[method].append({"seed": seed, "wall": wall, "front": len(front),
                                 "hv": _hv(retrained, low, high),
                                 "best": float(1 - retrained[:, 0].min())})
            print(json.dumps({"method": method, **rows[method][-1]}), flush=True)
        # Kendall tau: this seed's joint supernet vs standalone accuracy on random archs.
        from scipy.stats import kendalltau

        config = moonas.load_config(work / f"multi-asng-{seed}" / "config.yaml")
        supernet = build_supernet(space)
        supernet.load_state_dict(
            load_checkpoint(work / f"multi-asng-{seed}" / "checkpoint.pt")["supernet"])
        standalone = [_retrain(space, data, a, recipe, cache) for a in random_archs]
        val = Batches(data.val, 256, seed, 0, drop_last=False)
        train = Batches(data.train, 64, seed, 3, drop_last=True)
        entry = {"seed": seed}
        for bn in ("train", "recalibrate"):
            est = [split_accuracy(
                       supernet, a, val.epoch(0, False), bn=bn,
                       calibration=list(train.epoch(10**6))[:config.search.bn_batches])[0]
                   for a in random_archs]
            entry[bn] = float(kendalltau(est, standalone).statistic)
        taus.append(entry)
        print(json.dumps({"kendall": entry}), flush=True)

    def med(method: str, key: str) -> float:
        return float(np.median([r[key] for r in rows[method]]))

    joint = med("multi-asng", "wall")
    lines = [header("One-shot search on digits: wall time, retrained fronts, ranking"), "",
             f"Config: the embedded default (`configs/default.yaml`) as of session 3 "
             f"({', '.join(NO_NEIGHBOURS)}, recorded before it became a default) with overrides "
             f"{args.set or 'none'}; {args.seeds} seeds; every returned architecture retrained "
             f"standalone for {args.retrain_epochs} epochs (SGD 0.05, cosine, seed 0) and "
             "scored on "
             "the test split. HV: (test error, params normalised by the space's min/max), "
             "reference 1.1.", "",
             "| method | median wall (s) | wall / joint | front size (median) | "
             "median HV of retrained front | HV per seed | best test acc (median) |",
             "|---|---:|---:|---:|---:|---|---:|"]
    for m in METHODS:
        lines.append(f"| {m} | {med(m, 'wall'):.1f} | {med(m, 'wall') / joint:.2f} | "
                     f"{med(m, 'front'):.0f} | {med(m, 'hv'):.4f} | "
                     f"{', '.join(format(r['hv'], '.4f') for r in rows[m])} | "
                     f"{med(m, 'best'):.4f} |")
    per_seed_ratio = [rows["multi-asng"][i]["wall"] / rows["asng"][i]["wall"]
                      for i in range(args.seeds)]
    per_seed_sep = [rows["multi-asng"][i]["wall"] / rows["asng-separate"][i]["wall"]
                    for i in range(args.seeds)]
    lines += ["", f"- joint / single ASNG wall time, per seed: "
              f"{', '.join(f'{v:.2f}' for v in per_seed_ratio)} "
              f"(median {np.median(per_seed_ratio):.2f}; target <= 1.3)",
              f"- joint / K separate runs: {', '.join(f'{v:.2f}' for v in per_seed_sep)} "
              f"(median {np.median(per_seed_sep):.2f}; expect about 1/5)", "",
              "Kendall tau, supernet validation accuracy vs standalone test accuracy, "
              f"{args.random_archs} random architectures:", "",
              "| seed | BN train mode | BN recalibrated |", "|---:|---:|---:|"]
    lines += [f"| {t['seed']} | {t['train']:.3f} | {t['recalibrate']:.3f} |" for t in taus]
    lines += [f"| median | {np.median([t['train'] for t in taus]):.3f} | "
              f"{np.median([t['recalibrate'] for t in taus]):.3f} |", ""]
    write_text(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(run_tool(main))
