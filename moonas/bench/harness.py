"""The benchmark job: strategies x seeds, each run anytime to the largest count, scored, written."""

from __future__ import annotations

import datetime
import functools
import json
import logging
import multiprocessing
import os
import platform
import re
import shlex
import signal
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from moonas.atomic import check_out_folder, write_json, write_text
from moonas.bench.partial import PartialRuns, RunShape
from moonas.bench.runners import RUNNERS, RunOptions, describe, run_strategy, search_config
from moonas.bench.scoring import (PERCENTILES, PICK_RULES, REFERENCE, Scorer, build_scorer,
                                  bootstrap_interval, pick_signal, picks, returned_set,
                                  signal_regret)
from moonas.bench.table import BenchProblem, load_problem
from moonas.distributed import die_with_parent
from moonas.errors import ConfigError, UsageError
from moonas.run import RunFiles, is_run_dir
from moonas.threads import blas_threads

__all__ = ["BenchJob", "run_bench", "summary_markdown", "write_anytime", "strategy_rng",
           "STRATEGY_NAMES", "CACHING", "job_settings", "json_safe", "check_job_folder"]

log = logging.getLogger(__name__)

#: Every strategy, in the order tables list them.
STRATEGY_NAMES = ("multi-asng", "asng-separate", "asng-separate-full", "nsga2", "optuna-nsga2",
                  "optuna-tpe", "random", "exhaustive")

#: Strategies whose count is not the number of distinct evaluations of one search.
NOTES = {
    "asng-separate-full": "K runs each with the full count: K times the evaluations of the others",
    "exhaustive": "every cell evaluated (15,625, or the distinct pruned cells with pruning): the "
                  "ceiling set by the 12-epoch signal",
}

CACHING = ("An evaluation is one look-up of a distinct architecture's 12-epoch validation "
           "accuracy. Every strategy caches its look-ups: repeating an architecture is free and "
           "the strategy is told the cached value (optuna trials included). A strategy that "
           "stops finding new architectures stops early; the table gives the distinct count "
           "it reached.")

#: What each --prune level does to every strategy's cells, for the summary.
PRUNING = {
    "keep": "No pruning: cells are looked up as the strategies propose them (--prune keep).",
    "unreachable": "Pruning (--prune unreachable): every strategy's cells are looked up, counted "
                   "and returned with the operations whose result cannot reach the cell output "
                   "set to none (same output, same NAS-Bench-201 isomorphism class, never "
                   "more params or MACs; a measured latency can be higher), as the supernet "
                   "search does with search.prune.",
    "dead": "Pruning (--prune dead): every strategy's cells are looked up, counted and returned "
            "with their dead operations set to none (an edge whose result cannot reach the cell "
            "output, or whose input is always zero; never more params or MACs, while a measured "
            "latency is the pruned cell's own row and can be higher), as the supernet search "
            "does with search.prune.",
}

#: Extra counts (besides the job's) at which runs are scored for the anytime plot.
_PLOT_POINTS = 14


