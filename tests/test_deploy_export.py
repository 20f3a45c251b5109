"""`moonas export`: TorchScript / ONNX / pt artefacts, sidecars, runs without moonas, errors."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from moonas.costs.latency import round_ms
from moonas.deploy.export import check_output_path, export_network, load_pt, sidecar_path
from moonas.deploy.weights import load_network, recalibrate_bn
from moonas.errors import CheckpointError, MoonasError
from moonas.run import RunFiles, load_run

from test_deploy_pick import make_run

#: Runs an exported file with plain torch / onnxruntime in a process where moonas cannot be
#: imported, and saves its outputs on the given inputs.
_STANDALONE = textwrap.dedent("""
    import sys
    sys.modules["moonas"] = None  # any 'import moonas' now raises ImportError
    try:
        import moonas  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("moonas is importable")
    import numpy as np
    fmt, model, inputs, out = sys.argv[1:5]
    x = np.load(inputs)
    if fmt == "torchscript":
        import torch
        y = torch.jit.load(model)(torch.from_numpy(x)).detach().numpy()
    else:
        import onnxruntime as ort
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        y = session.run(None, {"input": x})[0]
    np.save(out, y)
""")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return load_run(make_run(tmp_path_factory.mktemp("export") / "run"))


@pytest.fixture(scope="module")
def reference(run):
    """The PyTorch network export writes (supernet weights, recalibrated) and random inputs."""
    cid = run.front.picks[-1]
    net, source = load_network(run, cid)
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        y = net(x).numpy()
    assert source == "supernet"
    return cid, x.numpy(), y


@pytest.mark.parametrize("fmt,suffix", [("torchscript", ".ts"), ("onnx", ".onnx")])
def test_export_runs_without_moonas_and_matches_pytorch(run, reference, tmp_path, fmt,
                                                        suffix) -> None:
    cid, x, expected = reference
    out = tmp_path / f"net{suffix}"
    result = export_network(run, cid, fmt, out)
    assert result.path == out and out.is_file() and result.max_abs_diff <= 1e-4
    np.save(tmp_path / "x.npy", x)
    script = tmp_path / "run_export.py"
    script.write_text(_STANDALONE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(script), fmt, str(out), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = np.load(tmp_path / "y.npy")
    assert got.shape == expected.shape == (5, 10)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("fmt", ["torchscript", "pt"])
def test_exporting_one_network_twice_gives_the_same_bytes(run, reference, tmp_path, fmt) -> None:
    """Saved through a file object: given a path, torch names the archive's records after
    the temp file written first, so two exports of one network would differ in bytes."""
    import zipfile

    cid, _, _ = reference
    suffix = ".ts" if fmt == "torchscript" else ".pt"
    a, b = tmp_path / "a" / f"net{suffix}", tmp_path / "b" / f"net{suffix}"
    for out in (a, b):
        export_network(run, cid, fmt, out)
    assert a.read_bytes() == b.read_bytes()
    assert {name.split("/")[0] for name in zipfile.ZipFile(a).namelist()} == {"archive"}


def test_sidecar_describes_the_network(run, reference, tmp_path) -> None:
    cid, _, _ = reference
    candidate = next(c for c in run.front.architectures if c.id == cid)
    out = tmp_path / "net.onnx"
    export_network(run, cid, "onnx", out)
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["arch"] == list(candidate.arch) and meta["arch_str"] == candidate.arch_str
    assert meta["costs"] == {"params": candidate.params, "macs": candidate.macs}
    assert meta["input"]["shape"] == [1, 1, 8, 8] and meta["input"]["name"] == "input"
    assert meta["normalisation"]["mean"] == [0.3053] and meta["normalisation"]["std"] == [0.376]
    assert meta["class_names"] == [str(i) for i in range(10)]
    assert meta["format"] == "onnx" and meta["file"] == "net.onnx"
    assert meta["weights"].startswith("supernet") and meta["accuracy"]["supernet_val"] == \
        candidate.accuracy
    assert meta["space"]["name"] == "nb201" and meta["space"]["channels"] == 4


def test_pt_export_rebuilds_the_network(run, reference, tmp_path) -> None:
    cid, x, expected = reference
    out = tmp_path / "net.pt"
    result = export_network(run, cid, "pt", out)
    assert result.max_abs_diff is None
    state = torch.load(out, weights_only=True)
    assert state["arch"] == list(next(c.arch for c in run.candidates if c.id == cid))
    assert state["space"]["channels"] == 4
    net = load_pt(out)
    with torch.no_grad():
        np.testing.assert_allclose(net(torch.from_numpy(x)).numpy(), expected, atol=1e-6)


def test_recalibration_averages_the_calibration_batches() -> None:
    net = nn.Sequential(nn.BatchNorm2d(2))
    net[0].running_mean.fill_(5.0)
    rng = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 2, 3, 3, generator=rng) + i, None) for i in range(3)]
    assert recalibrate_bn(net, batches) == 3
    everything = torch.cat([b for b, _ in batches])
    torch.testing.assert_close(net[0].running_mean, everything.mean(dim=(0, 2, 3)))
    assert not net.training and net[0].momentum == 0.1


def test_supernet_weights_are_the_supernets_path(run, reference) -> None:
    """Apart from batch-norm statistics, the exported weights are the checkpoint's."""
    from moonas.checkpoint import load_checkpoint
    from moonas.pricing import run_space
    from moonas.nets import build_supernet

    cid, _, _ = reference
    net, _ = load_network(run, cid, "supernet")
    supernet = build_supernet(run_space(run))
    supernet.load_state_dict(load_checkpoint(run.dir / "checkpoint.pt")["supernet"])
    plain = supernet.extract(next(c for c in run.candidates if c.id == cid).arch).state_dict()
    for key, value in net.state_dict().items():
        if "running_" not in key and "num_batches" not in key:
            torch.testing.assert_close(value, plain[key])


