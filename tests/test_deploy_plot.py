"""`moonas plot`: fronts on any cost axis, theta heatmaps, search curves, checked via their data."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from moonas.costs.latency import AdditiveLatency
from moonas.deploy.cli import plot_history, plot_runs, read_history, register
from moonas.deploy.pick import candidate_pool
from moonas.deploy.weights import TrainedFiles, run_space
from moonas.errors import ConfigError, MoonasError
from moonas.pareto import non_dominated
from moonas.run import load_run

from test_deploy_pick import make_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("plot")
    return [load_run(make_run(root / "a", seed=0)), load_run(make_run(root / "b", seed=1))]


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fronts_of_two_runs_with_budgets_and_modes(runs, tmp_path) -> None:
    out = tmp_path / "fronts.png"
    drawn = plot_runs(runs, out)
    assert _is_png(out) and drawn["xlabel"] == "params (count)"
    assert [s["label"] for s in drawn["series"]] == ["a", "b"]
    for run, series in zip(runs, drawn["series"]):
        front = sorted(run.front.architectures, key=lambda c: c.params)
        assert series["front_x"] == [float(c.params) for c in front]
        assert series["front_y"] == pytest.approx([c.accuracy * 100 for c in front])
        assert series["budgets"] == list(run.front.budgets)
        modes = sorted((float(c.params), c.accuracy) for c in run.candidates
                       if c.mode_of is not None)
        assert sorted(series["modes"]) == modes


def test_front_on_another_cost_is_recomputed(runs, tmp_path) -> None:
    drawn = plot_runs(runs[:1], tmp_path / "macs.svg", x="macs", labels=["mine"])
    series = drawn["series"][0]
    assert series["label"] == "mine" and series["budgets"] == []  # budgets are in params
    pool = candidate_pool(runs[0])
    points = np.array([[-c.accuracy, c.macs] for c in pool], dtype=float)
    expected = sorted(float(m) for m in points[non_dominated(points), 1])
    assert sorted(series["front_x"]) == expected
    assert (tmp_path / "macs.svg").read_text().lstrip().startswith("<?xml")


def test_latency_axis_and_retrained_points(runs, tmp_path) -> None:
    run = runs[0]
    table = np.tile(np.arange(5.0), (6, 1))
    model = AdditiveLatency(device="toy", base=1.0, table=table, valid=np.ones((6, 5), bool),
                            space=run_space(run).settings())
    model.save(tmp_path / "toy.json")
    cid = run.front.picks[0]
    files = TrainedFiles.of(run.dir, cid)
    files.root.mkdir(parents=True, exist_ok=True)
    files.weights.write_bytes(b"")
    files.metrics.write_text(json.dumps({"id": cid, "test_accuracy": 0.42}))
    try:
        drawn = plot_runs([run], tmp_path / "lat.pdf", x="latency:toy",
                          latency_table=tmp_path / "toy.json")
    finally:
        files.weights.unlink()
        files.metrics.unlink()
    assert drawn["xlabel"] == "latency on toy (ms)"
    c = next(c for c in run.candidates if c.id == cid)
    assert drawn["series"][0]["trained"] == [(1.0 + sum(c.arch), c.accuracy, 0.42)]
    assert (tmp_path / "lat.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(ConfigError, match="--latency-table"):
        plot_runs([run], tmp_path / "x.png", x="latency:toy")
    with pytest.raises(ConfigError, match="one per run"):
        plot_runs(runs, tmp_path / "x.png", labels=["only one"])


def test_theta_heatmaps_draw_the_logged_probabilities(runs, tmp_path) -> None:
    run = runs[0]
    out = tmp_path / "theta.png"
    drawn = plot_history(run, out, "theta")
    epochs = [json.loads(line) for line in (run.dir / "log.jsonl").read_text().splitlines()]
    epochs = [e for e in epochs if e.get("kind") == "epoch"]
    assert drawn["steps"] == [e["step"] for e in epochs]
    assert len(drawn["matrices"]) == 3 and len(drawn["rows"]) == 30
    assert drawn["rows"][0] == "edge1<-0: none"
    theta = np.array([e["theta"] for e in epochs])  # (T, K, D, Kmax)
    for k, matrix in enumerate(drawn["matrices"]):
        np.testing.assert_allclose(np.array(matrix), theta[:, k].reshape(len(epochs), -1).T)
    assert drawn["budget_labels"] == [f"params <= {b:g}" for b in run.front.budgets]
    assert _is_png(out)


def test_curves_and_a_torn_log(runs, tmp_path) -> None:
    run = runs[1]
    drawn = plot_history(run, tmp_path / "curves.png", "curves")
    assert drawn["steps"] == list(range(1, 7)) and drawn["dist_steps"] == list(range(2, 7))
    assert len(drawn["val_loss"]) == 3 and len(drawn["entropy"]) == 3
    assert drawn["entropy"][0][0] == pytest.approx(8.0 - 0.4)
    log = run.dir / "log.jsonl"
    text = log.read_text()
    log.write_text(text + '{"step": 7, "train_lo')
    try:
        history = read_history(run.dir)
    finally:
        log.write_text(text)
    assert list(history.steps) == list(range(1, 7)) and history.theta.shape == (2, 3, 6, 5)
    # Damaged lines in the middle (bytes that are not text, a JSON null) are left out, not
    # a traceback, and the lines after them still draw.
    lines = text.splitlines(keepends=True)
    log.write_bytes(b"".join(line.encode() for line in lines[:2]) + b"\xff\xfe\nnull\n"
                    + b"".join(line.encode() for line in lines[2:]))
    try:
        damaged = read_history(run.dir)
    finally:
        log.write_text(text)
    assert list(damaged.steps) == list(history.steps)
    assert damaged.theta.shape == history.theta.shape


def test_cli_plot(runs, tmp_path, capsys) -> None:
    call = _parser_call()
    a, b = (str(r.dir) for r in runs)
    assert call("plot", a, b, "--out", str(tmp_path / "f.png"), "--log-x") == 0
    assert call("plot", a, "--kind", "theta", "--out", str(tmp_path / "t.png")) == 0
    assert call("plot", a, "--kind", "curves", "--out", str(tmp_path / "c.png")) == 0
    capsys.readouterr()
    assert call("plot", a, "--out", str(tmp_path / "f.gif")) == 1
    assert "must end in .png or .svg or .pdf" in capsys.readouterr().out
    assert call("plot", a, b, "--kind", "theta", "--out", str(tmp_path / "t.png")) == 2
    assert capsys.readouterr().out == "error: --kind theta draws one run, got 2\n"
    assert call("plot", str(tmp_path), "--out", str(tmp_path / "x.png")) == 1
    assert "not a moonas run" in capsys.readouterr().out
    missing = str(tmp_path / "nope.json")
    assert call("plot", a, "--out", str(tmp_path / "m.png"), "--latency-table", missing) == 1
    assert "nope.json" in capsys.readouterr().out
    assert not (tmp_path / "m.png").exists()


def _parser_call():
    parser = argparse.ArgumentParser(prog="moonas")
    register(parser.add_subparsers(dest="command"))

    def call(*argv: str) -> int:
        args = parser.parse_args(list(argv))
        try:
            return args.func(args)
        except MoonasError as err:
            print(f"error: {err}")
            return err.exit_code

    return call


@pytest.mark.parametrize("kind", ["curves", "theta"])
def test_front_only_flags_are_refused_by_the_other_kinds(runs, tmp_path, capsys, kind) -> None:
    call = _parser_call()
    a = str(runs[0].dir)
    out = tmp_path / "k.png"
    for flags, named in ((["--log-x"], "--log-x"), (["--label", "mine"], "--label"),
                         (["--x", "macs"], "--x"),
                         (["--log-x", "--label", "mine"], "--label and --log-x"),
                         (["--log-x", "--x", "macs", "--label", "mine"],
                          "--x, --label and --log-x"),
                         (["--latency-table", str(tmp_path / "t.json")], "--latency-table")):
        # Flags that contradict each other: a usage error (exit code 2), as argparse's own.
        assert call("plot", a, "--kind", kind, "--out", str(out), *flags) == 2
        message = capsys.readouterr().out
        verb = "apply" if " and " in named else "applies"
        assert message == f"error: {named} {verb} to --kind front only, not --kind {kind}\n"
        assert not out.exists()
    assert call("plot", a, "--kind", kind, "--out", str(out)) == 0 and out.exists()


def test_a_latency_run_without_its_table_plots_its_recorded_latencies(tmp_path, caplog,
                                                                     capsys) -> None:
    from test_deploy_pick import make_latency_run

    table = tmp_path / "toy.json"
    run = load_run(make_latency_run(tmp_path / "lat", table))
    other = load_run(make_run(tmp_path / "params"))
    expected = plot_runs([run], tmp_path / "before.png")
    assert expected["xlabel"] == "latency on toy (ms)"
    front = sorted(run.front.architectures, key=lambda c: (c.latency_ms, c.id))
    assert expected["series"][0]["front_x"] == pytest.approx([c.latency_ms for c in front])
    # A run searched on params is priced with the table another run names, in any order.
    both = plot_runs([other, run], tmp_path / "both.png", x="latency:toy")
    assert both["series"][1] == expected["series"][0]
    assert len(both["series"][0]["front_x"]) > 0
    table.unlink()
    caplog.clear()
    drawn = plot_runs([run], tmp_path / "after.png")
    assert drawn["series"] == expected["series"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "not found" in warnings[0] and "recorded" in warnings[0]
    call = _parser_call()
    assert call("plot", str(run.dir), "--out", str(tmp_path / "cli.png")) == 0
    assert "1 front(s)" in capsys.readouterr().out
    # A run that recorded no latency of toy (searched on params) still needs a table.
    with pytest.raises(MoonasError, match="not found"):
        plot_runs([run, other], tmp_path / "both.png")
    with pytest.raises(MoonasError, match="not found"):
        plot_runs([run], tmp_path / "x.png", x="latency:other")


def _run_without_distributions(root, strategy: str):
    """make_run's run as `strategy` (random, spos-nsga2) logs it: a training loss per step and
    epoch entries whose `theta` and `modes` are null; no validation losses, no entropies."""
    import yaml

    from moonas.run import RunFiles

    make_run(root, with_log=False)
    files = RunFiles(root)
    config = yaml.safe_load(files.config.read_text())
    config["search"]["strategy"] = strategy
    files.config.write_text(yaml.safe_dump(config, sort_keys=False))
    lines = []
    for step in range(1, 9):
        lines.append({"step": step, "epoch": (step - 1) // 4, "lr": 0.05,
                      "train_loss": 2.4 - 0.05 * step})
        if step % 4 == 0:
            lines.append({"step": step, "epoch": step // 4 - 1, "kind": "epoch", "modes": None,
                          "theta": None})
    files.log.write_text("".join(json.dumps(e) + "\n" for e in lines))
    return load_run(root)


@pytest.mark.parametrize("strategy", ["random", "spos-nsga2"])
def test_curves_of_a_run_without_distributions_draw_the_training_loss(tmp_path, caplog, capsys,
                                                                       strategy) -> None:
    run = _run_without_distributions(tmp_path / "run", strategy)
    assert run.config.search.strategy == strategy
    history = read_history(run.dir)
    assert len(history.dist_steps) == 0 and history.entropy is None and history.theta is None
    caplog.set_level("INFO", logger="moonas")
    drawn = plot_history(run, tmp_path / "curves.png", "curves")
    assert drawn["steps"] == list(range(1, 9))
    assert drawn["train_loss"] == pytest.approx([2.4 - 0.05 * s for s in range(1, 9)])
    assert drawn["dist_steps"] == [] and drawn["val_loss"] == [] and drawn["entropy"] == []
    assert _is_png(tmp_path / "curves.png")
    notes = [r.getMessage() for r in caplog.records if "no distributions" in r.getMessage()]
    assert len(notes) == 1 and strategy in notes[0] and "training loss only" in notes[0]
    call = _parser_call()
    out = tmp_path / "cli.svg"
    assert call("plot", str(run.dir), "--kind", "curves", "--out", str(out)) == 0
    assert f"curves of {run.dir} -> {out}" in capsys.readouterr().out
    assert "has no distributions: training loss only" in out.read_text()  # the title
    # The heatmaps have nothing to draw: one line, no file.
    assert call("plot", str(run.dir), "--kind", "theta", "--out", str(tmp_path / "t.png")) == 1
    message = capsys.readouterr().out
    assert "logged no distributions" in message and message.count("\n") == 1
    assert not (tmp_path / "t.png").exists()


def _tied_run(root, twins):
    """make_run's run where, for each `(copy, of, mode_of)` of `twins`, candidate `copy` takes
    the accuracy, params and MACs of candidate `of` (and `mode_of`); its front rebuilt by the
    search's own code, which keeps one candidate per tie."""
    from dataclasses import replace

    from moonas.run import RunFiles, write_candidates, write_front
    from moonas.search.front import front_from_candidates
    from moonas.search.objective import Objective

    run = load_run(make_run(root, with_log=False))
    by_id = {c.id: c for c in run.candidates}
    for copy, of, mode in twins:
        source = by_id[of]
        by_id[copy] = replace(by_id[copy], accuracy=source.accuracy, loss=source.loss,
                              params=source.params, macs=source.macs, mode_of=mode,
                              modes=() if mode is None else (mode,))
    candidates = [by_id[c.id] for c in run.candidates]
    params = [c.params for c in candidates]
    objective = Objective("params", run.front.budgets, None, float(min(params)),
                          float(max(params)))
    marked, front = front_from_candidates(run.front.space, run.front.dataset, objective,
                                          candidates)
    files = RunFiles(root)
    write_candidates(files.candidates, marked)
    write_front(files, front)
    return load_run(root)


