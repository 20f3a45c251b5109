"""The NAS-Bench-201 benchmark: table loader, one runner per strategy, scoring, the job, its CLI."""

from __future__ import annotations

from moonas.bench.harness import BenchJob, run_bench
from moonas.bench.runners import RUNNERS, RunOptions, Trace, run_strategy
from moonas.bench.scoring import Scorer, build_scorer, picks, returned_set
from moonas.bench.table import BenchProblem, NB201Table, load_problem, load_table

__all__ = [
    "BenchJob",
    "BenchProblem",
    "NB201Table",
    "RUNNERS",
    "RunOptions",
    "Scorer",
    "Trace",
    "build_scorer",
    "load_problem",
    "load_table",
    "picks",
    "returned_set",
    "run_bench",
    "run_strategy",
]
