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