def _cli(argv: list[str]) -> tuple[int, str]:
    from moonas.deploy.cli import register

    parser = argparse.ArgumentParser(prog="moonas")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return args.func(args), ""
    except MoonasError as err:
        return err.exit_code, str(err)


def test_bad_input_fails_with_one_line_and_overwrites_nothing(run, reference, tmp_path) -> None:
    cid, _, _ = reference
    out = tmp_path / "keep.onnx"
    out.write_text("precious")
    code, message = _cli(["export", str(run.dir), "--id", "999", "--format", "onnx",
                          "--out", str(out)])
    assert code == 1 and "id 999 is not a candidate" in message and "\n" not in message
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, message = _cli(["export", str(run.dir), "--id", str(cid), "--format", "onnx",
                          "--out", str(blocker / "net.onnx")])
    assert code == 1 and "is a file, not a folder" in message
    with pytest.raises(MoonasError, match="is a folder"):
        check_output_path(tmp_path)
    code, message = _cli(["export", str(tmp_path), "--id", "0", "--format", "onnx",
                          "--out", str(out)])
    assert code == 1 and "not a moonas run" in message
    # A truncated checkpoint.
    broken = make_run(tmp_path / "broken", n=6, with_log=False)
    checkpoint = broken / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:2000])
    broken_run = load_run(broken)
    with pytest.raises(CheckpointError, match="corrupt or truncated") as info:
        export_network(broken_run, broken_run.front.picks[0], "onnx", out)
    assert "\n" not in str(info.value)
    checkpoint.unlink()
    with pytest.raises(CheckpointError, match="no supernet checkpoint"):
        export_network(broken_run, broken_run.front.picks[0], "onnx", out)
    assert out.read_text() == "precious" and not sidecar_path(out).exists()
    assert not list(tmp_path.glob(".keep.onnx*"))  # no temporary files left behind


def _shift_exported_outputs(monkeypatch, fmt: str, offset: float) -> None:
    """Make the exported runtime's outputs differ from PyTorch's by `offset` where export reads
    them back (onnxruntime's through `onnx_outputs`, TorchScript's through torch.jit.load)."""
    import moonas.deploy.export as export

    if fmt == "onnx":
        real = export.onnx_outputs
        monkeypatch.setattr(export, "onnx_outputs", lambda path, x: real(path, x) + offset)
    else:
        load = torch.jit.load

        def shifted(*args, **kwargs):
            module = load(*args, **kwargs)
            return lambda x: module(x) + offset

        monkeypatch.setattr(torch.jit, "load", shifted)


@pytest.mark.parametrize("offset", [1.0, 3e-4])
@pytest.mark.parametrize("fmt,suffix", [("torchscript", ".ts"), ("onnx", ".onnx")])
def test_an_export_that_differs_from_pytorch_is_refused_and_nothing_is_written(
        run, reference, tmp_path, monkeypatch, fmt, suffix, offset) -> None:
    """README: every export is checked against PyTorch within 1e-4 before it is written."""
    cid, _, _ = reference
    _shift_exported_outputs(monkeypatch, fmt, offset)
    out = tmp_path / f"net{suffix}"
    with pytest.raises(MoonasError, match=rf"the {fmt} export differs from the PyTorch network "
                       r"by (\S+) \(> 0.0001\) on random inputs; nothing was written$") as info:
        export_network(run, cid, fmt, out)
    said = float(str(info.value).split(" by ")[1].split()[0])
    assert said == pytest.approx(offset, abs=5e-6)  # the difference it found, named
    assert not out.exists() and not sidecar_path(out).exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left either


@pytest.mark.parametrize("fmt,suffix", [("torchscript", ".ts"), ("onnx", ".onnx")])
def test_an_export_within_the_tolerance_is_written_with_its_difference(
        run, reference, tmp_path, monkeypatch, fmt, suffix) -> None:
    cid, _, _ = reference
    _shift_exported_outputs(monkeypatch, fmt, 5e-5)
    out = tmp_path / f"net{suffix}"
    result = export_network(run, cid, fmt, out)
    assert out.is_file() and sidecar_path(out).is_file()
    recorded = json.loads(sidecar_path(out).read_text())["max_abs_diff_vs_pytorch"]
    assert result.max_abs_diff == recorded == pytest.approx(5e-5, abs=2e-6)


def test_cli_export_prints_where_it_went(run, reference, tmp_path, capsys) -> None:
    cid, _, _ = reference
    out = tmp_path / "sub" / "net.ts"
    code, _ = _cli(["export", str(run.dir), "--id", str(cid), "--format", "torchscript",
                    "--out", str(out)])
    assert code == 0 and out.is_file() and sidecar_path(out).is_file()
    assert str(out) in capsys.readouterr().out


