"""Compare strategies across `moonas bench` result folders, with the spread the seeds leave.

Reads each folder's summary.json and fronts.jsonl (per-seed HV ratio, regret, signal regret and,
where the harness wrote it, found regret;
a folder written before the harness kept the signal regret gets it from its picks and the table
its summary names, when that file is there) and writes a page: per strategy and count, the
median HV ratio and the mean regrets, each with a 95% percentile-bootstrap interval over the
seeds; then, against the first entry, the interval of the difference. Two entries of the same
strategy on the same seeds are paired (the harness gives a strategy one random stream per seed,
so two settings of it start from the same draws and their per-seed figures correlate): the
seeds are resampled jointly, which narrows the interval. Other differences are unpaired (each
strategy draws its own random numbers). A difference whose interval excludes 0 is marked.

    python tools/bench_compare.py --out results/plugins_significance.md \
        --group "c10 / params, seeds 0-19" \
            "multi-asng (tuned + pvll)=results/plugins_params/pvll" \
            "optuna-tpe=results/plugins_params/baselines:optuna-tpe"

Each `--group TITLE ENTRY...` is one section of the page; an entry is LABEL=DIR or
LABEL=DIR:STRATEGY (STRATEGY may be left out when DIR holds one). DIR+DIR pools the seeds of
several folders (a seed in two of them is an error) and a trailing @SEEDS (0-19,200-259) keeps
only those seeds, e.g. "TPE=results/a+results/b:optuna-tpe@0-19,200-259".
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import check_out_file, header, run_tool  # noqa: E402

from moonas.atomic import write_text  # noqa: E402
from moonas.bench.scoring import bootstrap_interval, signal_regret  # noqa: E402
from moonas.bench.table import load_problem  # noqa: E402

RESAMPLES = 4000


@functools.lru_cache(maxsize=8)
def _table(table: str, dataset: str, cost: str):
    return load_problem(table, dataset, cost)


def _pick_scorer(summary: dict) -> Callable[[list], float] | None:
    """Mean signal regret of a line's picks (arch strings), from the table the summary names;
    None when the summary names none or the file is not there."""
    table = summary.get("table")
    if not table or not Path(table).is_file() or "budgets" not in summary:
        return None
    problem = _table(table, summary["dataset"], summary["cost"])
    index = {arch: i for i, arch in enumerate(problem.arch_strs)}
    budgets = tuple(summary["budgets"])

    def score(picks: list) -> float:
        rows = np.array([index[p] if p is not None else -1 for p in picks], dtype=np.int64)
        return float(np.mean(signal_regret(rows, problem.signal, problem.cost, budgets)))
    return score


class Entry(NamedTuple):
    """One LABEL=DIR[:STRATEGY]: its label, the folder's summary, per count {"hv", "regret",
    "seeds" and, when every seed has them, "signal" and "found": (seeds,) each}, and the
    strategy's name."""

    label: str
    summary: dict
    data: dict[int, dict[str, np.ndarray]]
    strategy: str


def _seed_list(text: str) -> set[int]:
    """Seeds "0-19,200-259" -> {0..19, 200..259}."""
    seeds: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        try:
            seeds.update(range(int(low), int(high or low) + 1))
        except ValueError:
            sys.exit(f"error: seeds {text!r}: expected ranges like 0-19,200-259")
    return seeds


def load(spec: str) -> Entry:
    """The `Entry` of one LABEL=DIR[+DIR...][:STRATEGY][@SEEDS]: several folders pool their
    seeds (one seed in two folders is an error), @SEEDS keeps only those seeds."""
    if "=" not in spec:
        sys.exit(f"error: {spec!r}: expected LABEL=DIR or LABEL=DIR:STRATEGY")
    label, where = spec.split("=", 1)
    where, _, seed_text = where.partition("@")
    keep = _seed_list(seed_text) if seed_text else None
    folders, _, strategy = where.partition(":")
    per: dict[int, dict[int, tuple[float, float, float, float]]] = {}
    summaries = []
    for folder in map(Path, folders.split("+")):
        summary, strategy = _load_folder(folder, strategy, per, keep)
        summaries.append(summary)
    summary = dict(summaries[0])
    if len(summaries) > 1:
        summary["provenance"] = {"command": "; ".join(
            s.get("provenance", {}).get("command", "not recorded") for s in summaries)}
    data = {}
    for count, seeds in sorted(per.items()):
        values = np.array([v for _, v in sorted(seeds.items())])
        data[count] = {"hv": values[:, 0], "regret": values[:, 1], "seeds": np.array(sorted(seeds))}
        if not np.isnan(values[:, 2]).any():
            data[count]["signal"] = values[:, 2]
        if not np.isnan(values[:, 3]).any():
            data[count]["found"] = values[:, 3]
    if not data:
        sys.exit(f"error: {spec!r} holds no runs of {strategy!r} on the seeds asked for")
    return Entry(label, summary, data, strategy)


