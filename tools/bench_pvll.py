"""Benchmark of the PVLL plug-in: predictor Kendall tau on NAS-Bench-201 and the harness on/off."""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

# One BLAS thread: on a shared 2-core machine a threaded 500 x 500 solve (the kernel ridge's
# refit) runs ~35x slower than a single-threaded one. Set before numpy loads OpenBLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import header  # noqa: E402

from moonas.bench.harness import BenchJob, run_bench  # noqa: E402
from moonas.bench.runners import (RUNNERS, RunOptions, TableEvaluator, Trace, _drive,  # noqa: E402
                                  _strategy, search_config)
from moonas.bench.table import BenchProblem, load_table  # noqa: E402
from moonas.plugins import gae  # noqa: E402
from moonas.plugins.pvll import (KernelPredictor, PVLLConfig, PVLLPlugin, RidgePredictor,  # noqa: E402
                                 encode)

TABLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nb201" / "nb201.csv"
OBSERVATIONS = (50, 100, 300)

#: Harness variants: runner name -> plug-in settings (the off run is plain `multi-asng`).
VARIANTS = {
    "multi-asng+pvll": PVLLConfig(enabled=True, neighbours=False, features="onehot"),
    "multi-asng+pvll-all": PVLLConfig(enabled=True, neighbours=False, features="onehot",
                                      tell="all"),
    "multi-asng+pvll-all-e25": PVLLConfig(enabled=True, neighbours=False, features="onehot",
                                          tell="all", explore=0.25),
    "multi-asng+pvll-damp": PVLLConfig(enabled=True, neighbours=False, features="onehot",
                                       damp=1.0),
    "multi-asng+pvll-gae": PVLLConfig(enabled=True, neighbours=False, features="gae",
                                      predictor="kernel"),
}

#: multi-asng's tuned settings of results/nb201.md (chosen on seeds 100..119).
TUNED = (("coefficients", (0.0, 0.05, 0.1, 0.2, 0.5)), ("delta0", 0.5), ("samples_per_dist", 1))


class PVLLStrategy:
    """MultiASNGStrategy with the plug-in around ask/tell: the hook the lead adds to it."""

    def __init__(self, base: Any, plugin: PVLLPlugin) -> None:
        self.base = base
        self.plugin = plugin

    def ask(self, rng: np.random.Generator) -> np.ndarray:
        return self.plugin.propose(rng, self.base.core, self.base.ask(rng))

    def tell(self, archs: np.ndarray, losses: np.ndarray, costs: np.ndarray) -> dict[str, Any]:
        told = self.plugin.tell_mask(len(archs))
        fields: dict[str, Any] = {}
        if told.sum() >= 2:  # one sample cannot be ranked
            fields = self.base.tell(archs[told], losses[told], costs[told])
        fields.update(self.plugin.observe(archs, losses, costs, self.base.core))
        return fields

    def modes(self) -> np.ndarray:
        return self.base.modes()


def _pvll_runner(config: PVLLConfig):
    def run(problem: BenchProblem, max_evals: int, rng: np.random.Generator,
            options: RunOptions, counts: Sequence[int]) -> Trace:
        search = search_config(options, problem.cost_name)
        base = _strategy("multi-asng", problem, search)
        plugin = PVLLPlugin(config, problem.n_options, base.core.K,
                            np.random.default_rng(int(rng.integers(2**31))))
        cost = np.asarray(problem.cost)
        obj = base.objective
        plugin.set_objective(lambda a: cost[problem.index(a)], budgets=obj.budgets,
                             coefficients=obj.coefficients, cost_max=float(cost.max()))
        evaluator = TableEvaluator(problem, prune="keep")  # as recorded in results/
        trace = Trace()
        _drive([PVLLStrategy(base, plugin)], evaluator, rng, max_evals, counts, trace)
        trace.parts.append(evaluator.part())
        return trace

    run.__doc__ = (f"multi-asng with the PVLL plug-in (tell={config.tell}, explore="
                   f"{config.explore}, damp={config.damp}, features={config.features}).")
    return run


for _name, _config in VARIANTS.items():
    if _name not in RUNNERS:
        RUNNERS.register(_name)(_pvll_runner(_config))


