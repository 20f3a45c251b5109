"""The deploy subcommands (`pick`, `export`, `train`, `plot`, `profile`) and the plot jobs they run.

`register(subparsers)` adds them to the `moonas` parser; each handler returns an exit code
and raises `MoonasError` (printed as one line by `moonas.cli.main`) on bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from moonas.distributed import add_processes_argument
from moonas.errors import ArgumentError, ConfigError, MoonasError, UsageError

if TYPE_CHECKING:
    from moonas.config import RunConfig
    from moonas.deploy.pick import NoFeasibleArchitecture, Pick

__all__ = ["register", "SearchHistory", "read_history", "plot_runs", "plot_history",
           "budget_labels"]

log = logging.getLogger(__name__)

_HELP = {
    "pick": "pick the best architecture a run measured (its candidates) per device budget",
    "export": "export a picked network to TorchScript, ONNX or a state dict",
    "train": "retrain a picked network standalone on the run's dataset",
    "plot": "plot fronts, budgets and how the distributions settled",
    "profile": "measure an additive latency table on this machine",
}


# -- the search log ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchHistory:
    """What `log.jsonl` says about a search, as arrays.

    `steps`, `train_loss` `(T,)`; `dist_steps` `(S,)` the steps with a distribution update,
    `val_loss`, `entropy` `(S, K)`; `epoch_steps` `(E,)` and `theta` `(E, K, D, Kmax)` the
    probabilities at each epoch end (None for strategies without distributions). Runs made
    of separate single-budget searches (`asng-separate`) have one column per budget.
    """

    steps: np.ndarray
    train_loss: np.ndarray
    dist_steps: np.ndarray
    val_loss: np.ndarray
    entropy: np.ndarray | None
    epoch_steps: np.ndarray
    theta: np.ndarray | None


def read_history(run_dir: str | Path) -> SearchHistory:
    """Parse `RUN/log.jsonl` (a torn or damaged line is left out, with a warning)."""
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        raise MoonasError(f"{run_dir} has no log.jsonl: give the directory of a moonas search")
    train: dict[int, list[float]] = {}
    val: dict[int, dict[int, float]] = {}
    ent: dict[int, dict[int, float]] = {}
    thetas: dict[int, dict[int, list]] = {}
    epoch_step: dict[int, int] = {}
    skipped = 0
    for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            entry = None
        if not isinstance(entry, dict) or not isinstance(entry.get("step", 0), (int, float)):
            skipped += 1  # a torn or damaged line: the others still draw
            continue
        run = entry.get("run")
        step = int(entry.get("step", 0))
        if entry.get("kind") == "epoch":
            theta = entry.get("theta")
            if theta is not None:
                epoch = int(entry.get("epoch", len(epoch_step)))
                epoch_step.setdefault(epoch, step)
                thetas.setdefault(epoch, {})
                for k, t in enumerate(theta):
                    thetas[epoch][(run or 0) + k] = t
            continue
        if "train_loss" in entry:
            train.setdefault(step, []).append(float(entry["train_loss"]))
        for source, target in (("val_loss", val), ("entropy", ent)):
            values = entry.get(source)
            if values is not None:
                for k, v in enumerate(values):
                    target.setdefault(step, {})[(run or 0) + k] = float(v)
    if skipped:
        log.warning("%s: %d line%s not a log record (torn or damaged); the curves leave %s out",
                    path, skipped, "s are" if skipped > 1 else " is", "them" if skipped > 1
                    else "it")
    steps = np.array(sorted(train), dtype=np.int64)
    dist_steps = np.array(sorted(val), dtype=np.int64)
    n_dists = 1 + max((k for row in val.values() for k in row), default=-1)

    def matrix(source: dict[int, dict[int, float]]) -> np.ndarray:
        out = np.full((len(dist_steps), n_dists), np.nan)
        for i, s in enumerate(dist_steps):
            for k, v in source.get(int(s), {}).items():
                out[i, k] = v
        return out

    theta = None
    epochs = sorted(thetas)
    if epochs:
        k_max = 1 + max(max(row) for row in thetas.values())
        first = np.asarray(next(iter(thetas[epochs[0]].values())), dtype=np.float64)
        theta = np.full((len(epochs), k_max, *first.shape), np.nan)
        for e, epoch in enumerate(epochs):
            for k, t in thetas[epoch].items():
                theta[e, k] = np.asarray(t, dtype=np.float64)
    return SearchHistory(
        steps=steps, train_loss=np.array([np.mean(train[int(s)]) for s in steps]),
        dist_steps=dist_steps, val_loss=matrix(val), entropy=matrix(ent) if ent else None,
        epoch_steps=np.array([epoch_step[e] for e in epochs], dtype=np.int64), theta=theta)


def budget_labels(run) -> list[str]:
    """One label per distribution: `params <= 5210` or `eps = 0.25`."""
    front = run.front
    return _labels_of(front.cost, front.budgets, front.coefficients)


def _labels_of(cost: str, budgets, coefficients) -> list[str]:
    if budgets is not None:
        return [f"{cost} <= {b:g}" for b in budgets]
    return [f"eps = {c:g}" for c in coefficients or ()]


# -- plot jobs ---------------------------------------------------------------------------------
def _labels(runs, labels: Sequence[str] | None) -> list[str]:
    if labels:
        if len(labels) != len(runs):
            raise ConfigError(f"--label given {len(labels)} times for {len(runs)} runs: give one "
                              "per run, in order")
        return list(labels)
    names = [r.dir.name for r in runs]
    if len(set(names)) < len(names):
        names = [f"{r.dir.parent.name}/{r.dir.name}" for r in runs]
    return names


def plot_runs(runs, out: str | Path, x: str | None = None, latency_table: str | Path | None = None,
              labels: Sequence[str] | None = None, log_x: bool = False) -> dict:
    """Fronts of `runs` overlaid against cost `x` (`params`, `macs`, `latency:DEVICE`; default
    the first run's cost); returns the data drawn. `runs`: `Run`s or run folders (loaded), or
    one of either.

    A latency is priced with `latency_table`, else each run's own table (or, when that is gone,
    its recorded latencies: see `resolve_latency`), else the first table a run names."""
    from moonas.deploy.pick import (candidate_costs, candidate_pool, cost_label,
                                    resolve_latency)
    from moonas.deploy.trained import read_trained_metrics
    from moonas.plotting import FrontSeries, plot_front_overlay
    from moonas.run import Run, front_mask, load_run

    if isinstance(runs, (str, os.PathLike, Run)):
        runs = [runs]
    loaded = []
    for r in runs:
        if not isinstance(r, (str, os.PathLike, Run)):
            raise ArgumentError(f"runs must be Runs or run folders, got {type(r).__name__} "
                                f"{repr(r)[:40]}")
        loaded.append(r if isinstance(r, Run) else load_run(r))
    runs = loaded
    if not runs:
        raise ConfigError("plot_runs needs at least one run")
    x = x or runs[0].front.cost
    names = _labels(runs, labels)
    tables = [getattr(r.config.search, "latency_table", None) for r in runs]
    shared = latency_table or next((t for t in tables if t is not None), None)
    series, budgets, trained = [], [], []
    for run, name, own in zip(runs, names, tables):
        model = None
        if x.startswith("latency:"):
            if shared is None:
                raise ConfigError(f"--x {x} needs --latency-table PATH (a 'moonas profile' JSON, "
                                  "a folder of them, or nb201.csv)")
            # None: the run's own table, with its recorded latencies as the fallback.
            table = latency_table if latency_table is not None or own is not None else shared
            model = resolve_latency(run, x, table)
        pool = candidate_pool(run)
        cost = candidate_costs(pool, x, model)
        accuracy = np.array([c.accuracy for c in pool])
        if x == run.front.cost:
            on_front = np.array([c.on_front for c in pool])
        else:  # ties in accuracy and cost count once, as on the search's front
            on_front = front_mask(pool, cost)
        series.append(FrontSeries(label=name, cost=cost, accuracy=accuracy, on_front=on_front,
                                  mode_of=tuple(c.mode_of for c in pool)))
        budgets.append(list(run.front.budgets or ()) if x == run.front.cost else [])
        points = []
        for i, c in enumerate(pool):
            metrics = read_trained_metrics(run.dir, c.id, c.arch)
            if metrics is not None and metrics.get("test_accuracy") is not None:
                points.append((float(cost[i]), c.accuracy, float(metrics["test_accuracy"])))
        trained.append(points)
    return plot_front_overlay(series, out, xlabel=cost_label(x), budgets=budgets,
                              trained=trained, log_x=log_x,
                              title=f"accuracy vs {cost_label(x)}")


def plot_history(run, out: str | Path, kind: str) -> dict:
    """`kind="theta"`: per-distribution probability heatmaps; `"curves"`: loss and entropy
    (the training loss alone for a run that logged no distributions). `run`: a `Run`, or the
    folder of one, finished or not (running, stopped): these draw its log.jsonl alone."""
    from moonas.plotting import plot_search_curves, plot_theta_heatmaps

    run = _history_source(run)
    history = read_history(run.dir)
    labels = run.labels
    if kind == "theta":
        if history.theta is None or not len(history.epoch_steps):
            raise MoonasError(f"run {run.dir} logged no distributions (strategy "
                              f"{run.config.search.strategy!r}): nothing to draw a heatmap of")
        from moonas.run import choice_space

        space = choice_space(run.config)  # the choices' names: no data loaded, no torch
        if space is None:
            from moonas.pricing import run_space

            space = run_space(run)
        choices = [(c.name, c.options) for c in space.choices]
        return plot_theta_heatmaps(history.epoch_steps, history.theta, out, choices=choices,
                                   budget_labels=labels,
                                   title=f"option probabilities per distribution: {run.dir.name}")
    if kind == "curves":
        if not len(history.steps):
            raise MoonasError(f"run {run.dir} logged no steps: nothing to draw")
        window = max(1, len(history.steps) // 25)
        title = f"search curves: {run.dir.name}"
        if not len(history.dist_steps):
            # Strategies without distributions (random, spos-nsga2) log the supernet's
            # training loss only: that still shows how the weights trained.
            log.info("run %s logged no distributions (strategy %r): drawing the training loss "
                     "only, no validation losses or entropies", run.dir,
                     run.config.search.strategy)
            title += (f" ({run.config.search.strategy} has no distributions: training loss "
                      "only)")
        return plot_search_curves(history.steps, history.train_loss, out,
                                  dist_steps=history.dist_steps, val_loss=history.val_loss,
                                  entropy=history.entropy, budget_labels=labels, window=window,
                                  title=title)
    from moonas.registry import closest

    fronts = ": draw fronts with plot_runs" if kind == "front" else closest(str(kind),
                                                                           HISTORY_KINDS)
    raise ConfigError(f"plot_history draws kind 'theta' or 'curves', got {kind!r}{fronts}")


#: What `plot_history` draws (a run's log); fronts are `plot_runs`'.
HISTORY_KINDS = ("theta", "curves")


@dataclass(frozen=True)
class _HistorySource:
    """What `plot_history` draws from: a run folder, its config, one label per distribution."""

    dir: Path
    config: RunConfig
    labels: list[str]


def _history_source(run) -> _HistorySource:
    """`run` (a `Run` or a run folder) as `plot_history` reads it: a folder without a front
    yet (a search running or stopped) is read from its config.yaml and log.jsonl, its labels
    from the budgets its config resolves to (as the search resolves them)."""
    from moonas.config import load_config
    from moonas.run import CorruptFront, Run, RunFiles, load_run

    if isinstance(run, Run):
        return _HistorySource(run.dir, run.config, budget_labels(run))
    files = RunFiles(Path(run))
    if files.pareto_json.is_file():
        try:
            return _history_source(load_run(files.root))
        except CorruptFront:  # a damaged front leaves the log to draw
            pass
    if not files.config.is_file():
        raise MoonasError(f"{files.root} is not a moonas run (no config.yaml): give the --out "
                          "directory of a moonas search")
    if not files.log.is_file():
        raise MoonasError(f"run {files.root} has logged nothing yet (no log.jsonl): plot it "
                          "after its first epoch")
    config = load_config(files.config)
    return _HistorySource(files.root, config, _resolved_labels(config))


def _resolved_labels(config: RunConfig) -> list[str]:
    """`budget_labels` of a run without a front: its objective resolved as the search does
    (the same seed stream); none where that needs the data (imagefolder's shape)."""
    from moonas.pricing import static_space
    from moonas.search.context import cost_model, run_objective
    from moonas.search.strategies import SINGLE_DISTRIBUTION

    if config.search.strategy not in ("multi-asng", *SINGLE_DISTRIBUTION):
        return []  # no distributions in its own log, or one per sub-run (asng-separate)
    try:
        space = static_space(config)
        objective = run_objective(config, space, cost_model(space, config.search))
    except MoonasError:
        return []
    return _labels_of(objective.cost, objective.budgets, objective.coefficients)


# -- handlers ----------------------------------------------------------------------------------
def _load_run(path: str):
    from moonas.run import load_run

    return load_run(path)


def _row(p) -> str:
    c = p.candidate
    latency = "" if p.latency_ms is None else f"  latency {p.latency_ms:.3f} ms ({p.device})"
    trained = ("" if p.trained is None else
               f"  retrained test accuracy {p.trained.get('test_accuracy', float('nan')):.4f}")
    return (f"id {c.id}  accuracy {c.accuracy:.4f}  params {c.params:,}  macs {c.macs:,}"
            f"{latency}  weights {p.weights}{trained}\n  {c.arch_str}")


_TABLE_HEADER = ("device", "id", "accuracy", "params", "macs", "latency_ms", "arch_str")


def _budgets_table(results: Sequence[tuple[str, "Pick | NoFeasibleArchitecture"]]) -> list[str]:
    """The lines of `pick --budgets-file`: one row per device, every column as wide as its
    widest cell (device left-aligned, numbers right-aligned, arch_str last and unpadded); an
    infeasible device gets `-` as id and its message in place of the rest. A latency priced on
    a device other than the row's name says which (`1.234 (raspi4)`)."""
    from moonas.deploy.pick import NoFeasibleArchitecture

    rows: list[tuple[str, ...]] = []
    for name, r in results:
        if isinstance(r, NoFeasibleArchitecture):
            rows.append((name, "-", f"none: {r}"))
            continue
        c = r.candidate
        latency = "-" if r.latency_ms is None else f"{r.latency_ms:.3f}"
        if r.latency_ms is not None and r.device != name:  # the row's name is not its device
            latency += f" ({r.device})"
        rows.append((name, str(c.id), f"{c.accuracy:.4f}", f"{c.params:,}", f"{c.macs:,}",
                     latency, c.arch_str))
    table = [_TABLE_HEADER, *rows]
    widths = [max(len(row[i]) for row in table if i < len(row) - 1)  # the last cell: unpadded
              for i in range(len(_TABLE_HEADER) - 1)]
    lines = []
    for row in table:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:-1], widths[1:])]
        lines.append("  ".join([*cells, row[-1]]))
    return lines


