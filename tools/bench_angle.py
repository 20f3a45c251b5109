"""Angle-based shrinking on digits -> results/angle.md: how well three cheap estimates rank
architectures, and what shrinking does to the search.

Supernets (the embedded default config, 60 epochs, unless --set changes it):

- ``multi-asng``: the default search, with the PVLL plug-in only *recording* (explore 1: it
  screens nothing, so the search is the plain one) so its (arch, val loss) memory is saved;
- ``random``: uniform single-path training (SPOS), the setting of the published NAS-Bench-201
  figures (angle 0.575, supernet accuracy 0.540 on CIFAR-10);
- ``multi-asng+angle``: the same with ``search.angle.enabled`` (recording too, so the two
  fronts are built alike).

On the first two, Kendall tau vs standalone accuracy over ``--archs`` uniform random
architectures of (a) the angle (V0 rebuilt from the seed, checked against the plug-in's copy),
(b) the supernet's validation accuracy (moonas.search.measure, batch norm in train mode and
recalibrated), (c) a PVLL ridge predictor fitted on the search's memory of observed pairs.
Standalone: every architecture trained with one short recipe over several seeds (digits
saturates at 98-99% after 30 epochs, where one test image is 0.28 points); the mean test
accuracy is the ground truth, the mean test loss a less noisy second one. Results are cached in
a json, so reruns only train what is missing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import (PRE_PRUNE_DEFAULTS, at_least, check_out_file, header, run_tool,  # noqa: E402
                     scratch)

import moonas  # noqa: E402
from moonas.atomic import write_json, write_text  # noqa: E402
from moonas.checkpoint import load_checkpoint  # noqa: E402
from moonas.costs import build_cost_table  # noqa: E402
from moonas.data import load_dataset  # noqa: E402
from moonas.errors import ConfigError  # noqa: E402
from moonas.nets import SUPERNETS, build_supernet  # noqa: E402
from moonas.plugins.angle import angle_terms, snapshot  # noqa: E402
from moonas.plugins.pvll import make_predictor  # noqa: E402
from moonas.retrain import TrainRecipe, train_standalone  # noqa: E402
from moonas.run import RunFiles  # noqa: E402
from moonas.search.batches import Batches  # noqa: E402
from moonas.search.measure import CALIBRATION_EPOCH, split_accuracy  # noqa: E402
from moonas.spaces.nb201 import NB201_EDGES  # noqa: E402

#: PVLL recording only (explore 1: it screens nothing), so its memory of pairs is saved.
RECORD = ("search.pvll.enabled=true", "search.pvll.explore=1.0")
RUNS = {
    "multi-asng": RECORD,
    "random": ("search.strategy=random",),
    "multi-asng+angle": (*RECORD, "search.angle.enabled=true"),
}
PUBLISHED = {"angle": 0.575, "supernet accuracy": 0.540}


def connected(arch: tuple[int, ...]) -> bool:
    """Whether the nb201 cell has a path of non-`none` edges from its input to its output."""
    reach = {0}
    for node in (1, 2, 3):
        if any(to == node and frm in reach and arch[e] != 0
               for e, (to, frm) in enumerate(NB201_EDGES)):
            reach.add(node)
    return 3 in reach


@torch.no_grad()
def _test_loss(net: torch.nn.Module, data, seed: int) -> float:
    net.eval()
    total, n = 0.0, 0
    for x, y in Batches(data.test, 256, seed, stream=13, drop_last=False).epoch(0, False):
        total += float(torch.nn.functional.cross_entropy(net(x), y, reduction="sum"))
        n += len(y)
    return total / n


class Standalone:
    """Standalone results per (arch, seed), cached in a json keyed by the recipe."""

    def __init__(self, path: Path, space, data, recipe: TrainRecipe) -> None:
        self.path, self.space, self.data, self.recipe = path, space, data, recipe
        self.key = (f"nb201 c{space.channels} n{space.cells_per_stage} epochs={recipe.epochs} "
                    f"lr={recipe.lr}")
        saved = json.loads(path.read_text()) if path.is_file() else {}
        self.results: dict = saved.get(self.key, {})
        self.saved = saved
        self.seconds = 0.0

    def get(self, arch: tuple[int, ...], seed: int) -> dict:
        key = f"{self.space.to_str(arch)}|{seed}"
        if key not in self.results:
            start = time.perf_counter()
            torch.manual_seed(seed)
            net = SUPERNETS.get(self.space.name).standalone(self.space, arch)
            result = train_standalone(net, self.data, self.recipe, seed=seed)
            self.results[key] = {"test": result.test_accuracy, "val": result.val_accuracy,
                                 "test_loss": round(_test_loss(net, self.data, seed), 6)}
            self.seconds += time.perf_counter() - start
            self.saved[self.key] = self.results
            write_json(self.path, self.saved)
        return self.results[key]


def _search(work: Path, name: str, overrides: tuple[str, ...]) -> tuple[moonas.Run, float]:
    out = work / name
    start = time.perf_counter()
    if (out / "pareto.json").is_file():
        return moonas.load_run(out), 0.0
    run = moonas.search(None, out, overrides=overrides, force=True)
    return run, time.perf_counter() - start


def _estimates(run_dir: Path, space, data, archs: list[tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Per architecture: angle, supernet val accuracy (BN train / recalibrated), PVLL loss."""
    config = moonas.load_config(run_dir / "config.yaml")
    state = load_checkpoint(RunFiles(run_dir).checkpoint)
    torch.manual_seed(config.seed)  # the search's initialisation (search/context.py)
    supernet = build_supernet(space)
    v0 = snapshot(supernet)
    saved = state["strategy"].get("plugins", {}).get("angle")
    if saved is not None:  # the plug-in's own copy must be the same initialisation
        assert all(np.array_equal(v0[n], np.asarray(v)) for n, v in saved["v0"].items())
    supernet.load_state_dict(state["supernet"])
    out = {f"angle ({label})": angle_terms(supernet, v0, parameters=which).angles(np.array(archs))
           for which, label in (("weights", "conv/linear weights, default"),
                                ("all", "all parameters"))}
    # Angles of the blocks alone (default vector): shared weights, and each conv option.
    terms = angle_terms(supernet, v0)
    dot, n0, nt = terms.shared
    out["_shared_angle"] = np.array([np.arccos(dot / np.sqrt(n0 * nt))])
    for j, op in ((2, "conv1x1"), (3, "conv3x3")):
        dot, n0, nt = terms.options[:, :, j]
        out[f"_{op}_angle"] = np.arccos(dot / np.sqrt(n0 * nt))
    val = Batches(data.val, 256, config.seed, 0, drop_last=False)
    train = Batches(data.train, config.data.batch_size, config.seed, 3, drop_last=True)
    calibration = list(itertools.islice(train.epoch(CALIBRATION_EPOCH), config.search.bn_batches))
    for bn in ("train", "recalibrate"):
        out[f"supernet accuracy (BN {bn})"] = np.array([
            split_accuracy(supernet, a, val.epoch(0, False), bn=bn, calibration=calibration)[0]
            for a in archs])
    pvll = state["strategy"].get("plugins", {}).get("pvll")
    if pvll is not None:
        mem_archs, mem_losses = np.asarray(pvll["archs"]), np.asarray(pvll["losses"])
        # The run's own predictor (one-hot ridge with the pre-prune defaults, pairs today); with
        # `pvll.pruned` its memory holds the cells as measured, so it predicts those.
        predictor = make_predictor(config.search.pvll, space.n_options)
        predictor.fit(mem_archs, mem_losses)
        cells = np.array(archs)
        if config.search.pvll.pruned:
            cells = space.prune(cells, config.search.prune)
        out["PVLL predicted loss (negated)"] = -predictor.predict(cells)
        out["_pvll_pairs"] = np.array([len(mem_losses)])
    return out