def test_end_to_end_search_pick_export_keeps_the_fronts_accuracy(tmp_path) -> None:
    """With `bn=recalibrate`, the exported ONNX network classifies the validation split exactly
    as the front's evaluation of the shared weights did."""
    from moonas.deploy.export import onnx_outputs
    from moonas.deploy.pick import pick
    from moonas.deploy.weights import run_data
    from moonas.search import search
    from moonas.search.batches import stack

    run = search("smoke", tmp_path / "run", overrides=(
        "data.max_train=96", "search.epochs=2", "search.warmup_epochs=1",
        "search.front_samples=2", "search.bn=recalibrate"))
    chosen = pick(run).candidate
    out = tmp_path / "best.onnx"
    export_network(run, chosen.id, "onnx", out)
    x, y = stack(run_data(run).val)
    logits = onnx_outputs(out, x.numpy())
    accuracy = float((logits.argmax(1) == y.numpy()).mean())
    assert accuracy == pytest.approx(chosen.accuracy, abs=1e-6)


def test_an_asng_separate_sub_runs_export_keeps_its_accuracy(tmp_path) -> None:
    """Sub-run k searched with its own seed (seed + k): its candidates export with batch norm
    recalibrated on that search's batches, so they classify the validation split exactly as
    its front measured them."""
    from moonas.deploy.weights import run_data
    from moonas.run import read_candidates
    from moonas.search import search
    from moonas.search.batches import stack

    run = search("smoke", tmp_path / "run", overrides=(
        "data.max_train=96", "search.epochs=2", "search.warmup_epochs=1",
        "search.front_samples=2", "search.bn=recalibrate", "search.strategy=asng-separate",
        "search.budgets=[20000, 24000]"))
    first = len(read_candidates(RunFiles(run.dir / "separate" / "budget0").candidates))
    x, y = stack(run_data(run).val)
    for c in run.candidates[first:first + 2]:  # sub-run 1's
        net, weights = load_network(run, c.id)
        with torch.no_grad():
            logits = net(x)
        accuracy = float((logits.argmax(1) == y).float().mean())
        loss = float(torch.nn.functional.cross_entropy(logits, y))
        assert weights == "supernet" and accuracy == pytest.approx(c.accuracy, abs=1e-6)
        assert loss == pytest.approx(c.loss, abs=2e-5)  # batch norm's statistics show here


def test_export_refuses_another_formats_suffix(run, reference, tmp_path) -> None:
    from moonas.deploy.export import check_format_suffix

    cid, _, _ = reference
    out = tmp_path / "ex" / "x.onnx"
    code, message = _cli(["export", str(run.dir), "--id", str(cid), "--format", "torchscript",
                          "--out", str(out)])
    assert code == 1 and "\n" not in message
    assert ".onnx is the suffix of --format onnx; a torchscript file ends in .ts" in message
    assert str(out.with_suffix(".ts")) in message and not (tmp_path / "ex").exists()
    with pytest.raises(MoonasError, match="a pt file ends in .pt or .pth"):
        export_network(run, cid, "pt", tmp_path / "net.ts")
    assert check_format_suffix("net.pth", "pt").name == "net.pth"
    assert check_format_suffix("net.bin", "onnx").name == "net.bin"  # no format's suffix


def test_a_directory_out_suggests_a_name_that_is_accepted(tmp_path) -> None:
    for suffixes in ((".json",), (".png", ".svg"), ()):
        folder = tmp_path / f"d{suffixes[0] if suffixes else ''}"
        folder.mkdir()
        with pytest.raises(MoonasError, match="is a folder") as info:
            check_output_path(folder, suffixes)
        example = str(info.value).split("e.g. ")[-1]
        assert check_output_path(example, suffixes).parent == folder


def test_export_latency_table_without_device(run, reference, tmp_path) -> None:
    from test_deploy_pick import _additive_model

    cid, _, _ = reference
    _additive_model(run).save(tmp_path / "toy.json")
    out = tmp_path / "net.pt"
    code, message = _cli(["export", str(run.dir), "--id", str(cid), "--format", "pt", "--out",
                          str(out), "--latency-table", str(tmp_path / "nope.json")])
    assert code == 1 and "nope.json' not found" in message and not out.exists()
    code, _ = _cli(["export", str(run.dir), "--id", str(cid), "--format", "pt", "--out",
                    str(out), "--latency-table", str(tmp_path / "toy.json")])
    assert code == 0 and "latency_ms:toy" in json.loads(sidecar_path(out).read_text())["costs"]


def test_help_gives_defaults_and_says_which_device() -> None:
    from moonas.deploy.cli import register

    parser = argparse.ArgumentParser(prog="moonas")
    sub = parser.add_subparsers(dest="command")
    register(sub)

    def help_of(command: str) -> str:
        return " ".join(sub.choices[command].format_help().split())

    profile = help_of("profile")
    assert "(default 10)" in profile and "(default 15)" in profile and "(default 0)" in profile
    export = help_of("export")
    assert "torchscript (.ts" in export and "latency device (not a torch device)" in export
    assert "front (default)" in help_of("plot")
    pick = help_of("pick")
    assert "latency device (not a torch device)" in pick and "(1, 100] read as a percentage" in pick
    assert "torch device to train on (not a latency device)" in help_of("train")