@dataclass(frozen=True)
class BenchJob:
    """One benchmark: table, dataset, cost, strategies, evaluation counts, and the seeds
    `first_seed .. first_seed + seeds - 1` (a separate range keeps tuning off the reported seeds).

    `search`: overrides of multi-asng's search settings (`runners.SEARCH_KEYS`), e.g.
    `(("delta0", 0.5),)`; `population`: NSGA-II's population (pymoo and optuna);
    `plot_counts`: where runs are also scored for anytime.png (default: a log grid from 10);
    `prune`: the pruning every strategy's cells get before a look-up (`PRUNING`);
    `blas_threads`: the BLAS threads each run may use (None: the library's default). One is the
    fastest: the predictor refits are small solves, and with several workers more threads only
    contend (results/harness_threads.md);
    `pick`: how every strategy's pick per budget is chosen among its evaluations
    (`scoring.PICK_RULES`); with `smoothed`, records also carry the regret the observed picks
    of the same runs would have had, for a side-by-side comparison.
    """

    table: str
    out: str
    dataset: str = "c10"
    cost: str = "params"
    strategies: tuple[str, ...] = STRATEGY_NAMES
    evals: tuple[int, ...] = (100, 300, 1000)
    seeds: int = 20
    first_seed: int = 0
    workers: int = 1
    search: tuple[tuple[str, Any], ...] = ()
    population: int = 20
    plot_counts: tuple[int, ...] = ()
    prune: str = "dead"
    blas_threads: int | None = 1
    pick: str = "observed"

    def __post_init__(self) -> None:
        if not self.strategies:
            raise UsageError("no strategies given: pass --strategies, e.g. multi-asng,random")
        for name in self.strategies:
            try:
                RUNNERS.get(name)  # unknown -> one line with the valid names
            except ConfigError as err:
                raise UsageError(str(err)) from None
        if len(set(self.strategies)) != len(self.strategies):
            raise UsageError(f"--strategies repeats a name: {','.join(self.strategies)}")
        # Out-of-range flags: usage errors (exit 2), as argparse's own.
        if not self.evals or any(int(e) < 1 for e in self.evals):
            raise UsageError(f"--evals must be positive counts, e.g. 100,300,1000; "
                             f"got {self.evals}")
        if self.seeds < 1:
            raise UsageError(f"--seeds must be >= 1, got {self.seeds}")
        if self.first_seed < 0:
            raise UsageError(f"--first-seed must be >= 0, got {self.first_seed}")
        if self.population < 2:
            raise UsageError(f"--population must be >= 2 (NSGA-II's population), got "
                             f"{self.population}")
        if self.prune not in PRUNING:
            raise UsageError(f"--prune {self.prune!r} is unknown; valid: {', '.join(PRUNING)}")
        if self.pick not in PICK_RULES:
            raise UsageError(f"--pick {self.pick!r} is unknown; valid: {', '.join(PICK_RULES)}")
        if self.workers < 1:
            raise UsageError(f"--workers must be >= 1, got {self.workers}")
        if self.blas_threads is not None and self.blas_threads < 1:
            raise ConfigError(f"blas_threads must be >= 1 or None (the library's default), got "
                              f"{self.blas_threads}")
        object.__setattr__(self, "evals", tuple(sorted(set(int(e) for e in self.evals))))
        check_out_folder(self.out)  # before the job, not after it
        check_job_folder(self.out)


#: What a bench job writes into its --out: its files, the finished runs of an interrupted job
#: (`partial.PARTIAL_NAME`, and those of other settings it set aside, `.runs.partial.*.jsonl`)
#: and the temp files of its atomic writes (`.summary.json.*.tmp`) a kill may leave.
_JOB_FILES = re.compile(r"(summary\.json|summary\.md|fronts\.jsonl|anytime\.png|"
                        r"\.runs\.partial(\..+)?\.jsonl|"
                        r"\.(summary\.json|summary\.md|fronts\.jsonl|anytime\.png)\..+\.tmp)")

def check_job_folder(out: str | Path) -> None:
    """One line when `out` is neither empty (or absent) nor a bench job's folder: a search
    run's, or one holding none of a job's files (`_JOB_FILES`), whose files the job's would be
    mixed with; reads only. `--force` does not lift it: it replaces a job, not other files."""
    out = Path(out)
    if not out.is_dir():
        return
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return
    fix = "choose another --out (an empty or new folder, or a bench job's)"
    if is_run_dir(out):
        files = RunFiles(out)
        run = [p.name for p in (files.config, files.checkpoint) if p.is_file()]
        raise ConfigError(f"--out {out} holds a moonas search run ({', '.join(run)}): {fix}")
    if not any(_JOB_FILES.fullmatch(name) for name in names):
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise ConfigError(f"--out {out} is not empty and holds no moonas bench job ({shown}): "
                          f"{fix}")


@dataclass(frozen=True)
class _Task:
    job: BenchJob
    strategy: str
    seed: int


def strategy_rng(strategy: str, seed: int) -> np.random.Generator:
    """The generator of one (strategy, seed): independent of the other strategies and seeds."""
    return np.random.default_rng([int(seed), zlib.crc32(strategy.encode())])


@functools.lru_cache(maxsize=4)
def _problem(table: str, dataset: str, cost: str) -> tuple[BenchProblem, Scorer]:
    """Loaded once per process (workers included)."""
    problem = load_problem(table, dataset, cost)
    return problem, build_scorer(problem)


def _counts(job: BenchJob, size: int) -> tuple[int, ...]:
    top = max(job.evals)
    extra = job.plot_counts or tuple(
        np.unique(np.geomspace(10, top, _PLOT_POINTS).round().astype(int)))
    return tuple(sorted({min(int(c), size) for c in (*job.evals, *extra) if c <= top}))


