"""Benchmark: how long the quick commands take from the shell -> results/startup.md.

`moonas --help`, `pick` (limits, knee, JSON), `plot` (front, theta, curves) and `cost` read
result files or a config; what a user waits for is mostly the interpreter and the imports.
Each command runs as a user runs it (`python -m moonas ...`, a fresh process, wall time of
the whole process) on a smoke run this tool searches first (`--epochs` epochs). With
`--baseline DIR` (a checkout of another commit, e.g. `git worktree add /tmp/base HEAD~3`) the
same commands run from that checkout too, interleaved with this one's round by round, so
machine load falls on both alike; the table gives each side's median over `--repeats` rounds
and the ratio.

    python tools/bench_startup.py --baseline /tmp/base --repeats 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import at_least, check_out_file, header, run_tool, scratch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def commands(run: Path, out: Path) -> dict[str, list[str]]:
    return {
        "moonas --help": ["--help"],
        "moonas pick RUN --max-params 8k": ["pick", str(run), "--max-params", "8k"],
        "moonas pick RUN --prefer knee --json": ["pick", str(run), "--prefer", "knee", "--json"],
        "moonas plot RUN": ["plot", str(run), "--out", str(out / "front.png")],
        "moonas plot RUN --kind theta": ["plot", str(run), "--kind", "theta",
                                         "--out", str(out / "theta.png")],
        "moonas plot RUN --kind curves": ["plot", str(run), "--kind", "curves",
                                          "--out", str(out / "curves.png")],
        "moonas cost 3 3 0 1 2 4": ["cost", "3", "3", "0", "1", "2", "4"],
        "moonas search --set search.epoch=3 (a typo: one line)": ["search", "--set",
                                                                  "search.epoch=3"],
    }


def timed(checkout: Path, argv: list[str], expect: int = 0) -> float:
    """Wall seconds of `python -m moonas ARGV` run from `checkout`'s package."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(checkout)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "moonas", *argv], env=env, cwd=checkout,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != expect:
        from moonas.errors import MoonasError

        last = ([line for line in done.stderr.splitlines() if line.strip()] or ["no message"])[-1]
        raise MoonasError(f"moonas {' '.join(argv)} from {checkout} exited {done.returncode}, "
                          f"not {expect}: {last}")
    return wall


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a checkout of another commit to time beside this one")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="the smoke run's epochs")
    parser.add_argument("--out", default=str(REPO / "results" / "startup.md"))
    args = parser.parse_args(argv)
    at_least("--repeats", args.repeats, 1)
    out = check_out_file(args.out)
    sides = {"this checkout": REPO}
    if args.baseline is not None:
        from moonas.errors import ConfigError

        if not (args.baseline / "moonas" / "__main__.py").is_file():
            raise ConfigError(f"--baseline {args.baseline} holds no moonas package: give a "
                              "checkout, e.g. git worktree add /tmp/base HEAD~1")
        sides = {"baseline": args.baseline.resolve(), **sides}
    with scratch("moonas-startup-") as work:
        run = work / "run"
        timed(REPO, ["search", "smoke", "--out", str(run), "-q",
                     "--set", f"search.epochs={args.epochs}"])
        table = commands(run, work)
        walls: dict[tuple[str, str], list[float]] = {}
        for r in range(args.repeats):
            for name, words in table.items():
                for side, checkout in sides.items():
                    expect = 1 if "typo" in name else 0
                    walls.setdefault((name, side), []).append(timed(checkout, words, expect))
            print(f"round {r + 1}/{args.repeats} done", file=sys.stderr)
    names = list(sides)
    lines = [header("Start-up of the quick commands (wall seconds of the whole process)"), "",
             f"Median over {args.repeats} interleaved rounds; each command in a fresh "
             "`python -m moonas` process on a smoke run."]
    if args.baseline is not None:
        lines.append(f"Baseline: {args.baseline}"
                     f" ({_commit(args.baseline)}); this checkout: {_commit(REPO)}.")
    lines += ["", "| command | " + " | ".join(names) + (" | ratio |" if len(names) > 1 else ""),
              "|---|" + "---:|" * (len(names) + (len(names) > 1))]
    for name in table:
        medians = [statistics.median(walls[(name, side)]) for side in names]
        cells = [f"{m:.2f}" for m in medians]
        if len(names) > 1:
            cells.append(f"{medians[1] / medians[0]:.2f}")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    out.parent.mkdir(parents=True, exist_ok=True)
    from moonas.atomic import write_text

    write_text(out, "\n".join(lines) + "\n")
    print("\n".join(lines))


def _commit(checkout: Path) -> str:
    done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "moonas"],
                           capture_output=True, text=True).stdout.strip()
    return (done.stdout.strip() or "unknown") + (" with uncommitted changes" if dirty else "")


if __name__ == "__main__":
    sys.exit(run_tool(main))
