"""Benchmark: how fast the additive cost tables build and price architectures -> results/costs.md."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import at_least, check_out_file, header, run_tool  # noqa: E402

from moonas.atomic import write_text  # noqa: E402
from moonas.costs import build_cost_table  # noqa: E402
from moonas.spaces import build_space  # noqa: E402

SETTINGS = {
    "nb201 (C=16, N=5, 32x32x3, 10 classes: the benchmark's)": (
        "nb201", dict(channels=16, cells_per_stage=5, input_size=32, in_channels=3, n_classes=10)),
    "mobilenet (defaults, 32x32x3, 10 classes)": (
        "mobilenet", dict(input_size=32, in_channels=3, n_classes=10)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="architectures to price")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="results/costs.md")
    args = parser.parse_args()
    at_least("--n", args.n, 1)
    at_least("--repeats", args.repeats, 1)
    check_out_file(args.out)

    lines = [header("Cost tables: build time and pricing throughput"), "",
             "| space | build (s) | architectures priced | median time (s) | architectures / s |",
             "|---|---:|---:|---:|---:|"]
    for label, (name, settings) in SETTINGS.items():
        space = build_space(name, **settings)
        start = time.perf_counter()
        table = build_cost_table(space)
        build = time.perf_counter() - start
        archs = space.sample(np.random.default_rng(0), args.n)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            table.price(archs)
            times.append(time.perf_counter() - start)
        median = float(np.median(times))
        lines.append(f"| {label} | {build:.2f} | {args.n:,} | {median:.3f} | "
                     f"{args.n / median:,.0f} |")
    lines += ["", "Target: at least 100,000 architectures per second (issue 'Foundation'). "
              "Pricing is one vectorised gather-and-sum over the `(costs, D, Kmax)` table; the "
              "build counts `1 + sum_d (K_d - 1)` standalone networks with thop and the exact "
              "parameter count.", ""]
    write_text(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(run_tool(main))