def _task_counts(job: BenchJob, strategy: str, size: int) -> tuple[int, ...]:
    """The counts a run of `strategy` is scored at: one record each."""
    return (size,) if strategy == "exhaustive" else _counts(job, size)


def _run_task(task: _Task) -> list[dict[str, Any]]:
    """Run one (strategy, seed) to the largest count; a record per count, scored."""
    with blas_threads(task.job.blas_threads):
        return _score_task(task)


def _score_task(task: _Task) -> list[dict[str, Any]]:
    job = task.job
    problem, scorer = _problem(job.table, job.dataset, job.cost)
    options = RunOptions(budgets=scorer.budgets, search=job.search, population=job.population,
                         prune=job.prune, table=job.table)
    exhaustive = task.strategy == "exhaustive"
    # Mode k searched for budget k (the regret's) unless multi-asng's targets were overridden.
    own_targets = task.strategy == "multi-asng" and any(
        dict(job.search).get(key) is not None for key in ("budgets", "coefficients"))
    counts = _task_counts(job, task.strategy, problem.size)
    rng = strategy_rng(task.strategy, task.seed)
    trace = run_strategy(task.strategy, problem, max(counts), rng, options, counts)
    records = []
    for count in counts:
        rows = trace.rows_at(count)
        returned = returned_set(rows, problem.signal, problem.cost)
        listed = exhaustive or count in job.evals
        # Unlisted counts only feed the anytime HV curve: their picks are never reported, so
        # they skip the smoothing fit.
        rule = job.pick if listed else "observed"
        picked = picks(rows, pick_signal(rule, rows, problem), problem.cost, scorer.budgets)
        record: dict[str, Any] = {
            "strategy": task.strategy, "evals": count, "seed": task.seed,
            "reached": int(len(rows)), "hv_ratio": scorer.hv_ratio(returned),
            "regret": scorer.regret(picked).tolist(), "wall_s": trace.seconds_at(count),
            "signal_regret": signal_regret(picked, problem.signal, problem.cost,
                                           scorer.budgets).tolist(),
            "returned": returned.tolist(), "picks": picked.tolist(),
            "listed": listed,
        }
        if listed:  # the best the evaluations hold, per budget: what any pick rule could reach
            found = picks(rows, problem.score, problem.cost, scorer.budgets)
            record["found_regret"] = scorer.regret(found).tolist()
        if rule != "observed":
            observed = picks(rows, problem.signal, problem.cost, scorer.budgets)
            record["observed_regret"] = scorer.regret(observed).tolist()
        modes = trace.modes_at(count)
        if modes is not None:
            mode_rows = problem.index(problem.prune(modes, job.prune))  # what a mode returns
            record["modes"] = mode_rows.tolist()
            if not own_targets and len(mode_rows) == len(scorer.budgets):
                feasible = problem.cost[mode_rows] <= np.asarray(scorer.budgets)
                record["mode_regret"] = scorer.regret(np.where(feasible, mode_rows, -1)).tolist()
        records.append(record)
    return records


def _tasks(job: BenchJob) -> list[_Task]:
    # Slow strategies first, so the pool's last tasks are short.
    weight = {"optuna-tpe": 0, "asng-separate-full": 1, "optuna-nsga2": 2}
    order = sorted(job.strategies, key=lambda s: weight.get(s, 9))
    tasks = []
    for name in order:
        seeds = ([job.first_seed] if name == "exhaustive"
                 else range(job.first_seed, job.first_seed + job.seeds))
        tasks.extend(_Task(job, name, seed) for seed in seeds)
    return tasks


def job_settings(job: BenchJob) -> dict[str, Any]:
    """What a run's records depend on besides its (strategy, seed): the settings under which a
    former job's finished runs may be reused (not the workers, the BLAS threads or --out)."""
    table = Path(job.table).resolve()
    stat = table.stat()
    return {"table": str(table), "table_bytes": stat.st_size, "table_mtime_ns": stat.st_mtime_ns,
            "dataset": job.dataset, "cost": job.cost, "evals": list(job.evals),
            "plot_counts": list(job.plot_counts), "search": [list(kv) for kv in job.search],
            "population": job.population, "prune": job.prune, "pick": job.pick}


