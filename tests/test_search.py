"""The search end to end: files, determinism, resume after SIGKILL, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import moonas
from moonas.errors import ConfigError, MoonasError
from moonas.run import CorruptFront, RunFiles
from moonas.spaces import NB201Space

TINY = ["space.channels=4", "data.max_train=192", "data.batch_size=32", "search.epochs=3",
        "search.warmup_epochs=1", "search.front_samples=4", "threads=1"]


def _search(out: Path, *extra: str, **kwargs) -> moonas.Run:
    return moonas.search("smoke", out, overrides=(*TINY, *extra), **kwargs)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> moonas.Run:
    return _search(tmp_path_factory.mktemp("run") / "a")


def test_run_directory_holds_every_promised_file(tiny_run) -> None:
    files = RunFiles(tiny_run.dir)
    for path in (files.config, files.manifest, files.log, files.checkpoint, files.candidates,
                 files.pareto_json, files.pareto_csv, files.pareto_png):
        assert path.is_file() and path.stat().st_size > 0, path.name
    manifest = json.loads(files.manifest.read_text())
    assert manifest["status"] == "complete"
    # The versions of the libraries this process ran with (a local tag such as +cpu aside).
    versions = manifest["versions"]
    assert versions["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert versions["moonas"] == moonas.__version__ and versions["numpy"] == np.__version__
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "macs" in manifest["units"] and manifest["seed"] == 0
    assert manifest["machine"]["device"] == "cpu"  # smoke's `device: cpu`
    saved = yaml.safe_load(files.config.read_text())
    assert saved["search"]["epochs"] == 3 and saved["space"]["channels"] == 4


def test_pareto_json_schema_and_front_property(tiny_run) -> None:
    data = json.loads(RunFiles(tiny_run.dir).pareto_json.read_text())
    assert {"space", "dataset", "objectives", "budgets", "architectures"} <= set(data)
    assert data["space"] == "nb201" and data["dataset"] == "digits"
    assert len(data["budgets"]) == 5 and data["budgets"] == sorted(data["budgets"])
    archs = data["architectures"]
    assert archs
    for a in archs:
        assert set(a) >= {"id", "arch", "arch_str", "accuracy", "params", "macs", "mode_of",
                          "modes"}
        assert 0.0 <= a["accuracy"] <= 1.0 and isinstance(a["params"], int)
        assert a["mode_of"] is None or 0 <= a["mode_of"] < 5
    # Non-dominated: sorted by cost, accuracy strictly increases along the front.
    costs = [a["params"] for a in archs]
    accs = [a["accuracy"] for a in archs]
    assert costs == sorted(costs)
    assert all(a2 > a1 for a1, a2 in zip(accs, accs[1:]))
    # Every candidate is dominated by (or equal to) a front member.
    for c in tiny_run.candidates:
        assert any(f.params <= c.params and f.accuracy >= c.accuracy for f in tiny_run.front.architectures)


def test_picks_are_the_best_front_member_within_each_budget(tiny_run) -> None:
    front = tiny_run.front
    for budget, pick in zip(front.budgets, front.picks):
        fitting = [a for a in front.architectures if a.params <= budget]
        if not fitting:
            assert pick is None
            continue
        best = max(a.accuracy for a in fitting)
        assert next(a for a in fitting if a.id == pick).accuracy == best


def test_front_summary_lines_and_the_single_winner_note(tiny_run) -> None:
    import dataclasses

    from moonas.cli import front_summary

    front = tiny_run.front
    lines = front_summary(tiny_run)
    n = len(front.architectures)
    assert lines[0].startswith(f"front of {n} architecture{'' if n == 1 else 's'} -> ")
    assert len(lines) == 1 + len(front.picks) + (len(front.architectures) == 1)
    # One architecture that dominates every other: every budget picks it, and the note says why.
    best = max(tiny_run.candidates, key=lambda c: (c.accuracy, -c.params))
    cheapest = min(c.params for c in tiny_run.candidates)
    only = dataclasses.replace(best, params=cheapest)
    single = dataclasses.replace(tiny_run, front=dataclasses.replace(
        front, architectures=(only,), picks=(only.id,) * len(front.picks)))
    lines = front_summary(single)
    assert lines[0].startswith("front of 1 architecture -> ")  # not "1 architectures"
    assert all(f"id {only.id} " in line for line in lines[1:-1])
    assert lines[-1].startswith(f"note: of {len(tiny_run.candidates)} measured candidates, "
                                f"id {only.id} is at least as accurate")
    assert "candidates.csv" in lines[-1] and "every budget picks it" in lines[-1]
    assert not any(line.startswith("note:") for line in front_summary(dataclasses.replace(
        single, candidates=(only,))))
    # A budget below it: nothing fits there, and the note does not claim that budget picks it.
    lines = front_summary(dataclasses.replace(single, front=dataclasses.replace(
        single.front, picks=(None,) + (only.id,) * (len(front.picks) - 1))))
    assert "nothing on the front fits" in lines[1]
    assert "every budget it fits picks it" in lines[-1]


def test_log_has_per_step_distribution_diagnostics(tiny_run) -> None:
    lines = [json.loads(line) for line in RunFiles(tiny_run.dir).log.read_text().splitlines()]
    steps = [line for line in lines if line.get("kind") != "epoch"]
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))
    measured = [s for s in steps if "val_loss" in s]
    assert measured and all(len(s["val_loss"]) == 5 for s in measured)
    # Steps that moved the distributions log their diagnostics; the others are PVLL's greedy
    # phase, where every row was screened and nothing was told.
    learned = [s for s in measured if "ess" in s]
    assert learned and all(len(s["ess"]) == 5 for s in learned)
    assert all(len(s["entropy"]) == 5 and len(s["delta"]) == 5 for s in learned)
    assert all(s["pvll_screened"] == 5 for s in measured if "ess" not in s)
    epochs = [line for line in lines if line.get("kind") == "epoch"]
    assert len(epochs) == 3 and np.asarray(epochs[-1]["theta"]).shape[:2] == (5, 6)


@pytest.mark.parametrize("strategy", ["multi-asng", "spos-nsga2"])
def test_progress_calls_name_their_phase_and_count_to_a_known_total(tmp_path: Path,
                                                                     strategy: str) -> None:
    calls: list[tuple[int, int, dict]] = []
    run = _search(tmp_path / strategy, f"search.strategy={strategy}",
                  progress=lambda done, total, info: calls.append((done, total, dict(info))))
    phases = [info["phase"] for _, _, info in calls]
    n_train = phases.count("train")
    assert n_train and phases == ["train"] * n_train + ["front"] * (len(calls) - n_train)
    train, front = calls[:n_train], calls[n_train:]
    # One call per training step, out of the run's steps (the log's step lines), with its fields.
    lines = [json.loads(line) for line in RunFiles(run.dir).log.read_text().splitlines()]
    steps = [line for line in lines if line.get("kind") != "epoch"]
    assert [(done, total) for done, total, _ in train] == [(i, len(steps))
                                                          for i in range(1, len(steps) + 1)]
    assert [{k: v for k, v in info.items() if k != "phase"} for *_, info in train] == steps
    assert all("phase" not in line for line in lines)  # the log keeps its format
    # One call per architecture measured for the front, out of a total known up front: the
    # candidates, or spos-nsga2's evaluation budget (front_samples x 5 budgets), which cells
    # that prune alike can leave it short of.
    expected = len(run.candidates) if strategy == "multi-asng" else 4 * 5
    assert {total for _, total, _ in front} == {expected}
    assert [done for done, _, _ in front] == list(range(1, len(run.candidates) + 1))
    assert all(info == {"phase": "front"} for *_, info in front)


def test_candidate_cost_names_the_known_costs(tiny_run) -> None:
    c = tiny_run.candidates[0]
    assert c.cost("params") == c.params and c.cost("macs") == c.macs
    for name in ("id", "foo"):
        with pytest.raises(MoonasError, match=f"unknown cost '{name}': use params, macs"):
            c.cost(name)
    # FLOPs, as NAS papers count them, are what moonas calls macs: said where it is asked for.
    with pytest.raises(MoonasError, match=r"unknown cost 'flops' \(what NAS papers call FLOPs is "
                                          r"multiply-accumulates: macs\): use params, macs"):
        c.cost("flops")


def test_load_run_returns_the_written_records(tiny_run) -> None:
    again = moonas.load_run(tiny_run.dir)
    assert again.front == tiny_run.front
    assert again.config == tiny_run.config
    assert len(again.candidates) == len(tiny_run.candidates)


def test_same_seed_same_front(tiny_run, tmp_path: Path) -> None:
    other = _search(tmp_path / "b")
    assert (RunFiles(other.dir).pareto_json.read_text()
            == RunFiles(tiny_run.dir).pareto_json.read_text())
    third = _search(tmp_path / "c", "seed=1")
    assert (RunFiles(third.dir).pareto_json.read_text()
            != RunFiles(tiny_run.dir).pareto_json.read_text())


def test_out_dir_with_another_run_is_refused(tiny_run) -> None:
    before = RunFiles(tiny_run.dir).pareto_json.read_text()
    with pytest.raises(MoonasError, match="holds another run: pass --resume"):
        _search(tiny_run.dir)
    assert RunFiles(tiny_run.dir).pareto_json.read_text() == before


def test_resume_of_a_complete_run_returns_it(tiny_run) -> None:
    again = moonas.search(None, tiny_run.dir, resume=True)
    assert again.front == tiny_run.front


@pytest.mark.parametrize("override, message", [
    ("search.strategy=multi-asgn", r"unknown strategy 'multi-asgn' \(did you mean 'multi-asng'\?\)"),
    # asng-separate runs outside the strategy registry: still suggested and listed.
    ("search.strategy=asng-seperate", r"\(did you mean 'asng-separate'\?\); valid: asng, "
                                      r"asng-separate, multi-asng"),
    ("search.budgets=[100, 200]", r"below the cheapest architecture of the space \(params = \d+\)"),
    ("search.budgets=[9000, 8000]", r"strictly increasing"),
    ("search.coefficients=[]", r"search.coefficients is empty"),
    ("search.cost=flops", r"search.cost='flops' is unknown: use params, macs or latency:DEVICE"),
    ("search.prune=all", r"'search.prune' is 'all'; allowed values: 'keep', 'unreachable', 'dead'"),
])
def test_bad_search_input_is_one_clear_line(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(MoonasError, match=message) as info:
        _search(tmp_path / "x", override)
    assert "\n" not in str(info.value)
    # Nothing is left behind, so the corrected command runs without --force.
    assert not (tmp_path / "x").exists()


def test_a_failed_start_leaves_the_folder_as_it_found_it(tmp_path: Path) -> None:
    """Errors found once the data is loaded (after the run folder was prepared) roll the
    folder back: a folder the run made is removed, one that existed is emptied of its files."""
    existing = tmp_path / "mine"
    existing.mkdir()
    for out in (tmp_path / "new", existing):
        with pytest.raises(MoonasError, match="below the cheapest architecture"):
            _search(out, "search.budgets=[10]")
        with pytest.raises(MoonasError, match="data.root"):
            _search(out, "data.name=mnist", f"data.root={tmp_path / 'none'}")
    assert not (tmp_path / "new").exists()
    assert existing.is_dir() and not any(existing.iterdir())
    with pytest.raises(MoonasError, match="below the cheapest architecture"):
        _search(existing / "nd" / "deeper" / "run", "search.budgets=[10]")
    assert not any(existing.iterdir())  # the parents it made went too
    assert _search(existing, "search.epochs=1", "search.warmup_epochs=0").front


def test_search_flags_that_contradict_resume_are_refused(tiny_run, tmp_path: Path) -> None:
    from moonas.cli import main

    other = tmp_path / "elsewhere"
    # Contradictory flags: a usage error (exit 2), as argparse's own.
    assert main(["search", "--resume", str(tiny_run.dir), "--out", str(other)]) == 2
    assert main(["search", "--resume", str(tiny_run.dir), "--force"]) == 2
    assert not other.exists()


def test_force_removes_the_old_runs_retrained_networks(tiny_run, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "again"
    shutil.copytree(tiny_run.dir, out)
    (out / "trained" / "0").mkdir(parents=True)
    (out / "trained" / "0" / "job.json").write_text("{}")
    _search(out, "seed=3", "search.epochs=1", "search.warmup_epochs=0", force=True)
    assert not (out / "trained").exists()


def test_search_measures_and_returns_pruned_cells(tiny_run, tmp_path: Path) -> None:
    from moonas.costs import build_cost_table
    from moonas.pricing import static_space

    space = static_space(tiny_run.config)
    table = build_cost_table(space)
    archs = np.array([c.arch for c in tiny_run.candidates])
    # Default (search.prune=dead): every candidate, modes included, is its own pruned cell, and
    # its recorded costs are the pruned cell's, as the cost table prices it.
    assert (space.prune(archs, "dead") == archs).all()
    assert any(c.mode_of is not None for c in tiny_run.candidates)
    priced = table.price(archs)
    for c, costs in zip(tiny_run.candidates, priced):
        assert (c.params, c.macs) == (costs[table.index("params")], costs[table.index("macs")])
    # search.prune=keep: candidates as drawn, dead operations included, priced as they are.
    kept = _search(tmp_path / "keep", "search.prune=keep")
    kept_archs = np.array([c.arch for c in kept.candidates])
    assert (space.prune(kept_archs, "dead") != kept_archs).any(axis=1).any()
    kept_params = table.cost("params", kept_archs)
    assert [c.params for c in kept.candidates] == kept_params.tolist()
    # A dead operation with weights costs params: kept, it is paid for, pruned it is not.
    assert (table.cost("params", space.prune(kept_archs, "dead")) < kept_params).any()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "nan"
    # One step per epoch: epoch 0's step is fine, the huge step it takes blows up epoch 1.
    with pytest.raises(MoonasError, match="loss became nan.*lower train.lr"):
        _search(out, "train.lr=1e30", "train.grad_clip=null", "search.epochs=6",
                "data.max_train=32")
    files = RunFiles(out)
    assert files.config.is_file()
    assert torch.load(files.checkpoint, weights_only=True)["epoch"] == 1
    manifest = json.loads(files.manifest.read_text())
    assert manifest["status"] == "failed" and "loss became nan" in manifest["error"]


def test_nan_loss_before_any_checkpoint_says_to_start_again(tmp_path: Path) -> None:
    with pytest.raises(MoonasError, match=r"lower train.lr \(now 1e\+30\) or lower "
                       r"train.grad_clip \(now 5\) and start the search again"):
        _search(tmp_path / "nan", "train.lr=1e30", "train.grad_clip=5", "search.epochs=1",
                "search.warmup_epochs=0")
    assert not (tmp_path / "nan").exists()  # nothing to resume: nothing kept


def test_damage_inside_a_tensor_of_the_checkpoint_is_caught(tiny_run, tmp_path: Path) -> None:
    from moonas.checkpoint import load_checkpoint, save_checkpoint
    from moonas.errors import CheckpointError

    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"weights": torch.arange(4096, dtype=torch.float32), "epoch": 3})
    assert load_checkpoint(path)["epoch"] == 3
    raw = bytearray(path.read_bytes())
    at = raw.find(torch.arange(100, 104, dtype=torch.float32).numpy().tobytes())
    raw[at:at + 8] = bytes(8)  # the zip stays valid: torch.load alone would not notice
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="is damaged .*do not match the digest"):
        load_checkpoint(path)
    # A checkpoint written before the digest existed still loads.
    torch.save({"epoch": 2}, path)
    assert load_checkpoint(path)["epoch"] == 2


def test_corrupt_checkpoint_is_one_line(tiny_run, tmp_path: Path) -> None:
    out = tmp_path / "corrupt"
    out.mkdir()
    for name in ("config.yaml",):
        (out / name).write_text(RunFiles(tiny_run.dir).config.read_text())
    (out / "checkpoint.pt").write_bytes(RunFiles(tiny_run.dir).checkpoint.read_bytes()[:500])
    with pytest.raises(MoonasError, match="corrupt or truncated"):
        moonas.search(None, out, resume=True)


@pytest.mark.parametrize("content", [b"junk\n", b"", b"\x80\x02}q\x00.", b"PK\x03\x04" + b"x" * 64,
                                     bytes(range(256)) * 4])
def test_any_bytes_that_are_no_checkpoint_give_one_line(tmp_path: Path, content: bytes) -> None:
    from moonas.checkpoint import load_checkpoint
    from moonas.errors import CheckpointError

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="corrupt or truncated|does not hold") as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


@pytest.mark.parametrize("strategy", ["asng", "random"])
def test_baseline_strategies_produce_fronts(tmp_path: Path, strategy: str, caplog) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="moonas"):
        run = _search(tmp_path / strategy, f"search.strategy={strategy}")
    assert run.front.architectures
    if strategy == "asng":
        assert run.front.coefficients == (0.0,) and len(run.front.picks) == 1
        # search.n_budgets (5 by default) does not apply to one distribution: said, not silent.
        assert "strategy asng searches one distribution with no cost term (search.n_budgets " \
               "does not apply)" in caplog.text
    else:
        assert all(c.mode_of is None for c in run.candidates)


def test_asng_separate_pools_k_runs(tmp_path: Path) -> None:
    calls: list[dict] = []
    run = _search(tmp_path / "sep", "search.strategy=asng-separate", "search.epochs=2",
                  "search.budgets=[20000, 24000]",
                  progress=lambda done, total, info: calls.append(dict(info, done=done)))
    # Progress names the budget's run: run 0's train and front calls, then run 1's.
    runs = [(c["run"], c["runs"], c["phase"]) for c in calls]
    assert runs == sorted(runs, key=lambda r: (r[0], r[2] != "train")) and \
        {r[:2] for r in runs} == {(0, 2), (1, 2)}
    assert [c["done"] for c in calls if c["run"] == 1 and c["phase"] == "train"][0] == 1
    for k in range(2):
        assert (run.dir / "separate" / f"budget{k}" / "pareto.json").is_file()
    assert {c.mode_of for c in run.candidates if c.mode_of is not None} == {0, 1}
    assert run.front.budgets == (20000.0, 24000.0)
    # Independent runs (seed + k: their own weights, batches, samples) on the run's one split.
    subs = [moonas.load_run(run.dir / "separate" / f"budget{k}") for k in range(2)]
    assert [s.config.seed for s in subs] == [run.config.seed, run.config.seed + 1]
    assert all(s.config.split_seed == run.config.split_seed for s in subs)
    first = [json.loads(RunFiles(s.dir).log.read_text().splitlines()[0]) for s in subs]
    assert first[0]["train_loss"] != first[1]["train_loss"]
    from moonas.deploy.weights import run_data

    val = [[int(y) for _, y in run_data(r).val] for r in (run, *subs)]
    assert val[0] == val[1] == val[2]
    # A sub-run's candidates.csv cut short (and the pooled one lost): a resume rebuilds both
    # from the sub-run's checkpoint, as they were.
    sub = RunFiles(run.dir / "separate" / "budget1")
    whole = sub.candidates.read_text()
    sub.candidates.write_text("".join(whole.splitlines(keepends=True)[:-1]))
    RunFiles(run.dir).candidates.unlink()
    again = moonas.search(None, run.dir, resume=True)
    assert sub.candidates.read_text() == whole and again.candidates == run.candidates


def test_the_split_seed_fixes_the_data_split_apart_from_the_seed() -> None:
    from moonas.config import load_config
    from moonas.data import load_dataset

    base = load_config("smoke")
    assert base.split_seed == base.seed and base.data.split_seed is None
    other = load_config("smoke", overrides=("seed=7", "data.split_seed=0"))
    assert other.seed == 7 and other.split_seed == 0
    splits = [load_dataset("digits", seed=seed).val for seed in (0, 0, 7)]
    labels = [torch.as_tensor([int(y) for _, y in s]) for s in splits]
    assert torch.equal(labels[0], labels[1]) and not torch.equal(labels[0], labels[2])
    with pytest.raises(ConfigError, match=r"data.split_seed must be >= 0 \(or null: the run's "
                                          r"seed\), got -1"):
        load_config("smoke", overrides=("data.split_seed=-1",))


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", "moonas", "search", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


#: A search that SIGKILLs its own process from its progress callback at a chosen step of a
#: phase: a kill -9 at a known point of the run, however fast the machine is.
_KILLED_AT = """
import os, signal, sys
import moonas
out, phase, at, *overrides = sys.argv[1:]
def progress(done, total, info):
    if info["phase"] == phase and done == int(at):
        os.kill(os.getpid(), signal.SIGKILL)