def _cmd_pick(args: argparse.Namespace) -> int:
    from moonas.deploy.pick import (NoFeasibleArchitecture, parse_limits, pick, pick_many,
                                    read_budgets_file)

    run = _load_run(args.run)
    if args.budgets_file:
        given = [f for f in ("max_params", "max_macs", "max_latency_ms", "min_accuracy", "device")
                 if getattr(args, f) is not None]
        if given:
            raise UsageError(f"--budgets-file sets the limits per device: drop "
                             f"{', '.join('--' + g.replace('_', '-') for g in given)}")
        results = pick_many(run, read_budgets_file(args.budgets_file),
                            latency_table=args.latency_table, prefer=args.prefer)
        failed = any(isinstance(r, NoFeasibleArchitecture) for _, r in results)
        # As a single pick: each entry nothing meets is one line on stderr (exit code 2), its
        # row of the table or the JSON on stdout as well.
        sys.stderr.write("".join(f"moonas pick: error: budgets entry {name!r}: {r}\n"
                                 for name, r in results
                                 if isinstance(r, NoFeasibleArchitecture)))
        if args.json:
            print(json.dumps([r.to_json() if not isinstance(r, NoFeasibleArchitecture)
                              else {"name": name, "error": str(r)} for name, r in results],
                             indent=2))
        else:
            print("\n".join(_budgets_table(results)))
        return 2 if failed else 0
    _usage(parse_limits, args.max_params, args.max_macs, args.max_latency_ms,
           args.min_accuracy)
    try:
        result = pick(run, max_params=args.max_params, max_macs=args.max_macs,
                      max_latency_ms=args.max_latency_ms, device=args.device,
                      min_accuracy=args.min_accuracy, prefer=args.prefer,
                      latency_table=args.latency_table)
    except NoFeasibleArchitecture as err:
        if args.json:  # a script reading stdout gets JSON either way (as --budgets-file gives)
            print(json.dumps({"error": str(err)}, indent=2))
        raise  # still exit code 2, and the one line on stderr
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(f"{result.limits.describe(result.device)} ({args.prefer}, "
              f"{result.n_feasible} feasible): {_row(result)}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from moonas.deploy.export import (check_format_suffix, check_output_path, export_network,
                                      sidecar_latency)

    check_output_path(check_format_suffix(args.out, args.format))
    run = _load_run(args.run)
    latency, notes, measured = sidecar_latency(run, args.id, args.device, args.latency_table)
    result = export_network(run, args.id, args.format, args.out, weights=args.weights,
                            latency=latency, latency_notes=notes, latency_measured=measured)
    diff = ("" if result.max_abs_diff is None
            else f", max |diff| vs PyTorch {result.max_abs_diff:.1e}")
    print(f"id {args.id} ({result.weights} weights) -> {result.path} ({result.format}{diff}); "
          f"sidecar {result.sidecar}")
    return 0


