"""Per-distribution weights for contested choices (search.split) on digits -> results/split.md.

The embedded default search (nb201, 60 epochs, 5 budgets on params) with the split off and on
(``search.split.enabled=true``, its defaults unless --set), same seeds. Per run: Kendall tau of
the supernet's validation accuracy (batch norm in train mode, as the front measures) vs the
mean standalone test accuracy of the 64 random cells of ``tools/bench_angle.py`` (its cached
ground truth, ``results/angle_standalone.json``; read through a temporary copy, so missing
entries are trained there and the committed cache is left alone); on split runs per copy k and
with the home-copy rule of the front; the search's wall time; the picks per budget with their
supernet accuracy and standalone accuracy (same recipe, trained if not cached).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import (PRE_PRUNE_DEFAULTS, at_least, check_out_file, header, run_tool,  # noqa: E402
                     scratch)
from bench_angle import Standalone, _tau  # noqa: E402

import moonas  # noqa: E402
from moonas.atomic import write_text  # noqa: E402
from moonas.checkpoint import load_checkpoint  # noqa: E402
from moonas.data import load_dataset  # noqa: E402
from moonas.errors import ConfigError  # noqa: E402
from moonas.nets import build_supernet  # noqa: E402
from moonas.plugins.split import home_copy  # noqa: E402
from moonas.retrain import TrainRecipe  # noqa: E402
from moonas.run import RunFiles  # noqa: E402
from moonas.search.batches import Batches  # noqa: E402
from moonas.search.measure import split_accuracy  # noqa: E402

OPS = ("none", "skip", "conv1x1", "conv3x3", "pool")


def _search(work: Path, name: str, overrides: tuple[str, ...]) -> tuple[moonas.Run, float]:
    out = work / name
    if (out / "pareto.json").is_file():
        return moonas.load_run(out), float("nan")
    start = time.perf_counter()
    run = moonas.search(None, out, overrides=overrides, force=True)
    return run, time.perf_counter() - start


def _supernet(run_dir: Path, space):
    state = load_checkpoint(RunFiles(run_dir).checkpoint)
    supernet = build_supernet(space)
    if state.get("split"):
        s = state["split"]
        supernet.split({int(d): js for d, js in zip(s["choices"], s["options"])},
                       int(s["n_copies"]))
    supernet.load_state_dict(state["supernet"])
    return supernet, state


def _accuracies(supernet, archs, val, dist_of) -> np.ndarray:
    return np.array([split_accuracy(supernet, a, val.epoch(0, False), bn="train",
                                    dist=dist_of(a))[0] for a in archs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="search seeds")
    parser.add_argument("--archs", type=int, default=64)
    parser.add_argument("--standalone-seeds", type=int, default=3)
    parser.add_argument("--retrain-epochs", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], help="override for all runs")
    parser.add_argument("--split-set", action="append", default=[],
                        help="extra override for the split runs, e.g. search.split.choices=2")
    parser.add_argument("--cache", default="results/angle_standalone.json")
    parser.add_argument("--work", default=None)
    parser.add_argument("--out", default="results/split.md")
    args = parser.parse_args()
    at_least("--seeds", args.seeds, 0)
    if len(set(args.seeds)) != len(args.seeds):
        raise ConfigError(f"--seeds repeats a seed: {' '.join(map(str, args.seeds))}")
    at_least("--archs", args.archs, 2, "Kendall tau ranks at least two cells")
    at_least("--standalone-seeds", args.standalone_seeds, 1)
    at_least("--retrain-epochs", args.retrain_epochs, 1)
    check_out_file(args.out)
    with scratch("moonas-split-", args.work) as work:
        bench(args, work)


def bench(args: argparse.Namespace, work: Path) -> None:
    """The searches (run directories under `work`), their taus and picks, then the page."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    cache = work / "standalone.json"
    if not cache.is_file() and Path(args.cache).is_file():
        shutil.copyfile(args.cache, cache)
    base = moonas.load_config(None, args.set)
    data = load_dataset(base.data.name, seed=base.split_seed, val_fraction=base.data.val_fraction,
                        test_fraction=base.data.test_fraction)
    space = base.space.build(data.info.input_size, data.info.in_channels, data.info.n_classes)
    standalone = Standalone(cache, space, data, TrainRecipe(epochs=args.retrain_epochs))
    archs = [tuple(int(v) for v in a) for a in space.sample(np.random.default_rng(123), args.archs)]
    sseeds = range(args.standalone_seeds)
    truth = np.array([np.mean([standalone.get(a, s)["test"] for s in sseeds]) for a in archs])

    variants = {"off": (), "on": ("search.split.enabled=true", *args.split_set)}
    rows, picks, walls, splits = [], {}, {}, {}
    for seed in args.seeds:
        for variant, extra in variants.items():
            name = f"{variant}-s{seed}"
            run, walls[name] = _search(work, name, (*PRE_PRUNE_DEFAULTS, *args.set, f"seed={seed}",
                                                    *extra))
            print(json.dumps({"run": name, "wall": round(walls[name], 1)}), flush=True)
            supernet, state = _supernet(run.dir, space)
            val = Batches(data.val, 256, run.config.seed, 0, drop_last=False)
            if not supernet.split_options:
                acc = _accuracies(supernet, archs, val, lambda a: None)
                rows.append((seed, variant, "shared weights", _tau(acc, truth), len(archs)))
            else:
                theta = state["strategy"]["distributions"]["theta"]
                users = np.array([supernet.uses_split(a) for a in archs])
                splits[name] = {d: js for d, js in supernet.split_options.items()}
                acc = _accuracies(supernet, archs, val, lambda a: home_copy(supernet, a, theta))
                rows.append((seed, variant, "home copy (front rule)", _tau(acc, truth), len(archs)))
                for k in range(supernet.n_copies):
                    acc = _accuracies(supernet, archs, val,
                                      lambda a, k=k: k if supernet.uses_split(a) else None)
                    rows.append((seed, variant, f"copy {k}", _tau(acc, truth), len(archs)))
                rows.append((seed, variant, "(cells using a split option)", float("nan"),
                             int(users.sum())))
            members = {a.id: a for a in run.front.architectures}
            picks[name] = [
                (b, None) if p is None else
                (b, members[p].arch, members[p].accuracy,
                 float(np.mean([standalone.get(tuple(members[p].arch), s)["test"]
                                for s in sseeds])))
                for b, p in zip(run.front.budgets, run.front.picks)]
            print(json.dumps({"run": name, "rows": rows[-6:]}), flush=True)

    def mean_tau(variant: str, metric: str) -> float:
        vals = [t for s, v, m, t, _ in rows if v == variant and m == metric]
        return float(np.mean(vals)) if vals else float("nan")

    lines = [header("Per-distribution weights for contested choices (search.split) on digits"), "",
             f"Searches: the embedded default (`moonas/configs/default.yaml`: nb201 cell, "
             f"{base.space.get('channels')} channels, {base.search.epochs} epochs, 5 budgets on "
             f"params), overrides {args.set or 'none'}, seeds {args.seeds}; `on` adds "
             f"`search.split.enabled=true` {args.split_set or ''} (defaults: split after "
             f"{base.search.split.at:g} of the epochs, {base.search.split.choices} choice(s)). "
             f"Ground truth: the {args.archs} random cells of `tools/bench_angle.py` (rng 123), "
             f"mean standalone test accuracy over {args.standalone_seeds} seeds of a "
             f"{args.retrain_epochs}-epoch recipe (`results/angle_standalone.json`; two single "
             "seeds agree at tau 0.218 there, the noise ceiling). Supernet accuracy: validation "
             "split, batch norm in train mode (the front's setting).", "",
             "| seed | split | weights evaluated | Kendall tau vs standalone | cells |",
             "|---:|---|---|---:|---:|"]
    lines += [f"| {s} | {v} | {m} | {'' if np.isnan(t) else f'{t:.3f}'} | {n} |"
              for s, v, m, t, n in rows]
    metrics = sorted({m for _, v, m, _, _ in rows if v == "on" and not m.startswith("(")})
    lines += ["", "Mean over seeds: off (shared) "
              f"{mean_tau('off', 'shared weights'):.3f}; on: "
              + ", ".join(f"{m} {mean_tau('on', m):.3f}" for m in metrics) + ".", ""]
    lines += ["Split choices (edge: options given 5 copies): "
              + "; ".join(f"{n}: " + ", ".join(f"e{d}: {'/'.join(OPS[j] for j in js)}"
                                               for d, js in sp.items())
                          for n, sp in splits.items()) + ".", ""]
    lines += ["Search wall time (s, 1 torch thread; nan: reused run): "
              + ", ".join(f"{n} {w:.0f}" for n, w in walls.items()) + ".", ""]
    lines += ["Picks per budget (supernet val accuracy / standalone mean test accuracy):", "",
              "| run | "
              + " | ".join(f"budget {b:g}" for b, *_ in next(iter(picks.values()))) + " |",
              "|---|" + "---|" * len(next(iter(picks.values())))]
    for name, row in picks.items():
        cells = []
        for entry in row:
            if entry[1] is None:
                cells.append("none")
            else:
                _, arch, acc, sa = entry
                ops = "-".join(OPS[j] for j in arch)
                cells.append(f"{ops} {acc:.4f} / {sa:.4f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    mean_pick = {v: np.mean([e[3] for n, r in picks.items() if n.startswith(v) for e in r
                             if e[1] is not None]) for v in variants}
    lines += ["", "Mean standalone accuracy of the picks: "
              + ", ".join(f"{v} {a:.4f}" for v, a in mean_pick.items()) + ".", "",
              f"Total wall time {(time.perf_counter() - start) / 60:.1f} min (standalone "
              f"training {standalone.seconds:.0f} s).", ""]
    write_text(Path(args.out), "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(run_tool(main))