def test_a_recomputed_front_counts_tied_candidates_once(tmp_path, capsys) -> None:
    from moonas.run import front_mask

    # Every candidate the same network in accuracy and costs: the front is one architecture,
    # on any cost axis, the lowest id (no modes).
    n = len(load_run(make_run(tmp_path / "probe", with_log=False)).candidates)
    run = _tied_run(tmp_path / "one", [(i, 5, None) for i in range(n)])
    assert [c.id for c in run.front.architectures] == [0]
    call = _parser_call()
    for x in ("params", "macs"):
        drawn = plot_runs([run], tmp_path / f"{x}.png", x=x)
        assert len(drawn["series"][0]["front_x"]) == 1
        assert call("plot", str(run.dir), "--x", x, "--out", str(tmp_path / f"{x}.png")) == 0
        assert "1 front(s), 1 front points" in capsys.readouterr().out
    pool = candidate_pool(run)
    macs = np.array([c.macs for c in pool], dtype=float)
    assert [c.id for c, kept in zip(pool, front_mask(pool, macs)) if kept] == [0]
    # As on the search's front, a mode wins a tie, whatever its id.
    run = _tied_run(tmp_path / "mode", [(i, 5, 2 if i == 9 else None) for i in range(n)])
    assert [c.id for c in run.front.architectures] == [9]
    assert [c.id for c, kept in zip(candidate_pool(run), front_mask(candidate_pool(run), macs))
            if kept] == [9]
    # Some ties among many candidates: on the searched cost front_mask is the search's own
    # front, and a front on another cost holds no point twice.
    base = load_run(make_run(tmp_path / "base", with_log=False))
    members = [c.id for c in base.front.architectures]
    others = [c.id for c in base.candidates if c.id not in members]
    run = _tied_run(tmp_path / "some", [(others[0], members[-1], None),
                                        (others[1], members[1], 1),
                                        (others[2], others[3], None)])
    pool = candidate_pool(run)
    params = np.array([c.params for c in pool], dtype=float)
    np.testing.assert_array_equal(front_mask(pool, params), [c.on_front for c in pool])
    for x in ("macs", "params"):
        series = plot_runs([run], tmp_path / f"some-{x}.png", x=x)["series"][0]
        pairs = list(zip(series["front_x"], series["front_y"]))
        cost = np.array([getattr(c, x) for c in pool], dtype=float)
        accuracy = np.array([c.accuracy for c in pool])
        unique = {(cost[i], accuracy[i])
                  for i in np.flatnonzero(non_dominated(np.column_stack([-accuracy, cost])))}
        assert len(pairs) == len(set(pairs)) == len(unique)