def _run_tasks(tasks: list[_Task], workers: int, records: list[dict[str, Any]],
               partial: PartialRuns, progress: Callable[[int], None] | None) -> None:
    """Run `tasks`, in `workers` processes; each finished run's records join `records` and are
    kept on disk at once (`partial`), and `progress(done)` counts the runs of this call."""
    def finished(done: int, task: _Task, result: list[dict[str, Any]]) -> None:
        records.extend(result)
        partial.add(task.strategy, task.seed, result)
        if progress is not None:
            progress(done)

    if workers == 1:
        for done, task in enumerate(tasks, start=1):
            finished(done, task, _run_task(task))
        return
    context = multiprocessing.get_context()  # the pool's default one
    # Under a fork server the workers' parent is that server, which exits with this process.
    parent = None if context.get_start_method() == "forkserver" else os.getpid()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_start_worker, initargs=(parent,))
    try:
        futures = {pool.submit(_run_task, task): task for task in tasks}
        for done, future in enumerate(as_completed(futures), start=1):
            finished(done, futures[future], future.result())
    except BaseException:
        _stop_workers(pool)
        raise
    pool.shutdown()


def _start_worker(parent: int | None) -> None:
    """A pool worker's set-up: it dies with the job's process, even when that is killed by
    SIGKILL, instead of living on as an orphan blocked on its pipe (`parent`: the job's pid,
    or None under a fork server, the worker's parent then)."""
    # A forked worker inherits the CLI's SIGTERM handler: SIGTERM (the parent's death, or
    # `_stop_workers`) ends it at once, without a traceback.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Ctrl-C reaches the whole process group: the job's process stops its workers itself, and
    # a worker's own KeyboardInterrupt would only print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not die_with_parent(os.getppid() if parent is None else parent):
        os.kill(os.getpid(), signal.SIGTERM)  # the parent is gone already: as its signal would


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Ctrl-C, SIGTERM or a failed run: the runs under way and queued are dropped (a run is
    kept only whole) and the workers stopped now, not after running every queued run."""
    # No public way to reach the workers before Python 3.14 (terminate_workers).
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def run_bench(job: BenchJob, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run the job; write summary.json, summary.md, fronts.jsonl and anytime.png into `job.out`.

    `progress(done, total)` is called after each finished (strategy, seed) run. Returns the
    summary (what summary.json holds).
    """
    problem, scorer = _problem(job.table, job.dataset, job.cost)  # fail fast on bad input
    if _cost_note(job, problem):
        log.warning("%s", _cost_note(job, problem))
    distinct = len(np.unique(problem.index(problem.prune(problem.arch(np.arange(problem.size)),
                                                         job.prune))))
    if max(job.evals) > distinct:
        raise ConfigError(f"--evals {max(job.evals)} is more than the {distinct:,} distinct "
                          f"cells the table holds with --prune {job.prune}: use counts up to "
                          f"{distinct}")
    options = RunOptions(scorer.budgets, job.search, table=job.table)
    search = asdict(search_config(options, job.cost))
    tasks = _tasks(job)
    total = len(tasks)
    partial = PartialRuns(job.out, job_settings(job))
    finished = partial.load(RunShape(
        counts={name: _task_counts(job, name, problem.size) for name in job.strategies},
        n_budgets=len(scorer.budgets), n_rows=problem.size))
    records: list[dict[str, Any]] = []
    todo = []
    for task in tasks:
        if (task.strategy, task.seed) in finished:
            records.extend(finished[(task.strategy, task.seed)])
        else:
            todo.append(task)
    if len(todo) < total:
        log.info("%s: %d of %d runs were finished by an interrupted run of this job; running "
                 "the other %d", job.out, total - len(todo), total, len(todo))
    if progress is not None:
        progress(total - len(todo), total)
    started = time.perf_counter()
    try:
        _run_tasks(todo, job.workers, records, partial,
                   None if progress is None else lambda n: progress(total - len(todo) + n, total))
    except BaseException:
        partial.close()
        kept = partial.count()
        if kept:
            log.info("%d of %d runs are kept in %s: the same command continues from them",
                     kept, total, partial.path)
        raise
    elapsed = time.perf_counter() - started
    order = {name: i for i, name in enumerate(job.strategies)}
    records.sort(key=lambda r: (order[r["strategy"]], r["evals"], r["seed"]))
    summary = _summarise(job, problem, scorer, records, search, elapsed)
    _write(job, problem, summary, records)
    partial.remove()
    log.info("nb201 %s/%s: %d runs%s in %.0f s -> %s", job.dataset, job.cost, total,
             f" ({total - len(todo)} of them from the interrupted run)" if len(todo) < total
             else "", elapsed, job.out)
    return summary


