"""`moonas bench nb201 ...`: its command-line parser, its --out check and its progress bar."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any, Callable

from moonas.bars import advance, progress_bar
from moonas.bench.harness import STRATEGY_NAMES, BenchJob, json_safe, job_settings, run_bench
from moonas.bench.partial import PartialRuns
from moonas.bench.runners import SEARCH_KEYS
from moonas.errors import ConfigError, Terminated, UsageError
from moonas.yamlio import parse_value

__all__ = ["register", "run"]

log = logging.getLogger(__name__)

#: What a finished job leaves in --out besides summary.md and anytime.png.
_FINISHED = ("summary.json", "fronts.jsonl")

_HELP = "benchmark strategies on the NAS-Bench-201 ground truth"


class _NotHere(argparse.Action):
    """`--processes` given to bench: a usage error saying what bench has instead."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.error("--processes is for search and train (data-parallel training); bench runs "
                     "its runs side by side with --workers N")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `bench` subcommand to an argparse subparsers object; returns its parser."""
    parser = subparsers.add_parser(
        "bench", help=_HELP,
        description=_HELP + ": each strategy searches the table's 12-epoch validation accuracy "
        "until it has evaluated each count of distinct architectures; what it returns is scored "
        "with the 200-epoch test accuracy (HV ratio against the true front, budget regret). "
        "Writes summary.json, summary.md, fronts.jsonl and anytime.png into --out.")
    parser.add_argument("benchmark", choices=["nb201"], help="the benchmark (nb201)")
    parser.add_argument("--table", required=True, metavar="PATH",
                        help="nb201.csv (e.g. ../shared/data/nb201/nb201.csv)")
    parser.add_argument("--dataset", default="c10", help="c10 (default), c100 or in16")
    parser.add_argument("--cost", default="params",
                        help="params (default), macs, or latency:DEVICE (e.g. latency:raspi4)")
    parser.add_argument("--strategies", default=",".join(STRATEGY_NAMES), metavar="LIST",
                        help=f"comma-separated (default all: {','.join(STRATEGY_NAMES)})")
    parser.add_argument("--evals", default="100,300,1000", metavar="LIST",
                        help="distinct evaluation counts (default 100,300,1000)")
    parser.add_argument("--seeds", type=int, default=20,
                        help="how many seeds (default 20): --first-seed .. --first-seed + N - 1")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="first seed (default 0): seeds run from it on")
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--population", type=int, default=20,
                        help="NSGA-II population, pymoo and optuna (default 20)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a multi-asng search setting, e.g. --set delta0=0.5 or --set "
                        "pvll.pool=32 (a plug-in's KEY as SECTION.KEY; a leading 'search.' is "
                        "accepted); keys: " + ", ".join(SEARCH_KEYS))
    parser.add_argument("--prune", default="dead", metavar="LEVEL",
                        help="what every strategy's cells lose before a look-up, as 'moonas "
                        "search' does (search.prune): dead (default: operations that cannot "
                        "reach the output or only see zeros), unreachable, or keep")
    parser.add_argument("--pick", default="observed", metavar="RULE",
                        help="how every strategy's pick per budget is chosen among its "
                        "evaluations: observed (default: the best 12-epoch accuracy under the "
                        "budget) or smoothed (shrunk 0.1 towards a pairs ridge fit of all its "
                        "evaluations; the observed picks' regret is reported beside it)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--force", action="store_true",
                        help="replace the finished benchmark in --out (all its runs are run "
                        "again); without it, an --out holding one is refused")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    # Not bench's: named here so `--processes 2` is not read as the benchmark's name.
    parser.add_argument("--processes", action=_NotHere, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    parser.set_defaults(func=run)
    return parser


def _list(text: str, kind: Callable[[str], Any], option: str) -> tuple[Any, ...]:
    try:
        return tuple(kind(t.strip()) for t in text.split(",") if t.strip())
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected a comma-separated list, e.g. "
                          "100,300,1000") from None


def _settings(items: list[str]) -> tuple[tuple[str, Any], ...]:
    out = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. --set delta0=0.5")
        key, raw = item.split("=", 1)
        key = key.strip().removeprefix("search.")
        if key.split(".")[0] == "angle":
            raise ConfigError(f"--set {item!r}: search.angle needs a supernet (it measures how "
                              "far trained weights moved); a table has none: use it in "
                              "'moonas search'")
        if key.split(".")[0] not in SEARCH_KEYS:
            raise ConfigError(f"--set {item!r}: unknown key {key!r}; valid: "
                              f"{', '.join(SEARCH_KEYS)}")
        value = parse_value(raw)
        if isinstance(value, list):
            value = tuple(value)
        out[key] = value
    return tuple(out.items())


def run(args: argparse.Namespace) -> int:
    """Run the benchmark the parsed arguments describe, with a progress bar on stderr."""
    job = BenchJob(
        table=args.table, out=args.out, dataset=args.dataset, cost=args.cost,
        strategies=_list(args.strategies, str, "--strategies"),
        evals=_list(args.evals, int, "--evals"), seeds=args.seeds,
        first_seed=args.first_seed, workers=args.workers,
        search=_settings(args.set), population=args.population, prune=args.prune,
        pick=args.pick,
    )
    _check_finished(job, args.force)
    bars: list[Any] = []

    def progress(done: int, total: int) -> None:
        # The bar opens once the job has passed its checks, so a bad input prints one line only.
        if not bars:
            bars.append(progress_bar(total, f"bench {args.dataset}/{args.cost}", "run"))
        advance(bars[0], done)
        if done == total:  # closed here, so the job's closing log line follows the bar
            bars.pop().close()

    # SIGTERM (`kill`, `timeout`, a scheduler's limit) stops the job as Ctrl-C does: its
    # finished runs kept for the same command to continue from, the workers stopped.
    installed, previous = False, None
    with contextlib.suppress(ValueError):  # signals reach the main thread only
        previous = signal.signal(signal.SIGTERM, _terminated(os.getpid()))
        installed = True
    try:
        run_bench(job, None if args.quiet else progress)
    finally:
        for bar in bars:
            bar.close()
        if installed:  # run() called in-process leaves the handler as it was
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    return 0


def _check_finished(job: BenchJob, force: bool) -> None:
    """One line when the job's --out holds a finished job that it would replace, unless `force`
    or a job replacing it was started there already (its runs are in the partial file); reads
    only. The finished job's runs are never reused: fronts.jsonl keeps only their listed
    counts, without the anytime points and wall times a run's records hold (`partial.py`)."""
    out = Path(job.out)
    held = [name for name in _FINISHED if (out / name).exists() or (out / name).is_symlink()]
    if not held:
        return
    if force:
        log.info("--force: the finished benchmark in %s is replaced once this job's files are "
                 "written", out)
        return
    with contextlib.suppress(OSError):  # a table that is not there: run_bench says so
        # A --force job cut short, or one killed while writing its files: the same command
        # continues it, as it continues any interrupted job.
        if PartialRuns(out, job_settings(job)).holds_this_job():
            return
    try:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        summary = None
    if not isinstance(summary, dict) or summary.get("benchmark") != "nb201":
        raise ConfigError(f"--out {out} holds a finished benchmark ({', '.join(held)}) whose "
                          "settings cannot be read (no readable summary.json): choose another "
                          "--out, or pass --force to replace it")
    differences = _differences(summary, job)
    if differences:
        raise ConfigError(f"--out {out} holds a finished benchmark of other settings "
                          f"({'; '.join(differences)}): choose another --out, or pass --force "
                          "to replace it")
    raise ConfigError(f"--out {out} holds a finished benchmark of these settings with "
                      f"{summary['seeds']} seed(s), whose runs cannot be reused (fronts.jsonl "
                      "lacks their anytime points and wall times): choose another --out, or "
                      f"pass --force to run all {job.seeds} seed(s) again")


