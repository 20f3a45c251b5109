"""`moonas bench nb201 ...`: the benchmark's command-line parser and its progress bar."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
from typing import Any, Callable

from moonas.bars import advance, progress_bar
from moonas.bench.harness import STRATEGY_NAMES, BenchJob, run_bench
from moonas.bench.runners import SEARCH_KEYS
from moonas.errors import ConfigError, Terminated
from moonas.yamlio import parse_value

__all__ = ["register", "run"]

_HELP = "benchmark strategies on the NAS-Bench-201 ground truth"


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
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def _list(text: str, kind: Callable[[str], Any], option: str) -> tuple[Any, ...]:
    try:
        return tuple(kind(t.strip()) for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected a comma-separated list, e.g. "
                          "100,300,1000") from None


def _settings(items: list[str]) -> tuple[tuple[str, Any], ...]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set delta0=0.5")
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
