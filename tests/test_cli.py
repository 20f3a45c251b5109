"""The command line: help, `cost`, and one-line errors with non-zero exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from moonas.cli import main

SUBCOMMANDS = ("search", "pick", "export", "train", "plot", "bench", "profile", "cost")


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "moonas", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)


def test_help_lists_every_subcommand() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert name in result.stdout


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("moonas")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "cost" in result.stdout


def test_cost_prints_one_json_object_per_architecture(tmp_path: Path, nb201_rows) -> None:
    rows = nb201_rows[:3]
    listing = tmp_path / "archs.txt"
    listing.write_text("# two more\n" + rows[1]["arch_str"] + "\n[0, 1, 2, 3, 4, 0]\n")
    result = _run("cost", "--config", "nb201_cifar10", rows[0]["arch_str"], "--from", str(listing))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 3
    for record, row in zip(records[:2], rows[:2]):
        assert record["arch_str"] == row["arch_str"]
        assert round(record["params"] / 1e6, 6) == float(row["params_MB_c10"])
        assert round(record["macs"] / 1e6, 5) == float(row["flops_M_c10"])
    assert records[2]["arch"] == [0, 1, 2, 3, 4, 0]


def test_cost_extremes_and_overrides(capsys) -> None:
    assert main(["cost", "--extremes", "--set", "space.channels=4"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_kind = {r["extreme"]: r for r in records}
    assert by_kind["min_params"]["params"] < by_kind["max_params"]["params"]
    assert by_kind["min_macs"]["macs"] < by_kind["max_macs"]["macs"]


def test_cost_reads_its_config_once(monkeypatch, capsys) -> None:
    import moonas.config
    import moonas.pricing

    loads = []
    real = moonas.config.load_config

    def counted(*args, **kwargs):
        loads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(moonas.config, "load_config", counted)
    monkeypatch.setattr(moonas.pricing, "load_config", counted)
    for argv in (["cost", "--extremes"], ["cost", "[0,1,2,3,4,0]"]):
        loads.clear()
        assert main([*argv, "--set", "space.channels=4"]) == 0
        assert len(loads) == 1, argv
    record = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert record["arch"] == [0, 1, 2, 3, 4, 0] and record["params"] > 0


def test_an_unknown_strategy_fails_before_any_run_directory(tmp_path: Path) -> None:
    result = _run("search", "--set", "search.strategy=multi-asgn", cwd=tmp_path)
    assert result.returncode != 0
    assert "did you mean 'multi-asng'" in result.stderr and "asng-separate" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["cost", "[9, 0, 0, 0, 0, 0]"], "choice 0"),
        (["cost", "--set", "space.chanels=3", "[0,0,0,0,0,0]"], "did you mean 'space.channels'"),
        (["cost", "--config", "nope.yaml", "[0,0,0,0,0,0]"], "not found"),
        (["cost"], "no architectures given"),
        (["cost", "--extremes", "3", "3", "0", "1", "2", "4"], "--extremes prices the space's"),
        (["cost", "--from", "/no/such/file"], "no such file"),
        (["bench", "nb201", "--table", "/no/such.csv", "--out", "/tmp/x"], "/no/such.csv"),
        (["search", "--set", "search.strategy=nope"], "unknown strategy"),
        (["cost", "[1.9, 0, 0, 0, 0, 0]"], "argument 1: choice 0 is 1.9: an option index must"),
        (["cost", "[true, 0, 0, 0, 0, 0]"], "choice 0 is True"),
        (["cost", "0,0,0,0,0,0", "1,2,3"], "argument 2: architecture has 3 choices"),
        # The first weight alone asks for 36 PB, beyond any address space: torch's allocator
        # fails at once (100M channels first filled ~6 GB, and a small CI machine kills that).
        (["cost", "--set", "space.channels=1000000000000000", "0,0,0,0,0,0"],
         "error: out of memory ("),
        (["bench", "nb201", "--table", "t.csv", "--out", "o", "--workers", "two"],
         "invalid int value: 'two' (see moonas bench --help)"),
        (["serch"], "invalid choice: 'serch'"),
        (["search", "smoke", "--epochs", "3"], "moonas search: error: unrecognized arguments: "
         "--epochs 3 (see moonas search --help; config keys go through --set KEY=VALUE)"),
    ],
)
def test_errors_are_one_line_without_traceback(args: list[str], message: str) -> None:
    result = _run(*args)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_cost_takes_bare_ints_as_one_architecture_and_names_a_bad_line(tmp_path: Path) -> None:
    result = _run("cost", "3", "3", "0", "1", "2", "4")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["arch"] == [3, 3, 0, 1, 2, 4]
    listing = tmp_path / "archs.txt"
    listing.write_text("0,0,0,0,0,0\n# a comment\n1,1,1,1,1\n")
    result = _run("cost", "--from", str(listing))
    assert result.returncode != 0 and result.stdout == ""  # nothing printed of a failed list
    assert f"{listing} line 3: architecture has 5 choices" in result.stderr


def test_cost_from_a_folder_or_a_binary_file_is_one_line(tmp_path: Path, capsys) -> None:
    """A binary --from file gave a UnicodeDecodeError traceback, a folder "no such file"."""
    binary = tmp_path / "archs.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    for path, message in ((binary, f"--from {binary} is not UTF-8 text"),
                          (tmp_path, f"--from {tmp_path} is a folder: give a text file")):
        assert main(["cost", "--from", str(path)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("moonas cost: error: ") and message in err, err
        assert err.count("\n") == 1 and "one architecture per line" in err


def _default_space():
    from moonas.config import load_config
    from moonas.pricing import static_space

    return static_space(load_config(None))


def test_cost_prints_the_latency_of_the_configured_latency_table(tmp_path: Path,
                                                                  capsys) -> None:
    """`search.cost=latency:DEVICE` with `search.latency_table` was ignored (even a table that
    does not exist): the records now carry the latency the search would price, as
    candidates.csv names it (latency_ms), for the pruned cell too."""
    import numpy as np

    from moonas.costs.latency import AdditiveLatency

    space = _default_space()
    k_max = max(space.n_options)
    valid = np.arange(k_max)[None, :] < np.asarray(space.n_options)[:, None]
    table = np.where(valid, np.random.default_rng(0).uniform(0, 1, (space.n_choices, k_max)), 0)
    model = AdditiveLatency(device="toy", base=0.25, table=table, valid=valid,
                            space=space.settings(),
                            option_names=tuple(c.options for c in space.choices),
                            choice_names=tuple(c.name for c in space.choices))
    path = tmp_path / "toy.json"
    model.save(path)
    latency = ["--set", "search.cost=latency:toy", "--set", f"search.latency_table={path}"]
    assert main(["cost", *latency, "0,1,3,1,0,4"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["device"] == "toy"
    assert record["latency_ms"] == pytest.approx(model.price([0, 1, 3, 1, 0, 4])[0], abs=1e-5)
    assert record["pruned"]["latency_ms"] == pytest.approx(
        model.price(record["pruned"]["arch"])[0], abs=1e-5)
    assert main(["cost", "--extremes", *latency]) == 0
    by_kind = {r["extreme"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert by_kind["min_latency"]["latency_ms"] == pytest.approx(model.extreme(True)[0], abs=1e-5)
    assert by_kind["max_latency"]["latency_ms"] == pytest.approx(model.extreme(False)[0],
                                                                 abs=1e-5)
    assert all("latency_ms" in r for r in by_kind.values())
    # Without a latency table: params and MACs only, as before.
    assert main(["cost", "0,1,3,1,0,4"]) == 0
    assert "latency_ms" not in json.loads(capsys.readouterr().out)
    # A table that is not there: the search's own one line, before any pricing.
    missing = tmp_path / "nonexist.json"
    assert main(["cost", "--set", "search.cost=latency:laptop", "--set",
                 f"search.latency_table={missing}", "3,3,0,1,2,4"]) == 1
    captured = capsys.readouterr()
    assert not captured.out and captured.err.count("\n") == 1
    assert f"latency table '{missing}' not found: measure one with 'moonas profile" in captured.err


def test_ctrl_c_while_starting_up_is_one_line(monkeypatch, capsys) -> None:
    import moonas.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert main(["search"]) == 130
    assert capsys.readouterr().err == "moonas: interrupted\n"


def test_the_package_imports_without_torch_and_its_names_load_on_use() -> None:
    """`python -m moonas` runs the package and moonas.cli before main() can catch Ctrl-C: they
    must not import torch (a second of start-up). The public names still load on use, and
    `moonas.search` stays the function after its subpackage is imported."""
    code = ("import sys, moonas, moonas.cli; assert 'torch' not in sys.modules, 'torch'; "
            "import moonas.search.runner; assert callable(moonas.search), moonas.search; "
            "from moonas import search, load_run, Run, MoonasError; "
            "assert search is moonas.search and issubclass(MoonasError, Exception); "
            "print(sorted(set(moonas.__all__) - set(dir(moonas))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_cost_also_prices_the_pruned_cell_a_search_would_measure() -> None:
    """[0,1,3,1,0,4]: node 1 only ever holds zeros, so the 3x3 conv on 2<-1 is dead; the search
    (search.prune=dead, the default) measures and returns the cell without it."""
    done = _run("cost", "--config", "smoke", "0,1,3,1,0,4")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["arch"] == [0, 1, 3, 1, 0, 4]
    pruned = record["pruned"]
    assert pruned["arch"] == [0, 1, 0, 1, 0, 4]
    assert pruned["params"] < record["params"] and pruned["macs"] < record["macs"]
    again = json.loads(_run("cost", "--config", "smoke", "0,1,0,1,0,4").stdout)
    assert {k: again[k] for k in pruned} == pruned and "pruned" not in again
    kept = json.loads(_run("cost", "--config", "smoke", "0,1,3,1,0,4",
                           "--set", "search.prune=keep").stdout)
    assert "pruned" not in kept and kept["params"] == record["params"]


def test_cost_prices_a_mobilenet_architecture() -> None:
    """The base space's prune (no dead operations) keeps one architecture 2-D, as nb201's does:
    `moonas cost` priced no mobilenet architecture (TypeError)."""
    done = _run("cost", "--set", "space.name=mobilenet", "[0,1,2,3,4,9]")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["arch_str"] == "k3e3-k3e4-k3e6-k5e3-k5e4-skip" and "pruned" not in record
    assert record["params"] > 0 and record["macs"] > 0


def test_the_search_summary_of_a_latency_run_gives_ms_and_each_picks_latency(tmp_path) -> None:
    import sys as _sys

    _sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_deploy_pick import make_latency_run

    from moonas.cli import front_summary
    from moonas.run import load_run

    run = load_run(make_latency_run(tmp_path / "run", tmp_path / "toy.json"))
    lines = front_summary(run)
    budgets = [line for line in lines if line.startswith("  budget ")]
    assert budgets and all(" ms): " in line or "nothing" in line for line in budgets)
    for line, pick in zip(budgets, run.front.picks):
        if pick is not None:
            c = next(a for a in run.front.architectures if a.id == pick)
            assert f"latency {c.latency_ms:.4g} ms" in line


def test_moonas_without_a_command_prints_its_usage_and_fails(capsys) -> None:
    """A bare `moonas` is a usage error (exit 2, as argparse's): its help goes to stderr and a
    script that forgot the command does not read it as success."""
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "usage: moonas" in captured.err and "search" in captured.err


def test_the_cli_bar_takes_the_unit_a_phase_names(monkeypatch) -> None:
    import moonas.cli as cli

    made = []

    class Bar:
        def set_postfix(self, *args, **kwargs) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr(cli, "progress_bar", lambda total, desc, unit: made.append(
        (total, desc, unit)) or Bar())
    monkeypatch.setattr(cli, "advance", lambda bar, done: None)
    bar = cli._Bar("profile laptop")
    bar(1, 3, {"phase": "timing 29 networks", "unit": "round"})
    bar(1, 10, {"phase": "train"})
    bar(1, 5, {"phase": "evaluate"})
    assert made == [(3, "profile laptop timing 29 networks", "round"),
                    (10, "profile laptop train", "step"), (5, "profile laptop evaluate", "arch")]


def test_cost_extremes_show_the_cell_the_search_measures_for_the_fastest(capsys) -> None:
    """`cost --extremes` with a latency table: the fastest cell as drawn has dead operations;
    its record holds the pruned cell (search.prune=dead) with that cell's own latency."""
    from conftest import NB201_CSV

    assert main(["cost", "--config", "smoke", "--set", "search.cost=latency:raspi4", "--set",
                 f"search.latency_table={NB201_CSV}", "--extremes"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    fastest = next(r for r in records if r["extreme"] == "min_latency")
    assert fastest["pruned"]["arch"] != fastest["arch"]
    assert fastest["pruned"]["latency_ms"] > fastest["latency_ms"]


def test_version_names_moonas_torch_and_python_and_matches_the_package(capsys) -> None:
    import platform
    import tomllib
    from importlib.metadata import version

    import moonas

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    line = capsys.readouterr().out.strip()
    assert line == (f"moonas {moonas.__version__} (torch {version('torch')}, Python "
                    f"{platform.python_version()})")
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert project["project"]["version"] == moonas.__version__


@pytest.mark.parametrize("args, message", [
    (["search", "smoke", "--processes", "0"], "--processes must be >= 1, got 0"),
    (["search", "--resume", "r", "--force"], "--resume continues a run and --force starts one "
                                             "over: pass one"),
    (["search", "--resume", "r", "--out", "s"], "--resume r continues that run in place"),
    (["search", "smoke", "--resume", "r"], "--resume continues with the config saved in the "
                                           "run: drop CONFIG and --set"),
    (["cost", "--extremes", "0,0,0,0,0,0"], "--extremes prices the space's cheapest"),
    (["cost", "--set", "space.channels", "0,0,0,0,0,0"], "--set 'space.channels': expected "
                                                        "KEY=VALUE"),
    (["search", "--set", "nokey"], "--set 'nokey': expected KEY=VALUE"),
    (["bench", "nb201", "--table", "t.csv", "--out", "o", "--seeds", "0"],
     "--seeds must be >= 1, got 0"),
    (["bench", "nb201", "--table", "t.csv", "--out", "o", "--workers", "0"],
     "--workers must be >= 1, got 0"),
    (["bench", "nb201", "--table", "t.csv", "--out", "o", "--evals", "0"],
     "--evals must be positive counts"),
    (["bench", "nb201", "--table", "t.csv", "--out", "o", "--evals", "ten"],
     "--evals 'ten': expected a comma-separated list"),
    (["bench", "nb201", "--table", "t.csv", "--out", "o", "--set", "delta0"],
     "--set 'delta0': expected KEY=VALUE"),
    (["bench", "nb201", "--table", "t.csv", "--out", "o", "--strategies", "bogus"],
     "unknown benchmark strategy 'bogus'; valid: "),
    (["profile", "--name", "x", "--out", "o.json", "--repeats", "0"],
     "profile --repeats must be >= 1, got 0"),
    (["profile", "--name", "x", "--out", "o.json", "--seed", "-1"],
     "profile --seed must be >= 0, got -1"),
    (["profile", "--name", "x", "--out", "o.json", "--random", "0"],
     "profile --random must be >= 1, got 0"),
])
def test_flags_out_of_range_or_contradicting_exit_2_in_one_line(args, message, tmp_path,
                                                               monkeypatch, capsys) -> None:
    """As argparse's own usage errors (`--processes abc`): 2, not a failed run's 1."""
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err, captured.err
    assert captured.err.startswith(f"moonas {args[0]}: error: ")
    assert not (tmp_path / "o").exists()


def test_cost_prints_nothing_when_a_later_architecture_is_bad(tmp_path: Path, capsys) -> None:
    """The first architecture's line reached stdout before the second one failed."""
    listing = tmp_path / "archs.txt"
    listing.write_text("[0,0,0,0,0,0]\nbad\n")
    assert main(["cost", "--from", str(listing)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"moonas cost: error: {listing} line 2: ")


def test_cost_names_the_token_that_is_not_a_bare_int(capsys) -> None:
    """`3 3 0 1 2 abc` blamed argument 1 ("architecture has 1 choices")."""
    assert main(["cost", "3", "3", "0", "1", "2", "abc"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("moonas cost: error: argument 6 'abc' is not an int, and bare ints "
                            "(3 3 0 1 2) are the choices of one architecture: give every choice "
                            "as an int, or each architecture as one argument (arch_str, JSON "
                            "list or comma-separated ints)\n")


def test_verbose_is_accepted_after_every_subcommand(capsys) -> None:
    from moonas.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    assert set(SUBCOMMANDS) <= set(subparsers)
    for name, sub in subparsers.items():
        assert {"-v", "--verbose"} <= set(sub._option_string_actions), name
    assert parser.parse_args(["cost", "-v", "0,0,0,0,0,0"]).verbose is True
    assert parser.parse_args(["-v", "cost", "0,0,0,0,0,0"]).verbose is True
    assert parser.parse_args(["cost", "0,0,0,0,0,0"]).verbose is False
    assert main(["cost", "--verbose", "0,0,0,0,0,0"]) == 0
    assert json.loads(capsys.readouterr().out)["arch"] == [0] * 6


def test_a_config_typo_is_refused_before_torch_loads() -> None:
    """`moonas search` reads its config before the search machinery: a typo is one line in a
    fraction of a second (was about 1.9 s, importing torch first)."""
    code = ("import sys\nfrom moonas.cli import main\n"
            "assert main(['search', '--set', 'search.epoch=3']) == 1\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "unknown config key 'search.epoch' (did you mean 'search.epochs'?)" in done.stderr


def test_processes_given_to_bench_is_named_not_read_as_the_benchmark() -> None:
    """`moonas bench --processes 2 ...` said "argument benchmark: invalid choice: '2'"."""
    done = _run("bench", "nb201", "--table", "t.csv", "--out", "o", "--processes", "2")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("moonas bench: error: --processes is for search and train "
                           "(data-parallel training); bench runs its runs side by side with "
                           "--workers N (see moonas bench --help)\n")