moonas.search("smoke", out, overrides=tuple(overrides), progress=progress)
raise SystemExit("the search finished before it was killed")
"""
STEPS_PER_EPOCH = 192 // 32  # TINY's data.max_train / data.batch_size


@pytest.fixture(scope="module")
def eight_epochs(tmp_path_factory) -> moonas.Run:
    return _search(tmp_path_factory.mktemp("reference") / "run", "search.epochs=8")


@pytest.mark.parametrize(("phase", "at", "saved"), [
    ("train", STEPS_PER_EPOCH + 1, 1),  # the first step after the first checkpoint
    ("train", 4 * STEPS_PER_EPOCH + 3, 4),  # inside a later epoch
    ("front", 2, 8),  # the training done, measuring the front's candidates
], ids=["after-checkpoint", "mid-epoch", "front"])
def test_sigkill_then_resume_gives_the_same_front(eight_epochs, tmp_path: Path, phase: str,
                                                  at: int, saved: int) -> None:
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    killed = subprocess.run([sys.executable, "-c", _KILLED_AT, str(out), phase, str(at), *TINY,
                             "search.epochs=8"], capture_output=True, text=True, env=env,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not RunFiles(out).pareto_json.exists()
    assert torch.load(RunFiles(out).checkpoint, weights_only=True)["epoch"] == saved
    moonas.search(None, out, resume=True)
    reference = RunFiles(eight_epochs.dir)
    for name in ("pareto_json", "log", "candidates"):
        assert getattr(RunFiles(out), name).read_text() == getattr(reference, name).read_text()


def test_mobilenet_space_on_macs(tmp_path: Path) -> None:
    config = yaml.safe_load((Path(moonas.config.PACKAGED_CONFIGS) / "smoke.yaml").read_text())
    config["space"] = {"name": "mobilenet", "stem_channels": 8, "head_channels": 32,
                       "stages": [[8, 2, 1], [16, 2, 2]]}
    overrides = [o for o in TINY if not o.startswith("space.")]
    run = moonas.search(config, tmp_path / "mb",
                        overrides=(*overrides, "search.cost=macs", "search.n_budgets=3"))
    assert run.front.cost == "macs" and len(run.front.budgets) == 3
    macs = [a.macs for a in run.front.architectures]
    assert macs == sorted(macs)
    assert all(len(a.arch) == 4 for a in run.front.architectures)


def test_coefficient_mode_picks_minimise_each_objective(tmp_path: Path) -> None:
    run = _search(tmp_path / "coef", "search.coefficients=[0, 1, 4]")
    assert run.front.budgets is None and run.front.coefficients == (0.0, 1.0, 4.0)
    members = {a.id: a for a in run.front.architectures}
    picked = [members[i] for i in run.front.picks]
    # A larger coefficient never picks a dearer architecture.
    assert [p.params for p in picked] == sorted((p.params for p in picked), reverse=True)


def test_latency_of_a_named_device_as_the_searched_cost(tmp_path: Path) -> None:
    from conftest import NB201_CSV

    run = _search(tmp_path / "lat", "search.cost=latency:raspi4",
                  f"search.latency_table={NB201_CSV}")
    assert run.front.cost == "latency:raspi4"
    latencies = [a.latency_ms for a in run.front.architectures]
    assert all(v is not None for v in latencies) and latencies == sorted(latencies)
    assert all(c.latency_ms is not None for c in run.candidates)
    pick = run.pick(max_latency_ms=run.front.budgets[2])
    assert pick.candidate.latency_ms <= run.front.budgets[2]


def test_latency_cost_without_a_table_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs search.latency_table=PATH"):
        _search(tmp_path / "x", "search.cost=latency:raspi4")


def test_strategy_state_with_plugins_resumes_identically(tmp_path: Path) -> None:
    """A strategy with the EoiNAS plug-in, saved through a checkpoint mid-run, continues with
    the same asks and the same removals as an uninterrupted one."""
    from moonas.checkpoint import load_checkpoint, save_checkpoint
    from moonas.config import load_config
    from moonas.search.objective import Objective
    from moonas.search.strategies import build_strategy

    search = load_config("smoke", ["search.eoi.enabled=true", "search.eoi.warmup=5",
                                   "search.eoi.interval=2"]).search
    objective = Objective("params", (4.0, 8.0, 12.0, 16.0, 20.0), None, 0.0, 24.0)

    def fresh():
        return build_strategy("multi-asng", (5,) * 6, objective, search)

    def steps(strategy, rng, n):
        out = []
        for _ in range(n):
            archs = strategy.ask(rng)
            losses = (archs == 3).sum(axis=1) * -0.1 + rng.random(len(archs)) * 0.05
            strategy.tell(archs, losses, archs.sum(axis=1).astype(float))
            out.append(archs)
        return np.concatenate(out)

    rng = np.random.default_rng(0)
    whole = fresh()
    steps(whole, rng, 40)
    expected = steps(whole, rng, 40)

    rng = np.random.default_rng(0)
    first = fresh()
    steps(first, rng, 40)
    save_checkpoint(tmp_path / "s.pt", {"strategy": first.state_dict(),
                                        "rng": rng.bit_generator.state})
    state = load_checkpoint(tmp_path / "s.pt")
    second = fresh()
    second.load_state_dict(state["strategy"])
    rng2 = np.random.default_rng(1)
    rng2.bit_generator.state = state["rng"]
    np.testing.assert_array_equal(steps(second, rng2, 40), expected)
    assert (second.core.stack.mask != whole.core.stack.mask).sum() == 0
    assert not second.core.stack.mask.all(), "the plug-in removed nothing: the test is vacuous"


def test_a_told_row_no_distribution_can_draw_teaches_nothing() -> None:
    """Under pvll.tell=all the screened rows are told too; a pruned cell can read an option
    every distribution removed (`none` on a dead edge). Such a row has no importance weight:
    it is left out of the step (it stopped the run with a traceback)."""
    from moonas.config import load_config
    from moonas.search.objective import Objective
    from moonas.search.strategies import build_strategy

    search = load_config("smoke", ["search.pvll.tell=all"]).search
    objective = Objective("params", (4.0, 8.0, 12.0, 16.0, 20.0), None, 0.0, 24.0)
    strategy = build_strategy("multi-asng", (5,) * 6, objective, search)
    mask = strategy.core.stack.mask.copy()
    mask[:, 1, 0] = False  # option 0 of choice 1 removed everywhere
    strategy.core.stack.set_mask(mask)
    archs = strategy.ask(np.random.default_rng(0))
    archs[0, 1] = 0
    before = strategy.core.thetas.copy()
    strategy.tell(archs, np.linspace(0.1, 0.9, len(archs)), archs.sum(axis=1).astype(float))
    assert np.isfinite(strategy.core.thetas).all()
    assert not np.array_equal(strategy.core.thetas, before)  # the other rows were told
    assert (strategy.core.thetas[:, 1, 0] == 0).all()


def test_supernet_search_with_both_plugins(tmp_path: Path) -> None:
    extra = ("search.pvll.enabled=true", "search.pvll.min_observations=10",
             "search.eoi.enabled=true", "search.eoi.warmup=5", "search.eoi.interval=2")
    a = _search(tmp_path / "a", *extra)
    b = _search(tmp_path / "b", *extra)
    assert RunFiles(a.dir).pareto_json.read_text() == RunFiles(b.dir).pareto_json.read_text()
    saved = torch.load(RunFiles(a.dir).checkpoint, weights_only=True)["strategy"]["plugins"]
    assert set(saved) == {"eoi", "pvll"}
    assert a.config.search.pvll.enabled and a.config.search.eoi.enabled


def test_ctrl_c_after_a_checkpoint_records_the_stop_and_how_to_resume(
        tmp_path: Path, monkeypatch, caplog) -> None:
    import importlib

    runner = importlib.import_module("moonas.search.runner")  # moonas.search is the function

    def interrupted(config, files, resume, progress):
        files.checkpoint.write_bytes(b"a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_single", interrupted)
    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        _search(out)
    assert json.loads(RunFiles(out).manifest.read_text())["status"] == "interrupted"
    assert f"'moonas search --resume {out}'" in caplog.text


def test_a_damaged_front_is_rebuilt_from_the_checkpoint(tiny_run, tmp_path: Path) -> None:
    import shutil

    from moonas.run import CorruptFront

    out = tmp_path / "damaged"
    shutil.copytree(tiny_run.dir, out)
    files = RunFiles(out)
    files.pareto_json.write_text(files.pareto_json.read_text()[:200])
    with pytest.raises(CorruptFront, match=f"rebuild it from the checkpoint with 'moonas "
                                           f"search --resume {out}'"):
        moonas.load_run(out)
    rebuilt = moonas.search(None, out, resume=True)
    assert rebuilt.front == tiny_run.front and rebuilt.candidates == tiny_run.candidates
    files.candidates.unlink()  # lost: the front alone would narrow every pick
    assert moonas.search(None, out, resume=True).candidates == tiny_run.candidates
    files.checkpoint.unlink()
    files.pareto_json.write_text("{")
    with pytest.raises(CorruptFront, match="run the search again with --force"):
        moonas.search(None, out, resume=True)


def test_sigterm_stops_like_ctrl_c_and_a_live_writer_holds_its_folder(tmp_path: Path) -> None:
    """SIGTERM after a checkpoint: exit 143, the stop recorded, the lock released. While the run
    was alive a second search on its folder was refused; its resume keeps the first segment."""
    out = tmp_path / "termed"
    args = ["smoke", "--out", str(out), "-q",
            *[a for s in (*TINY, "search.epochs=200") for a in ("--set", s)]]
    proc = _cli(*args)
    checkpoint = RunFiles(out).checkpoint
    deadline = time.time() + 240
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    second = _cli("--resume", str(out), "-q")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 1 and f"{out} is being written by process {proc.pid}" in err
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "terminated (SIGTERM)" in err
    assert f"'moonas search --resume {out}'" in err
    manifest = json.loads(RunFiles(out).manifest.read_text())
    assert manifest["status"] == "interrupted" and manifest["wall_seconds"] > 0
    assert not (out / ".moonas-lock").exists()


def test_a_stale_lock_is_taken_over_and_a_resume_keeps_the_earlier_segments(
        tiny_run, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "stale"
    shutil.copytree(tiny_run.dir, out)
    RunFiles(out).pareto_json.unlink()  # unfinished: the resume rebuilds the front
    # A writer that is gone (a pid no process has, or a reused one that started later).
    (out / ".moonas-lock").write_text(json.dumps({"pid": 2**22 + 7, "host": "x", "start": "1"}))
    run = moonas.search(None, out, resume=True)
    assert run.front == tiny_run.front and not (out / ".moonas-lock").exists()
    manifest = json.loads(RunFiles(out).manifest.read_text())
    assert manifest["status"] == "complete" and manifest["earlier"][0]["status"] == "complete"
    assert len(manifest["earlier"]) == 1


def test_the_api_restores_the_callers_threads_and_rng_and_takes_one_override_string(
        tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run = moonas.search("smoke", tmp_path / "api", overrides="search.epochs=3")
    assert run.config.search.epochs == 3
    assert torch.get_num_threads() == threads and torch.equal(torch.rand(3), expected)


def test_relative_paths_are_saved_absolute(tmp_path: Path, monkeypatch) -> None:
    """A search given a relative data.root and search.latency_table saves them absolute in
    config.yaml, so the run's later commands find them from any directory."""
    from PIL import Image

    from conftest import NB201_CSV
    from moonas.deploy.pick import resolve_latency
    from moonas.deploy.weights import run_data

    images = tmp_path / "data" / "imgs"
    for k, name in enumerate(("ant", "bee", "cow")):
        (images / name).mkdir(parents=True)
        for i in range(8):
            colour = (80 * k, 10 * i, 255 - 80 * k)
            Image.new("RGB", (8, 8), colour).save(images / name / f"{i}.png")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    table = os.path.relpath(NB201_CSV)
    assert not os.path.isabs(table)
    run = _search(tmp_path / "rel", "data.name=imagefolder", "data.root=../data/imgs",
                  "data.image_size=8", "data.batch_size=4", "search.epochs=1",
                  "search.warmup_epochs=0", "search.front_samples=2",
                  "search.cost=latency:raspi4", f"search.latency_table={table}")
    saved = yaml.safe_load(RunFiles(run.dir).config.read_text())
    assert saved["data"]["root"] == str(images.resolve())
    assert saved["search"]["latency_table"] == str(NB201_CSV)
    # From another directory the saved run still finds its images and its table.
    monkeypatch.chdir(tmp_path)
    again = moonas.load_run(run.dir)
    assert len(run_data(again).train) == len(run_data(run).train) > 0
    # The table itself, not the latencies the search recorded (its fallback for a lost table).
    assert resolve_latency(again, "raspi4", None).source == str(NB201_CSV)


