"""`moonas pick`: limits, amounts, the knee, latency devices, budgets files, infeasible runs."""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from moonas.checkpoint import save_checkpoint
from moonas.config import config_to_dict, load_config
from moonas.costs import build_cost_table
from moonas.costs.latency import AdditiveLatency
from moonas.deploy.pick import (NoFeasibleArchitecture, candidate_pool, knee_index, pick,
                                pick_many, read_budgets_file, resolve_latency)
from moonas.errors import ConfigError, MoonasError
from moonas.nets import build_supernet
from moonas.pareto import non_dominated
from moonas.pricing import static_space
from moonas.run import Candidate, RunFiles, load_run, write_candidates, write_front
from moonas.search.front import front_from_candidates
from moonas.search.objective import Objective

from conftest import NB201_CSV

#: The synthetic runs' config: the smoke space (nb201, 4 channels, 1 cell) on a little digits.
RUN_OVERRIDES = ["data.max_train=96", "search.bn_batches=2"]


_BUILT: dict[tuple, Path] = {}


def make_run(root: Path, *, n: int = 16, seed: int = 0, with_log: bool = True) -> Path:
    """A complete run directory without searching: random candidates priced by the cost table,
    accuracies that grow with params (plus noise), a front built by the search's own code, a
    freshly initialised supernet as the checkpoint, and a short log with thetas. Built once per
    test session and settings, then copied."""
    key = (n, seed, with_log)
    if key not in _BUILT:
        folder = tempfile.mkdtemp(prefix="moonas-run-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)  # the cache goes with pytest
        _BUILT[key] = _build_run(Path(folder) / "run", n=n, seed=seed, with_log=with_log)
    shutil.copytree(_BUILT[key], root)
    return root


def _build_run(root: Path, *, n: int, seed: int, with_log: bool) -> Path:
    config = load_config("smoke", RUN_OVERRIDES)
    files = RunFiles(root)
    root.mkdir(parents=True, exist_ok=True)
    files.config.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    space = static_space(config)
    table = build_cost_table(space)
    rng = np.random.default_rng(seed)
    archs = np.unique(space.sample(rng, n), axis=0)
    costs = table.price(archs)
    params = costs[:, 0]
    accuracy = 0.5 + 0.4 * np.sqrt((params - params.min()) / np.ptp(params))
    accuracy = np.clip(accuracy + rng.normal(0, 0.03, len(archs)), 0, 1).round(4)
    candidates = [
        Candidate(id=i, arch=tuple(int(v) for v in a), arch_str=space.to_str(a),
                  accuracy=float(acc), loss=float(1 - acc), params=int(c[0]), macs=int(c[1]),
                  mode_of=i if i < 3 else None, on_front=False)
        for i, (a, acc, c) in enumerate(zip(archs, accuracy, costs))
    ]
    budgets = tuple(float(b) for b in np.quantile(params, (0.25, 0.5, 0.9)).round())
    objective = Objective("params", budgets, None, float(params.min()), float(params.max()))
    marked, front = front_from_candidates(space.name, config.data.name, objective, candidates)
    write_candidates(files.candidates, marked)
    write_front(files, front)
    torch.manual_seed(seed)
    save_checkpoint(files.checkpoint, {"format": 1, "epoch": 1,
                                       "supernet": build_supernet(space).state_dict()})
    if with_log:
        lines = []
        for step in range(1, 7):
            entry = {"step": step, "epoch": (step - 1) // 3, "train_loss": 2.3 - 0.1 * step}
            if step > 1:
                entry["val_loss"] = [2.3 - 0.05 * step * (k + 1) for k in range(3)]
                entry["entropy"] = [8.0 - 0.2 * step * (k + 1) for k in range(3)]
            lines.append(entry)
            if step % 3 == 0:
                theta = rng.dirichlet(np.ones(5), size=(3, 6))
                lines.append({"step": step, "epoch": step // 3 - 1, "kind": "epoch",
                              "modes": theta.argmax(-1).tolist(), "theta": theta.tolist()})
        files.log.write_text("".join(json.dumps(e) + "\n" for e in lines))
    return root


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("run") / "run")


@pytest.fixture(scope="module")
def run(run_dir):
    return load_run(run_dir)


def _feasible_best(run, **limits) -> Candidate | None:
    best = None
    for c in candidate_pool(run):
        if limits.get("max_params") is not None and c.params > limits["max_params"]:
            continue
        if limits.get("max_macs") is not None and c.macs > limits["max_macs"]:
            continue
        if limits.get("min_accuracy") is not None and c.accuracy < limits["min_accuracy"]:
            continue
        if best is None or (c.accuracy, -c.params) > (best.accuracy, -best.params):
            best = c
    return best


def test_no_limits_picks_the_most_accurate(run) -> None:
    result = pick(run)
    assert result.candidate.accuracy == max(c.accuracy for c in candidate_pool(run))
    assert result.candidate.on_front
    assert result.weights == "supernet" and result.trained is None


def test_budget_limit_reproduces_the_fronts_picks(run) -> None:
    for budget, expected in zip(run.front.budgets, run.front.picks):
        assert pick(run, max_params=budget).candidate.id == expected


def test_several_limits_match_brute_force(run) -> None:
    pool = candidate_pool(run)
    rng = np.random.default_rng(3)
    for _ in range(20):
        limits = {"max_params": float(rng.choice([c.params for c in pool])),
                  "max_macs": float(rng.choice([c.macs for c in pool])),
                  "min_accuracy": float(rng.uniform(0.4, 0.7))}
        expected = _feasible_best(run, **limits)
        if expected is None:
            with pytest.raises(NoFeasibleArchitecture):
                pick(run, **limits)
            continue
        got = pick(run, **limits).candidate
        assert got.accuracy == expected.accuracy
        assert got.params <= limits["max_params"] and got.macs <= limits["max_macs"]


def test_amounts_and_percentages_parse(run) -> None:
    budget = run.front.budgets[1]
    assert pick(run, max_params=f"{budget / 1000}k").candidate.id == run.front.picks[1]
    a = pick(run, min_accuracy="60%")
    b = pick(run, min_accuracy=0.6)
    c = pick(run, min_accuracy=60)
    assert a.candidate.id == b.candidate.id == c.candidate.id
    assert a.limits.min_accuracy == pytest.approx(0.6)
    with pytest.raises(ConfigError, match="not a number"):
        pick(run, max_params="lots")


def test_nothing_feasible_exits_2_and_names_the_cheapest(run) -> None:
    pool = candidate_pool(run)
    cheapest = min(pool, key=lambda c: (c.params, -c.accuracy))
    with pytest.raises(NoFeasibleArchitecture) as info:
        pick(run, max_params=cheapest.params - 1, min_accuracy=0.99)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert "\n" not in message
    assert f"id {cheapest.id} ({cheapest.params:,} params)" in message
    assert "most accurate" in message


def test_knee_on_hand_cases() -> None:
    cost = np.array([0.0, 1.0, 2.0, 3.0])
    assert knee_index(cost, np.array([0.0, 0.8, 0.9, 1.0])) == 1
    assert knee_index(cost, np.array([0.0, 0.1, 0.2, 1.0])) == 3  # convex: no knee inside
    assert knee_index(cost, np.array([0.0, 1 / 3, 2 / 3, 1.0])) == 3  # a line: most accurate
    assert knee_index(np.array([1.0, 2.0]), np.array([0.5, 0.9])) == 1  # too few points


def _hand_knee(accuracy: np.ndarray, cost: np.ndarray) -> tuple[float, float]:
    """(accuracy, cost) of the knee as pick's docstring defines it, by brute force: among the
    points no other beats (accuracy up, cost down), each scaled to [0, 1] over them, the one
    farthest above the line from the cheapest to the most accurate (largest acc' - cost')."""
    front = [i for i in range(len(cost))
             if not any(accuracy[j] >= accuracy[i] and cost[j] <= cost[i]
                        and (accuracy[j] > accuracy[i] or cost[j] < cost[i])
                        for j in range(len(cost)))]
    a, c = accuracy[front], cost[front]
    gain = (a - a.min()) / (a.max() - a.min()) - (c - c.min()) / (c.max() - c.min())
    best = front[int(np.argmax(gain))]
    return float(accuracy[best]), float(cost[best])


def test_knee_pick_is_on_the_front(run) -> None:
    pool = candidate_pool(run)
    acc = np.array([c.accuracy for c in pool])
    params = np.array([c.params for c in pool], dtype=float)
    mask = non_dominated(np.column_stack([-acc, params]))
    assert mask.sum() >= 3  # a front with an inside: the knee is more than its most accurate
    for limit in (None, float(np.median(params[mask]))):
        result = pick(run, max_params=limit, prefer="knee")
        assert result.candidate.id in {c.id for c, m in zip(pool, mask) if m}
        assert result.prefer == "knee"
        feasible = params <= (limit or np.inf)
        knee = _hand_knee(acc[feasible], params[feasible])
        assert (result.candidate.accuracy, result.candidate.params) == knee
        assert knee != (acc[feasible].max(), params[feasible][acc[feasible].argmax()])
    with pytest.raises(ConfigError, match="prefer"):
        pick(run, prefer="fastest")


def _additive_model(run, per_option: float = 1.0) -> AdditiveLatency:
    from moonas.pricing import run_space

    space = run_space(run)
    table = np.tile(np.arange(5, dtype=float) * per_option, (6, 1))
    return AdditiveLatency(device="toy", base=1.0, table=table, valid=np.ones((6, 5), bool),
                           space=space.settings())


def test_latency_limit_with_a_model(run, tmp_path) -> None:
    model = _additive_model(run)
    pool = candidate_pool(run)
    latency = {c.id: 1.0 + sum(c.arch) for c in pool}
    limit = float(np.median(list(latency.values())))
    result = pick(run, max_latency_ms=limit, device=model)
    assert result.latency_ms == latency[result.candidate.id] <= limit
    best = max((c for c in pool if latency[c.id] <= limit), key=lambda c: c.accuracy)
    assert result.candidate.accuracy == best.accuracy
    # The same model from its JSON file, by name.
    model.save(tmp_path / "toy.json")
    again = pick(run, max_latency_ms=limit, device="toy", latency_table=tmp_path / "toy.json")
    assert again.candidate.id == result.candidate.id
    with pytest.raises(ConfigError, match="known devices: toy"):
        pick(run, max_latency_ms=limit, device="toyy", latency_table=tmp_path / "toy.json")
    with pytest.raises(ConfigError, match=r"needs --device NAME \(device=\)"):
        pick(run, max_latency_ms=limit)
    with pytest.raises(ConfigError, match="latency table"):
        pick(run, max_latency_ms=limit, device="toy")


def test_latency_from_the_nb201_table(run) -> None:
    result = pick(run, device="raspi4", latency_table=NB201_CSV)
    assert result.device == "raspi4" and result.latency_ms is not None and result.latency_ms > 0
    with pytest.raises(ConfigError, match="known devices: .*pixel3.*raspi4"):
        pick(run, max_latency_ms=10, device="raspberry", latency_table=NB201_CSV)


def test_budgets_file_gives_one_pick_per_device(run, tmp_path) -> None:
    model = _additive_model(run)
    model.save(tmp_path / "toy.json")
    pool = candidate_pool(run)
    cheapest = min(c.params for c in pool)
    spec = {
        "big": {"max_params": "1M"},
        "small": {"max_params": run.front.budgets[0]},
        "toy": {"max_latency_ms": 8, "latency_table": "toy.json"},
        "impossible": {"max_params": cheapest - 1},
    }
    path = tmp_path / "devices.yaml"
    path.write_text(yaml.safe_dump(spec))
    results = dict(pick_many(run, read_budgets_file(path)))
    assert results["big"].candidate.id == pick(run).candidate.id
    assert results["small"].candidate.id == run.front.picks[0]
    assert results["toy"].device == "toy" and results["toy"].latency_ms <= 8
    assert isinstance(results["impossible"], NoFeasibleArchitecture)
    path.write_text(yaml.safe_dump({"x": {"max_parms": 10}}))
    with pytest.raises(ConfigError, match="did you mean 'max_params'"):
        read_budgets_file(path)
    path.write_text("mcu: {max_params: 120k}\nphone: {max_params: 1M}\nmcu: {max_params: 5k}\n")
    with pytest.raises(ConfigError, match="line 3: key 'mcu' repeats the one on line 1"):
        read_budgets_file(path)


def _cli(argv: list[str]) -> int:
    from moonas.deploy.cli import register

    parser = argparse.ArgumentParser(prog="moonas")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except MoonasError as err:
        print(f"error: {err}")
        return err.exit_code


def test_cli_pick_json_table_and_exit_codes(run, run_dir, tmp_path, capsys) -> None:
    assert _cli(["pick", str(run_dir), "--max-params", str(run.front.budgets[0]), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["id"] == run.front.picks[0]
    assert record["limits"] == {"max_params": run.front.budgets[0]}
    assert _cli(["pick", str(run_dir), "--max-params", "10"]) == 2
    assert "no architecture" in capsys.readouterr().out
    spec = tmp_path / "devices.yaml"
    spec.write_text(yaml.safe_dump({"a": {"max_params": "1M"}, "b": {"max_params": 10}}))
    assert _cli(["pick", str(run_dir), "--budgets-file", str(spec), "--json"]) == 2
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["a", "b"] and "error" in rows[1]
    assert _cli(["pick", str(run_dir), "--budgets-file", str(spec)]) == 2
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["device", "id", "accuracy"] and len(table) == 3


def test_cli_pick_bad_runs(tmp_path, capsys) -> None:
    assert _cli(["pick", str(tmp_path)]) == 1
    assert "not a moonas run" in capsys.readouterr().out
    broken = make_run(tmp_path / "broken", n=6, with_log=False)
    (broken / "pareto.json").unlink()
    assert _cli(["pick", str(broken)]) == 1
    assert "no front" in capsys.readouterr().out


def test_min_accuracy_rule_and_errors_quote_what_was_typed(run) -> None:
    from moonas.deploy.pick import _accuracy

    # A fraction in [0, 1], a percentage with '%', or a bare number in (1, 100] as a percentage.
    assert pick(run, min_accuracy="1.5").limits.min_accuracy == pytest.approx(0.015)
    assert _accuracy("1") == 1.0 and _accuracy("100") == 1.0 and _accuracy("1%") == 0.01
    for typed in ("150%", "150", "-5", "-5%"):
        with pytest.raises(ConfigError, match=rf"--min-accuracy \(min_accuracy=\) '{typed}' is "
                           "out of range") as info:
            pick(run, min_accuracy=typed)
        assert "1.5" not in str(info.value) and "\n" not in str(info.value)


def test_a_latency_table_without_device(run, tmp_path, capsys) -> None:
    from moonas.errors import DataError

    model = _additive_model(run)
    model.save(tmp_path / "toy.json")
    # A one-device table names the device; a table of several needs --device.
    result = pick(run, latency_table=tmp_path / "toy.json")
    assert result.device == "toy" and result.latency_ms is not None
    limited = pick(run, max_latency_ms=8, latency_table=tmp_path / "toy.json")
    assert limited.latency_ms <= 8
    with pytest.raises(ConfigError,
                       match=r"holds .* devices: add --device NAME \(device=\), one of .*raspi4"):
        pick(run, latency_table=NB201_CSV)
    # A missing table fails with or without --device, in the CLI too.
    missing = tmp_path / "nope.json"
    with pytest.raises(DataError, match="not found"):
        pick(run, latency_table=missing)
    assert _cli(["pick", str(run.dir), "--latency-table", str(missing)]) == 1
    assert "nope.json' not found" in capsys.readouterr().out
    spec = tmp_path / "devices.yaml"
    spec.write_text(yaml.safe_dump({"a": {"max_params": "1M"}}))
    with pytest.raises(DataError, match="not found"):
        pick_many(run, read_budgets_file(spec), latency_table=missing)
    # In a budgets file the default table serves the entries that name a device.
    results = dict(pick_many(run, read_budgets_file(spec), latency_table=NB201_CSV))
    assert results["a"].device is None


def test_profile_refuses_negative_seeds_and_too_few_random_networks(tmp_path, capsys) -> None:
    from moonas.deploy.profile import profile_archs, profile_space
    from moonas.spaces import NB201Space

    space = NB201Space(input_size=4, in_channels=1, n_classes=3, channels=2, cells_per_stage=1)
    unknowns = 1 + sum(k - 1 for k in space.n_options)
    rng = np.random.default_rng(0)
    assert len(profile_archs(space, 1, rng)) == unknowns + 1
    for n in (0, -1):
        with pytest.raises(ConfigError, match=f"--random must be >= 1, got {n}: the fit has "
                           f"{unknowns} unknowns"):
            profile_archs(space, n, rng)
    with pytest.raises(ConfigError, match="--seed must be >= 0, got -1"):
        profile_space(space, "here", n_random=1, seed=-1)
    out = tmp_path / "t.json"
    for flag, value in (("--seed", "-1"), ("--random", "-1"), ("--random", "0")):
        assert _cli(["profile", "--name", "x", "--out", str(out), "--space", "nb201",
                     "--set", "space.channels=2", flag, value, "-q"]) == 2  # usage error
        message = capsys.readouterr().out
        assert f"{flag} must be >=" in message and len(message.splitlines()) == 1
    assert not out.exists()


def test_limits_that_are_not_positive_numbers_are_refused(run) -> None:
    from moonas.errors import ConfigError

    for value in (0.0, -5.0, float("nan")):
        with pytest.raises(ConfigError, match=r"--max-macs \(max_macs=\) must be > 0"):
            run.pick(max_macs=value)


def test_a_bad_value_in_a_budgets_file_names_its_entry(run, tmp_path) -> None:
    for entry, message in (("{max_params: 5kk}", r"budgets entry 'a': max_params '5kk'"),
                           ("{max_params: -5}", r"budgets entry 'a': max_params must be > 0"),
                           ("{prefer: best}", r"budgets entry 'a': prefer")):
        path = tmp_path / "b.yaml"
        path.write_text(f"ok: {{max_params: 1M}}\na: {entry}\n")
        with pytest.raises(ConfigError, match=message):
            pick_many(run, read_budgets_file(path))


# -- budgets table layout and runs searched on a latency -------------------------------------
def _columns(header: str) -> list[tuple[int, int]]:
    """`(start, end)` of each header word: where its column sits."""
    import re

    return [m.span() for m in re.finditer(r"\S+", header)]


@pytest.mark.parametrize("names", [("a", "b"), ("a-rather-long-device-name", "mcu")])
def test_the_budgets_table_lines_up_for_any_name_length(run, run_dir, tmp_path, capsys,
                                                        names) -> None:
    spec = tmp_path / "devices.yaml"
    spec.write_text(yaml.safe_dump({names[0]: {"max_params": "1M"},
                                    names[1]: {"max_params": run.front.budgets[0]},
                                    "x": {"max_params": 10}}))
    assert _cli(["pick", str(run_dir), "--budgets-file", str(spec)]) == 2
    header, *rows, infeasible = capsys.readouterr().out.splitlines()
    spans = _columns(header)
    assert [header[a:b] for a, b in spans] == ["device", "id", "accuracy", "params", "macs",
                                               "latency_ms", "arch_str"]
    picks = dict(pick_many(run, read_budgets_file(spec)))
    for name, row in zip(names, rows):
        c = picks[name].candidate
        cells = [name, str(c.id), f"{c.accuracy:.4f}", f"{c.params:,}", f"{c.macs:,}", "-"]
        # The device column is left-aligned (starts with its header), the numbers right-aligned
        # (end with theirs), arch_str starts under its header.
        (d0, d1), *numbers, (s0, _) = spans
        assert row[d0:].startswith(name) and row[len(name):spans[1][0]].strip() == ""
        for (a, b), cell in zip(numbers, cells[1:]):
            assert row[:b].endswith(cell) and row[b] == " ", (row, cell)
        assert row[s0:] == c.arch_str
    # Nothing feasible: a dash under id, then the reason.
    assert infeasible.startswith("x ") and infeasible[:spans[1][1]].endswith(" -")
    assert infeasible[spans[1][1]:].startswith("  none: no architecture")


def _toy_latency(run, device: str = "toy", channels: int | None = None) -> AdditiveLatency:
    """Options dearer along each choice and choices dearer in turn (few ties)."""
    from moonas.pricing import run_space

    settings = run_space(run).settings()
    if channels is not None:
        settings = {**settings, "channels": channels}
    table = np.arange(5.0)[None, :] * (1.0 + np.arange(6.0))[:, None] * 0.25
    return AdditiveLatency(device=device, base=0.5, table=table, valid=np.ones((6, 5), bool),
                           space=settings)


def make_latency_run(root: Path, table: Path, *, record: bool = True) -> Path:
    """A run searched with `search.cost: latency:toy` against `table` (written here, as
    'moonas profile' would): make_run's candidates with their latencies recorded in
    candidates.csv (unless not `record`) and a front with budgets in ms."""
    from dataclasses import replace

    make_run(root, with_log=False)
    run = load_run(root)
    model = _toy_latency(run)
    model.save(table)
    files = RunFiles(root)
    config = yaml.safe_load(files.config.read_text())
    config["search"].update(cost="latency:toy", latency_table=str(table))
    files.config.write_text(yaml.safe_dump(config, sort_keys=False))
    latency = model.price([c.arch for c in run.candidates])
    candidates = [replace(c, latency_ms=float(v), on_front=False)
                  for c, v in zip(run.candidates, latency)]
    budgets = tuple(float(b) for b in np.quantile(latency, (0.25, 0.5, 0.9)).round(2))
    objective = Objective("latency:toy", budgets, None, float(latency.min()),
                          float(latency.max()))
    marked, front = front_from_candidates(run.front.space, run.front.dataset, objective,
                                          candidates)
    if not record:
        marked = [replace(c, latency_ms=None) for c in marked]
        front = replace(front, architectures=tuple(replace(c, latency_ms=None)
                                                   for c in front.architectures))
    write_candidates(files.candidates, marked)
    write_front(files, front)
    return root


def _recorded_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelname == "WARNING" and "recorded" in r.getMessage()]


def test_a_latency_run_without_its_table_picks_by_the_recorded_latencies(tmp_path, caplog,
                                                                         capsys) -> None:
    from moonas.errors import DataError

    table = tmp_path / "toy.json"
    run = load_run(make_latency_run(tmp_path / "run", table))
    recorded = {c.id: c.latency_ms for c in candidate_pool(run)}
    limit = run.front.budgets[1]
    expected = pick(run, max_latency_ms=limit)  # with the table
    knee = pick(run, max_latency_ms=limit, prefer="knee")
    assert expected.candidate.id == run.front.picks[1] and not _recorded_warnings(caplog)

    def check(reason: str) -> None:
        caplog.clear()
        got = pick(run, max_latency_ms=limit)
        assert (got.candidate.id, got.device) == (expected.candidate.id, "toy")
        assert got.latency_ms == pytest.approx(recorded[got.candidate.id])
        assert pick(run, max_latency_ms=limit, prefer="knee").candidate.id == knee.candidate.id
        warnings = _recorded_warnings(caplog)
        assert len(warnings) == 2 and "\n" not in warnings[0]  # one per pick
        assert reason in warnings[0] and "candidates.csv" in warnings[0]

    table.unlink()  # removed
    check("not found")
    # Another device's table in its place (what 'moonas profile --force' leaves).
    _toy_latency(run, device="other").save(table)
    check("unknown latency device 'toy'")
    # The same device measured on another space.
    _toy_latency(run, channels=99).save(table)
    check("another space")
    table.unlink()
    # The CLI: a pick, and a budgets file whose two entries price the run's device.
    caplog.clear()
    assert _cli(["pick", str(run.dir), "--max-latency-ms", str(limit), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == expected.candidate.id
    spec = tmp_path / "devices.yaml"
    spec.write_text(yaml.safe_dump({"fast": {"max_latency_ms": limit, "device": "toy"},
                                    "toy": {"max_latency_ms": run.front.budgets[0]}}))
    caplog.clear()
    results = dict(pick_many(run, read_budgets_file(spec)))
    assert results["fast"].candidate.id == expected.candidate.id
    assert results["toy"].candidate.id == run.front.picks[0]
    assert len(_recorded_warnings(caplog)) == 1  # one warning for the run's device
    # Another device, or a table named on the command line, still fail.
    with pytest.raises(DataError, match="not found"):
        pick(run, max_latency_ms=limit, device="other")
    with pytest.raises(DataError, match="not found"):
        pick(run, max_latency_ms=limit, latency_table=table)
    # Latencies of the run's architectures only.
    model = resolve_latency(run, "toy", None)
    other = next(a for a in np.ndindex(*(5,) * 6) if a not in {c.arch for c in run.candidates})
    with pytest.raises(ConfigError, match=r"records the latency of the run's \d+ candidates only"):
        model.price(np.array(other))


def test_a_latency_run_that_recorded_no_latencies_still_needs_its_table(tmp_path) -> None:
    from moonas.errors import DataError

    table = tmp_path / "toy.json"
    run = load_run(make_latency_run(tmp_path / "run", table, record=False))
    table.unlink()
    with pytest.raises(DataError, match="not found"):
        pick(run, max_latency_ms=run.front.budgets[1])


def test_a_latency_run_whose_table_was_profiled_again_warns_that_picks_follow_the_table(
        tmp_path, caplog) -> None:
    from dataclasses import replace

    table = tmp_path / "toy.json"
    run = load_run(make_latency_run(tmp_path / "lat", table))
    with caplog.at_level(logging.WARNING, logger="moonas"):
        same = pick(run, device="toy", max_latency_ms=9.0)
    assert not [r for r in caplog.records if "otherwise than its search" in r.getMessage()]
    assert same.latency_ms == pytest.approx(same.candidate.latency_ms)  # the table as searched
    model = _toy_latency(run)
    replace(model, base=model.base * 1.2, table=model.table * 1.2).save(table)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="moonas"):
        again = pick(run, device="toy", max_latency_ms=9.0)
    said = [r.getMessage() for r in caplog.records if "otherwise than its search" in r.getMessage()]
    assert len(said) == 1 and "up to 20.0%" in said[0] and str(table) in said[0]
    # The table rules: the reported latency is the re-profiled one, not the recorded one.
    assert again.latency_ms == pytest.approx(1.2 * float(model.price(again.candidate.arch)[0]))
    assert again.latency_ms != pytest.approx(again.candidate.latency_ms)


def test_a_latency_run_picked_without_flags_reports_its_devices_latency(tmp_path,
                                                                       caplog) -> None:
    """No --device: a run searched on latency:toy reports each pick's latency on toy (as its
    export sidecar does), its knee is taken on that cost, and a pick that only reports the
    latency still stands when nothing can price it."""
    table = tmp_path / "toy.json"
    run = load_run(make_latency_run(tmp_path / "run", table))
    got = pick(run, max_params=10**9)
    assert got.device == "toy"
    assert got.latency_ms == pytest.approx(got.candidate.latency_ms)
    knee = pick(run, prefer="knee")
    assert knee.device == "toy" and knee.candidate.id == pick(run, prefer="knee",
                                                              device="toy").candidate.id
    bare = load_run(make_latency_run(tmp_path / "bare", tmp_path / "t2.json", record=False))
    (tmp_path / "t2.json").unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="moonas"):
        alone = pick(bare, max_params=10**9)
    assert alone.device is None and alone.latency_ms is None
    said = [r.getMessage() for r in caplog.records if "leaves out latency on toy" in r.getMessage()]
    assert len(said) == 1 and "not found" in said[0]


def test_cli_pick_json_prints_json_when_nothing_is_feasible(run_dir, capsys) -> None:
    """As each infeasible entry of --budgets-file --json: stdout stays JSON, the exit code 2
    and the one line on stderr stay."""
    from moonas.cli import main

    capsys.readouterr()
    assert main(["pick", str(run_dir), "--max-params", "10", "--json"]) == 2
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert set(record) == {"error"} and record["error"].startswith("no architecture of")
    assert captured.err.strip().splitlines() == [f"moonas pick: error: {record['error']}"]


# -- a damaged retraining record ---------------------------------------------------------------
def _damaged_retraining(root: Path, cid: int, content: bytes) -> Path:
    """`trained/ID` of a finished training whose metrics.json is `content` (a torn copy, a
    disk fault); returns the file."""
    from moonas.deploy.weights import TrainedFiles

    files = TrainedFiles.of(root, cid)
    files.root.mkdir(parents=True)
    files.weights.write_bytes(b"")
    files.checkpoint.write_bytes(b"")
    files.job.write_text(json.dumps({"init": "scratch", "recipe": {"epochs": 2}}))
    files.metrics.write_bytes(content)
    return files.metrics


@pytest.mark.parametrize("content", [b'{"id": 3, "test_accur', b"", b"[0.5]", b"\xff\xfe{"])
def test_a_damaged_retraining_record_is_left_out_of_the_pick_with_one_warning(
        tmp_path, caplog, capsys, content) -> None:
    root = make_run(tmp_path / "run")
    run = load_run(root)
    cid = run.front.picks[1]
    params = next(c.params for c in run.candidates if c.id == cid)
    path = _damaged_retraining(root, cid, content)
    caplog.set_level(logging.WARNING)
    chosen = pick(run, max_params=params)
    assert chosen.candidate.id == cid and chosen.trained is None and chosen.weights == "supernet"
    # Two devices picking the same id, and the command line: still the one warning.
    results = dict(pick_many(run, {"a": {"max_params": params}, "b": {"max_params": params}}))
    assert {r.candidate.id for r in results.values()} == {cid}
    assert _cli(["pick", str(root), "--max-params", str(params), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["weights"] == "supernet"
    warned = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert len(warned) == 1, warned
    assert "\n" not in warned[0] and "is damaged" in warned[0]
    assert (f"run 'moonas train {root} --id {cid} --epochs 2' to write it again from the "
            "training's last checkpoint") in warned[0]


# -- latency amounts, devices in the budgets table, entry errors, precision ----------------------
def test_a_latency_limit_takes_a_trailing_ms(run, tmp_path, capsys) -> None:
    """`--max-latency-ms 20ms` failed with "examples: 120000, 120k, 3.5M"; a latency limit
    takes ms (with or without the unit), its errors give latency examples, and the k/M scale
    is not read as milliseconds (`20m` is no latency)."""
    model = _additive_model(run)
    limit = 8.0
    expected = pick(run, max_latency_ms=limit, device=model).candidate.id
    for typed in ("8ms", "8 ms", "8MS", " 8.0ms ", "8"):
        assert pick(run, max_latency_ms=typed, device=model).candidate.id == expected
    for typed in ("8m", "8k", "8 s", "8msec", "ms"):
        with pytest.raises(ConfigError, match=rf"--max-latency-ms \(max_latency_ms=\) "
                           rf"'{typed}': '{typed}' is not a number of milliseconds \(examples: "
                           r"20, 0.5, 20ms\)") as info:
            pick(run, max_latency_ms=typed, device=model)
        assert "\n" not in str(info.value)
    # Params and MACs keep their scale, and refuse a unit of time.
    assert pick(run, max_params="1M").limits.max_params == 1e6
    with pytest.raises(ConfigError, match=r"'5ms' is not a number \(examples: 120000, 120k"):
        pick(run, max_macs="5ms")
    model.save(tmp_path / "toy.json")
    assert _cli(["pick", str(run.dir), "--max-latency-ms", "8ms", "--latency-table",
                 str(tmp_path / "toy.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == expected
    spec = tmp_path / "devices.yaml"
    spec.write_text("toy: {max_latency_ms: 8ms, latency_table: toy.json}\n")
    assert dict(pick_many(run, read_budgets_file(spec)))["toy"].candidate.id == expected


def test_the_budgets_table_names_the_device_of_each_latency(run, tmp_path, capsys) -> None:
    """Rows priced on devices other than their names showed bare figures: which device each
    latency is on is said where the row's name does not say it."""
    _additive_model(run).save(tmp_path / "toy.json")
    other = _additive_model(run, per_option=2.0)
    AdditiveLatency(device="other", base=other.base, table=other.table, valid=other.valid,
                    space=other.space).save(tmp_path / "other.json")
    spec = tmp_path / "devices.yaml"
    spec.write_text(yaml.safe_dump({
        "fast": {"max_latency_ms": 8, "device": "toy", "latency_table": "toy.json"},
        "slow": {"max_latency_ms": 30, "device": "other", "latency_table": "other.json"},
        "toy": {"max_latency_ms": 9, "latency_table": "toy.json"},
        "mcu": {"max_params": "1M"}}))
    assert _cli(["pick", str(run.dir), "--budgets-file", str(spec)]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    picks = dict(pick_many(run, read_budgets_file(spec)))
    cells = {row.split()[0]: row for row in rows}
    assert f"{picks['fast'].latency_ms:.3f} (toy)" in cells["fast"]
    assert f"{picks['slow'].latency_ms:.3f} (other)" in cells["slow"]
    assert f"{picks['toy'].latency_ms:.3f}  " in cells["toy"] and "(toy)" not in cells["toy"]
    # The columns still line up: arch_str starts under its header in every row.
    start = header.index("arch_str")
    for name, row in cells.items():
        assert row[start:] == picks[name].candidate.arch_str


def test_a_missing_table_of_a_budgets_entry_names_its_entry(run, tmp_path) -> None:
    """The entry's name was lost when its table was missing (a DataError, not a
    ConfigError); it is kept, and so is the error's class."""
    from moonas.errors import DataError

    spec = tmp_path / "devices.yaml"
    spec.write_text("ok: {max_params: 1M}\npi: {max_latency_ms: 20, latency_table: gone.json}\n")
    with pytest.raises(DataError, match=r"^budgets entry 'pi': latency table .*gone.json' not "
                                        "found") as info:
        pick_many(run, read_budgets_file(spec))
    assert type(info.value) is DataError and "\n" not in str(info.value)


def test_pick_json_keeps_small_latencies_to_six_significant_digits(run, tmp_path,
                                                                   capsys) -> None:
    """0.01182678 ms was printed as 0.0118: latencies keep 6 significant digits."""
    from moonas.costs.latency import round_ms

    model = _additive_model(run, per_option=1.3e-3)
    model = AdditiveLatency(device="toy", base=0.01182678, table=model.table,
                            valid=model.valid, space=model.space)
    model.save(tmp_path / "tiny.json")
    result = pick(run, device=model)
    assert round_ms(0.01182678) == 0.0118268 and round_ms(123.4567891) == 123.457
    assert result.to_json()["latency_ms"] == round_ms(result.latency_ms)
    assert result.to_json()["latency_ms"] == pytest.approx(result.latency_ms, rel=1e-5)
    assert _cli(["pick", str(run.dir), "--latency-table", str(tmp_path / "tiny.json"),
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)["latency_ms"]
    assert printed == pytest.approx(result.latency_ms, rel=1e-5)


def test_reading_a_run_back_loads_no_torch(run_dir, tmp_path) -> None:
    """`moonas --help`, `pick` (limits, knee, a budgets file, a latency table) and `plot` (front,
    theta) read result files only: importing torch took 1.0-1.5 s of their 1.7-3 s
    (results/startup.md). Each runs in one fresh interpreter that must not have imported torch
    after it."""
    import subprocess
    import sys

    spec = tmp_path / "devices.yaml"
    spec.write_text("small: {max_params: 1M}\n")
    commands = [["--help"], ["pick", str(run_dir), "--max-params", "1M", "--json"],
                ["pick", str(run_dir), "--prefer", "knee"],
                ["pick", str(run_dir), "--budgets-file", str(spec)],
                ["pick", str(run_dir), "--latency-table", str(NB201_CSV), "--device", "raspi4",
                 "--max-latency-ms", "1000"],
                ["plot", str(run_dir), "--out", str(tmp_path / "front.png")],
                ["plot", str(run_dir), "--kind", "theta", "--out", str(tmp_path / "theta.png")]]
    code = ("import contextlib, io, json, sys\nfrom moonas.cli import main\n"
            "for argv in json.loads(sys.argv[1]):\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        try:\n            code = main(argv)\n"
            "        except SystemExit as done:\n            code = done.code\n"
            "    assert code == 0, (argv, code)\n"
            "    assert 'torch' not in sys.modules, f'{argv} imported torch'\n")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(commands)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "front.png").stat().st_size > 0
    assert (tmp_path / "theta.png").stat().st_size > 0


# -- argument types, hashing, budgets files and exit codes ------------------------------------
def test_a_latency_table_of_the_wrong_type_names_the_argument(run) -> None:
    from moonas.errors import ArgumentError

    for call in (lambda: run.pick(latency_table=5),
                 lambda: pick(run, max_latency_ms=3, device="toy", latency_table=["t.json"]),
                 lambda: pick_many(run, {"a": {"max_params": "1M"}}, latency_table=5)):
        with pytest.raises(ArgumentError, match=r"latency_table must be a path \(str or "
                                                r"pathlib\.Path\), got int|got list"):
            call()


def test_a_pick_with_its_retraining_is_hashable(run) -> None:
    from moonas.deploy.pick import Limits, Pick

    c = run.front.architectures[0]
    one = Pick(candidate=c, limits=Limits(max_params=1e6), prefer="accuracy",
               trained={"test_accuracy": 0.5, "recipe": {"epochs": 2}})
    same = Pick(candidate=c, limits=Limits(max_params=1e6), prefer="accuracy",
                trained={"test_accuracy": 0.5, "recipe": {"epochs": 2}})
    other = Pick(candidate=c, limits=Limits(max_params=1e6), prefer="accuracy",
                 trained={"test_accuracy": 0.6})
    assert hash(one) == hash(same) and one == same and one != other
    assert len({one, same, other}) == 2 and {one: "x"}[same] == "x"
    # Still the plain dict metrics.json holds (hashing leaves it out; equality compares it).
    assert type(one.trained) is dict and json.dumps(one.trained)


def test_a_budgets_file_that_is_a_folder_or_binary_says_so(run_dir, tmp_path, capsys) -> None:
    folder = tmp_path / "adir.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"budgets file '.*adir.yaml' is a folder: give a YAML "
                                          r"file mapping device name -> limits"):
        read_budgets_file(folder)
    garbage = tmp_path / "bin.yaml"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ConfigError, match=r"budgets file .*bin.yaml is not UTF-8 text \(byte "
                                          r"\d+\): save it as UTF-8 YAML") as info:
        read_budgets_file(garbage)
    assert "config" not in str(info.value)
    assert _cli(["pick", str(run_dir), "--budgets-file", str(folder)]) == 1
    assert "is a folder" in capsys.readouterr().out


def test_each_entry_of_a_budgets_file_that_nothing_meets_is_one_line_on_stderr(
        run_dir, tmp_path, capsys) -> None:
    from moonas.cli import main

    spec = tmp_path / "devices.yaml"
    spec.write_text(yaml.safe_dump({"a": {"max_params": "1M"}, "b": {"max_params": 10},
                                    "c": {"max_macs": 10}}))
    for flags in ([], ["--json"]):
        capsys.readouterr()
        assert main(["pick", str(run_dir), "--budgets-file", str(spec), *flags]) == 2
        captured = capsys.readouterr()
        err = captured.err.splitlines()
        assert len(err) == 2
        assert err[0].startswith(f"moonas pick: error: budgets entry 'b': no architecture of "
                                 f"{run_dir} meets params <= 10")
        assert err[1].startswith("moonas pick: error: budgets entry 'c': no architecture")
        if flags:
            assert [r.get("error") is not None for r in json.loads(captured.out)] == [
                False, True, True]
        else:
            assert len(captured.out.splitlines()) == 4 and "none: no architecture" in captured.out
    spec.write_text(yaml.safe_dump({"a": {"max_params": "1M"}}))
    assert main(["pick", str(run_dir), "--budgets-file", str(spec)]) == 0
    assert capsys.readouterr().err == ""


def test_pick_flags_out_of_range_or_in_conflict_exit_2(run_dir, tmp_path, capsys) -> None:
    spec = tmp_path / "devices.yaml"
    spec.write_text(yaml.safe_dump({"a": {"max_params": "1M"}}))
    for argv, message in (
            (["--budgets-file", str(spec), "--max-params", "5k"],
             "--budgets-file sets the limits per device: drop --max-params"),
            (["--max-params", "-5"], r"--max-params (max_params=) must be > 0, got -5"),
            (["--max-macs", "5kk"], "--max-macs (max_macs=) '5kk'"),
            (["--min-accuracy", "200"], "--min-accuracy (min_accuracy=) '200' is out of range")):
        assert _cli(["pick", str(run_dir), *argv]) == 2, argv
        out = capsys.readouterr().out
        assert out.startswith(f"error: {message}") and out.count("\n") == 1, out
    # The Python API raises as before (a UsageError is a ConfigError all the same).
    with pytest.raises(ConfigError, match="must be > 0"):
        pick(load_run(run_dir), max_params=-5)