def _differences(summary: dict[str, Any], job: BenchJob) -> list[str]:
    """Where the finished job of `summary` (summary.json) and `job` differ, each as 'OPTION
    THERE there, HERE here'; more seeds here is no difference (the same job, extended)."""
    def text(value: Any) -> str:
        if value is None:
            return "not recorded"
        if isinstance(value, dict):  # --set overrides
            return " ".join(f"{k}={json.dumps(v)}" for k, v in value.items()) or "none"
        if isinstance(value, (list, tuple)):
            return ",".join(map(str, value))
        return str(value)

    there = {"--table": summary.get("table"), "--dataset": summary.get("dataset"),
             "--cost": summary.get("cost"), "--strategies": list(summary.get("strategies", {})),
             "--evals": summary.get("evals"), "--first-seed": summary.get("first_seed"),
             "--population": summary.get("population"), "--set": summary.get("overrides"),
             "--prune": summary.get("prune"), "--pick": summary.get("pick")}
    here = {"--table": job.table, "--dataset": job.dataset, "--cost": job.cost,
            "--strategies": job.strategies, "--evals": job.evals, "--first-seed": job.first_seed,
            "--population": job.population, "--set": json_safe(dict(job.search)),
            "--prune": job.prune, "--pick": job.pick}
    differences = []
    for option, value in there.items():
        if option == "--table" and isinstance(value, str) and (
                Path(value).resolve() == Path(job.table).resolve()):
            continue  # the same file, named otherwise (relative to this folder, as is likely)
        if text(value) != text(here[option]):
            differences.append(f"{option} {text(value)} there, {text(here[option])} here")
    seeds = summary.get("seeds")
    if not isinstance(seeds, int) or seeds > job.seeds:
        differences.append(f"--seeds {text(seeds)} there, {job.seeds} here")
    return differences


def _terminated(owner: int) -> Callable[[int, Any], None]:
    """A SIGTERM handler raising `Terminated` in process `owner`; in a pool worker forked
    before it set its own handler, the default action (an exit without a traceback)."""
    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != owner:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated()

    return handler