def test_sidecar_reports_the_batches_batch_norm_was_recalibrated_on(run, reference,
                                                                      tmp_path) -> None:
    """The run's data holds fewer training batches than `search.bn_batches` asks for: the
    sidecar says how many were used, not how many were asked for."""
    from moonas.deploy.weights import calibration_batches, run_data

    cid, _, _ = reference
    used = sum(1 for _ in calibration_batches(run, run_data(run)))
    assert used < run.config.search.bn_batches
    out = tmp_path / "net.pt"
    export_network(run, cid, "pt", out)
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["weights"] == f"supernet, batch norm recalibrated on {used} training batches"


def _separate_run(root):
    """An asng-separate run without searching: two sub-runs under separate/budget{k}/, each
    with its own supernet, that both measured the architectures of their first two rows;
    their candidates pooled in order with fresh ids (as `moonas.search.runner._separate`)."""
    from dataclasses import replace

    import yaml

    from moonas.checkpoint import save_checkpoint
    from moonas.pricing import run_space
    from moonas.nets import build_supernet
    from moonas.run import RunFiles, write_candidates, write_front
    from moonas.search.front import front_from_candidates
    from moonas.search.objective import Objective

    make_run(root, n=6, with_log=False)
    files = RunFiles(root)
    config = yaml.safe_load(files.config.read_text())
    config["search"]["strategy"] = "asng-separate"
    files.config.write_text(yaml.safe_dump(config, sort_keys=False))
    base = load_run(root)
    space = run_space(base)
    cands = list(base.candidates)
    subs = [cands[0:3], [*cands[0:2], cands[3]]]
    pooled = []
    for k, sub in enumerate(subs):
        sub_files = RunFiles(root / "separate" / f"budget{k}")
        sub_files.root.mkdir(parents=True)
        sub = [replace(c, id=i, accuracy=round(c.accuracy - 0.1 * k, 4), on_front=False)
               for i, c in enumerate(sub)]
        write_candidates(sub_files.candidates, sub)
        torch.manual_seed(100 + k)
        save_checkpoint(sub_files.checkpoint, {"format": 1, "epoch": 1,
                                               "supernet": build_supernet(space).state_dict()})
        pooled += [replace(c, id=len(pooled) + i) for i, c in enumerate(sub)]
    params = [c.params for c in pooled]
    objective = Objective("params", (float(max(params)),), None, float(min(params)),
                          float(max(params)))
    marked, front = front_from_candidates(space.name, "digits", objective, pooled)
    write_candidates(files.candidates, marked)
    write_front(files, front)
    files.checkpoint.unlink()
    return load_run(root)


def _plain_weights(net: nn.Module) -> dict:
    return {k: v for k, v in net.state_dict().items()
            if "running_" not in k and "num_batches" not in k}


def test_separate_run_exports_each_ids_own_supernet(tmp_path) -> None:
    """Ids 0 and 3 are one architecture measured by sub-runs 0 and 1: each exports the
    supernet of the sub-run that measured it."""
    from moonas.checkpoint import load_checkpoint
    from moonas.pricing import run_space
    from moonas.nets import build_supernet

    run = _separate_run(tmp_path / "sep")
    by_id = {c.id: c for c in run.candidates}
    assert by_id[0].arch == by_id[3].arch and by_id[0].accuracy != by_id[3].accuracy
    space = run_space(run)
    for cid, k in ((0, 0), (3, 1), (5, 1)):
        out = tmp_path / f"net{cid}.pt"
        export_network(run, cid, "pt", out)
        supernet = build_supernet(space)
        supernet.load_state_dict(load_checkpoint(
            run.dir / "separate" / f"budget{k}" / "checkpoint.pt")["supernet"])
        expected = _plain_weights(supernet.extract(by_id[cid].arch))
        got = _plain_weights(load_pt(out))
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            torch.testing.assert_close(got[key], value)
        meta = json.loads(sidecar_path(out).read_text())
        assert f"supernet of sub-run separate/budget{k}," in meta["weights"]
        assert meta["accuracy"]["supernet_val"] == by_id[cid].accuracy
    first = _plain_weights(load_pt(tmp_path / "net0.pt"))
    assert any(not torch.equal(v, _plain_weights(load_pt(tmp_path / "net3.pt"))[k])
               for k, v in first.items())


def test_separate_run_init_supernet_trains_from_the_ids_own_supernet(tmp_path,
                                                                      monkeypatch) -> None:
    import moonas.deploy.train as train_module

    run = _separate_run(tmp_path / "sep")
    started = {}

    class Stop(Exception):
        pass

    def fake_train(net, *args, **kwargs):
        started.update(_plain_weights(net))
        raise Stop

    monkeypatch.setattr(train_module, "train_standalone", fake_train)
    with pytest.raises(Stop):
        train_module.train_candidate(run, 3, epochs=1, init="supernet", device="cpu")
    expected = _plain_weights(load_network(run, 3, "supernet")[0])
    assert started.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(started[key], value)
    assert any(not torch.equal(v, started[k])
               for k, v in _plain_weights(load_network(run, 0, "supernet")[0]).items())


