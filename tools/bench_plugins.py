"""Benchmark of the seed plug-ins on NAS-Bench-201 -> results/plugins.md.

multi-asng (the harness-tuned settings) with each plug-in off, alone and combined, on c10 with
params and with MACs, 20 seeds, through `moonas bench nb201`. The baselines (pymoo NSGA-II,
optuna's samplers, random search) are read from the full protocol's summaries in
results/nb201_<cost>/ (same harness, same seeds; a run is fixed by its strategy and seed), so
this job does not spend the 20+ minutes optuna-tpe takes again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import header  # noqa: E402

TUNED = ["coefficients=[0,0.05,0.1,0.2,0.5]", "delta0=0.5", "samples_per_dist=1"]
COMBOS = {
    "multi-asng (tuned), no plug-in": [],
    "+ pvll": ["search.pvll.enabled=true"],
    "+ eoi": ["search.eoi.enabled=true"],
    "+ pvll + eoi": ["search.pvll.enabled=true", "search.eoi.enabled=true"],
}
BASELINES = ("nsga2", "optuna-nsga2", "optuna-tpe", "random")
TARGET_HV = (0.9945, 0.9975, 0.9990)
TARGET_REGRET = (0.60, 0.33, 0.30)


def _rows(summary: Path, strategy: str) -> list[dict]:
    data = json.loads(summary.read_text())
    return sorted((r for r in data["rows"] if r["strategy"] == strategy), key=lambda r: r["evals"])


def _line(label: str, rows: list[dict]) -> str:
    hv = " | ".join(f"{r['hv_ratio']['median']:.4f}" for r in rows)
    regret = " | ".join(f"{r['regret_mean']:.3f}" for r in rows)
    return f"| {label} | {hv} | {regret} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", default=str(Path(__file__).resolve().parents[2] / "shared" /
                                               "data" / "nb201" / "nb201.csv"))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="results/plugins.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moonas-plugins-"))
    lines = [header("Seed plug-ins on NAS-Bench-201 (c10, 20 seeds, 100/300/1000 distinct "
                    "evaluations)"), "",
             "multi-asng with the harness-tuned settings (`" + " ".join(TUNED) + "`); each "
             "plug-in with its defaults (`moonas/plugins/pvll.py`, `moonas/plugins/eoi.py`). "
             "Baselines: the same seeds of the full protocol in `results/nb201_<cost>/`. "
             "Targets (issue #4): HV ratio >= 0.9945 / 0.9975 / 0.9990, mean regret <= "
             "0.60 / 0.33 / 0.30.", ""]
    for cost in ("params", "macs"):
        lines += [f"## c10 / {cost}", "",
                  "| strategy | HV @100 | HV @300 | HV @1000 | regret @100 | regret @300 | regret @1000 |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for label, extra in COMBOS.items():
            out = work / f"{cost}-{len(extra)}-{abs(hash(label)) % 10**6}"
            command = [sys.executable, "-m", "moonas", "bench", "nb201", "--table", args.table,
                       "--dataset", "c10", "--cost", cost, "--strategies", "multi-asng",
                       "--evals", "100,300,1000", "--seeds", str(args.seeds),
                       "--workers", str(args.workers), "--out", str(out)]
            for item in TUNED + extra:
                command += ["--set", item]
            subprocess.run(command, check=True, capture_output=True)
            lines.append(_line(label, _rows(out / "summary.json", "multi-asng")))
        baseline = Path("results") / f"nb201_{cost}" / "summary.json"
        for name in BASELINES:
            lines.append(_line(f"{name} (from results/nb201_{cost})", _rows(baseline, name)))
        lines.append("")
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