# ------------------------------------------------------------------------------ Kendall tau
def _models(n_options: tuple[int, ...], seed: int) -> dict[str, Any]:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.neural_network import MLPRegressor

    class Ridge:
        def __init__(self, features: str, ridge: float) -> None:
            self.model = RidgePredictor(n_options, features, ridge)

        def fit(self, archs, y):
            self.model.fit(archs, y)

        def predict(self, archs):
            return self.model.predict(archs)

    class Sk:
        def __init__(self, model) -> None:
            self.model = model

        def fit(self, archs, y):
            self.model.fit(encode(archs, n_options), y)

        def predict(self, archs):
            return self.model.predict(encode(archs, n_options))

    class Control(KernelPredictor):
        """Kernel ridge on the embedding of an autoencoder that was never trained."""

        def encode(self, archs):
            return _untrained().embed(archs)

    return {
        "ridge one-hot (plug-in default)": Ridge("onehot", 1.0),
        "ridge one-hot + pairs": Ridge("pairs", 3.0),
        "ridge GAE embedding": RidgePredictor(n_options, "gae", 1.0),
        "kernel ridge one-hot": KernelPredictor(n_options, "onehot", 0.1),
        "kernel ridge GAE embedding (`features=gae, predictor=kernel`)":
            KernelPredictor(n_options, "gae", 0.1),
        "control: kernel ridge, untrained autoencoder": Control(n_options, "gae", 0.1),
        "random forest one-hot (sklearn)": Sk(RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=1)),
        "MLP 64x64 one-hot (sklearn)": Sk(MLPRegressor(hidden_layer_sizes=(64, 64), alpha=1e-3, max_iter=2000,
                                                       random_state=seed)),
    }


@functools.lru_cache(maxsize=1)
def _untrained() -> gae.GAEEncoder:
    return gae.train_encoder(gae.nb201_graph(), gae.GAEConfig(epochs=0), seed=0)


def gae_check() -> dict[str, float]:
    """Training time of the default autoencoder and how well it reconstructs every cell."""
    started = time.perf_counter()
    encoder = gae.cached_encoder(gae.nb201_graph())
    seconds = time.perf_counter() - started
    table = load_table(str(TABLE))
    return {"seconds": seconds, **encoder.reconstruction(table.archs)}


def tau_table(seeds: int, held_out: int) -> dict[str, dict[int, list[float]]]:
    """Tau of predicted loss vs true 12-epoch c10 validation accuracy (sign flipped), on
    `held_out` random archs not observed, after 50/100/300 uniformly drawn observations."""
    table = load_table(str(TABLE))
    problem = table.problem("c10", "params")
    acc = np.asarray(problem.signal)
    out: dict[str, dict[int, list[float]]] = {}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        order = rng.permutation(problem.size)
        test = order[-held_out:]
        for n in OBSERVATIONS:
            train = order[:n]
            for name, model in _models(problem.n_options, seed).items():
                model.fit(problem.arch(train), 1.0 - acc[train] / 100.0)
                pred = model.predict(problem.arch(test))
                tau = kendalltau(-pred, acc[test]).statistic
                out.setdefault(name, {}).setdefault(n, []).append(float(tau))
    return out


def search_tau(seeds: int, held_out: int) -> dict[str, dict[int, list[float]]]:
    """Same tau, the plug-in's own predictor fitted on what a plug-in run observed (its
    memory after 50/100/300 distinct evaluations, not uniform draws)."""
    table = load_table(str(TABLE))
    problem = table.problem("c10", "params")
    acc = np.asarray(problem.signal)
    from moonas.bench.scoring import budget_percentiles

    budgets = budget_percentiles(np.asarray(problem.cost))
    out: dict[str, dict[int, list[float]]] = {}
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        search = search_config(RunOptions(budgets=tuple(budgets)), "params")
        base = _strategy("multi-asng", problem, search)
        config = PVLLConfig(enabled=True, neighbours=False, features="onehot")
        plugin = PVLLPlugin(config, problem.n_options, base.core.K, seed)
        strategy = PVLLStrategy(base, plugin)
        evaluator = TableEvaluator(problem, prune="keep")  # as recorded in results/
        seen: list[int] = []
        for n in OBSERVATIONS:
            while evaluator.n_distinct < n:
                archs = strategy.ask(rng)
                losses, costs = evaluator(archs)
                strategy.tell(archs, losses, costs)
            seen = list(evaluator.part()[0])
            rest = np.setdiff1d(np.arange(problem.size), seen)
            test = np.random.default_rng(seed).choice(rest, size=held_out, replace=False)
            for name, model in (("ridge one-hot", RidgePredictor(problem.n_options)),
                                ("kernel ridge GAE", KernelPredictor(problem.n_options, "gae"))):
                model.fit(problem.arch(np.asarray(seen)), 1.0 - acc[seen] / 100.0)
                pred = model.predict(problem.arch(test))
                tau = float(kendalltau(-pred, acc[test]).statistic)
                out.setdefault(name, {}).setdefault(n, []).append(tau)
    return out


