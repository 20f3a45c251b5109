"""A run folder's records as read back: architectures checked against the run's space, and
`search --force` over a run whose candidates are being retrained."""

from __future__ import annotations

import csv
import io
import json
import socket

import pytest

from moonas.errors import MoonasError
from moonas.lock import LOCK, _start_time
from moonas.run import CorruptFront, RunFiles, load_run

from test_deploy_pick import RUN_OVERRIDES, make_run


def _edit_candidate(root, cid: int, arch: list) -> None:
    """candidates.csv with candidate `cid`'s architecture replaced by `arch`."""
    path = RunFiles(root).candidates
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    for row in rows:
        if int(row["id"]) == cid:
            row["arch"] = json.dumps(arch)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue())


def _edit_front(root, arch: list) -> int:
    """pareto.json with its first member's architecture replaced by `arch`; that member's id."""
    path = RunFiles(root).pareto_json
    data = json.loads(path.read_text())
    data["architectures"][0]["arch"] = arch
    path.write_text(json.dumps(data))
    return int(data["architectures"][0]["id"])


@pytest.mark.parametrize("where,change", [
    ("candidates.csv", lambda arch: [99, *arch[1:]]),  # an option out of range
    ("candidates.csv", lambda arch: arch[:-1]),  # one choice too few
    ("pareto.json", lambda arch: [*arch, 0]),  # one choice too many
    ("pareto.json", lambda arch: [-1, *arch[1:]]),
])
def test_an_architecture_outside_the_runs_space_is_one_line(tmp_path, where, change) -> None:
    root = make_run(tmp_path / "run")
    run = load_run(root)
    if where == "candidates.csv":
        cid = run.candidates[5].id
        _edit_candidate(root, cid, change(list(run.candidates[5].arch)))
    else:
        cid = _edit_front(root, change(list(run.front.architectures[0].arch)))
    with pytest.raises(CorruptFront) as info:
        load_run(root)
    message = str(info.value)
    assert "\n" not in message
    assert str(root / where) in message and f"id {cid} " in message
    assert f"'moonas search --resume {root}'" in message  # its checkpoint rebuilds the front


def test_train_and_pick_on_a_run_with_a_bad_architecture_fail_with_one_line(
        tmp_path, capsys) -> None:
    from conftest import NB201_CSV

    from moonas.cli import main

    root = make_run(tmp_path / "run")
    run = load_run(root)
    bad = run.candidates[2]
    _edit_candidate(root, bad.id, [7, *bad.arch[1:]])
    for argv in (["train", str(root), "--id", str(bad.id), "--epochs", "1", "-q"],
                 ["pick", str(root), "--max-latency-ms", "5", "--device", "raspi4",
                  "--latency-table", str(NB201_CSV)],
                 ["export", str(root), "--id", str(bad.id), "--format", "pt", "--out",
                  str(tmp_path / "net.pt")]):
        capsys.readouterr()
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "candidates.csv is corrupt" in err[0], err
        assert f"id {bad.id} " in err[0] and "Traceback" not in err[0]
    assert not (root / "trained").exists() and not (tmp_path / "net.pt").exists()


def _lock(folder, pid: int, start: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK).write_text(json.dumps({"pid": pid, "host": socket.gethostname(),
                                           "start": start or _start_time(pid),
                                           "since": "then"}))


def test_force_refuses_while_a_training_of_the_old_run_lives(tmp_path, live) -> None:
    """Its folder would be deleted under it, and it would write another architecture's results
    back into the new run's trained/ID."""
    from moonas.search.runner import search

    root = make_run(tmp_path / "run")
    _lock(root / "trained" / "3", 1, start="0")  # a dead training's lock: no obstacle
    _lock(root / "trained" / "5", live)
    (root / "trained" / "5" / "job.json").write_text("{}")
    before = sorted(p.relative_to(root) for p in root.rglob("*") if p.name != LOCK)
    with pytest.raises(MoonasError) as info:
        search("smoke", out=root, force=True, overrides=tuple(RUN_OVERRIDES))
    message = str(info.value)
    assert "\n" not in message and "--force would delete" in message
    assert "id 5 " in message and f"process {live}" in message
    assert sorted(p.relative_to(root) for p in root.rglob("*") if p.name != LOCK) == before
    assert not (root / "trained" / "3" / LOCK).exists()  # stale: taken, then given back
    assert json.loads((root / "trained" / "5" / LOCK).read_text())["pid"] == live


def test_force_removes_the_old_runs_trainings_once_none_lives(tmp_path) -> None:
    from moonas.search.runner import _prepare_dir

    root = make_run(tmp_path / "run")
    _lock(root / "trained" / "3", 1, start="0")  # stale
    (root / "trained" / "4").mkdir()
    (root / "trained" / "4" / "metrics.json").write_text("{}")
    _prepare_dir(RunFiles(root), force=True)
    assert not (root / "trained").exists() and not RunFiles(root).checkpoint.exists()
    assert root.is_dir()