def test_every_distributions_mode_is_recorded_even_when_modes_coincide(tiny_run) -> None:
    """Each distribution's mode is on some candidate's `modes` (several distributions whose
    modes are one cell, or prune to one, were recorded as the first of them only), and the
    files round-trip the lists."""
    from moonas.checkpoint import load_checkpoint
    from moonas.run import read_candidates
    from moonas.search.front import _distinct

    k = len(tiny_run.front.picks)
    recorded = [d for c in tiny_run.candidates for d in c.modes]
    assert sorted(recorded) == list(range(k))  # each once: a mode is one cell
    theta = load_checkpoint(RunFiles(tiny_run.dir).checkpoint)["strategy"]["distributions"][
        "theta"]
    pruned = NB201Space().prune(np.asarray(theta).argmax(axis=2), "dead")
    for c in tiny_run.candidates:
        assert c.mode_of == (c.modes[0] if c.modes else None)
        assert all(tuple(pruned[d]) == c.arch for d in c.modes)
    assert read_candidates(RunFiles(tiny_run.dir).candidates) == tiny_run.candidates
    rows, modes = _distinct(np.array([[1, 2], [3, 4], [1, 2], [1, 2]]), [(2,), (), (0,), ()])
    assert rows.tolist() == [[1, 2], [3, 4]] and modes == [(0, 2), ()]