def test_a_damaged_retraining_record_leaves_only_its_point_out(tmp_path, caplog) -> None:
    """One retraining's torn metrics.json: the front is drawn with the other retrained points,
    and one warning names the file and the command that writes it again."""
    import logging

    root = make_run(tmp_path / "run")
    run = load_run(root)
    good, bad = run.front.picks[0], run.front.picks[1]
    for cid, text in ((good, json.dumps({"id": good, "test_accuracy": 0.42})),
                      (bad, '{"id": %d, "test_accuracy": 0.' % bad)):
        files = TrainedFiles.of(root, cid)
        files.root.mkdir(parents=True)
        files.weights.write_bytes(b"")
        files.metrics.write_text(text)
    caplog.set_level(logging.WARNING)
    drawn = plot_runs([run, run], tmp_path / "front.png", labels=["one", "two"])
    c = next(c for c in run.candidates if c.id == good)
    for series in drawn["series"]:
        assert series["trained"] == [(float(c.params), c.accuracy, 0.42)]
    path = TrainedFiles.of(root, bad).metrics
    warned = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert len(warned) == 1 and "is damaged" in warned[0], warned
    assert f"run 'moonas train {root} --id {bad}' to train id {bad} again" in warned[0]
    # The command line too draws, exit code 0.
    parser = argparse.ArgumentParser(prog="moonas")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["plot", str(root), "--out", str(tmp_path / "cli.png")])
    assert args.func(args) == 0 and _is_png(tmp_path / "cli.png")