def test_separate_run_folders_that_disagree_fail_with_one_line(tmp_path) -> None:
    from moonas.deploy.weights import supernet_network
    from moonas.run import read_candidates, write_candidates

    run = _separate_run(tmp_path / "sep")
    with pytest.raises(MoonasError, match="2 sub-runs .budget0, budget1. measured it") as info:
        supernet_network(run, run.candidates[0].arch)
    assert "give the candidate id" in str(info.value) and "\n" not in str(info.value)
    sub = run.dir / "separate" / "budget1" / "candidates.csv"
    rows = list(read_candidates(sub))
    write_candidates(sub, [rows[2], rows[1], rows[0]])  # same count, other order
    with pytest.raises(CheckpointError, match="id 3 of .* the folders disagree") as info:
        load_network(run, 3, "supernet")
    assert "\n" not in str(info.value)
    write_candidates(sub, rows[:2])  # a row missing: the ids no longer map back
    with pytest.raises(CheckpointError, match="5 candidates in 2 sub-runs, .* pools 6"):
        export_network(run, 0, "pt", tmp_path / "net.pt")
    assert not (tmp_path / "net.pt").exists()


def test_a_latency_runs_sidecar_records_its_devices_latency_without_flags(tmp_path,
                                                                         caplog) -> None:
    """As `moonas pick` prices it: the run's own table, else the latencies its search recorded;
    a device named on the command line is recorded besides it."""
    from moonas.deploy.pick import pick
    from test_deploy_pick import _toy_latency, make_latency_run

    table = tmp_path / "toy.json"
    run = load_run(make_latency_run(tmp_path / "lat", table))
    limit = run.front.budgets[1]
    chosen = pick(run, max_latency_ms=limit)
    cid = chosen.candidate.id
    recorded = next(c.latency_ms for c in run.candidates if c.id == cid)
    out = tmp_path / "net.pt"

    def costs(*flags: str) -> dict:
        code, message = _cli(["export", str(run.dir), "--id", str(cid), "--format", "pt",
                              "--out", str(out), *flags])
        assert code == 0, message
        return json.loads(sidecar_path(out).read_text())["costs"]

    c = chosen.candidate
    assert costs() == {"params": c.params, "macs": c.macs,
                       "latency_ms:toy": round_ms(chosen.latency_ms)}
    assert chosen.latency_ms == pytest.approx(recorded)
    assert costs("--device", "toy") == costs()
    _toy_latency(run, device="other").save(tmp_path / "other.json")
    both = costs("--latency-table", str(tmp_path / "other.json"))
    assert set(both) == {"params", "macs", "latency_ms:toy", "latency_ms:other"}
    table.unlink()
    caplog.clear()
    assert costs()["latency_ms:toy"] == round_ms(recorded)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "not found" in warnings[0] and "recorded" in warnings[0]
    # Library callers get the same default.
    result = export_network(run, cid, "pt", tmp_path / "lib.pt")
    assert result.meta["costs"]["latency_ms:toy"] == round_ms(recorded)
    assert export_network(run, cid, "pt", tmp_path / "none.pt",
                          latency={}).meta["costs"] == {"params": c.params, "macs": c.macs}


def test_a_latency_run_without_table_or_records_exports_without_its_latency(tmp_path,
                                                                           caplog) -> None:
    from test_deploy_pick import make_latency_run

    table = tmp_path / "toy.json"
    run = load_run(make_latency_run(tmp_path / "lat", table, record=False))
    table.unlink()
    cid = run.front.picks[0]
    out = tmp_path / "net.pt"
    caplog.clear()
    code, message = _cli(["export", str(run.dir), "--id", str(cid), "--format", "pt",
                          "--out", str(out)])
    assert code == 0, message
    assert set(json.loads(sidecar_path(out).read_text())["costs"]) == {"params", "macs"}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "leaves out latency_ms:toy" in warnings[0]
    assert "\n" not in warnings[0]
    # Asked for by name, the device must be priced: one line, nothing written.
    out.unlink()
    code, message = _cli(["export", str(run.dir), "--id", str(cid), "--format", "pt",
                          "--out", str(out), "--device", "toy"])
    assert code == 1 and "not found" in message and "\n" not in message and not out.exists()


def test_a_benchmark_latency_of_other_settings_is_marked_relative_in_the_sidecar(
        run, reference, tmp_path) -> None:
    """NAS-Bench-201's raspi4 column times the benchmark's network; this run's nb201 space is
    smaller, so the sidecar says the figure is relative (it was said on stderr only)."""
    from conftest import NB201_CSV

    cid, _, _ = reference
    out = tmp_path / "rel.onnx"
    code, message = _cli(["export", str(run.dir), "--id", str(cid), "--format", "onnx",
                          "--out", str(out), "--device", "raspi4",
                          "--latency-table", str(NB201_CSV)])
    assert code == 0, message
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["costs"]["latency_ms:raspi4"] > 0
    note = meta["latency_notes"]["latency_ms:raspi4"]
    assert "NAS-Bench-201's CIFAR-10 network" in note and "relative measure" in note
    assert "latency_notes" not in export_network(run, cid, "pt", tmp_path / "plain.pt").meta


def test_a_missing_dataset_names_the_run_file_that_holds_its_settings(run, tmp_path) -> None:
    """export and train have no --set: the fix (data.root, data.download) is in RUN/config.yaml."""
    from dataclasses import replace

    from moonas.deploy.weights import run_data
    from moonas.errors import DataError

    data = replace(run.config.data, name="mnist", root=str(tmp_path / "gone"))
    moved = replace(run, config=replace(run.config, data=data))
    with pytest.raises(DataError) as exc:
        run_data(moved)
    message = str(exc.value)
    assert "mnist not found under" in message and "data.root" in message
    assert message.endswith(f"(this run's data settings are in {run.dir / 'config.yaml'})")