def test_api_arguments_of_the_wrong_type_name_the_argument(tmp_path: Path) -> None:
    from moonas.errors import ArgumentError

    out = tmp_path / "never"
    for call, says in (
            (lambda: moonas.search(5, out), "search: config must be a RunConfig"),
            (lambda: moonas.search("smoke", 5), "search: out must be a path"),
            (lambda: moonas.search("smoke", out, overrides=[("search.epochs", 3)]),
             r"search: overrides must be 'KEY=VALUE' strings .* got \('search.epochs', 3\)"),
            (lambda: moonas.search("smoke", out, progress=3), "search: progress must be callable"),
            (lambda: moonas.load_run(None), "load_run: path must be a path"),
            (lambda: moonas.load_config(3), "load_config: source must be")):
        with pytest.raises(ArgumentError, match=says) as exc:
            call()
        assert isinstance(exc.value, TypeError) and isinstance(exc.value, moonas.MoonasError)
    assert not out.exists()
    # One string is one setting, as for search; None is none.
    assert moonas.load_config("smoke", "search.epochs=3").search.epochs == 3
    assert moonas.load_config("smoke", None) == moonas.load_config("smoke")


def test_a_resume_drops_damaged_log_lines_and_keeps_the_rest(tmp_path: Path, caplog) -> None:
    from moonas.search.loop import truncate_log

    log = tmp_path / "log.jsonl"
    log.write_bytes(b'{"step": 1}\n\xff\xfe not text\n[1]\n{"step": "x"}\n{"kind": "epoch"}\n'
                    b'{"step": 2}\n{"step": 5}\n{"st')
    truncate_log(log, last_step=2)
    assert log.read_text().splitlines() == ['{"step": 1}', '{"kind": "epoch"}', '{"step": 2}']
    assert "lines 2, 3, 4, 8 are not a log record; dropped" in caplog.text
    caplog.clear()
    log.write_text('{"step": 1}\n{"ste')  # a torn last line alone is expected: no warning
    truncate_log(log, last_step=2)
    assert log.read_text() == '{"step": 1}\n' and "dropped" not in caplog.text


