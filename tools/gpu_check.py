"""Device check for a session lent a GPU: the search, its resumption, `moonas train` and export
with `device` cuda, and the same search on the CPU of the same machine, timed side by side.

The compute is CIFAR-sized on the embedded digits (resized to 32x32, one channel): the
NAS-Bench-201 cell with 16 channels and 5 cells per stage, batch 64. Each step is recorded in
`gpu_check.json` (with the error line and traceback where one fails, so one device call says
everything) and summarised in `gpu_check.md`, both in `--out`.

The device machine has no package registry. Its image holds torch, torchvision, numpy, scipy,
matplotlib, scikit-learn, tqdm, onnx, onnxruntime, PyYAML and threadpoolctl; thop, pymoo and
optuna travel as wheels (about 12 MB, in `.gpuwheels/`, which git ignores):

    .venv/bin/pip download --only-binary=:all: --python-version 3.12 --no-deps \\
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \\
        --platform manylinux_2_28_x86_64 --platform any -d .gpuwheels \\
        thop pymoo optuna autograd cma alive-progress about-time grapheme dill Deprecated \\
        alembic Mako SQLAlchemy greenlet colorlog

and the device call (carry `.gpuwheels`):

    python3 -m pip install -q --no-index --no-deps .gpuwheels/*.whl && \\
        PYTHONPATH=. python3 tools/gpu_check.py --out $OUT

The device tool sends the working tree, at most 64 MiB, and `results/` alone holds about 80 MB
(the benchmarks' fronts.jsonl files; 2026-12-07). Move it aside for the call and back after it
(`mv results ../results.hold`, then `mv ../results.hold results`), committing nothing between.

`--processes N` (default 4) also times the CPU search in N data-parallel processes, the
machine's cores shared out among them, against `search_cpu` (one process, every core's
thread). The machine has one GPU, so the NCCL path (one GPU per process) stays unmeasured.

Here, `--devices cpu` with a small `--channels`, `--cells` and `--image-size` runs the same
steps on the CPU alone (tests/test_gpu_check.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import at_least, run_tool, scratch  # noqa: E402

import moonas  # noqa: E402
from moonas.atomic import check_out_folder, write_json, write_text  # noqa: E402
from moonas.deploy.export import export_network  # noqa: E402
from moonas.deploy.train import train_candidate  # noqa: E402
from moonas.run import RunFiles  # noqa: E402


def overrides(device: str, args: argparse.Namespace) -> tuple[str, ...]:
    """The search settings of every run: CIFAR-sized compute on the embedded digits."""
    return (f"device={device}", "threads=null", f"data.image_size={args.image_size}",
            f"space.channels={args.channels}", f"space.cells_per_stage={args.cells}",
            f"search.epochs={args.epochs}", f"search.warmup_epochs={min(1, args.epochs - 1)}",
            f"search.front_samples={args.front_samples}")


def step(record: dict, name: str, fn: Callable[[], dict]) -> bool:
    """Run one check, storing its figures or its error under `name`; True if it passed."""
    started = time.perf_counter()
    try:
        record[name] = {"ok": True, **fn()}
    except Exception as err:  # noqa: BLE001 - every failure is a finding to report
        record[name] = {"ok": False, "error": f"{type(err).__name__}: {err}",
                        "traceback": traceback.format_exc()}
    record[name]["seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps({name: {k: v for k, v in record[name].items() if k != "traceback"}}),
          flush=True)
    return record[name]["ok"]


def search_figures(run: moonas.Run, seconds: float) -> dict[str, Any]:
    manifest = json.loads(RunFiles(run.dir).manifest.read_text())
    steps = max(json.loads(line).get("step", 0)
                for line in RunFiles(run.dir).log.read_text().splitlines())
    return {"device": manifest["machine"].get("device"), "gpu": manifest["machine"].get("gpu"),
            "steps": steps, "steps_per_second": round(steps / seconds, 2),
            "front": len(run.front.architectures), "candidates": len(run.candidates),
            "best_accuracy": max(c.accuracy for c in run.candidates)}


def processes_search(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The CPU search of `search_cpu` through the CLI in `args.processes` processes, each with
    its share of the cores (the cores over the processes), as a user launches it."""
    threads = max(1, (os.cpu_count() or 1) // args.processes)
    settings = [s if not s.startswith("threads=") else f"threads={threads}"
                for s in overrides("cpu", args)]
    command = [sys.executable, "-m", "moonas", "search", "--out", str(out), "--force", "-q",
               "--processes", str(args.processes)]
    for setting in settings:
        command += ["--set", setting]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr[-1500:]}")
    figures = search_figures(moonas.load_run(out), seconds)
    return {**figures, "processes": args.processes, "threads_each": threads}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for gpu_check.json and .md")
    parser.add_argument("--devices", nargs="+", default=["cuda", "cpu"],
                        help="devices of the timed searches; the first also resumes, trains "
                             "and exports")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--front-samples", type=int, default=16)
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--processes", type=int, default=4,
                        help="also time the CPU search in this many data-parallel processes "
                             "(moonas search --processes), the cores shared out; 0: skip")
    args = parser.parse_args(argv)
    for flag in ("--epochs", "--channels", "--cells", "--image-size", "--front-samples",
                 "--train-epochs"):
        at_least(flag, getattr(args, flag[2:].replace("-", "_")), 1)
    at_least("--processes", args.processes, 0, "0 skips the processes search")
    out = check_out_folder(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with scratch("moonas-gpu-") as work:
        return check(args, out, work)


def check(args: argparse.Namespace, out: Path, work: Path) -> int:
    """Every step (run directories under `work`), recorded in `out`; 0 if all passed."""
    record: dict[str, Any] = {
        "command": sys.argv, "python": platform.python_version(), "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpus": torch.get_num_threads(), "settings": list(overrides(args.devices[0], args))}
    runs: dict[str, moonas.Run] = {}

    def timed_search(device: str) -> dict:
        started = time.perf_counter()
        runs[device] = moonas.search(None, work / device, overrides=overrides(device, args),
                                     force=True)
        return search_figures(runs[device], time.perf_counter() - started)

    for device in args.devices:
        step(record, f"search_{device}", lambda d=device: timed_search(d))
    if args.processes > 0 and "cpu" in args.devices:
        step(record, f"search_cpu_{args.processes}_processes",
             lambda: processes_search(args, work / "cpu-processes"))
    first = args.devices[0]
    if first in runs:
        def resume() -> dict:
            copy = work / f"{first}-resumed"
            shutil.copytree(runs[first].dir, copy)
            RunFiles(copy).pareto_json.unlink()  # as if killed after its last checkpoint
            run = moonas.search(None, copy, resume=True)
            same = ([c.arch for c in run.candidates] == [c.arch for c in runs[first].candidates])
            return {"front": len(run.front.architectures), "same_candidates": same}

        def retrain() -> dict:
            metrics = train_candidate(runs[first], runs[first].front.picks[-1],
                                      epochs=args.train_epochs, device=first)
            return {k: metrics[k] for k in ("device", "test_accuracy", "val_accuracy",
                                            "wall_seconds_last_session")}

        def export() -> dict:
            result = export_network(runs[first], runs[first].front.picks[-1], "onnx",
                                    out / "pick.onnx")
            return {"weights": result.weights, "max_abs_diff": result.max_abs_diff}

        step(record, "resume", resume)
        step(record, "train", retrain)
        step(record, "export_onnx", export)
    write_json(out / "gpu_check.json", record)
    lines = [f"# moonas device check ({record['gpu'] or 'no GPU'}; torch {record['torch']})", "",
             f"- command: `{' '.join(sys.argv)}`", f"- settings: {' '.join(record['settings'])}",
             "", "| check | ok | seconds | figures |", "|---|---|---:|---|"]
    for name, value in record.items():
        if isinstance(value, dict) and "ok" in value:
            figures = {k: v for k, v in value.items() if k not in ("ok", "seconds", "traceback")}
            lines.append(f"| {name} | {value['ok']} | {value['seconds']} | "
                         f"{json.dumps(figures)} |")
    write_text(out / "gpu_check.md", "\n".join(lines) + "\n")
    return 0 if all(v["ok"] for v in record.values() if isinstance(v, dict) and "ok" in v) else 1


if __name__ == "__main__":
    sys.exit(run_tool(main))
