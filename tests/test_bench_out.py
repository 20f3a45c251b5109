"""`moonas bench --out`: a finished job there is refused unless --force, never overwritten."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest

from moonas.bench.cli import register
from moonas.bench.harness import BenchJob, run_bench
from moonas.bench.partial import PARTIAL_NAME
from moonas.errors import ConfigError

NB201_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nb201" / "nb201.csv"

#: A tiny job: random search, 20 evaluations, two seeds (later options override these).
_BASE = ["--strategies", "random", "--evals", "20", "--seeds", "2", "-q"]


def _bench(out: Path, *extra: str) -> int:
    """`moonas bench nb201` on the table, in this process."""
    parser = argparse.ArgumentParser(prog="moonas")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "nb201", "--table", str(NB201_CSV), *_BASE, *extra,
                              "--out", str(out)])
    return args.func(args)


def _files(out: Path) -> dict[str, tuple[bytes, int]]:
    """Every file in `out` (hidden ones too), with its bytes and its modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(out.iterdir())}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_finished_job_of_other_settings_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    """The README audit: a 1-run job silently replaced a finished 21-run job in its --out."""
    out = tmp_path / "b"
    assert _bench(out) == 0
    # Another job's interrupted runs stay too: not set aside, as a job that runs would.
    (out / PARTIAL_NAME).write_text('{"settings": {"table": "another"}}\n')
    before = _files(out)
    for extra, differences in (
            (["--seeds", "1"], "--seeds 2 there, 1 here"),
            (["--evals", "30"], "--evals 20 there, 30 here"),
            (["--strategies", "random,nsga2", "--pick", "smoothed"],
             "--strategies random there, random,nsga2 here; --pick observed there, smoothed "
             "here"),
            (["--set", "delta0=0.5"], "--set none there, delta0=0.5 here"),
            (["--table", str(tmp_path / "elsewhere.csv")], "--table ")):
        with pytest.raises(ConfigError) as caught:
            _bench(out, *extra)
        message = str(caught.value)
        assert message.startswith(f"--out {out} holds a finished benchmark of other settings (")
        assert differences in message and "\n" not in message
        assert message.endswith("): choose another --out, or pass --force to replace it")
    # The same settings: its runs cannot be reused (fronts.jsonl does not hold them whole).
    for seeds in ("2", "3"):
        with pytest.raises(ConfigError, match=f"of these settings with 2 seed.s., whose runs "
                           f"cannot be reused .*pass --force to run all {seeds} seed.s. again"):
            _bench(out, "--seeds", seeds)
    assert _files(out) == before


def test_a_finished_job_whose_settings_cannot_be_read_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "b"
    out.mkdir()
    (out / "fronts.jsonl").write_text("{}\n")
    for summary in (None, "{not json", '{"rows": []}'):
        if summary is not None:
            (out / "summary.json").write_text(summary)
        before = _files(out)
        with pytest.raises(ConfigError, match=r"holds a finished benchmark \(.*\) whose settings "
                           r"cannot be read \(no readable summary.json\): choose another --out, "
                           "or pass --force to replace it"):
            _bench(out)
        assert _files(out) == before
    assert _bench(tmp_path / "other") == 0  # a folder without one is written as before
    (tmp_path / "other" / "summary.json").unlink()
    (tmp_path / "other" / "fronts.jsonl").unlink()
    assert _bench(tmp_path / "other") == 0  # summary.md and anytime.png alone are no job


def test_force_replaces_a_finished_job(tmp_path: Path, caplog) -> None:
    out = tmp_path / "b"
    assert _bench(out, "--strategies", "random,nsga2") == 0
    with caplog.at_level(logging.INFO, logger="moonas"):
        assert _bench(out, "--seeds", "1", "--force") == 0
    assert any("--force: the finished benchmark in" in r.getMessage() for r in caplog.records)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == 1 and list(summary["strategies"]) == ["random"]
    assert [(x["strategy"], x["seed"]) for x in _lines(out / "fronts.jsonl")] == [("random", 0)]
    assert _bench(tmp_path / "fresh", "--seeds", "1") == 0
    assert (out / "fronts.jsonl").read_text() == (tmp_path / "fresh" / "fronts.jsonl").read_text()
    # run_bench itself (tools/ call it to rewrite their folders) replaces without --force.
    run_bench(BenchJob(table=str(NB201_CSV), out=str(out), strategies=("random",), evals=(20,),
                       seeds=2))
    assert len(_lines(out / "fronts.jsonl")) == 2


def test_a_replacing_job_cut_short_continues_with_the_same_command(tmp_path: Path,
                                                                   caplog) -> None:
    """A --force job interrupted (or killed while writing its files) leaves its runs beside the
    finished job's files: the same command continues it, with or without --force."""
    out = tmp_path / "b"
    assert _bench(out) == 0

    class Stop(KeyboardInterrupt):
        pass

    def stop_after_one(done: int, total: int) -> None:
        if done == 1:
            raise Stop

    # As `--seeds 3 --force` would run it: the CLI's job.
    job = BenchJob(table=str(NB201_CSV), out=str(out), strategies=("random",), evals=(20,),
                   seeds=3)
    with pytest.raises(Stop):
        run_bench(job, stop_after_one)
    assert (out / PARTIAL_NAME).is_file() and (out / "summary.json").is_file()
    with caplog.at_level(logging.INFO, logger="moonas"):
        assert _bench(out, "--seeds", "3") == 0
    assert any("1 of 3 runs were finished by an interrupted run" in r.getMessage()
               for r in caplog.records)
    assert not (out / PARTIAL_NAME).exists()
    assert _bench(tmp_path / "fresh", "--seeds", "3") == 0
    assert (out / "fronts.jsonl").read_text() == (tmp_path / "fresh" / "fronts.jsonl").read_text()


def test_an_out_holding_a_search_run_or_other_files_is_refused_and_left_as_it_was(
        tmp_path: Path) -> None:
    """The audit: --out of a search run, or of any folder of other files, was written into
    (summary.json and fronts.jsonl beside checkpoint.pt), as `moonas search` refuses."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "checkpoint.pt").write_bytes(b"weights")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    for out, message in (
            (run, f"--out {run} holds a moonas search run .config.yaml, checkpoint.pt.: choose "
                  "another --out .an empty or new folder, or a bench job's."),
            (other, f"--out {other} is not empty and holds no moonas bench job .notes.txt.: "
                    "choose another --out .an empty or new folder, or a bench job's.")):
        before = _files(out)
        for force in ((), ("--force",)):
            with pytest.raises(ConfigError, match=message):
                _bench(out, *force)
            assert _files(out) == before
    # An interrupted job's partial file alone is a bench job's folder: the job continues.
    job = tmp_path / "job"
    job.mkdir()
    (job / PARTIAL_NAME).write_text('{"settings": {"table": "another"}}\n')
    assert _bench(job) == 0 and (job / "summary.json").is_file()
    assert _bench(tmp_path / "empty") == 0


def test_an_empty_out_is_named_with_exit_code_2(tmp_path: Path, monkeypatch, capsys) -> None:
    """`--out ''` was reported as "`.` is not empty" (search), or wrote into `.` (bench)."""
    from moonas.cli import main

    monkeypatch.chdir(tmp_path)
    for command in (["bench", "nb201", "--table", str(NB201_CSV), *_BASE],
                    ["search", "smoke", "-q"]):
        assert main([*command, "--out", ""]) == 2
        err = capsys.readouterr().err
        assert err == (f"moonas {command[0]}: error: --out is empty: name a folder, e.g. --out "
                       "runs/NAME\n")
    assert list(tmp_path.iterdir()) == []