def test_theta_and_curves_draw_a_run_without_its_front(tmp_path, live, capsys) -> None:
    """A search still running (or stopped before its front) has a log to watch: theta and
    curves draw it from config.yaml and log.jsonl, with the budgets its config resolves to,
    the finished run's; front, pick and train say it is still running, not '--resume'."""
    import shutil
    import socket

    from moonas.lock import LOCK, _start_time
    from moonas.run import RunFiles

    import moonas

    run = moonas.search("smoke", tmp_path / "done", overrides=(
        "space.channels=4", "data.max_train=96", "data.batch_size=32", "search.epochs=2",
        "search.warmup_epochs=1", "search.front_samples=2", "search.bn_batches=1"))
    copy = tmp_path / "running"
    shutil.copytree(run.dir, copy)
    files = RunFiles(copy)
    for path in (files.pareto_json, files.pareto_csv, files.candidates, files.pareto_png):
        path.unlink(missing_ok=True)
    (copy / LOCK).write_text(json.dumps({"pid": live, "host": socket.gethostname(),
                                         "start": _start_time(live), "since": "now"}))
    drawn = plot_history(copy, tmp_path / "theta.png", "theta")
    assert drawn["budget_labels"] == [f"params <= {b:g}" for b in run.front.budgets]
    assert drawn == plot_history(run, tmp_path / "theta2.png", "theta")
    curves = plot_history(copy, tmp_path / "curves.png", "curves")
    assert curves == plot_history(run, tmp_path / "curves2.png", "curves")
    def call(*argv: str) -> int:
        from moonas.cli import main

        return main(list(argv))

    assert call("plot", str(copy), "--kind", "curves", "--out", str(tmp_path / "c.png")) == 0
    capsys.readouterr()
    assert call("plot", str(copy), "--out", str(tmp_path / "f.png")) == 1
    err = capsys.readouterr().err
    assert f"is still running (process {live}" in err and "--resume" not in err
    (copy / LOCK).unlink()  # stopped: the front is a resume away
    assert call("plot", str(copy), "--out", str(tmp_path / "f.png")) == 1
    assert "moonas search --resume" in capsys.readouterr().err
    files.log.unlink()
    assert call("plot", str(copy), "--kind", "theta", "--out", str(tmp_path / "t.png")) == 1
    assert "has logged nothing yet (no log.jsonl)" in capsys.readouterr().err