def _usage(check, *values):
    """`check(*values)`, a value out of range (`ConfigError`) raised as the usage error it is
    on the command line (exit code 2); the Python API keeps raising `ConfigError`."""
    try:
        return check(*values)
    except UsageError:
        raise
    except ConfigError as err:
        raise UsageError(str(err)) from None


def _precheck_train(args: argparse.Namespace) -> None:
    """What every process of `train --processes N` would reject, checked once."""
    from dataclasses import replace

    from moonas.deploy.train import check_recipe_args, check_run_device

    _usage(check_recipe_args, args.epochs, args.lr)
    from moonas.deploy.trained import TrainedFiles
    from moonas.distributed import check_launch
    from moonas.lock import check_free

    run = _load_run(args.run)
    config = run.config
    if args.device is not None:
        config = replace(config, device=args.device)
    else:  # the run's GPU missing here: the fix is --device, not a config setting
        check_run_device(run)
    check_launch(config, args.processes, "device" if args.device is None else "--device")
    # Another training of this id holds it: one line here, not one per process.
    check_free(TrainedFiles.of(run.dir, args.id).root, "trained")


def _cmd_train(args: argparse.Namespace) -> int:
    from moonas.deploy.train import check_recipe_args, train_candidate

    _usage(check_recipe_args, args.epochs, args.lr)
    run = _load_run(args.run)
    bar = None
    if not args.quiet:
        from moonas.cli import _Bar

        bar = _Bar(f"id {args.id}")
    try:
        metrics = train_candidate(run, args.id, epochs=args.epochs, init=args.init, lr=args.lr,
                                  restart=args.restart, progress=bar, device=args.device)
    finally:
        if bar is not None:
            bar.close()
    epochs = metrics['recipe']['epochs']
    print(f"id {metrics['id']} retrained ({metrics['init']} init, {epochs} "
          f"epoch{'' if epochs == 1 else 's'}): test accuracy {metrics['test_accuracy']:.4f}, "
          f"validation {metrics['val_accuracy']:.4f} (supernet estimate "
          f"{metrics['supernet_val_accuracy']:.4f}) -> "
          f"{Path(run.dir) / 'trained' / str(metrics['id'])}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from moonas.atomic import check_output_path

    out = check_output_path(args.out, (".png", ".svg", ".pdf"))
    if args.kind != "front":
        # The other kinds draw one run over the search steps: no cost axis, no run legend.
        given = [flag for flag, value in (("--x", args.x), ("--label", args.label),
                                          ("--log-x", args.log_x),
                                          ("--latency-table", args.latency_table)) if value]
        if given:
            names = " and ".join(filter(None, (", ".join(given[:-1]), given[-1])))
            raise UsageError(f"{names} appl{'y' if len(given) > 1 else 'ies'} to --kind front "
                              f"only, not --kind {args.kind}")
    if args.latency_table is not None:  # a missing table is an error even when unused
        from moonas.costs.latency import known_devices

        known_devices(args.latency_table)
    if args.kind != "front":  # these draw a run's log: finished or not (running, stopped)
        if len(args.runs) != 1:
            raise UsageError(f"--kind {args.kind} draws one run, got {len(args.runs)}")
        _check_plot_out(args, out, [Path(args.runs[0])])
        plot_history(args.runs[0], out, args.kind)
        print(f"{args.kind} of {Path(args.runs[0])} -> {out}")
        return 0
    if args.label and len(args.label) != len(args.runs):
        raise UsageError(f"--label given {len(args.label)} times for {len(args.runs)} runs: "
                         "give one per run, in order")
    runs = [_load_run(r) for r in args.runs]
    _check_plot_out(args, out, [run.dir for run in runs])
    drawn = plot_runs(runs, out, x=args.x, latency_table=args.latency_table,
                      labels=args.label, log_x=args.log_x)
    points = sum(len(s["front_x"]) for s in drawn["series"])
    print(f"{len(runs)} front(s), {points} front points -> {out}")
    return 0


def _check_plot_out(args: argparse.Namespace, out: Path, run_dirs: Sequence[Path]) -> None:
    """Refuse a `plot --out` that is a file of a plotted run (its pareto.png, anything below
    trained/: see `run_file`, which `export --out` is checked with too)."""
    from moonas.deploy.trained import run_file

    for run_dir in run_dirs:
        target = run_file(run_dir, out)
        if target is not None:
            raise ConfigError(f"--out {args.out} would overwrite {target}, a file of the run "
                              f"{run_dir}: choose another name, e.g. "
                              f"{Path(run_dir) / (args.kind + out.suffix)}")


def _check_replace(out: Path, name: str, force: bool) -> None:
    """Refuse to replace another device's latency table (runs that searched with it rely on
    it) or a file that is no latency table, unless `force`; the same device's is re-measured."""
    from moonas.costs.latency import known_devices

    if not out.exists():
        return
    try:
        old = known_devices(out)[0]
    except (MoonasError, KeyError, IndexError):
        old = None
    if old == name:
        log.info("replacing the earlier latency table of %s in %s", name, out)
        return
    held = ("exists and is not a 'moonas profile' latency table" if old is None else
            f"holds the latency table of device {old!r}, not {name!r}")
    if not force:
        raise MoonasError(f"--out {out} {held}: choose another --out, or pass --force to "
                          "replace it")
    log.warning("replacing %s, which %s, with the table of %s (--force)", out, held, name)


def _cmd_profile(args: argparse.Namespace) -> int:
    from moonas.config import config_to_dict, load_config
    from moonas.costs.latency import remeasure_advice
    from moonas.atomic import check_output_path
    from moonas.deploy.profile import TimingProtocol, check_device_name, profile_space
    from moonas.pricing import static_space

    # Out-of-range flags first, as usage errors (exit 2).
    protocol = _usage(lambda: TimingProtocol(threads=args.threads, warmup=args.warmup,
                                             repeats=args.repeats, statistic=args.statistic))
    if args.seed < 0:
        raise UsageError(f"profile --seed must be >= 0, got {args.seed}")
    if args.random is not None and args.random < 1:
        raise UsageError(f"profile --random must be >= 1, got {args.random}: the fit needs "
                         "random networks to be checked")
    out = check_output_path(args.out, (".json",))
    check_device_name(args.name)  # before --out's table is compared with it
    _check_replace(out, args.name, args.force)
    if args.run is not None:
        if args.config is not None or args.set or args.space is not None:
            raise UsageError("--run profiles that run's space: drop --config, --set and --space")
        from moonas.pricing import run_space

        space = run_space(_load_run(args.run))
    else:
        config = load_config(args.config)
        if args.space is not None and args.space != config.space.name:
            data = config_to_dict(config)
            data["space"] = {"name": args.space}
            config = load_config(data, list(args.set))
        elif args.set:
            config = load_config(args.config, list(args.set))
        space = static_space(config)
    bar = None
    if not args.quiet:
        from moonas.cli import _Bar

        bar = _Bar(f"profile {args.name}")
    try:
        model = profile_space(space, args.name, protocol, n_random=args.random, seed=args.seed,
                              progress=bar)
    finally:
        if bar is not None:
            bar.close()
    model.save(out)
    fast, _ = model.extreme(cheapest=True)
    slow, _ = model.extreme(cheapest=False)
    measured = model.measured
    fit, loo = measured["fit_mape_percent"], measured["leave_one_out_mape_percent"]
    n, checked = measured["networks"], measured["leave_one_out_networks"]
    error = (f"leave-one-out error {loo:.1f}% over the {checked} of {n} networks the others "
             f"predict (in-sample {fit:.1f}%)" if loo is not None else
             f"leave-one-out error not measurable: no network of {n} is predictable from the "
             f"others (in-sample {fit:.1f}%)")
    print(f"latency:{args.name} of {space.name}: {fast:.3f} to {slow:.3f} ms per image "
          f"(batch 1, {args.threads} thread(s), {args.statistic} of {args.repeats}); "
          f"{error} -> {out}")
    if loo is not None and loo > 5:
        log.warning("the additive table misses the profiled networks by %.1f%% when each is left "
                    "out of the fit: the machine was probably busy; measure again with %s", loo,
                    remeasure_advice(measured))
    return 0


# -- parsers -----------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `pick`, `export`, `train`, `plot` and `profile` to the `moonas` subparsers."""
    p = subparsers.add_parser(
        "pick", help=_HELP["pick"], description=_HELP["pick"] + ": the most accurate evaluated "
        "candidate meeting every limit (or the knee of the front with --prefer knee). Amounts "
        "accept 120k, 3.5M. Exit code 2 when nothing meets the limits.")
    p.add_argument("run", help="run directory of moonas search")
    p.add_argument("--max-params", metavar="N", help="at most N parameters (e.g. 120k)")
    p.add_argument("--max-macs", metavar="N", help="at most N multiply-accumulates (e.g. 3.5M)")
    p.add_argument("--max-latency-ms", metavar="X", help="at most X ms on --device")
    p.add_argument("--device", metavar="NAME",
                   help="latency device (not a torch device): a device of --latency-table, whose "
                        "latency is also reported (default: the table's device if it has one)")
    p.add_argument("--latency-table", metavar="PATH",
                   help="a 'moonas profile' JSON, a folder of them, or nb201.csv")
    p.add_argument("--min-accuracy", metavar="A",
                   help="at least A accuracy: a fraction in [0, 1] (0.9), a percentage (90%%), "
                        "or a number in (1, 100] read as a percentage (90)")
    p.add_argument("--prefer", choices=("accuracy", "knee"), default="accuracy",
                   help="most accurate feasible (default) or the knee of the feasible front")
    p.add_argument("--budgets-file", metavar="YAML",
                   help="several named devices with their limits: one pick per device")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_pick)

    p = subparsers.add_parser(
        "export", help=_HELP["export"], description=_HELP["export"] + ". Writes OUT and the "
        "sidecar OUT.json (arch, costs, input shape, normalisation, class names); the outputs "
        "are checked against PyTorch on random inputs.")
    p.add_argument("run", help="run directory of moonas search")
    p.add_argument("--id", type=int, required=True, help="candidate id (see pareto.csv or pick)")
    p.add_argument("--format", choices=("torchscript", "onnx", "pt"), required=True,
                   help="torchscript (.ts; torch.jit.load), onnx (.onnx; onnxruntime) or pt "
                        "(.pt; a state dict for moonas.deploy.export.load_pt)")
    p.add_argument("--out", required=True, metavar="PATH",
                   help="file to write (not with another format's suffix)")
    p.add_argument("--weights", choices=("auto", "supernet", "trained"), default="auto",
                   help="auto: retrained weights if 'moonas train' made them, else supernet")
    p.add_argument("--device", metavar="NAME",
                   help="latency device (not a torch device): also record the latency on this "
                        "device of --latency-table (default: the table's device if it has one); "
                        "a run searched on latency:DEVICE records that device's without flags")
    p.add_argument("--latency-table", metavar="PATH",
                   help="a 'moonas profile' JSON, a folder of them, or nb201.csv")
    p.set_defaults(func=_cmd_export)

    p = subparsers.add_parser(
        "train", help=_HELP["train"], description=_HELP["train"] + " (same splits and seed); "
        "weights and metrics go to RUN/trained/ID/. Interrupted trainings resume. Recipe: SGD "
        "with Nesterov momentum 0.9, weight decay 5e-4, --lr on a cosine schedule down to 0, "
        "--epochs epochs; the run's batch size, gradient clipping, augmentation and seed.")
    p.add_argument("run", help="run directory of moonas search")
    p.add_argument("--id", type=int, required=True, help="candidate id (see pareto.csv or pick)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 30)")
    p.add_argument("--init", choices=("scratch", "supernet"), default="scratch",
                   help="random weights (default) or the supernet's")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 0.05)")
    p.add_argument("--restart", action="store_true",
                   help="discard an earlier or interrupted training of this id")
    p.add_argument("--device", default=None,
                   help="torch device to train on (not a latency device): auto, cpu, cuda or "
                        "cuda:N (default: the run's device setting)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_processes_argument(p)
    p.set_defaults(func=_cmd_train, precheck=_precheck_train)

    p = subparsers.add_parser(
        "plot", help=_HELP["plot"], description=_HELP["plot"] + ". --kind front: fronts of one "
        "or more runs, modes as stars, budgets as dashed lines, retrained networks as diamonds; "
        "theta: per-budget probability heatmaps; curves: loss and entropy over the steps.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    p.add_argument("--out", required=True, metavar="FILE", help="FILE.png, .svg or .pdf")
    p.add_argument("--kind", choices=("front", "theta", "curves"), default="front",
                   help="front (default): fronts against a cost; theta: probability heatmaps; "
                        "curves: loss and entropy")
    p.add_argument("--x", default=None, metavar="COST",
                   help="--kind front's cost axis: params, macs or latency:DEVICE (default: "
                        "the run's cost)")
    p.add_argument("--latency-table", metavar="PATH", help="for --x latency:DEVICE")
    p.add_argument("--label", action="append", default=None,
                   help="legend label per run (--kind front)")
    p.add_argument("--log-x", action="store_true", help="logarithmic cost axis (--kind front)")
    p.set_defaults(func=_cmd_plot)

    p = subparsers.add_parser(
        "profile", help=_HELP["profile"], description=_HELP["profile"] + ": times every option "
        "of every choice (batch 1, warm-up, fixed threads, interleaved repeats) and fits "
        "latency = base + sum of option latencies. The table works with pick --latency-table.")
    p.add_argument("--name", required=True, metavar="DEVICE", help="device name, e.g. laptop")
    p.add_argument("--out", required=True, metavar="TABLE.json")
    p.add_argument("--space", default=None, help="space name (default: the config's)")
    p.add_argument("--config", default=None,
                   help="YAML config or packaged name whose space to profile (default: default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set space.channels=16")
    p.add_argument("--run", default=None, metavar="RUN", help="profile the space of this run")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--warmup", type=int, default=10,
                   help="untimed forwards per network (default 10)")
    p.add_argument("--repeats", type=int, default=15, help="timed rounds per network (default 15)")
    p.add_argument("--statistic", choices=("median", "min"), default="median",
                   help="per-network summary of the rounds (min: busy shared machines)")
    p.add_argument("--random", type=int, default=None, metavar="N",
                   help="random networks timed besides the one-option changes, at least 1 so "
                        "the fit is overdetermined; its leave-one-out error needs about 10 or "
                        "more (default: as many as the changes)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random networks and weights (default 0)")
    p.add_argument("--force", action="store_true",
                   help="replace an --out table of another device (runs that searched with it "
                        "then price with this one)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_profile)
