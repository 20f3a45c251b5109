"""Benchmark: the PVLL refits' BLAS threads in the one-shot search -> results/search_threads.md.

The embedded default search (digits, nb201 cell; `--epochs` epochs) run with PVLL off, with
PVLL on as shipped (its refits limited to one BLAS thread, `moonas.threads`), and with PVLL on
and that limit lifted (the library's default threads), interleaved over `--repeats` rounds so
machine load falls on every variant alike. torch uses one thread, as the digits benchmarks do.

    python tools/bench_search_threads.py --epochs 10 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import at_least, check_out_file, header, run_tool, scratch  # noqa: E402

import moonas  # noqa: E402
import moonas.plugins.pvll as pvll  # noqa: E402
from moonas.atomic import write_text  # noqa: E402
from moonas.threads import blas_threads  # noqa: E402

VARIANTS = {
    "pvll off": (("search.pvll.enabled=false",), False),
    "pvll on, refits on one BLAS thread (shipped)": ((), False),
    "pvll on, refits on the library's default threads": ((), True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" /
                                             "search_threads.md"))
    args = parser.parse_args()
    at_least("--epochs", args.epochs, 2, "a warm-up epoch, then the search")
    at_least("--repeats", args.repeats, 1)
    check_out_file(args.out)
    with scratch("moonas-search-threads-") as work:
        bench(args, work)


def bench(args: argparse.Namespace, work: Path) -> None:
    """The variants over the rounds (run directories under `work`), then the page."""
    torch.set_num_threads(1)
    epochs = (f"search.epochs={args.epochs}", f"search.warmup_epochs={max(1, args.epochs // 5)}")
    moonas.search(None, work / "warm-up", overrides=("search.epochs=2", "search.warmup_epochs=1"))
    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    shipped = pvll.blas_threads
    for round_ in range(args.repeats):
        names = list(VARIANTS) if round_ % 2 == 0 else list(VARIANTS)[::-1]
        for name in names:
            overrides, lifted = VARIANTS[name]
            pvll.blas_threads = (lambda _n: blas_threads(None)) if lifted else shipped
            try:
                started = time.perf_counter()
                moonas.search(None, work / f"{round_}-{list(VARIANTS).index(name)}",
                              overrides=(*epochs, *overrides))
                walls[name].append(time.perf_counter() - started)
            finally:
                pvll.blas_threads = shipped
            print(f"round {round_ + 1}, {name}: {walls[name][-1]:.1f} s", flush=True)
    base = statistics.median(walls["pvll off"])
    lines = [header("One-shot search: BLAS threads of the PVLL refits"), "",
             f"The embedded default (digits, nb201 cell, 5 budgets), {args.epochs} epochs, seed 0; "
             f"torch on one thread; wall seconds of the whole search, {args.repeats} rounds "
             "alternating the order.", "",
             "| variant | wall seconds per round | median | / pvll off |",
             "|---|---|---:|---:|"]
    for name, values in walls.items():
        med = statistics.median(values)
        lines.append(f"| {name} | {', '.join(f'{v:.1f}' for v in values)} | {med:.1f} | "
                     f"{med / base:.2f} |")
    write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(run_tool(main))