def test_drawing_leaves_the_callers_matplotlib_backend_alone(runs, tmp_path) -> None:
    """A notebook's backend (inline plots) and rcParams stay as the caller set them: the
    figures are drawn without pyplot, and are still written."""
    import matplotlib

    from moonas.plotting import plot_anytime

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    fallback = matplotlib.rcParams["backend_fallback"]
    try:
        plot_runs(runs, tmp_path / "f.png")
        plot_history(runs[0], tmp_path / "t.png", "theta")
        plot_history(runs[0], tmp_path / "c.svg", "curves")
        plot_anytime({"a": {"evals": [1, 2], "median": [0.9, 0.95], "p25": [0.89, 0.94],
                            "p75": [0.91, 0.96]}}, tmp_path / "a.pdf")
        assert matplotlib.get_backend() == "svg"
        assert matplotlib.rcParams["backend_fallback"] == fallback
    finally:
        matplotlib.use(before)
    assert _is_png(tmp_path / "f.png") and _is_png(tmp_path / "t.png")
    assert (tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "a.pdf").read_bytes()[:4] == b"%PDF"


def test_plot_history_names_the_kinds_it_draws(runs, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"plot_history draws kind 'theta' or 'curves', got "
                                          r"'front': draw fronts with plot_runs"):
        plot_history(runs[0], tmp_path / "x.png", "front")
    with pytest.raises(ConfigError, match=r"got 'thetas'.*did you mean 'theta'"):
        plot_history(runs[0], tmp_path / "x.png", "thetas")
    assert not (tmp_path / "x.png").exists()