def test_export_never_overwrites_the_runs_files_or_another_exports_sidecar(tmp_path) -> None:
    """`--out RUN/checkpoint.pt` would destroy the supernet; `--out m.onnx.json` an earlier
    export's sidecar: refused with one line, before anything is written."""
    root = make_run(tmp_path / "run", n=6, with_log=False)
    run = load_run(root)
    cid = run.front.picks[0]
    (root / "trained" / str(cid)).mkdir(parents=True)
    kept = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    for fmt, out in (("pt", root / "checkpoint.pt"), ("pt", root / "sub" / ".." / "pareto.csv"),
                     ("pt", root / "trained" / str(cid) / "weights.pt"),
                     ("torchscript", root / "config.yaml"), ("onnx", root / "log.jsonl"),
                     ("pt", root / "manifest")):  # its sidecar would be RUN/manifest.json
        code, message = _cli(["export", str(root), "--id", str(cid), "--format", fmt,
                              "--out", str(out)])
        assert code == 1 and "which the run" in message and "\n" not in message, message
        if out.name == "manifest":
            assert "its sidecar manifest.json would overwrite" in message
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == kept
    # A first export, then one whose model bytes would land on its sidecar.
    first = tmp_path / "m.onnx"
    assert _cli(["export", str(root), "--id", str(cid), "--format", "onnx",
                 "--out", str(first)])[0] == 0
    side = sidecar_path(first).read_bytes()
    code, message = _cli(["export", str(root), "--id", str(cid), "--format", "onnx",
                          "--out", str(sidecar_path(first))])
    assert code == 1 and "sidecar" in message and f"e.g. {first}" in message
    assert sidecar_path(first).read_bytes() == side
    # Exporting to the same file again replaces it and its own sidecar.
    assert _cli(["export", str(root), "--id", str(cid), "--format", "onnx",
                 "--out", str(first)])[0] == 0
    # A file beside OUT that is not its sidecar (here a latency table) is kept.
    table = tmp_path / "lat.json"
    table.write_text('{"format": "moonas-latency/1"}')
    code, message = _cli(["export", str(root), "--id", str(cid), "--format", "pt",
                          "--out", str(tmp_path / "lat")])
    assert code == 1 and "not the sidecar of an earlier export" in message
    assert table.read_text() == '{"format": "moonas-latency/1"}'


def test_a_benchmark_latency_recorded_without_its_table_keeps_its_relative_note(
        tmp_path, caplog) -> None:
    """A run searched on NAS-Bench-201's raspi4 column for a smaller nb201 space, whose
    nb201.csv is gone: the recorded latencies price the export, and the note that they are
    only relative, which depends on the space alone, is kept."""
    from dataclasses import replace

    import yaml

    from moonas.deploy.export import sidecar_latency
    from moonas.run import write_candidates, write_front

    root = make_run(tmp_path / "run", n=6, with_log=False)
    run = load_run(root)
    files = RunFiles(root)
    config = yaml.safe_load(files.config.read_text())
    config["search"].update(cost="latency:raspi4", latency_table=str(tmp_path / "nb201.csv"))
    files.config.write_text(yaml.safe_dump(config, sort_keys=False))
    timed = {c.id: 1.0 + 0.1 * c.id for c in run.candidates}
    write_candidates(files.candidates, [replace(c, latency_ms=timed[c.id])
                                        for c in run.candidates])
    write_front(files, replace(run.front, architectures=tuple(
        replace(c, latency_ms=timed[c.id]) for c in run.front.architectures)))
    run = load_run(root)
    cid = run.front.picks[0]
    latency, notes, measured = sidecar_latency(run, cid)
    assert latency == {"raspi4": round_ms(timed[cid])} and measured == {}
    assert "relative measure" in notes["raspi4"]
    out = tmp_path / "net.pt"
    meta = export_network(run, cid, "pt", out).meta
    assert "NAS-Bench-201's CIFAR-10 network" in meta["latency_notes"]["latency_ms:raspi4"]
    # A profiled (additive) table measures the space's own networks: no note.
    config["search"]["latency_table"] = str(tmp_path / "gone.json")
    files.config.write_text(yaml.safe_dump(config, sort_keys=False))
    assert sidecar_latency(load_run(root), cid)[1] == {}


class _Killed(BaseException):
    """kill -9 standing in: nothing after it runs, no `except Exception` catches it."""


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 2, 1), nn.Flatten())