def test_a_run_stopped_between_its_front_and_its_manifest_is_recorded_complete_on_resume(
        tiny_run, tmp_path: Path) -> None:
    """A stop in the moment after pareto.json was written left the manifest "running" (or
    "interrupted"); the resume finds the run complete and says so in the manifest too."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run.dir, copy)
    files = RunFiles(copy)
    manifest = json.loads(files.manifest.read_text())
    assert manifest["status"] == "complete"
    files.manifest.write_text(json.dumps({**manifest, "status": "interrupted",
                                          "error": "KeyboardInterrupt"}))
    moonas.search(None, copy, resume=True)
    again = json.loads(files.manifest.read_text())
    assert again["status"] == "complete" and "error" not in again


def _interrupted_copy(run, tmp_path: Path) -> RunFiles:
    """A copy of `run` as a kill after its last checkpoint leaves it (no front yet)."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run.dir, copy)
    files = RunFiles(copy)
    for path in (files.pareto_json, files.pareto_csv, files.candidates, files.pareto_png):
        path.unlink()
    return files


@pytest.mark.parametrize("damage", ["cut", "empty", "row"])
def test_a_damaged_candidates_csv_is_noticed_and_a_resume_rebuilds_it(
        tiny_run, tmp_path: Path, damage: str) -> None:
    """pareto.json records candidates.csv's count and sha256: a file cut at a line end (which
    parses as fewer candidates) or emptied is refused, and a resume writes it again."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run.dir, copy)
    files = RunFiles(copy)
    original = files.candidates.read_bytes()
    lines = original.decode().splitlines(keepends=True)
    assert len(lines) > 3
    files.candidates.write_text({"cut": "".join(lines[:-2]), "empty": "",
                                 "row": "".join(lines[:2] + lines[3:])}[damage])
    with pytest.raises(CorruptFront, match="candidates.csv is not the file the search "
                                                  "wrote .*moonas search --resume") as info:
        moonas.load_run(copy)
    assert "\n" not in str(info.value)
    if damage != "row":
        assert f"pareto.json recorded {len(lines) - 1}" in str(info.value)
    again = moonas.search(None, copy, resume=True)
    assert files.candidates.read_bytes() == original
    assert again.candidates == tiny_run.candidates and again.front == tiny_run.front


def test_a_resume_of_a_complete_run_redraws_a_damaged_pareto_csv_and_png(
        tiny_run, tmp_path: Path, caplog) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run.dir, copy)
    files = RunFiles(copy)
    csv_bytes, png = files.pareto_csv.read_bytes(), files.pareto_png.read_bytes()
    files.pareto_csv.write_bytes(csv_bytes[: len(csv_bytes) // 2])
    files.pareto_png.write_bytes(png[: len(png) - 20])
    moonas.search(None, copy, resume=True)
    assert files.pareto_csv.read_bytes() == csv_bytes
    assert files.pareto_png.read_bytes()[-8:-4] == b"IEND"
    assert "pareto.csv is missing or damaged" in caplog.text
    caplog.clear()
    moonas.search(None, copy, resume=True)  # whole files: nothing rewritten
    assert "missing or damaged" not in caplog.text


def test_a_complete_runs_edited_config_yaml_is_refused_on_resume(tiny_run, tmp_path: Path
                                                                  ) -> None:
    """A complete run's resume said "already complete" and kept an edited config.yaml, which
    `train`, `export` and `pick` then read as the run's; it is refused as an unfinished
    run's is, before anything is rewritten."""
    import shutil

    from moonas.errors import CheckpointError

    out = tmp_path / "done"
    shutil.copytree(tiny_run.dir, out)
    config = RunFiles(out).config
    text = config.read_text()
    config.write_text(text.replace("front_samples: 4", "front_samples: 8"))
    manifest = RunFiles(out).manifest.read_bytes()
    with pytest.raises(CheckpointError, match=r"config.yaml differs from the config the "
                                              r"checkpoint was written with \(search."
                                              r"front_samples 4 -> 8\)"):
        moonas.search(None, out, resume=True)
    assert RunFiles(out).manifest.read_bytes() == manifest
    config.write_text(text)
    assert moonas.search(None, out, resume=True).front == tiny_run.front