def _load_folder(folder: Path, strategy: str, per: dict,
                 keep: set[int] | None) -> tuple[dict, str]:
    """Add one folder's per-seed figures of `strategy` to `per`; its summary and the strategy."""
    for name in ("summary.json", "fronts.jsonl"):
        if not (folder / name).is_file():
            sys.exit(f"error: {folder / name} not found: give a folder written by moonas bench")
    summary = _json(folder / "summary.json", (folder / "summary.json").read_text())
    if not isinstance(summary, dict) or not isinstance(summary.get("strategies"), dict):
        sys.exit(f"error: {folder / 'summary.json'} is not a moonas bench summary (no "
                 "strategies): give a folder written by moonas bench")
    names = list(summary["strategies"])
    if not strategy:
        if len(names) != 1:
            sys.exit(f"error: {folder} holds {', '.join(names)}: name one as {folder}:STRATEGY")
        strategy = names[0]
    if strategy not in names:
        sys.exit(f"error: {folder} has no {strategy!r}; it holds {', '.join(names)}")
    from_picks: Callable[[list], float] | None = None
    for number, line in enumerate((folder / "fronts.jsonl").read_text().splitlines(), start=1):
        r = _json(folder / "fronts.jsonl", line, number)
        if r["strategy"] != strategy or (keep is not None and r["seed"] not in keep):
            continue
        if "signal_regret" in r:
            signal = float(np.mean(r["signal_regret"]))
        else:  # written before the harness kept it: from the picks, or nan without a table
            from_picks = from_picks or _pick_scorer(summary) or (lambda picks: np.nan)
            signal = from_picks(r["picks"]) if "picks" in r else np.nan
        found = float(np.mean(r["found_regret"])) if "found_regret" in r else np.nan
        if r["seed"] in per.setdefault(r["evals"], {}):
            sys.exit(f"error: seed {r['seed']} of {strategy} is in both {folder} and an earlier "
                     "folder: pool folders with different seeds, or keep some with @SEEDS")
        per[r["evals"]][r["seed"]] = (r["hv_ratio"], float(np.mean(r["regret"])), signal, found)
    return summary, strategy