def _tau(a: np.ndarray, b: np.ndarray) -> float:
    return float(kendalltau(a, b).statistic)


def _tau_within(a: np.ndarray, b: np.ndarray, groups: np.ndarray) -> float:
    """Kendall tau within each group of equal ``groups`` (4+ members), weighted by size."""
    taus, sizes = [], []
    for g in np.unique(groups):
        sel = groups == g
        if sel.sum() >= 4 and np.ptp(a[sel]) > 0:
            taus.append(_tau(a[sel], b[sel]))
            sizes.append(sel.sum())
    return float(np.average(taus, weights=sizes)) if taus else float("nan")


def _within_sentence(within: dict[tuple[str, str], float]) -> str:
    """What the last column says of the default angle against the multi-asng supernet's other
    estimates: tau within groups of equal convolution count."""
    angle = within[("multi-asng", "angle (conv/linear weights, default)")]
    others = [(m, t) for (n, m), t in within.items() if n == "multi-asng" and "angle" not in m]
    above = [f"{m} {t:.3f}" for m, t in others if t > angle]
    below = [f"{m} {t:.3f}" for m, t in others if t <= angle]
    return (f"Within cells of equal convolution count it ranks at tau {angle:.3f} (last column)"
            + (f"; above it: {', '.join(above)}" if above else "")
            + (f"; at or below it: {', '.join(below)}" if below else "") + ".")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--archs", type=int, default=64, help="random architectures to rank")
    parser.add_argument("--seeds", type=int, default=3, help="standalone seeds per architecture")
    parser.add_argument("--retrain-epochs", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], help="config override for all runs")
    parser.add_argument("--cache", default="results/angle_standalone.json")
    parser.add_argument("--work", default=None, help="run directories (kept; reused if complete)")
    parser.add_argument("--out", default="results/angle.md")
    args = parser.parse_args()
    at_least("--archs", args.archs, 2, "Kendall tau ranks at least two architectures")
    at_least("--seeds", args.seeds, 1)
    at_least("--retrain-epochs", args.retrain_epochs, 1)
    check_out_file(args.out)
    check_out_file(args.cache, "--cache")
    with scratch("moonas-angle-", args.work) as work:
        bench(args, work)