@pytest.mark.parametrize("killed_at", [1, 2])
def test_a_kill_between_the_network_and_its_sidecar_never_leaves_a_silent_mismatch(
        tmp_path, monkeypatch, killed_at) -> None:
    """The two files are replaced by two renames: killed at either, the pair on disk is the old
    one, or the new network beside a sidecar whose digest gives it away; exporting again
    mends it."""
    import hashlib

    import moonas.atomic
    from moonas.deploy.export import export_module

    out = tmp_path / "net.pt"
    export_module(_net(0), "pt", out, (1, 2, 2), {"id": 0})
    old = out.read_bytes(), sidecar_path(out).read_bytes()
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == killed_at:
            raise _Killed
        real(src, dst)

    monkeypatch.setattr(moonas.atomic.os, "replace", replace)
    with pytest.raises(_Killed):
        export_module(_net(1), "pt", out, (1, 2, 2), {"id": 1})
    monkeypatch.setattr(moonas.atomic.os, "replace", real)
    now = out.read_bytes(), sidecar_path(out).read_bytes()
    if now != old:  # the new network landed: the old sidecar must not pass for its own
        assert now[0] != old[0] and now[1] == old[1]
        meta = json.loads(now[1])
        assert meta["file_sha256"] != hashlib.sha256(now[0]).hexdigest()
        from moonas.deploy.export import read_sidecar

        with pytest.raises(MoonasError, match="describes another net.pt .*export to .* again"
                           ) as info:
            read_sidecar(out)
        assert "\n" not in str(info.value)
    assert killed_at == 1 or now != old  # both kill points were reached
    from moonas.deploy.export import read_sidecar

    if now == old:
        assert read_sidecar(out)["id"] == 0
    export_module(_net(1), "pt", out, (1, 2, 2), {"id": 1})
    meta = read_sidecar(out)
    assert meta["id"] == 1 and meta["file_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()


def test_read_sidecar_names_a_missing_or_foreign_sidecar(tmp_path, monkeypatch) -> None:
    from moonas.deploy.export import export_module, read_sidecar

    out = tmp_path / "net.pt"
    calls = []
    real = os.replace

    def replace(src, dst):  # the first export of `out` killed before its sidecar
        calls.append(dst)
        if len(calls) == 2:
            raise _Killed
        real(src, dst)

    import moonas.atomic

    monkeypatch.setattr(moonas.atomic.os, "replace", replace)
    with pytest.raises(_Killed):
        export_module(_net(0), "pt", out, (1, 2, 2), {})
    monkeypatch.setattr(moonas.atomic.os, "replace", real)
    assert out.is_file() and not sidecar_path(out).exists()
    with pytest.raises(MoonasError, match="has no sidecar net.pt.json"):
        read_sidecar(out)
    sidecar_path(out).write_text(json.dumps({"file": "other.pt"}))
    with pytest.raises(MoonasError, match="is not the sidecar of net.pt"):
        read_sidecar(out)
    sidecar_path(out).write_text('{"file": "net.p')
    with pytest.raises(MoonasError, match="unreadable"):
        read_sidecar(out)
    # A sidecar from before the digest was recorded is taken as it is.
    sidecar_path(out).write_text(json.dumps({"file": "net.pt", "format": "pt"}))
    assert read_sidecar(out)["format"] == "pt"


def test_export_over_a_torn_pair_mends_it(run, reference, tmp_path) -> None:
    """`moonas export` to the OUT of an export killed between its files replaces the pair."""
    from moonas.deploy.export import read_sidecar

    cid, _, _ = reference
    out = tmp_path / "net.onnx"
    export_network(run, cid, "onnx", out)
    assert read_sidecar(out)["file_sha256"]
    out.write_bytes(out.read_bytes() + b"\0")  # another network's bytes, the sidecar unchanged
    with pytest.raises(MoonasError, match="sha256 differs"):
        read_sidecar(out)
    assert _cli(["export", str(run.dir), "--id", str(cid), "--format", "onnx",
                 "--out", str(out)])[0] == 0
    assert read_sidecar(out)["id"] == cid


def test_the_sidecar_says_how_an_image_becomes_the_input(run, reference, tmp_path) -> None:
    """digits at their native 8x8: no resize, pixels 0..16 divided by 16, grayscale."""
    cid, _, _ = reference
    meta = export_network(run, cid, "pt", tmp_path / "net.pt").meta
    pre = meta["input"]["preprocess"]
    assert pre["resize"] is None and pre["channels"] == "grayscale"
    assert pre["scale"]["divide_by"] == 16 and pre["steps"] == ["channels", "scale", "normalise"]
    from moonas.data import preprocess_description

    assert pre == preprocess_description("digits")
    assert "/ 16)" in meta["normalisation"]["formula"]
    assert json.loads(sidecar_path(tmp_path / "net.pt").read_text())["input"]["preprocess"] == pre


def test_an_imagefolder_export_following_its_sidecar_gives_the_runs_outputs(
        tmp_path, monkeypatch) -> None:
    """An imagefolder run on non-square images: the training data stretched them to 32x32 on
    their 8-bit pixels (torchvision's Resize, not a crop). A deployment that reads only the
    sidecar, applies its `input.preprocess` to an image file with PIL and numpy, and runs the
    ONNX file gets what the network gives on the pipeline's own input for that file."""
    from PIL import Image

    import test_deploy_pick
    from moonas.deploy.weights import run_data
    from test_data import write_noisy_folder, by_hand

    imgs = tmp_path / "imgs"
    write_noisy_folder(imgs)
    # make_run's builder with this run's data (its cache is keyed on digits runs: not used).
    monkeypatch.setattr(test_deploy_pick, "RUN_OVERRIDES", [
        "data.name=imagefolder", f"data.root={imgs}", "space.input_size=32",
        "space.n_classes=2", "search.bn_batches=2"])
    folder_run = load_run(test_deploy_pick._build_run(tmp_path / "run", n=6, seed=0,
                                                      with_log=False))
    cid = folder_run.front.picks[-1]
    out = tmp_path / "net.onnx"
    export_network(folder_run, cid, "onnx", out)
    meta = json.loads(sidecar_path(out).read_text())
    pre = meta["input"]["preprocess"]
    assert meta["input"]["shape"] == [1, 3, 32, 32]
    assert pre["resize"]["to"] == [32, 32] and pre["resize"]["mode"] == "stretch"
    assert pre["resize"]["interpolation"] == "bilinear" and pre["resize"]["on"] == "uint8"
    assert pre["channels"] == "RGB" and pre["steps"][:2] == ["channels", "resize"]

    data = run_data(folder_run)
    net, _ = load_network(folder_run, cid)
    mean, std = meta["normalisation"]["mean"], meta["normalisation"]["std"]
    files = data.val.source.samples
    views = [data.val[i][0] for i in range(len(data.val))]
    sizes = [Image.open(files[int(j)][0]).size for j in data.val.indices]
    assert any(w != h for w, h in sizes)  # non-square files: a crop would give other inputs
    x = torch.stack([by_hand(Image.open(files[int(j)][0]), pre, mean, std)
                     for j in data.val.indices])
    torch.testing.assert_close(x, torch.stack(views), atol=2e-5, rtol=0)
    with torch.no_grad():
        expected = net(torch.stack(views)).numpy()
    from moonas.deploy.export import onnx_outputs

    np.testing.assert_allclose(onnx_outputs(out, x.numpy()), expected, atol=1e-4, rtol=0)


def test_the_sidecar_says_how_its_latency_was_timed_to_six_significant_digits(
        run, reference, tmp_path) -> None:
    """The threads and statistic a table was timed with stayed in the table: the sidecar
    records them beside the figure (which holds for those conditions only); and a
    sub-millisecond latency kept only 4 decimals (0.01182678 -> 0.0118): now 6 significant
    digits."""
    from moonas.costs.latency import AdditiveLatency
    from moonas.pricing import run_space

    cid, _, _ = reference
    space = run_space(run)
    table = np.tile(np.arange(5.0) * 1.7e-4, (6, 1))
    timed = {"threads": 2, "batch": 1, "statistic": "min", "repeats": 9,
             "machine": {"cpus": 8}, "fit_mape_percent": 1.0}
    model = AdditiveLatency(device="tiny", base=0.01182678, table=table,
                            valid=np.ones((6, 5), bool), space=space.settings(), measured=timed)
    model.save(tmp_path / "tiny.json")
    out = tmp_path / "net.pt"
    code, message = _cli(["export", str(run.dir), "--id", str(cid), "--format", "pt", "--out",
                          str(out), "--latency-table", str(tmp_path / "tiny.json")])
    assert code == 0, message
    meta = json.loads(sidecar_path(out).read_text())
    exact = float(model.price(np.array(next(c.arch for c in run.candidates if c.id == cid)))[0])
    assert meta["costs"]["latency_ms:tiny"] == pytest.approx(exact, rel=1e-5)
    assert meta["costs"]["latency_ms:tiny"] == round_ms(exact)
    assert meta["latency_measured"] == {"latency_ms:tiny": {"batch": 1, "threads": 2,
                                                            "statistic": "min", "repeats": 9}}
    # A benchmark's column says nothing of how it was timed: no record, no empty one.
    from conftest import NB201_CSV

    meta = export_network(run, cid, "pt", tmp_path / "b.pt",
                          latency={"raspi4": 1.0}).meta
    assert "latency_measured" not in meta
    code, message = _cli(["export", str(run.dir), "--id", str(cid), "--format", "pt", "--out",
                          str(tmp_path / "c.pt"), "--device", "raspi4", "--latency-table",
                          str(NB201_CSV)])
    assert code == 0, message
    assert "latency_measured" not in json.loads(sidecar_path(tmp_path / "c.pt").read_text())


def test_export_and_load_network_leave_the_callers_rng_alone(run, reference, tmp_path) -> None:
    """Building the network draws from torch's RNG: the caller's state is kept."""
    cid, _, _ = reference
    torch.manual_seed(123)
    state = torch.get_rng_state()
    net, _ = load_network(run, cid)
    assert torch.equal(torch.get_rng_state(), state)
    export_network(run, cid, "pt", tmp_path / "n.pt")
    assert torch.equal(torch.get_rng_state(), state)
    assert load_pt(tmp_path / "n.pt") is not None


def test_an_id_of_the_wrong_type_names_the_argument(run, reference, tmp_path) -> None:
    from moonas.errors import ArgumentError

    cid, _, _ = reference
    for bad, shown in ((str(cid), f"str '{cid}'"), (float(cid), f"float {float(cid)}"),
                       (True, "bool True")):
        with pytest.raises(ArgumentError, match=rf"cid \(the candidate id\) must be an int, "
                                                rf"got {shown}"):
            export_network(run, bad, "pt", tmp_path / "n.pt")
        with pytest.raises(ArgumentError, match=r"cid \(the candidate id\) must be an int"):
            load_network(run, bad)
    assert not (tmp_path / "n.pt").exists()
    assert export_network(run, np.int64(cid), "pt", tmp_path / "n.pt").meta["id"] == cid