def _summarise(job: BenchJob, problem: BenchProblem, scorer: Scorer, records: list[dict],
               search: dict, elapsed: float) -> dict[str, Any]:
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in records:
        groups.setdefault((r["strategy"], r["evals"]), []).append(r)
    rows = []
    anytime: dict[str, dict[str, list[float]]] = {}
    for (name, count), group in groups.items():
        hv = np.array([r["hv_ratio"] for r in group])
        regret = np.array([r["regret"] for r in group])  # (seeds, K)
        stats = {"median": float(np.median(hv)), "p25": float(np.percentile(hv, 25)),
                 "p75": float(np.percentile(hv, 75))}
        curve = anytime.setdefault(name, {"evals": [], "median": [], "p25": [], "p75": []})
        curve["evals"].append(count)
        for key in ("median", "p25", "p75"):
            curve[key].append(stats[key])
        if not group[0]["listed"]:
            continue
        row = {
            "strategy": name, "evals": count, "n_seeds": len(group),
            "reached_median": float(np.median([r["reached"] for r in group])),
            "hv_ratio": stats,
            "regret_mean": float(regret.mean()),
            "regret_ci95": list(bootstrap_interval(regret.mean(axis=1))),
            "regret_per_budget": regret.mean(axis=0).tolist(),
            "signal_regret_mean": float(np.mean([r["signal_regret"] for r in group])),
            "wall_s_median": float(np.median([r["wall_s"] for r in group])),
        }
        for key in ("observed_regret", "found_regret"):
            if key in group[0]:
                values = np.array([r[key] for r in group])  # (seeds, K)
                row[f"{key}_mean"] = float(values.mean())
                row[f"{key}_ci95"] = list(bootstrap_interval(values.mean(axis=1)))
                if key == "found_regret":
                    row["found_regret_per_budget"] = values.mean(axis=0).tolist()
        if "mode_regret" in group[0]:
            row["mode_regret_mean"] = float(np.mean([r["mode_regret"] for r in group]))
        if name in NOTES:
            row["note"] = NOTES[name]
        rows.append(row)
    return {
        "benchmark": "nb201", "table": job.table, "dataset": job.dataset, "cost": job.cost,
        "cost_unit": problem.cost_unit, "evals": list(job.evals), "seeds": job.seeds,
        "strategies": {name: describe(name) for name in job.strategies},
        "budgets": list(scorer.budgets), "budget_percentiles": list(PERCENTILES),
        "reference_point": REFERENCE, "true_front": {"size": int(len(scorer.true_front)),
                                                     "hv": scorer.true_hv},
        "first_seed": job.first_seed, "caching": CACHING, "multi_asng_search": json_safe(search),
        "overrides": json_safe(dict(job.search)),
        "prune": job.prune, "pruning": PRUNING[job.prune],
        "pick": job.pick, "picking": PICK_RULES[job.pick],
        "population": job.population, "cost_column": problem.cost_column,
        "cost_note": _cost_note(job, problem),
        "elapsed_s": elapsed, "provenance": _provenance(job), "rows": rows, "anytime": anytime,
    }


def _cost_note(job: BenchJob, problem: BenchProblem) -> str:
    """A warning for summary.md when the cost was not measured for the job's dataset: the table
    holds one latency per cell and device, whatever the dataset ("" when nothing to say)."""
    if not job.cost.startswith("latency:") or job.dataset == "c10":
        return ""
    return (f"Cost: the table's latency column `{problem.cost_column}` is used as is for "
            f"{job.dataset}; the table has one latency per cell and device, measured for one "
            "network input (the hwnb_c10 columns: CIFAR-10's), not per dataset.")


def json_safe(data: Any) -> Any:
    """`data` with every infinite or NaN float written as a string ("inf", "-inf", "nan"), so
    that summary.json stays standard JSON (a setting such as delta_max may be .inf)."""
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(v) for v in data]
    if isinstance(data, float) and not np.isfinite(data):
        return str(data)
    return data