def test_plot_runs_takes_run_folders(runs, tmp_path) -> None:
    """As plot_history: a run folder (str or Path) is loaded."""
    by_run = plot_runs(runs, tmp_path / "a.png")
    by_folder = plot_runs([str(runs[0].dir), runs[1].dir], tmp_path / "b.png")
    assert by_folder == by_run and _is_png(tmp_path / "b.png")
    with pytest.raises(MoonasError, match="not a moonas run"):
        plot_runs([str(tmp_path)], tmp_path / "c.png")
    with pytest.raises(ConfigError, match=r"runs must be Runs or run folders, got int"):
        plot_runs([5], tmp_path / "c.png")


@pytest.mark.parametrize("kind", ["front", "theta"])
def test_plot_never_overwrites_a_file_of_the_plotted_run(runs, tmp_path, capsys, kind) -> None:
    call = _parser_call()
    run = runs[0]
    own = run.dir / "pareto.png"
    own.write_bytes(b"the front the search drew")
    trained = run.dir / "trained" / "3" / "t.png"
    try:
        for out, named in ((own, own), (trained, trained)):
            assert call("plot", str(runs[1].dir), str(run.dir), "--kind", kind,
                        "--out", str(out)) == (1 if kind == "front" else 2)
            message = capsys.readouterr().out
            if kind == "front":
                assert message.count("\n") == 1
                assert (f"--out {out} would overwrite {named.resolve()}, a file of the run "
                        f"{run.dir}: choose another name, e.g. {run.dir / 'front.png'}"
                        ) in message
        assert call("plot", str(run.dir), "--kind", kind, "--out", str(own)) == 1
        assert (f"would overwrite {own.resolve()}, a file of the run {run.dir}: choose another "
                f"name, e.g. {run.dir / (kind + '.png')}") in capsys.readouterr().out
        assert own.read_bytes() == b"the front the search drew" and not trained.exists()
        assert call("plot", str(run.dir), "--kind", kind,
                    "--out", str(run.dir / f"{kind}.png")) == 0
    finally:
        own.unlink()
        (run.dir / f"{kind}.png").unlink(missing_ok=True)