def _json(path: Path, text: str, line: int | None = None):
    """`text` (a file, or its line `line`) as JSON, or one line naming where it is broken."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        where = f"{path} line {line}" if line is not None else str(path)
        sys.exit(f"error: {where} is not valid JSON ({err.msg}; cut short?): run the bench "
                 "job again, or leave that folder out")


def interval(values: np.ndarray, stat) -> tuple[float, float]:
    return bootstrap_interval(values, resamples=RESAMPLES, stat=stat)


def difference(a: np.ndarray, b: np.ndarray, stat, rng: np.random.Generator,
               paired: bool = False) -> tuple[float, float, float]:
    """stat(a) - stat(b) and its 95% interval, resampling each side on its own, or with
    `paired` (a[i] and b[i] from one seed) the seeds jointly."""
    ia = rng.integers(0, len(a), size=(RESAMPLES, len(a)))
    ib = ia if paired else rng.integers(0, len(b), size=(RESAMPLES, len(b)))
    low, high = np.percentile(stat(a[ia], axis=1) - stat(b[ib], axis=1), (2.5, 97.5))
    return float(stat(a) - stat(b)), float(low), float(high)


def paired(entry: Entry, first: Entry, counts: list[int]) -> bool:
    """Whether entry's runs pair with first's seed by seed: the same strategy (so the same
    random stream per seed) on the same seeds at every count."""
    return entry.strategy == first.strategy and all(
        np.array_equal(entry.data[c]["seeds"], first.data[c]["seeds"]) for c in counts)


def page(groups: list[tuple[str, list[Entry]]], title: str, pairing: bool = True) -> str:
    """The page: one section per (group title, entries); `pairing` False: every difference
    unpaired (as pages made before pairing was added)."""
    how = ("paired over the seeds when both rows are the same strategy on the same seeds (the "
           "harness gives a strategy one random stream per seed, so two settings start from the "
           "same draws; marked *paired*), otherwise unpaired" if pairing else "unpaired")
    lines = [header(title), "",
             "Per-seed figures from each folder's fronts.jsonl; intervals: 95% percentile "
             f"bootstrap over the seeds ({RESAMPLES} resamples). Differences are against the "
             f"first row of their section, {how} (each strategy draws its own random numbers); "
             "**bold**: the interval excludes 0.", ""]
    for name, entries in groups:
        lines += [f"## {name}", ""] + section(entries, pairing)
    return "\n".join(lines)


def _ranges(seeds: np.ndarray) -> str:
    """Sorted seeds as runs: "0..19" or "0..19, 200..259"."""
    breaks = np.flatnonzero(np.diff(seeds) != 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(seeds) - 1]])
    return ", ".join(f"{seeds[a]}..{seeds[b]}" for a, b in zip(starts, ends))


def section(entries: list[Entry], pairing: bool = True) -> list[str]:
    rng = np.random.default_rng(0)
    shared = sorted(set.intersection(*(set(e.data) for e in entries)))
    # A count an entry holds for only part of its seeds (a pooled folder run to fewer
    # evaluations) would set different seed sets side by side: it is left out.
    counts = [c for c in shared if all(
        len(e.data[c]["seeds"]) == max(len(d["seeds"]) for d in e.data.values()) for e in entries)]
    if not counts:  # every table would be empty
        held = "; ".join(f"{e.label} has {', '.join(f'@{c}' for c in sorted(e.data))}"
                         for e in entries)
        why = ("share no evaluation count" if not shared else
               "share only counts some entry holds for part of its seeds")
        sys.exit(f"error: the entries of a group {why} ({held}): compare folders run at a "
                 "common --evals count")
    lines = ["Sources:", ""]
    for label, summary, data, _ in entries:
        seeds = next(iter(data.values()))["seeds"]
        made = summary.get("provenance", {}).get(
            "command", "not recorded in the folder (written before summaries kept it)")
        lines.append(f"- {label}: {summary['dataset']}/{summary['cost']}, seeds {_ranges(seeds)} "
                     f"({len(seeds)}), prune {summary.get('prune', 'keep')}, "
                     f"picks {summary.get('pick', 'observed')}; "
                     f"made by `{made}`")
    left = [c for c in shared if c not in counts]
    if left:
        lines.append(f"- left out: {', '.join(f'@{c}' for c in left)}, which some entry holds "
                     "for only part of its seeds")
    lines.append("")
    metrics = [("hv", np.median, "{:.4f}", "Median HV ratio"),
               ("regret", np.mean, "{:.3f}", "Mean regret (points)")]
    if all("signal" in e.data[c] for e in entries for c in counts):
        metrics.append(("signal", np.mean, "{:.3f}",
                        "Mean signal regret (12-epoch points the search missed)"))
    if all("found" in e.data[c] for e in entries for c in counts):
        metrics.append(("found", np.mean, "{:.3f}",
                        "Mean found regret (test points lost before the pick: the best "
                        "200-epoch test accuracy among the evaluations under each budget)"))
    for metric, stat, fmt, name in metrics:
        lines += [f"{name}:", "",
                  "| strategy | " + " | ".join(f"@{c}" for c in counts) + " |",
                  "|---|" + "---:|" * len(counts)]
        for label, _, data, _ in entries:
            cells = []
            for c in counts:
                v = data[c][metric]
                low, high = interval(v, stat)
                cells.append(f"{fmt.format(stat(v))} ({fmt.format(low)}-{fmt.format(high)})")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if len(entries) > 1:
            lines += ["", f"{name}, row minus {entries[0].label}:", "",
                      "| strategy | " + " | ".join(f"@{c}" for c in counts) + " |",
                      "|---|" + "---:|" * len(counts)]
            first = entries[0]
            for entry in entries[1:]:
                pair = pairing and paired(entry, first, counts)
                cells = []
                for c in counts:
                    d, low, high = difference(entry.data[c][metric], first.data[c][metric], stat,
                                              rng, paired=pair)
                    text = f"{fmt.format(d)} ({fmt.format(low)} to {fmt.format(high)})"
                    cells.append(f"**{text}**" if low > 0 or high < 0 else text)
                label = f"{entry.label} (*paired*)" if pair else entry.label
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", nargs="+", action="append", required=True,
                        metavar=("TITLE", "LABEL=DIR[:STRATEGY]"),
                        help="a section: its title, then its entries (repeatable)")
    parser.add_argument("--out", required=True, help="the page to write (markdown)")
    parser.add_argument("--title", default="NAS-Bench-201: strategies compared, with intervals")
    parser.add_argument("--unpaired", action="store_true",
                        help="every difference unpaired, as pages made before 2026-12-06")
    args = parser.parse_args()
    check_out_file(args.out)
    groups = []
    for title, *specs in args.group:
        if not specs:
            sys.exit(f"error: --group {title!r} has no entries: add LABEL=DIR[:STRATEGY]")
        groups.append((title, [load(spec) for spec in specs]))
    text = page(groups, args.title, pairing=not args.unpaired)
    write_text(Path(args.out), text)
    print(text)


if __name__ == "__main__":
    sys.exit(run_tool(main))
