"""Benchmark: BLAS threads per NAS-Bench-201 harness run -> results/harness_threads.md.

The same job (multi-asng at the search defaults with the NB201-tuned settings, PVLL with
pairs and neighbours, to 1000 distinct evaluations) run with each run's BLAS threads left at
the library's default and limited to one (`BenchJob.blas_threads`, the default 1), with one
worker and with `--workers` workers. The settings alternate over `--repeats` rounds, so
machine noise falls on both alike; the page gives every round's wall seconds and the ratio of
the medians, and checks that both settings give the same fronts.

    python tools/bench_harness_threads.py --workers 2 --seeds 4 --repeats 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import at_least, check_out_file, header, run_tool  # noqa: E402

from moonas.atomic import write_text  # noqa: E402
from moonas.bench.harness import BenchJob, run_bench  # noqa: E402

TUNED = (("coefficients", (0.0, 0.05, 0.1, 0.2, 0.5)), ("delta0", 0.5), ("samples_per_dist", 1))
SETTINGS = {"library default": None, "one (the default)": 1}


def _timed(job: BenchJob) -> tuple[float, str]:
    started = time.perf_counter()
    run_bench(job)
    return time.perf_counter() - started, (Path(job.out) / "fronts.jsonl").read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", default=str(Path(__file__).resolve().parents[2] / "shared" /
                                               "data" / "nb201" / "nb201.csv"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" /
                                             "harness_threads.md"))
    args = parser.parse_args()
    for flag, value in (("--workers", args.workers), ("--seeds", args.seeds),
                        ("--repeats", args.repeats)):
        at_least(flag, value, 1)
    check_out_file(args.out)
    walls: dict[tuple[int, str], list[float]] = {}
    fronts: dict[tuple[int, str], set[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeats):
            for workers in sorted({1, args.workers}):
                names = list(SETTINGS) if round_ % 2 == 0 else list(SETTINGS)[::-1]
                for name in names:
                    job = BenchJob(table=args.table, out=f"{tmp}/{workers}-{round_}-{name[:3]}",
                                   strategies=("multi-asng",), evals=(1000,), seeds=args.seeds,
                                   workers=workers, search=TUNED, plot_counts=(100,),
                                   blas_threads=SETTINGS[name])
                    wall, text = _timed(job)
                    walls.setdefault((workers, name), []).append(wall)
                    fronts.setdefault((workers, name), set()).add(text)
                    print(f"round {round_ + 1}, {workers} worker(s), BLAS threads {name}: "
                          f"{wall:.1f} s", flush=True)
    same = len(set.union(*fronts.values())) == 1
    lines = [header("NAS-Bench-201 harness: BLAS threads per run"), "",
             f"One job: multi-asng (tuned settings, PVLL pairs + neighbours, the defaults), "
             f"c10/params, {args.seeds} seeds to 1000 distinct evaluations; wall seconds of the "
             f"whole job, {args.repeats} rounds alternating the settings.", "",
             "| workers | BLAS threads per run | wall seconds per round | median |",
             "|---:|---|---|---:|"]
    for (workers, name), values in walls.items():
        lines.append(f"| {workers} | {name} | {', '.join(f'{v:.1f}' for v in values)} | "
                     f"{statistics.median(values):.1f} |")
    lines += [""]
    for workers in sorted({1, args.workers}):
        ratio = (statistics.median(walls[(workers, "library default")])
                 / statistics.median(walls[(workers, "one (the default)")]))
        lines.append(f"- {workers} worker(s): library default / one thread = {ratio:.2f}x")
    lines.append(f"- Same fronts.jsonl with both settings and every worker count: "
                 f"{'yes' if same else 'NO'}")
    write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(run_tool(main))
