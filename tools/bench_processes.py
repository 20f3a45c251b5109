"""Benchmark: data-parallel processes against torch threads on this machine's cores
-> results/processes.md.

The same one-shot search (the embedded digits at `--image-size`, the nb201 cell with
`--channels`, global batch `--batch-size`, `--epochs` epochs, `--front-samples` front
samples), run as a user runs it, through the CLI:

- one process, one torch thread;
- one process, `--processes` torch threads (intra-op parallelism);
- `--processes` processes (`moonas search --processes N`), one torch thread each.

Then `moonas train` of one candidate for `--train-epochs` epochs, one process with N threads
against N processes. Variants are interleaved over `--repeats` rounds so machine load falls
on each alike; the table gives the median of the search's own wall time (manifest.json) and
of the whole command (process start, data load and, for processes, the launcher).

    python tools/bench_processes.py --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import at_least, check_out_file, header, run_tool, scratch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def variants(n: int) -> dict[str, tuple[str, ...]]:
    return {
        "1 process, 1 thread": ("--set", "threads=1"),
        f"1 process, {n} threads": ("--set", f"threads={n}"),
        f"{n} processes, 1 thread each": ("--processes", str(n), "--set", "threads=1"),
    }


def run(args: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "moonas", *args], env=env, cwd=REPO,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        from moonas.errors import MoonasError

        last = ([line for line in done.stderr.splitlines() if line.strip()] or ["no message"])[-1]
        raise MoonasError(f"moonas {' '.join(args)} failed (exit {done.returncode}): {last}")
    return wall, done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--cells", type=int, default=1, help="space.cells_per_stage")
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64, 128],
                        help="one per --channels value")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--front-samples", type=int, default=8)
    parser.add_argument("--train-epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "results" / "processes.md"))
    args = parser.parse_args(argv)
    check_args(args)
    with scratch("moonas-processes-") as work:
        bench(args, work)


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad counts before any search (the searches' own errors would come one variant
    in, and blame `threads` for a bad --processes)."""
    from moonas.errors import ConfigError

    at_least("--processes", args.processes, 1, "the data-parallel processes compared")
    for flag in ("--image-size", "--cells", "--channels", "--batch-size", "--front-samples",
                 "--train-epochs", "--repeats"):
        at_least(flag, getattr(args, flag[2:].replace("-", "_")), 1)
    at_least("--epochs", args.epochs, 2, "one warm-up epoch, then the search")
    if len(args.batch_size) != len(args.channels):
        raise ConfigError(f"give one --batch-size per --channels value: {len(args.channels)} "
                          f"channels, {len(args.batch_size)} batch sizes")
    check_out_file(args.out)


def bench(args: argparse.Namespace, work: Path) -> None:
    """Every variant through the CLI (run directories under `work`), then the page."""
    n = args.processes
    shapes = list(zip(args.channels, args.batch_size))
    searches: dict[tuple, list[tuple[float, float]]] = {}
    fronts: dict[tuple, dict] = {}
    for r in range(args.repeats):
        for c, b in shapes:
            settings = ("--set", "device=cpu", "--set", f"data.image_size={args.image_size}",
                        "--set", f"space.channels={c}", "--set", f"data.batch_size={b}",
                        "--set", f"space.cells_per_stage={args.cells}",
                        "--set", f"search.epochs={args.epochs}", "--set",
                        "search.warmup_epochs=1", "--set",
                        f"search.front_samples={args.front_samples}")
            for name, extra in variants(n).items():
                out = work / f"c{c}-{name.replace(' ', '_').replace(',', '')}-{r}"
                wall, _ = run(["search", "--out", str(out), "-q", *settings, *extra])
                manifest = json.loads((out / "manifest.json").read_text())
                searches.setdefault((c, b, name), []).append((manifest["wall_seconds"], wall))
                front = json.loads((out / "pareto.json").read_text())
                fronts[(c, b, name)] = {"members": len(front["architectures"]), "dir": out}
    trains: dict[tuple, list[tuple[float, float]]] = {}
    c, b = shapes[-1]
    # The retraining takes its run's threads setting: n in the threaded run, 1 in the other.
    train_variants = {f"1 process, {n} threads": (), f"{n} processes, 1 thread each":
                      ("--processes", str(n))}
    for r in range(args.repeats):
        for name, extra in train_variants.items():
            run_dir = fronts[(c, b, name)]["dir"]
            cid = json.loads((run_dir / "pareto.json").read_text())["picks"][-1]
            wall, _ = run(["train", str(run_dir), "--id", str(cid), "--epochs",
                           str(args.train_epochs), "--restart", "-q", *extra])
            metrics = json.loads((run_dir / "trained" / str(cid) / "metrics.json").read_text())
            trains.setdefault((name, metrics["processes"]), []).append(
                (metrics["wall_seconds_last_session"], wall))

    lines = [header("Data-parallel processes against torch threads (CPU)"), ""]
    lines.append(f"One-shot search of the embedded digits at {args.image_size}x{args.image_size}, "
                 f"nb201 cell, {args.epochs} epochs (1 warm-up), {args.front_samples} front "
                 f"samples; {args.repeats} interleaved rounds, medians. *search*: the run's own "
                 "wall time (manifest.json); *command*: the whole CLI call, process start and "
                 "launcher included. Ratio: the 1-process, 1-thread search time over the row's.")
    lines += ["", "| channels | global batch | variant | search s | command s | speed-up | "
              "front members |", "|---:|---:|---|---:|---:|---:|---:|"]
    for c, b in shapes:
        base = statistics.median(s for s, _ in searches[(c, b, "1 process, 1 thread")])
        for name in variants(n):
            s = statistics.median(x for x, _ in searches[(c, b, name)])
            w = statistics.median(x for _, x in searches[(c, b, name)])
            lines.append(f"| {c} | {b} | {name} | {s:.1f} | {w:.1f} | {base / s:.2f}x | "
                         f"{fronts[(c, b, name)]['members']} |")
    lines += ["", f"`moonas train` of the last pick of the {c}-channel runs, "
              f"{args.train_epochs} epochs, batch {b}: training time (metrics.json) and the "
              "whole command.", "", "| variant | processes | training s | command s |",
              "|---|---:|---:|---:|"]
    for (name, procs), walls in trains.items():
        lines.append(f"| {name} | {procs} | {statistics.median(x for x, _ in walls):.1f} | "
                     f"{statistics.median(x for _, x in walls):.1f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(run_tool(main))