def bench(args: argparse.Namespace, work: Path) -> None:
    """The three searches (run directories under `work`), the estimates, then the page."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    base = moonas.load_config(None, args.set)
    data = load_dataset(base.data.name, seed=base.split_seed, val_fraction=base.data.val_fraction,
                        test_fraction=base.data.test_fraction)
    space = base.space.build(data.info.input_size, data.info.in_channels, data.info.n_classes)
    if space.name != "nb201":
        raise ConfigError("this benchmark samples nb201 cells; keep space.name=nb201")
    recipe = TrainRecipe(epochs=args.retrain_epochs)
    standalone = Standalone(Path(args.cache), space, data, recipe)
    archs = [tuple(int(v) for v in a) for a in space.sample(np.random.default_rng(123), args.archs)]
    conn = np.array([connected(a) for a in archs])
    if conn.sum() < 2:  # before the searches: the connected-only taus would be undefined
        raise ConfigError(f"--archs {args.archs} draws {int(conn.sum())} cell(s) connecting input "
                          "to output; the connected-only Kendall tau needs two: give more --archs")

    runs, walls = {}, {}
    for name, extra in RUNS.items():
        runs[name], walls[name] = _search(work, name, (*PRE_PRUNE_DEFAULTS, *args.set, *extra))
        print(json.dumps({"run": name, "wall": round(walls[name], 1)}), flush=True)

    seeds = range(args.seeds)
    per_seed = np.array([[standalone.get(a, s)["test"] for s in seeds] for a in archs])
    loss = np.array([[standalone.get(a, s)["test_loss"] for s in seeds] for a in archs]).mean(1)
    truth = per_seed.mean(axis=1)
    ceiling = (np.mean([_tau(per_seed[:, i], per_seed[:, j])
                        for i, j in itertools.combinations(seeds, 2)])
               if args.seeds > 1 else float("nan"))
    ceiling_conn = (np.mean([_tau(per_seed[conn, i], per_seed[conn, j])
                             for i, j in itertools.combinations(seeds, 2)])
                    if args.seeds > 1 else float("nan"))

    n_conv = np.array([sum(op in (2, 3) for op in a) for a in archs])
    params = build_cost_table(space).cost("params", np.array(archs))

    def row(name: str, metric: str, values: np.ndarray) -> tuple:
        return (name, metric, _tau(values, truth), _tau(values[conn], truth[conn]),
                _tau(values, -loss), _tau_within(values, truth, n_conv))

    rows, diag = [row("-", "params (no supernet)", params)], {}
    for name in ("multi-asng", "random"):
        est = _estimates(runs[name].dir, space, data, archs)
        diag[name] = {k: est.pop(k) for k in [k for k in est if k.startswith("_")]}
        diag[name]["params_tau"] = _tau(est["angle (conv/linear weights, default)"], params)
        for metric, values in est.items():
            rows.append(row(name, metric, values))
            print(json.dumps({"run": name, "metric": metric, "tau": round(rows[-1][2], 3)}),
                  flush=True)

    # What shrinking did: the options removed and the picks, retrained with the same recipe.
    log = [json.loads(s)
           for s in RunFiles(runs["multi-asng+angle"].dir).log.read_text().splitlines()]
    shrinks = [e for e in log if e.get("kind") == "epoch" and "angle_removed" in e]
    picks = {}
    for name in ("multi-asng", "multi-asng+angle"):
        front = runs[name].front
        members = {a.id: a for a in front.architectures}
        picks[name] = []
        for budget, pick in zip(front.budgets, front.picks):
            if pick is None:
                picks[name].append((budget, None, None, None))
                continue
            a = members[pick]
            acc = float(np.mean([standalone.get(tuple(a.arch), s)["test"] for s in seeds]))
            picks[name].append((budget, space.to_str(tuple(a.arch)), a.accuracy, acc))
    wall = time.perf_counter() - start

    ops = ("none", "skip", "conv1x1", "conv3x3", "pool")
    lines = [header("Angle-based shrinking on digits: ranking and search"), "",
             f"Supernets: the embedded default (`moonas/configs/default.yaml`: nb201 cell, "
             f"{base.space.get('channels')} channels, {base.search.epochs} epochs, 5 budgets on "
             f"params) with overrides {args.set or 'none'}; runs: `multi-asng` (PVLL plug-in "
             "recording only: explore 1, no screening, so the search is the plain one), `random` "
             "(uniform single-path training, SPOS, as in the published NB201 figures), "
             "`multi-asng+angle` (the same plus search.angle enabled, defaults). "
             f"Ground truth: {args.archs} uniform random nb201 cells (rng 123), each trained "
             f"standalone {args.seeds} times (seeds 0..{args.seeds - 1}) for {args.retrain_epochs} "
             "epochs (SGD 0.05, cosine, wd 5e-4, `moonas.retrain`), mean test accuracy (359 "
             "images) and mean test loss. A short recipe because with session 1's 30 epochs "
             "nearly every connected cell ends at 98-99%, where one image is 0.28 points; "
             f"{int(conn.sum())} of the {args.archs} cells connect input to output (the rest "
             "score ~10%).", "",
             f"Noise ceiling: Kendall tau between the test accuracies of two standalone seeds, "
             f"mean over pairs: {ceiling:.3f} (all), {ceiling_conn:.3f} (connected only). "
             f"Standalone mean test accuracy: {truth.mean():.4f} (range {truth.min():.4f}-"
             f"{truth.max():.4f}; connected {truth[conn].min():.4f}-{truth[conn].max():.4f}).", "",
             "Columns: Kendall tau of the estimate vs mean standalone test accuracy over all "
             "cells, over the connected ones, vs minus the mean test loss, and within groups of "
             "equal convolution count (weighted mean over groups of 4+ cells: what the estimate "
             "says beyond \"more convolutions\").", "",
             "| supernet | estimate | tau vs accuracy | tau (connected) | tau vs -loss | "
             "tau within equal #conv |",
             "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {n} | {m} | {a:.3f} | {b:.3f} | {c:.3f} | {d:.3f} |" for n, m, a, b, c, d in rows]
    searched = runs["multi-asng"].config.search
    lines += ["", f"Published (NAS-Bench-201, CIFAR-10, ABS paper): angle {PUBLISHED['angle']}, "
              f"supernet accuracy {PUBLISHED['supernet accuracy']}. "
              "PVLL pairs in the memory at the "
              f"end of the multi-asng search: {int(diag['multi-asng']['_pvll_pairs'][0])} (the "
              "plug-in's FIFO, default 500); the predictor is the run's own "
              f"(`features: {searched.pvll.features}`, `predictor: "
              f"{searched.pvll.predictor}`), fitted on that memory"
              + (", and predicts each cell pruned as the search measures it "
                 f"(`{searched.prune}`)"
                 if searched.pvll.pruned and searched.prune != "keep" else "") + ".", "",
              "Angles of the blocks on their own (default vector, radians): "
              + "; ".join(f"{n}: shared weights {d['_shared_angle'][0]:.3f}, conv1x1 per edge "
                          f"{d['_conv1x1_angle'].min():.3f}-{d['_conv1x1_angle'].max():.3f}, "
                          "conv3x3 "
                          f"{d['_conv3x3_angle'].min():.3f}-{d['_conv3x3_angle'].max():.3f}"
                          for n, d in diag.items()) + ".", ""]
    d = diag["multi-asng"]
    dilutes = d["_shared_angle"][0] > max(d["_conv1x1_angle"].max(), d["_conv3x3_angle"].max())
    angle_tau = {n: t for n, m, t, *_ in rows if m.startswith("angle (conv")}
    lines += ["## Reading", "",
              f"- The angle ranks these cells at tau {angle_tau['multi-asng']:.3f} (multi-asng "
              f"supernet) and {angle_tau['random']:.3f} (uniform SPOS supernet), against the "
              f"published {PUBLISHED['angle']} on NAS-Bench-201/CIFAR-10. "
              + ("The child's angle is a norm-weighted mean of its blocks' angles, and the shared "
                 "weights (stem, reduction blocks, classifier) turned further than any cell "
                 "convolution: every convolution a cell adds pulls the angle down, so the angle "
                 "mostly counts parameter-free edges (its tau with the parameter count: "
                 f"{diag['multi-asng']['params_tau']:.3f} and "
                 f"{diag['random']['params_tau']:.3f}), while on digits more convolutions "
                 "mean more accuracy (params "
                 f"alone: tau {rows[0][2]:.3f}). "
                 if dilutes else "")
              + _within_sentence({(n, m): d for n, m, _, _, _, d in rows}),
              f"- The ground truth is weak: two single standalone seeds agree at tau "
              f"{ceiling:.3f} (the truth is the mean of {args.seeds}); the figures compare the "
              "estimates with each other more than with the published ones, which rank "
              "15,625 cells spread over 10-94% on CIFAR-10.",
              "- Shrinking therefore removes convolutions from the distributions that can afford "
              "them (list below), the opposite of what digits rewards; keep search.angle off on "
              "this kind of task (it is off by default).",
              "- Per-budget separate weights for the most contested choices (PWSNAS's reduced "
              "weight sharing after shrinking): `search.split`, measured in results/split.md.",
              "", "## Shrinking in the search (`multi-asng+angle`)", ""]
    for e in shrinks:
        removed = ", ".join(f"k{k}:e{d}:{ops[j]}" for k, d, j in e["angle_removed"])
        lines.append(f"- after epoch {e['epoch'] + 1}: removed {removed or 'nothing'}; options "
                     f"left per distribution {e['angle_active']}; freed {e['angle_freed']}")
    lines += ["", "Picks per budget (front of the search, supernet val accuracy; the same pick "
              f"retrained standalone, mean test accuracy over {args.seeds} seeds):", "",
              "| budget (params) | multi-asng pick | supernet acc | standalone | +angle pick | "
              "supernet acc | standalone |",
              "|---:|---|---:|---:|---|---:|---:|"]
    for (b, a1, s1, t1), (_, a2, s2, t2) in zip(picks["multi-asng"], picks["multi-asng+angle"]):
        def fmt(a, s, t):
            cell = "" if a is None else a.replace("|", "\\|")  # pipes would split the table
            return "none | | " if a is None else f"`{cell}` | {s:.4f} | {t:.4f}"
        lines.append(f"| {b:g} | {fmt(a1, s1, t1)} | {fmt(a2, s2, t2)} |")
    lines += ["", f"Wall time: {wall / 60:.1f} min in all (searches "
              + ", ".join(f"{n} {w:.0f} s" for n, w in walls.items())
              + f"; standalone training {standalone.seconds:.0f} s, 0 when cached), "
              "1 torch thread.", ""]
    write_text(Path(args.out), "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(run_tool(main))