def _provenance(job: BenchJob) -> dict[str, Any]:
    """What ran the job, where and when (summary.md's first lines)."""
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    if program == "__main__.py":  # python -m moonas
        program = "python -m moonas"
    argv = [*program.split(), *sys.argv[1:]]
    return {
        "command": shlex.join(argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
                   f"{platform.release()}, Python {platform.python_version()}, "
                   f"{job.workers} worker process{'es' if job.workers > 1 else ''}",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _write(job: BenchJob, problem: BenchProblem, summary: dict, records: list[dict]) -> None:
    out = Path(job.out)
    names = problem.arch_strs
    lines = []
    for r in records:
        if not r["listed"]:
            continue
        line = {"strategy": r["strategy"], "evals": r["evals"], "seed": r["seed"],
                "returned": [names[i] for i in r["returned"]],
                "picks": [names[i] if i >= 0 else None for i in r["picks"]]}
        if "modes" in r:
            line["modes"] = [names[i] for i in r["modes"]]
        line.update(reached=r["reached"], hv_ratio=r["hv_ratio"], regret=r["regret"],
                    signal_regret=r["signal_regret"])
        line.update({key: r[key] for key in ("observed_regret", "found_regret") if key in r})
        lines.append(_json_line(line))
    write_text(out / "fronts.jsonl", "".join(lines))
    write_json(out / "summary.json", summary)
    write_anytime(summary, out / "anytime.png")
    write_text(out / "summary.md", summary_markdown(summary))


def write_anytime(summary: dict[str, Any], path: str | Path) -> dict:
    """anytime.png from a summary (summary.json's content): HV ratio against evaluations, one
    line per strategy, exhaustive as the ceiling. Returns what was drawn."""
    from moonas.plotting import plot_anytime

    exhaustive = next((row["hv_ratio"]["median"] for row in summary["rows"]
                       if row["strategy"] == "exhaustive"), None)
    k_runs = len(summary["budgets"])
    curves = {(f"{k} ({k_runs} searches x count)" if k == "asng-separate-full" else k): v
              for k, v in summary["anytime"].items() if k != "exhaustive"}
    return plot_anytime(
        curves, path,
        title=f"NAS-Bench-201 {summary['dataset']} / {summary['cost']}: HV ratio, median and "
              f"25-75% over {summary['seeds']} seeds",
        reference={"exhaustive (12-epoch ceiling)": exhaustive} if exhaustive else None)


def _json_line(data: dict) -> str:
    return json.dumps(data, separators=(",", ":")) + "\n"


def summary_markdown(summary: dict[str, Any]) -> str:
    """summary.md: the setup, then median HV ratio and mean regret per strategy and count."""
    rows = summary["rows"]
    counts = summary["evals"]
    names = list(summary["strategies"])
    settings = _settings(summary["multi_asng_search"], summary.get("overrides"))
    seeds = summary["seeds"]
    lines = [
        f"# NAS-Bench-201 benchmark: {summary['dataset']} / {summary['cost']}",
        "",
        *(f"- {key}: " + (f"`{value}`" if key == "command" else value)
          for key, value in summary.get("provenance", {}).items()),
        f"- {seeds} seed{'s' if seeds != 1 else ''} ({summary['first_seed']}.."
        f"{summary['first_seed'] + summary['seeds'] - 1}); counts "
        f"{', '.join(map(str, counts))} distinct evaluations; "
        f"budgets at the {', '.join(f'{p:g}' for p in summary['budget_percentiles'])}th cost "
        f"percentiles: {', '.join(f'{b:.4g}' for b in summary['budgets'])} "
        f"{summary['cost_unit']}.",
        f"- {summary['caching']}",
        f"- {summary.get('pruning', PRUNING['keep'])}",
        f"- Picks: {summary.get('picking', PICK_RULES['observed'])}.",
        "- Search signal: 12-epoch validation accuracy; score: 200-epoch test accuracy. HV of "
        "(test error, cost) normalised by the table's min and max, reference point "
        f"{summary['reference_point']}; HV ratio against the table's true front "
        f"({summary['true_front']['size']} architectures). Regret in accuracy points, mean over "
        "budgets and seeds. Signal regret: the same with the 12-epoch validation accuracy (the "
        "best under the budget in the whole table minus the pick's), what the search missed "
        "apart from the signal's noise.",
        f"- multi-asng settings: {settings}.",
        *([f"- NSGA-II population (pymoo and optuna): {summary['population']}."]
          if "population" in summary and any("nsga2" in n for n in names) else []),
        *([f"- {summary['cost_note']}"] if summary.get("cost_note") else []),
        "",
    ]
    by_key = {(r["strategy"], r["evals"]): r for r in rows}

    def cell(name: str, count: int, fmt: Callable[[dict], str]) -> str:
        row = by_key.get((name, count))
        return fmt(row) if row is not None else ""

    table_names = [n for n in names if n != "exhaustive"]
    exhaustive = [r for r in rows if r["strategy"] == "exhaustive"]
    def optional(key: str, title: str) -> tuple:
        """A (title, format) table for `key`_mean with its interval, or none when no row has it."""
        if not any(f"{key}_mean" in r for r in rows):
            return ()
        def fmt(r: dict) -> str:
            if f"{key}_mean" not in r:
                return ""
            low, high = r[f"{key}_ci95"]
            interval = f" ({low:.3f}-{high:.3f})" if r["n_seeds"] > 1 else ""
            return f"{r[f'{key}_mean']:.3f}{interval}"

        return ((title, fmt),)

    observed = optional("observed_regret", "Mean budget regret of the same runs with observed "
                        "picks (--pick observed)")
    found = optional("found_regret", "Mean found regret (the best 200-epoch test accuracy among "
                     "a run's evaluations under each budget: what the search found, before the "
                     "pick; regret minus this is what picking by the 12-epoch signal lost)")
    for title, fmt in (
        ("Median HV ratio (25th-75th percentile)",
         lambda r: f"{r['hv_ratio']['median']:.4f} ({r['hv_ratio']['p25']:.4f}-"
                   f"{r['hv_ratio']['p75']:.4f})"),
        ("Mean budget regret (accuracy points; 95% bootstrap interval over the seeds)",
         lambda r: f"{r['regret_mean']:.3f}" + (
             f" ({r['regret_ci95'][0]:.3f}-{r['regret_ci95'][1]:.3f})"
             if "regret_ci95" in r and r["n_seeds"] > 1 else "")),
        *observed,
        *found,
        ("Mean signal regret (12-epoch validation points)",
         lambda r: f"{r['signal_regret_mean']:.3f}" if "signal_regret_mean" in r else ""),
        ("Median wall seconds", lambda r: f"{r['wall_s_median']:.2f}"),
    ):
        lines += [f"## {title}", "", "| strategy | " + " | ".join(map(str, counts)) + " |",
                  "|---|" + "---|" * len(counts)]
        for name in table_names:
            lines.append(f"| {name} | " + " | ".join(cell(name, c, fmt) for c in counts) + " |")
        for row in exhaustive:
            lines.append(f"| exhaustive ({row['evals']}) | {fmt(row)} |" + " |" * (len(counts) - 1))
        lines.append("")
    lines += ["## Details", "",
              "| strategy | evals | distinct reached (median) | HV ratio median | 1 - HV ratio | "
              "mean regret | regret per budget | modes' mean regret |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        per = " / ".join(f"{v:.2f}" for v in r["regret_per_budget"])
        modes = f"{r['mode_regret_mean']:.2f}" if "mode_regret_mean" in r else ""
        lines.append(f"| {r['strategy']} | {r['evals']} | {r['reached_median']:.0f} | "
                     f"{r['hv_ratio']['median']:.4f} | {1 - r['hv_ratio']['median']:.4f} | "
                     f"{r['regret_mean']:.3f} | {per} | {modes} |")
    notes = [f"- {r['strategy']}: {r['note']}" for r in rows if "note" in r]
    lines += ["", "Strategies:", ""]
    lines += [f"- {name}: {text}" for name, text in summary["strategies"].items()]
    if notes:
        lines += ["", "Notes:", "", *dict.fromkeys(notes)]
    lines += ["", "![anytime](anytime.png)", ""]
    return "\n".join(lines)


def _settings(search: dict[str, Any], overrides: dict[str, Any] | None = None) -> str:
    """multi-asng's core settings, which plug-ins are on, and the job's --set overrides."""
    keys = ("budgets", "coefficients", "samples_per_dist", "utility", "delta0", "delta_max", "alpha")
    text = ", ".join(f"{k}={search[k]}" for k in keys if search.get(k) is not None)
    plugins = [k for k, v in search.items() if isinstance(v, dict) and "enabled" in v]
    on = [k for k in plugins if search[k]["enabled"]]
    text += f"; plug-ins on: {', '.join(on) or 'none'} (of {', '.join(plugins)})"
    if overrides:
        text += "; --set " + " ".join(f"{k}={json.dumps(v)}" for k, v in overrides.items())
    return text