@pytest.mark.parametrize("damage", ["edited", "cut", "empty"])
def test_a_config_yaml_unlike_the_checkpoints_is_refused_on_resume(
        tiny_run, tmp_path: Path, damage: str) -> None:
    """The checkpoint keeps the config it was written with: a config.yaml edited, cut at a
    line or emptied would resume as another run (defaults filled in), and is refused in one
    line naming config.yaml and the settings; data.root/device may change."""
    from moonas.errors import CheckpointError

    files = _interrupted_copy(tiny_run, tmp_path)
    text = files.config.read_text()
    if damage == "edited":
        changed = text.replace("front_samples: 4", "front_samples: 8")
        assert changed != text
    elif damage == "cut":
        changed = text[: text.index("search:")]
    else:
        changed = ""
    files.config.write_text(changed)
    with pytest.raises(CheckpointError, match=r"config.yaml differs from the config the "
                                              r"checkpoint was written with \(") as info:
        moonas.search(None, files.root, resume=True)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    if damage == "edited":
        assert "search.front_samples 4 -> 8" in message
    files.config.write_text(text.replace("device: cpu", "device: auto"))
    assert moonas.search(None, files.root, resume=True).front == tiny_run.front


def test_a_resume_removes_temp_files_of_interrupted_writes(tiny_run, tmp_path: Path) -> None:
    files = _interrupted_copy(tiny_run, tmp_path)
    stale = [files.root / ".checkpoint.pt.a1b2c3d4.tmp", files.root / ".pareto.json.zz_9y8x7.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    keep = [files.root / ".moonas-lock.abcd1234.tmp",  # another process taking the lock
            files.root / "notes.tmp"]  # not a name moonas writes
    for path in keep:
        path.write_text("x")
    moonas.search(None, files.root, resume=True)
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in keep)


def test_identical_checkpoints_are_identical_files(tmp_path: Path) -> None:
    """torch.save given a path names the archive's records after it (here a random temp
    name): saving through a file object keeps two identical states' files byte-identical."""
    from moonas.checkpoint import save_checkpoint

    state = {"w": torch.arange(6.0).reshape(2, 3), "theta": np.ones(3), "epoch": 2}
    save_checkpoint(tmp_path / "a.pt", state)
    save_checkpoint(tmp_path / "b.pt", state)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_automatic_budgets_never_round_below_the_cheapest_architecture() -> None:
    """A low quantile equal to the cheapest architecture's cost once rounded down to 3
    significant digits (36,206 -> 36,200): a budget nothing meets, its distribution wasted.
    It rounds up instead; quantiles 3 digits would merge get more digits."""
    from moonas.config import SearchConfig
    from moonas.costs import build_cost_table
    from moonas.search.objective import _readable, resolve_objective
    from moonas.spaces.mobilenet import MobileNetSpace

    assert _readable(np.array([36206.0, 50000.0]), 36206.0) == (36300.0, 50000.0)
    assert _readable(np.array([12341.0, 12349.0]), 100.0) == (12340.0, 12350.0)
    assert _readable(np.array([5.0, 5.0]), 1.0) is None
    # The auditor's space: one kernel, one expansion, so every 4th architecture is the cheapest.
    space = MobileNetSpace(kernels=(3,), expansions=(3,), head_channels=127, input_size=8,
                           in_channels=1, n_classes=10)
    table = build_cost_table(space)
    cheapest, _ = table.extreme("params", cheapest=True)
    objective = resolve_objective(SearchConfig(n_budgets=2), table, np.random.default_rng(0))
    assert objective.budgets[0] >= cheapest
    assert len(set(objective.budgets)) == 2