def test_a_run_loaded_by_a_relative_path_works_from_any_directory(tmp_path, monkeypatch) -> None:
    """`Run.dir` is absolute (not resolved: a symlink named stays named), so a pick, an
    export or a retrained network is found after the working directory changes."""
    make_run(tmp_path / "work" / "run")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "work")
    monkeypatch.chdir(tmp_path)
    run = load_run("work/run")
    assert run.dir == tmp_path / "work" / "run" and run.dir.is_absolute()
    assert load_run("link/run").dir == tmp_path / "link" / "run"  # as named, not resolved
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert RunFiles(run.dir).checkpoint.is_file()
    assert run == load_run(tmp_path / "work" / "run")
    assert run.pick(max_params=10**9).candidate.id in {c.id for c in run.candidates}


def _cut_candidates(root, keep_chars: int) -> int:
    """candidates.csv cut `keep_chars` characters into its fourth line; that line's number."""
    path = RunFiles(root).candidates
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3]) + lines[3][:keep_chars])
    return 4


@pytest.mark.parametrize("keep_chars,problem", [
    (3, r"is cut short \(\d+ of 11 fields\)"),  # in the middle of the row
    (40, r"is cut short \(\d+ of 11 fields\)"),
])
def test_a_candidates_csv_cut_mid_line_names_its_line(tmp_path, keep_chars, problem) -> None:
    root = make_run(tmp_path / "run")
    line = _cut_candidates(root, keep_chars)
    with pytest.raises(CorruptFront, match=rf"^{RunFiles(root).candidates} line {line} "
                                           rf"{problem}: rebuild it from the checkpoint with "
                                           rf"'moonas search --resume {root}'$") as info:
        load_run(root)
    assert "NoneType" not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("field,value,problem", [
    ("accuracy", "high", r"accuracy 'high' is not a number"),
    ("params", "1.5", r"params '1.5' is not an integer"),
    ("arch", "[0, x]", r"arch '\[0, x\]' is not a list of integers"),
    ("arch", "7", r"arch '7' is not a list of integers"),
])
def test_a_bad_field_of_candidates_csv_names_its_line_and_field(tmp_path, field, value,
                                                                problem) -> None:
    root = make_run(tmp_path / "run")
    path = RunFiles(root).candidates
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    rows[2][field] = value
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue())
    with pytest.raises(CorruptFront, match=rf"^{path} line 4 {problem}: rebuild it from the "
                                           rf"checkpoint with 'moonas search --resume"):
        load_run(root)


@pytest.mark.parametrize("key,value,problem", [
    ("picks", "abc", r"picks must be a list"),
    ("picks", [0], r"picks has 1 entries for 3 budgets"),
    ("picks", ["a", None, None], r"picks\[0\]='a' is not an id or null"),
    ("picks", [True, None, None], r"picks\[0\]=True is not an id or null"),
    ("picks", [999, None, None], r"picks\[0\]=999 is not the id of a front member"),
    ("budgets", "xy", r"budgets must be a list of numbers or null, got 'xy'"),
    ("budgets", [1, "x", 3], r"budgets must be a list of numbers or null"),
    ("budgets", [1e4, None, 3e4], r"budgets must be a list of numbers or null"),
    ("budgets", [1e4, 2e4], r"picks has 3 entries for 2 budgets"),
    ("coefficients", "ab", r"coefficients must be a list of numbers or null"),
    ("architectures", {"a": 1}, r"architectures must be a list"),
])
def test_a_damaged_pareto_json_is_one_line(tmp_path, key, value, problem) -> None:
    root = make_run(tmp_path / "run")
    path = RunFiles(root).pareto_json
    data = json.loads(path.read_text())
    assert data["budgets"] is not None and len(data["picks"]) == len(data["budgets"]) == 3
    data[key] = value
    path.write_text(json.dumps(data))
    with pytest.raises(CorruptFront, match=rf"^{path} is corrupt \({problem}.*\): rebuild it "
                                           rf"from the checkpoint with 'moonas search --resume "
                                           rf"{root}'$") as info:
        load_run(root)
    assert "\n" not in str(info.value)


def test_the_repr_of_a_run_is_short(tmp_path) -> None:
    root = make_run(tmp_path / "run", n=40)
    run = load_run(root)
    text = repr(run)
    assert len(text) < 300, text
    assert text == (f"Run(dir='{root}', strategy='multi-asng', cost='params', budgets="
                    f"[{', '.join(f'{b:g}' for b in run.front.budgets)}], "
                    f"candidates={len(run.candidates)}, front={len(run.front.architectures)})")


def test_a_candidates_csv_without_its_header_names_the_missing_columns(tmp_path) -> None:
    root = make_run(tmp_path / "run")
    path = RunFiles(root).candidates
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[1:]))  # the header lost: the first row stands in for it
    with pytest.raises(CorruptFront, match=rf"^{path} line 1 \(the header\) lacks the columns "
                                           r"id, arch, .*: rebuild it from the checkpoint"):
        load_run(root)


def test_an_emptied_config_yaml_of_a_run_is_named_as_the_runs_record(tmp_path) -> None:
    """Not "a config file that sets no keys: omit it to run the embedded default" (a new run's
    advice), and not a load with every schema default (what it did before empty configs were
    refused): the run's record is named, with the resume that tells what differs."""
    root = make_run(tmp_path / "run")
    RunFiles(root).config.write_text("# nothing left\n")
    with pytest.raises(MoonasError, match=r"config.yaml is empty: it records the run's "
                                          r"settings; restore it from a copy of the run \(its "
                                          r"checkpoint.pt keeps the config"):
        load_run(root)