# --------------------------------------------------------------------------------- harness
def harness(seeds: int, workers: int, strategies: tuple[str, ...], out: Path,
            search: tuple = ()) -> dict:
    job = BenchJob(table=str(TABLE), out=str(out), dataset="c10", cost="params",
                   strategies=strategies, evals=(100, 300, 1000), seeds=seeds, workers=workers,
                   search=search)
    return run_bench(job)


def run_seconds(name: str, evals: int = 1000) -> float:
    """Wall time of one harness run of a runner (c10/params, default settings, seed 0)."""
    from moonas.bench.scoring import budget_percentiles

    problem = load_table(str(TABLE)).problem("c10", "params")
    options = RunOptions(budgets=tuple(budget_percentiles(np.asarray(problem.cost))))
    started = time.perf_counter()
    RUNNERS.get(name)(problem, evals, np.random.default_rng(0), options, (evals,))
    return time.perf_counter() - started


def _med(values: list[float]) -> str:
    return f"{np.median(values):.3f} ({np.percentile(values, 25):.3f}-{np.percentile(values, 75):.3f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10, help="harness seeds")
    parser.add_argument("--tau-seeds", type=int, default=10)
    parser.add_argument("--held-out", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" / "pvll.md"))
    parser.add_argument("--strategies", default="multi-asng," + ",".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    check = gae_check()
    started = time.perf_counter()
    taus = tau_table(args.tau_seeds, args.held_out)
    in_search = search_tau(args.tau_seeds, args.held_out)
    tau_s = time.perf_counter() - started
    run_s = {name: run_seconds(name) for name in ("multi-asng", "multi-asng+pvll",
                                                  "multi-asng+pvll-gae")}
    summaries = {}
    for label, search in (("default multi-asng settings", ()),
                          ("multi-asng's tuned settings (" + ", ".join(
                              f"{k}={v}" for k, v in TUNED) + ")", TUNED)):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            summaries[label] = (harness(args.seeds, args.workers,
                                        tuple(args.strategies.split(",")), Path(tmp), search),
                                time.perf_counter() - started)

    lines = [header("PVLL plug-in (issue #6 section 1): loss predictor and screening"), ""]
    lines += [
        "## Kendall tau, predicted vs true 12-epoch validation accuracy (c10)", "",
        f"Held-out: {args.held_out} random architectures of the table not observed; median "
        f"(25th-75th percentile) over {args.tau_seeds} seeds. Observations drawn uniformly from "
        f"the table, except the last row: the plug-in's own memory in a plug-in run (budget mode, "
        f"c10/params). Took {tau_s:.0f} s (one process, OPENBLAS_NUM_THREADS="
        f"{os.environ.get('OPENBLAS_NUM_THREADS')}).", "",
        "| predictor | tau @50 | tau @100 | tau @300 |", "|---|---:|---:|---:|",
    ]
    for name, per in taus.items():
        lines.append(f"| {name} | " + " | ".join(_med(per[n]) for n in OBSERVATIONS) + " |")
    for name, per in in_search.items():
        lines.append(f"| {name}, fitted on a plug-in run's observations | "
                     + " | ".join(_med(per[n]) for n in OBSERVATIONS) + " |")
    lines += [
        "", "Graph-autoencoder encoding (`moonas/plugins/gae.py`, `features: gae`): every cell as "
        "an operation-node DAG (input, one node per edge with a real operation, output; `none` "
        "edges dropped, `skip_connect` edges contracted, operations that cannot reach the output "
        "or only see zeros pruned), a variational autoencoder (3 directed GIN layers of 64, "
        "latent 16 per node, bilinear adjacency and node-type decoders) pre-trained without "
        "accuracies on the distinct graphs of all 15,625 cells, embedding = mean of the latent "
        "means over the nodes, standardised over the space. "
        f"Training took {check['seconds']:.0f} s on one thread (once per process); decoding "
        f"from the latent means rebuilds {100 * check['graphs']:.1f}% of the cells' graphs "
        f"exactly ({100 * check['node_types']:.2f}% of node types, "
        f"{100 * check['adjacency']:.2f}% of adjacency entries). Kernel ridge: RBF kernel, "
        "length scale the median distance between the fitted embeddings, penalty 0.1 "
        "(chosen among 0.03/0.1/0.3/1 and length-scale factors 0.5/1/2 on tau seeds 0-4). "
        "The control row runs the same kernel ridge on an autoencoder with the same weights "
        "before training: what pre-training adds beyond the graph itself.",
        "", "Cost of one 1000-evaluation harness run (c10/params, seed 0, default settings, "
        "the autoencoder already trained): " + ", ".join(
            f"`{name}` {seconds:.1f} s" for name, seconds in run_s.items()) + ".",
    ]
    for label, (summary, harness_s) in summaries.items():
        lines += ["", f"## Harness, c10 / params, plug-in on vs off: {label}", "",
                  f"{args.seeds} seeds (0..{args.seeds - 1}); the harness of issue #4 (HV ratio "
                  f"median and quartiles, mean regret; each strategy name has its own rng stream). "
                  f"Took {harness_s:.0f} s with {args.workers} workers.", "",
                  "| strategy | HV @100 | HV @300 | HV @1000 | regret @100 | regret @300 | "
                  "regret @1000 |", "|---|---:|---:|---:|---:|---:|---:|"]
        rows: dict[str, dict[int, dict]] = {}
        for row in summary["rows"]:
            rows.setdefault(row["strategy"], {})[row["evals"]] = row
        for name, per in rows.items():
            cells = [_fmt_hv(per.get(n, {})) for n in (100, 300, 1000)]
            cells += [_fmt_regret(per.get(n, {})) for n in (100, 300, 1000)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Variants: " + "; ".join(f"`{n}`: {c}" for n, c in VARIANTS.items()), "",
              "## Notes", "",
              "- Screening replaces a share 1 - explore of each step's rows by the best of `pool` "
              "draws from the same distribution under its predicted objective (predicted loss "
              "and the table's cost, which is known before evaluation, under k's budget or "
              "coefficient). `tell=unscreened` tells the core only the rows left as drawn, so "
              "the importance weights p_k/q stay exact; screened rows are evaluated, remembered "
              "and count for the front. `tell=all` tells every row as if drawn from q (biased, "
              "greedy).",
              "- The harness counts distinct evaluations: screened rows cost evaluations like "
              "any other row.",
              "- One-hot + pairs predicts better from 100 observations on (tau above) but its "
              "numpy encoding makes a 1000-evaluation run about 20x slower, so it is not in "
              "the harness tables.",
              "- `multi-asng+pvll-gae` is the plug-in with `features=gae, predictor=kernel`; "
              "its autoencoder is trained once per worker process before its first fit.",
              "- Default encoding: stays `onehot` with `ridge`. The GAE embedding with kernel "
              "ridge ranks held-out cells far better (tau table, uniform draws and a plug-in "
              "run's own memory alike); an untrained autoencoder of the same shape gets part "
              "of the way (the pruned graph itself carries information) and pre-training adds "
              "the rest, most with 50 observations. But the better ranking does not show "
              "in the search: `multi-asng+pvll-gae` is within the seed spread of "
              "`multi-asng+pvll` on HV and regret in both harness tables; the embedding "
              "exists only for NAS-Bench-201 (other spaces would fall back to one-hot with a "
              "warning); and it costs a one-off autoencoder training per process (20-40 s "
              "on this machine) plus ~3.5x the plug-in's time per step. Use `features: gae, "
              "predictor: kernel` on NAS-Bench-201 where the predicted ranking itself matters.",
              ""]
    Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


def _fmt_hv(row: dict) -> str:
    if "hv_ratio" not in row:
        return "-"
    hv = row["hv_ratio"]
    return f"{hv['median']:.4f} ({hv['p25']:.4f}-{hv['p75']:.4f})"


def _fmt_regret(row: dict) -> str:
    return f"{row['regret_mean']:.3f}" if "regret_mean" in row else "-"


if __name__ == "__main__":
    sys.exit(main())