def test_a_budget_above_the_dearest_architecture_is_warned_of(caplog) -> None:
    import logging

    from moonas.config import SearchConfig
    from moonas.costs import build_cost_table
    from moonas.search.objective import resolve_objective

    table = build_cost_table(NB201Space(channels=4, input_size=8, in_channels=1, n_classes=10))
    dearest, _ = table.extreme("params", cheapest=False)
    with caplog.at_level(logging.WARNING, logger="moonas"):
        resolve_objective(SearchConfig(budgets=(dearest / 2, dearest * 10)), table,
                          np.random.default_rng(0))
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and f"budget {dearest * 10:g} is at or above the dearest" in warned[0]


def test_a_latency_budget_below_every_cell_the_search_measures_is_refused() -> None:
    """On raspi4 the fastest cell of NAS-Bench-201 as drawn has dead operations and prunes to
    a slower cell (latencies are measurements, not sums): under search.prune=dead a budget
    between the two is met by nothing the search measures, so it is refused up front."""
    from conftest import NB201_CSV
    from moonas.config import config_to_dict, load_config
    from moonas.pricing import static_space
    from moonas.search.context import cost_model, run_objective
    from moonas.search.objective import measured_floor

    config = load_config("smoke", ["search.cost=latency:raspi4",
                                   f"search.latency_table={NB201_CSV}"])
    space = static_space(config)
    table = cost_model(space, config.search)
    drawn, _ = table.extreme("latency:raspi4", cheapest=True)
    floor = measured_floor(space, table, "latency:raspi4", "dead")
    assert measured_floor(space, table, "latency:raspi4", "keep") == drawn < floor
    between = (drawn + floor) / 2
    with pytest.raises(ConfigError, match=rf"below the cheapest architecture of the space a "
                       rf"search measures .* \(latency:raspi4 = {floor:g} ms\)"):
        run_objective(load_config(config_to_dict(config), [f"search.budgets=[{between}, 8]"]),
                      space, table)
    kept = load_config(config_to_dict(config), [f"search.budgets=[{between}, 8]",
                                                "search.prune=keep"])
    assert run_objective(kept, space, table).budgets[0] == between
    # Automatic budgets never fall below what the search measures either.
    assert run_objective(config, space, table).budgets[0] >= floor


def _run_bytes(root: Path) -> dict[str, bytes]:
    """Every file under `root` (the run's own lock aside) by its relative path, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p != root / ".moonas-lock"}


def _old_run_with_a_training(tiny_run, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    import shutil

    out = tmp_path / "old"
    shutil.copytree(tiny_run.dir, out)
    (out / "trained" / "0").mkdir(parents=True)
    (out / "trained" / "0" / "job.json").write_text("{}")
    return out, _run_bytes(out)


@pytest.mark.parametrize("override, message", [
    ("data.root=/nonexistent/moonas", "data.root"),
    ("search.budgets=[5]", "below the cheapest architecture"),
    ("train.lr=1e30", "loss became"),
])
def test_a_force_replacement_that_fails_before_its_first_checkpoint_keeps_the_old_run(
        tiny_run, tmp_path: Path, override: str, message: str) -> None:
    out, before = _old_run_with_a_training(tiny_run, tmp_path)
    extra = ("data.name=mnist",) if override.startswith("data.root") else (
        "train.grad_clip=null", "search.epochs=1", "search.warmup_epochs=0")
    with pytest.raises(MoonasError, match=message):
        _search(out, override, *extra, force=True)
    assert _run_bytes(out) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in tiny_run.dir.iterdir()
                                                           if p.name != ".moonas-lock") + [
        "trained"]
    assert not (out / "trained" / "0" / ".moonas-lock").exists()  # its lock given back


def test_a_force_replacement_deletes_the_old_run_at_its_first_checkpoint_and_ctrl_c_before(
        tiny_run, tmp_path: Path) -> None:
    """The old run waits in a hidden folder until the new run's first checkpoint, then goes;
    Ctrl-C before that puts it back."""
    from moonas.search.runner import REPLACED

    out, before = _old_run_with_a_training(tiny_run, tmp_path)
    seen = []

    def watch(done, total, info):
        seen.append((info["phase"], info.get("epoch"), (out / REPLACED).exists()))

    _search(out, "seed=3", force=True, progress=watch)
    assert seen[0] == ("train", 0, True)  # set aside while the first epoch trains
    assert [aside for phase, epoch, aside in seen if epoch != 0] == [False] * (len(seen) - sum(
        epoch == 0 for _, epoch, _ in seen))  # gone once epoch 0's checkpoint is written
    assert not (out / REPLACED).exists() and not (out / "trained").exists()

    out, before = _old_run_with_a_training(tiny_run, tmp_path / "again")

    def interrupt(done, total, info):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _search(out, "seed=3", force=True, progress=interrupt)
    assert _run_bytes(out) == before and not (out / REPLACED).exists()


@pytest.mark.parametrize("moment", ["setting aside", "before the first checkpoint", "after it"])
def test_a_force_replacement_killed_leaves_the_old_run_to_the_next_command(
        tiny_run, tmp_path: Path, moment: str, caplog) -> None:
    """A kill -9 while --force replaces a run: the next resume puts the old run back (the new
    one had nothing to resume) or, once the new run has a checkpoint, deletes it."""
    import shutil

    from moonas.search.runner import REPLACED

    out, before = _old_run_with_a_training(tiny_run, tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()  # the killed replacement's lock on trained/0, stale now
    (out / "trained" / "0" / ".moonas-lock").write_text(json.dumps(
        {"pid": gone.pid, "host": os.uname().nodename, "start": "1"}))
    aside = out / REPLACED
    aside.mkdir()
    names = ["config.yaml", "checkpoint.pt", "trained"]  # moved so far
    if moment != "setting aside":  # every file moved, the new run's config written
        names = [p.name for p in out.iterdir() if p.name not in (REPLACED, ".moonas-lock")]
        (aside / ".set-aside").write_text("")
    for name in names:
        (out / name).rename(aside / name)
    if moment != "setting aside":  # the new run: the same config (its checkpoint a copy)
        shutil.copy(aside / "config.yaml", out / "config.yaml")
        (out / "manifest.json").write_text('{"status": "running"}')
    if moment == "after it":
        shutil.copy(aside / "checkpoint.pt", out / "checkpoint.pt")
    with pytest.raises(MoonasError, match=f"{out} holds another run: pass --resume"):
        _search(out)  # without --force: refused, nothing touched
    assert aside.is_dir()
    if moment == "after it":  # the new run resumes (its front built) and the old one goes
        assert moonas.search(None, out, resume=True).front == tiny_run.front
        assert not aside.exists() and not (out / "trained").exists()
        return
    run = moonas.search(None, out, resume=True)
    assert run.front == tiny_run.front and not aside.exists()
    assert "was stopped before its first checkpoint: the run it replaced is put back" in caplog.text
    after = _run_bytes(out)
    assert after.pop("manifest.json") and before.pop("manifest.json")  # status rewritten
    assert after == before


def test_ranks_other_than_0_read_the_run_only_after_rank_0_recovered_it(
        tmp_path: Path, monkeypatch) -> None:
    """Under torchrun only rank 0 sorts out a killed --force replacement; the others read the
    run after it (they read the aborted new run while rank 0 put the old one back, and waited
    in a collective forever), and give up in one line if it never ends."""
    import threading

    from moonas.distributed import World
    from moonas.search import runner

    root = tmp_path / "run"
    (root / runner.REPLACED).mkdir(parents=True)
    timer = threading.Timer(0.3, (root / runner.REPLACED).rmdir)
    timer.start()
    started = time.monotonic()
    runner._await_recovery(RunFiles(root), World(1, 2, 1))
    assert time.monotonic() - started >= 0.25 and not (root / runner.REPLACED).exists()
    (root / runner.REPLACED).mkdir()
    monkeypatch.setattr(runner, "_RECOVERY_WAIT_S", 0.2)
    with pytest.raises(MoonasError, match=r"^rank 1: the run in .* is still being sorted out "
                                          r"by rank 0 after 0.2 s \(a --force replacement was "
                                          r"killed\): resume again$"):
        runner._await_recovery(RunFiles(root), World(1, 2, 1))


def test_a_resume_with_processes_checks_the_run_a_killed_force_leaves(
        tiny_run, tmp_path: Path, monkeypatch) -> None:
    """The launcher's check of `--resume DIR --processes N` sorts out a killed --force first
    (it said "no config.yaml: nothing to resume" where a plain resume puts the run back), and
    an emptied config.yaml gets the resume's reading, not a new config's refusal."""
    import shutil

    import moonas.distributed as distributed
    from moonas.cli import main
    from moonas.search.runner import REPLACED

    out = tmp_path / "run"
    shutil.copytree(tiny_run.dir, out)
    (out / REPLACED).mkdir()
    for name in ("config.yaml", "manifest.json", "log.jsonl"):  # killed while setting aside
        (out / name).rename(out / REPLACED / name)
    launched = []
    monkeypatch.setattr(distributed, "launch", lambda n, argv, run_dir: launched.append(n))
    assert main(["search", "--resume", str(out), "--processes", "2"]) == 0
    assert launched == [2] and (out / "config.yaml").is_file() and not (out / REPLACED).exists()
    (out / "config.yaml").write_text("# emptied\n")
    assert main(["search", "--resume", str(out), "--processes", "2"]) == 0  # the run decides
    assert launched == [2, 2]


def test_a_force_replacement_that_cannot_move_the_old_run_is_one_line(
        tiny_run, tmp_path: Path, monkeypatch) -> None:
    """A read-only folder (the probe's write fails), or a move refused part-way: one line,
    and every file of the old run where it was."""
    from pathlib import Path as P

    from moonas.search.runner import REPLACED

    out, before = _old_run_with_a_training(tiny_run, tmp_path)
    write_text = P.write_text

    def read_only(self, *args, **kwargs):
        if self.parent == out:
            raise PermissionError(13, "Permission denied")
        return write_text(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(P, "write_text", read_only)
        with pytest.raises(MoonasError, match=f"cannot write to {out} \\(Permission denied\\)"):
            _search(out, force=True)
    assert _run_bytes(out) == before
    rename = os.rename

    def refuse_trained(src, dst):
        if P(src).name == "trained":
            raise PermissionError(13, "Permission denied", src)
        return rename(src, dst)

    monkeypatch.setattr(os, "rename", refuse_trained)
    with pytest.raises(MoonasError, match=f"cannot move the old run in {out} aside "
                       r"\(.*trained: Permission denied\)") as info:
        _search(out, force=True)
    assert "\n" not in str(info.value)
    assert _run_bytes(out) == before and not (out / REPLACED).exists()
    assert not (out / "trained" / "0" / ".moonas-lock").exists()

    def interrupt_at_trained(src, dst):
        if P(src).name == "trained":
            raise KeyboardInterrupt
        return rename(src, dst)

    monkeypatch.setattr(os, "rename", interrupt_at_trained)  # Ctrl-C part-way: all put back
    with pytest.raises(KeyboardInterrupt):
        _search(out, force=True)
    assert _run_bytes(out) == before and not (out / REPLACED).exists()


@pytest.mark.parametrize("state", ["complete", "interrupted"])
def test_a_resume_in_a_read_only_folder_is_one_line(tiny_run, tmp_path: Path, monkeypatch,
                                                     state: str) -> None:
    import shutil
    import tempfile

    if state == "complete":
        out = tmp_path / "copy"
        shutil.copytree(tiny_run.dir, out)
    else:
        out = _interrupted_copy(tiny_run, tmp_path).root
    before = _run_bytes(out)
    mkstemp = tempfile.mkstemp

    def read_only(*args, **kwargs):
        if Path(kwargs.get("dir", "")) == out:
            raise PermissionError(13, "Permission denied")
        return mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(MoonasError, match=f"cannot write to {out} \\(Permission denied\\): "
                       "make the folder writable") as info:
        moonas.search(None, out, resume=True)
    assert "\n" not in str(info.value) and _run_bytes(out) == before


def test_a_resume_of_a_complete_run_reports_a_damaged_checkpoint_and_rewrites_its_manifest(
        tiny_run, tmp_path: Path, caplog) -> None:
    import shutil

    from moonas.errors import CheckpointError

    out = tmp_path / "copy"
    shutil.copytree(tiny_run.dir, out)
    files = RunFiles(out)
    files.manifest.write_text("garbage{")
    whole = files.checkpoint.read_bytes()
    files.checkpoint.write_bytes(whole[:1000])
    with pytest.raises(CheckpointError, match=f"checkpoint {files.checkpoint} is corrupt or "
                       f"truncated .*: run {out} is complete, but its supernet weights are "
                       "lost; restore the checkpoint from a copy") as info:
        moonas.search(None, out, resume=True)
    assert "\n" not in str(info.value)
    manifest = json.loads(files.manifest.read_text())
    assert manifest["status"] == "complete" and "rewritten" in manifest
    assert "manifest.json is missing or damaged; written again" in caplog.text
    files.checkpoint.write_bytes(whole)
    assert moonas.search(None, out, resume=True).front == tiny_run.front


def test_resume_and_force_must_be_bools_and_not_both(tmp_path: Path) -> None:
    from moonas.errors import ArgumentError, UsageError

    out = tmp_path / "never"
    bad = "search.strategy=nonesuch"  # the search itself would stop at once: no ArgumentError
    for kwargs, says in (({"force": "no"}, "search: force must be True or False, got str 'no'"),
                         ({"resume": 1}, "search: resume must be True or False, got int 1")):
        with pytest.raises(ArgumentError, match=says):
            moonas.search("smoke", out, overrides=bad, **kwargs)
    with pytest.raises(UsageError, match="search: resume=True continues a run and force=True "
                       "starts one over: pass one"):
        moonas.search(None, out, resume=True, force=True)
    assert not out.exists()


def test_the_api_restores_the_callers_cuda_rng(tmp_path: Path, monkeypatch) -> None:
    """torch.manual_seed reseeds every CUDA generator too: their states are restored (faked
    here, where there is no GPU), and the CPU generator's as before."""
    saved = [torch.tensor([1, 2, 3], dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: saved)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _search(tmp_path / "cuda", "search.epochs=1", "search.warmup_epochs=0")
    assert restored == [saved] and torch.equal(torch.rand(3), expected)
    # A caller that has not started CUDA: nothing read (reading would start it).
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("CUDA started"))
    _search(tmp_path / "cpu", "search.epochs=1", "search.warmup_epochs=0")
    assert restored == [saved]
