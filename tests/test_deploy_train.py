"""`moonas train`: retraining inside the run, reuse, resume, settings clashes, use by export."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
import torch

from moonas.checkpoint import load_checkpoint
from moonas.deploy.export import export_network, sidecar_path
from moonas.deploy.train import train_candidate
from moonas.deploy.weights import TrainedFiles, load_network, read_trained_metrics, run_data
from moonas.errors import CheckpointError, ConfigError, MoonasError
from moonas.run import load_run

from test_deploy_pick import make_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run with candidate `cid` retrained for 2 epochs, and the metrics returned."""
    run = load_run(make_run(tmp_path_factory.mktemp("train") / "run"))
    cid = run.front.picks[0]
    metrics = train_candidate(run, cid, epochs=2)
    return run, cid, metrics


def test_training_stores_weights_and_metrics_in_the_run(trained) -> None:
    run, cid, metrics = trained
    files = TrainedFiles.of(run.dir, cid)
    assert files.root == run.dir / "trained" / str(cid)
    assert files.weights.is_file() and files.metrics.is_file() and files.checkpoint.is_file()
    assert 0 <= metrics["test_accuracy"] <= 1 and 0 <= metrics["val_accuracy"] <= 1
    assert metrics["recipe"]["epochs"] == 2 and metrics["init"] == "scratch"
    assert len(metrics["history"]) == 2
    assert read_trained_metrics(run.dir, cid) == json.loads(files.metrics.read_text())
    state = load_checkpoint(files.weights)
    assert tuple(state["arch"]) == next(c.arch for c in run.candidates if c.id == cid)


def test_the_device_is_recorded_and_a_missing_gpu_is_one_line(trained, monkeypatch) -> None:
    run, cid, metrics = trained
    assert metrics["device"] == "cpu"
    files = TrainedFiles.of(run.dir, cid)
    stamp = files.weights.stat().st_mtime_ns
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="--device='cuda'.*no CUDA GPU"):
        train_candidate(run, cid, epochs=2, device="cuda")
    with pytest.raises(ConfigError, match="--device='tpu'"):
        train_candidate(run, cid, epochs=2, device="tpu")
    assert files.weights.stat().st_mtime_ns == stamp
    # Another device is no other setting: the finished training is reused.
    assert train_candidate(run, cid, epochs=2, device="cpu") == metrics


def test_same_settings_reuse_other_settings_refuse(trained) -> None:
    run, cid, metrics = trained
    files = TrainedFiles.of(run.dir, cid)
    stamp = files.weights.stat().st_mtime_ns
    assert train_candidate(run, cid, epochs=2) == metrics
    assert files.weights.stat().st_mtime_ns == stamp
    with pytest.raises(MoonasError, match="epochs 2 vs 3.*--restart"):
        train_candidate(run, cid, epochs=3)
    with pytest.raises(ConfigError, match="--epochs"):
        train_candidate(run, cid, epochs=0)
    with pytest.raises(MoonasError, match="not a candidate"):
        train_candidate(run, 12345)
    assert files.weights.stat().st_mtime_ns == stamp


def test_an_interrupted_training_resumes_to_the_same_weights(trained, tmp_path) -> None:
    run, cid, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(run.dir, copy, ignore=shutil.ignore_patterns("trained"))
    other = load_run(copy)

    calls = []

    def stop(done: int, total: int, info: dict) -> None:
        calls.append((done, total, info["phase"]))
        if info["epoch"] == 1:  # the first epoch's checkpoint is written; stop in the second
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_candidate(other, cid, epochs=2, progress=stop)
    # Progress counts the steps of both epochs, one call per step, each naming its phase.
    assert [c[0] for c in calls] == list(range(1, len(calls) + 1))
    assert {c[1] for c in calls} == {2 * (len(calls) - 1)} and {c[2] for c in calls} == {"train"}
    files = TrainedFiles.of(copy, cid)
    assert files.checkpoint.is_file() and not files.metrics.exists()
    # A kill -9 in the middle of a write leaves its temp file: the resume, holding the
    # folder, removes it (a lock's temp file may be another process's, and stays).
    stale = files.root / ".weights.pt.k3x9_q1z.tmp"
    other_lock = files.root / ".moonas-lock.a1b2c3d4.tmp"
    stale.write_bytes(b"half a file")
    other_lock.write_text("{}")
    resumed = train_candidate(other, cid, epochs=2)
    assert not stale.exists() and other_lock.exists()
    assert resumed["history"] == trained[2]["history"]
    a = load_checkpoint(files.weights)["state_dict"]
    b = load_checkpoint(TrainedFiles.of(run.dir, cid).weights)["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    # Saved through a file object: the same weights are the same bytes (no temp name inside).
    assert files.weights.read_bytes() == TrainedFiles.of(run.dir, cid).weights.read_bytes()


def test_export_prefers_the_retrained_weights(trained, tmp_path) -> None:
    run, cid, metrics = trained
    net, source = load_network(run, cid)
    assert source == "trained"
    out = tmp_path / "net.onnx"
    result = export_network(run, cid, "onnx", out)
    meta = json.loads(sidecar_path(out).read_text())
    assert result.weights == "trained" and meta["weights"].startswith("retrained")
    assert meta["accuracy"]["trained_test"] == metrics["test_accuracy"]
    supernet, _ = load_network(run, cid, "supernet")
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert not np.allclose(net(x).numpy(), supernet(x).numpy())


def test_supernet_init_starts_from_the_supernet(tmp_path) -> None:
    run = load_run(make_run(tmp_path / "run"))
    cid = run.front.picks[1]
    start, _ = load_network(run, cid, "supernet")
    metrics = train_candidate(run, cid, epochs=1, init="supernet", lr=1e-12)
    assert metrics["init"] == "supernet" and metrics["recipe"]["lr"] == 1e-12
    net, _ = load_network(run, cid, "trained")
    for (key, a), b in zip(start.state_dict().items(), net.state_dict().values()):
        if key.endswith("weight") and a.dim() == 4:
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_corrupt_weights_fail_with_one_line(tmp_path) -> None:
    run = load_run(make_run(tmp_path / "run"))
    cid = run.front.picks[0]
    files = TrainedFiles.of(run.dir, cid)
    files.root.mkdir(parents=True)
    files.weights.write_bytes(b"PK\x03\x04 not really a zip")
    files.metrics.write_text(json.dumps({"id": cid, "test_accuracy": 0.5}))
    with pytest.raises(CheckpointError, match="corrupt or truncated") as info:
        load_network(run, cid)
    assert "\n" not in str(info.value)
    with pytest.raises(MoonasError, match="has not been retrained"):
        load_network(run, run.front.picks[-1], "trained")


def test_a_finished_training_with_corrupt_weights_writes_them_again(tmp_path, caplog) -> None:
    run = load_run(make_run(tmp_path / "run"))
    cid = run.front.picks[0]
    metrics = train_candidate(run, cid, epochs=1)
    files = TrainedFiles.of(run.dir, cid)
    good = load_checkpoint(files.weights)["state_dict"]
    files.weights.write_bytes(b"junk")
    again = train_candidate(run, cid, epochs=1)  # no --restart needed, no epoch trained again
    # The warning says what happens, not the fix the plain error would give ("delete it").
    assert "is corrupt or truncated" in caplog.text and "writing it again" in caplog.text
    assert "delete it" not in caplog.text
    assert again["test_accuracy"] == metrics["test_accuracy"]
    assert again["history"] == metrics["history"]
    restored = load_checkpoint(files.weights)["state_dict"]
    for key, value in good.items():
        torch.testing.assert_close(restored[key], value, rtol=0, atol=0)
    # With the training's checkpoint gone too, nothing is left to rebuild from: one line.
    files.weights.write_bytes(b"junk")
    files.checkpoint.write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="corrupt or truncated") as info:
        train_candidate(run, cid, epochs=1)
    assert "\n" not in str(info.value)


def test_cli_train(tmp_path, capsys) -> None:
    from moonas.deploy.cli import register

    run_dir = make_run(tmp_path / "run")
    cid = load_run(run_dir).front.picks[0]
    parser = argparse.ArgumentParser(prog="moonas")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", str(run_dir), "--id", str(cid), "--epochs", "1", "-q"])
    assert args.func(args) == 0
    assert f"id {cid} retrained" in capsys.readouterr().out
    assert (run_dir / "trained" / str(cid) / "metrics.json").is_file()


def test_a_job_that_failed_before_training_blocks_nothing(tmp_path) -> None:
    run = load_run(make_run(tmp_path / "run"))
    cid = run.front.picks[0]
    files = TrainedFiles.of(run.dir, cid)
    checkpoint = run.dir / "checkpoint.pt"
    good = checkpoint.read_bytes()
    checkpoint.write_bytes(good[:2000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        train_candidate(run, cid, epochs=1, init="supernet")
    assert not files.job.exists()
    # A job.json left without any progress (an older failure) is replaced, not a clash.
    files.root.mkdir(parents=True)
    files.job.write_text(json.dumps({"id": cid, "init": "supernet", "recipe": {"epochs": 9}}))
    metrics = train_candidate(run, cid, epochs=1)
    assert metrics["init"] == "scratch" and json.loads(files.job.read_text())["init"] == "scratch"
    with pytest.raises(MoonasError, match="other settings.*--restart"):
        train_candidate(run, cid, epochs=2)  # with progress, other settings still refuse


def test_a_live_trainer_holds_its_folder_and_a_stop_releases_it(trained, tmp_path,
                                                                 caplog) -> None:
    import subprocess

    from moonas.lock import LOCK, _start_time

    run, cid, metrics = trained
    files = TrainedFiles.of(run.dir, cid)
    other = subprocess.Popen(["sleep", "60"])  # a live process standing in for another trainer
    try:
        (files.root / LOCK).write_text(json.dumps({
            "pid": other.pid, "host": __import__("socket").gethostname(),
            "start": _start_time(other.pid), "since": "then"}))
        for restart in (False, True):
            with pytest.raises(MoonasError, match=f"is being trained by process {other.pid}"):
                train_candidate(run, cid, epochs=2, restart=restart)
        assert files.complete and read_trained_metrics(run.dir, cid) == metrics
    finally:
        other.kill()
        other.wait()
    assert train_candidate(run, cid, epochs=2) == metrics  # a dead holder's lock is taken over
    assert not (files.root / LOCK).exists()

    copy = tmp_path / "copy"
    shutil.copytree(run.dir, copy, ignore=shutil.ignore_patterns("trained"))

    def stop(done: int, total: int, info: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_candidate(load_run(copy), cid, epochs=2, progress=stop)
    assert not (TrainedFiles.of(copy, cid).root / LOCK).exists()
    # The stop names the command that continues it, with its non-default settings.
    assert f"continue it with 'moonas train {copy} --id {cid} --epochs 2'" in caplog.text
    with pytest.raises(ConfigError, match="--lr must be a finite number > 0, got nan"):
        train_candidate(run, cid, epochs=2, lr=float("nan"))


def test_damaged_or_unfinished_retrained_weights_name_the_command_that_mends_them(
        trained, tmp_path) -> None:
    run, cid, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(run.dir, copy)
    files = TrainedFiles.of(copy, cid)
    files.weights.write_bytes(files.weights.read_bytes()[:1000])
    # The command as the training ran (its --epochs 2 is no default): it works as written.
    with pytest.raises(CheckpointError, match=r"damaged or truncated: run the same 'moonas "
                       rf"train {copy} --id {cid} --epochs 2' again"):
        load_network(load_run(copy), cid, "trained")
    files.metrics.unlink()  # as if stopped part-way: a checkpoint, no metrics
    with pytest.raises(MoonasError, match=r"was stopped before its end: finish it with the "
                       rf"command that started it, 'moonas train {copy} --id {cid} --epochs 2'"):
        load_network(load_run(copy), cid, "trained")


def test_the_mending_command_repeats_every_setting_that_is_no_default(tmp_path) -> None:
    from moonas.deploy.weights import train_command

    job = tmp_path / "job.json"
    job.write_text(json.dumps({"init": "supernet", "recipe": {"epochs": 30, "lr": 0.1}}))
    assert train_command("runs/a b", 8, job) == ("moonas train 'runs/a b' --id 8 --lr 0.1 "
                                                 "--init supernet")
    job.write_text(json.dumps({"init": "scratch", "recipe": {"epochs": 30, "lr": 0.05}}))
    assert train_command("r", 8, job) == "moonas train r --id 8"
    assert train_command("r", 8, tmp_path / "missing.json") == "moonas train r --id 8"


@pytest.mark.parametrize("restart", [False, True])
def test_the_lock_is_taken_before_anything_loads_and_given_back_on_every_exit(
        trained, tmp_path, monkeypatch, restart) -> None:
    """Taken where the old code only checked: a second `moonas train` of the id started while
    this one loads its data is refused, and --restart clears the old training under it."""
    import os

    import moonas.deploy.train as train_module
    from moonas.errors import DataError, Terminated
    from moonas.lock import LOCK

    run, cid, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(run.dir, copy, ignore=None if restart else shutil.ignore_patterns("trained"))
    other = load_run(copy)
    files = TrainedFiles.of(copy, cid)
    seen = []
    real = train_module.run_space

    def loading(r):
        seen.append((json.loads((files.root / LOCK).read_text())["pid"],
                     sorted(p.name for p in files.root.iterdir())))
        raise DataError("the data is gone")

    monkeypatch.setattr(train_module, "run_space", loading)
    with pytest.raises(DataError):
        train_candidate(other, cid, epochs=1, restart=restart)
    assert seen == [(os.getpid(), [LOCK])]  # held (and, on --restart, the old training gone)
    # Given back; and the folders this job made are gone again (it trained nothing).
    assert not any(p.is_file() for p in (copy / "trained").rglob("*"))
    assert restart or not (copy / "trained").exists()

    monkeypatch.setattr(train_module, "run_space", real)

    def stop(done: int, total: int, info: dict) -> None:
        assert json.loads((files.root / LOCK).read_text())["pid"] == os.getpid()
        raise Terminated  # SIGTERM, as the CLI raises it

    with pytest.raises(Terminated):
        train_candidate(other, cid, epochs=1, progress=stop)
    assert not (files.root / LOCK).exists() and files.job.is_file()


def test_metrics_name_the_gpu_as_the_search_manifest_does(trained, monkeypatch) -> None:
    from moonas.deploy.train import _metrics, default_recipe
    from moonas.deploy.weights import find_candidate
    from moonas.distributed import SINGLE
    from moonas.retrain import TrainResult

    run, cid, metrics = trained
    assert "gpu" not in metrics  # trained on the CPU
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU 80GB")
    result = TrainResult(val_accuracy=0.5, test_accuracy=0.4, epochs=1, history=((0, 1.0),))
    on_gpu = _metrics(find_candidate(run, cid), run, "scratch", default_recipe(run), result,
                      torch.device("cuda", 0), SINGLE, 1.0)
    assert on_gpu["device"] == "cuda:0" and on_gpu["gpu"] == "Fake GPU 80GB"


def test_a_run_configured_for_a_gpu_names_the_device_flag_where_there_is_none(
        trained, monkeypatch) -> None:
    from dataclasses import replace

    from moonas.deploy.cli import register

    run, cid, _ = trained
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    on_gpu = replace(run, config=replace(run.config, device="cuda"))
    with pytest.raises(ConfigError, match=r"device='cuda' .*no CUDA GPU.*pass --device cpu"
                       ) as info:
        train_candidate(on_gpu, cid, epochs=2)
    assert "device=cpu" not in str(info.value) and "\n" not in str(info.value)
    # The command's own check, before any process starts, says the same.
    import moonas.deploy.cli as cli

    monkeypatch.setattr(cli, "_load_run", lambda path: on_gpu)
    parser = argparse.ArgumentParser(prog="moonas")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", str(run.dir), "--id", str(cid), "--processes", "2"])
    with pytest.raises(ConfigError, match="pass --device cpu"):
        args.precheck(args)


def test_a_retraining_of_another_architecture_is_no_retraining_of_this_one(
        trained, tmp_path, caplog) -> None:
    """What a --force search left, or a training of the old run finished into: pick, plot and
    export never show another architecture's retrained accuracy as this candidate's."""
    from moonas.deploy.cli import plot_runs
    from moonas.deploy.pick import pick

    run, cid, metrics = trained
    copy = tmp_path / "copy"
    shutil.copytree(run.dir, copy)
    files = TrainedFiles.of(copy, cid)
    arch = next(c.arch for c in run.candidates if c.id == cid)
    other_arch = [(v + 1) % 2 for v in arch]
    files.metrics.write_text(json.dumps({**metrics, "arch": other_arch}))
    other = load_run(copy)
    caplog.clear()
    assert read_trained_metrics(copy, cid, arch) is None
    assert "retraining of architecture" in caplog.text and "--restart" in caplog.text
    assert read_trained_metrics(copy, cid) is not None  # without the arch: as read
    chosen = pick(other, max_params=next(c.params for c in run.candidates if c.id == cid))
    assert chosen.candidate.id == cid and chosen.trained is None and chosen.weights == "supernet"
    assert plot_runs([run], tmp_path / "own.png")["series"][0]["trained"]  # drawn when its own
    assert plot_runs([other], tmp_path / "front.png")["series"][0]["trained"] == []
    net, source = load_network(other, cid)
    assert source == "supernet"


def test_a_damaged_metrics_record_is_written_again_without_training_an_epoch(
        trained, tmp_path, caplog) -> None:
    """A torn metrics.json beside whole weights: export of `auto` weights passes the retraining
    over, `--weights trained` still exports it, and `moonas train` says the file is damaged
    and writes it again from the last checkpoint, as it was; with the checkpoint gone too,
    it trains again."""
    run, cid, metrics = trained
    copy = tmp_path / "copy"
    shutil.copytree(run.dir, copy)
    other = load_run(copy)
    files = TrainedFiles.of(copy, cid)
    files.metrics.write_text(files.metrics.read_text()[:40])
    assert load_network(other, cid)[1] == "supernet"
    assert "is damaged (not JSON" in caplog.text and f"id {cid} counts as not retrained" in \
        caplog.text
    caplog.clear()
    meta = export_network(other, cid, "pt", tmp_path / "net.pt", weights="trained").meta
    assert meta["weights"].startswith("retrained") and "trained_test" not in meta["accuracy"]
    assert "the sidecar leaves out the retrained accuracies" in caplog.text
    caplog.clear()
    steps = []
    again = train_candidate(other, cid, epochs=2, progress=lambda *a: steps.append(a))
    assert steps == []  # no epoch trained again
    assert f"{files.metrics} is damaged" in caplog.text
    assert "writing it again from the training's last checkpoint" in caplog.text
    assert again["test_accuracy"] == metrics["test_accuracy"]
    assert again["history"] == metrics["history"]
    assert read_trained_metrics(copy, cid) == again
    # Damaged again, with nothing to rebuild it from: trained again, said so.
    files.metrics.write_text("{")
    files.checkpoint.unlink()
    caplog.clear()
    again = train_candidate(other, cid, epochs=2, progress=lambda *a: steps.append(a))
    assert steps and f"training id {cid} again (its checkpoint is gone)" in caplog.text
    assert read_trained_metrics(copy, cid) == again


def test_metrics_record_every_session_of_a_resumed_training(trained, tmp_path) -> None:
    """Stopped in its second epoch, resumed with another process count: `processes` is the
    finishing session's, `sessions` has both, with the epochs each trained."""
    run, cid, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(run.dir, copy, ignore=shutil.ignore_patterns("trained"))
    other = load_run(copy)
    files = TrainedFiles.of(copy, cid)

    def stop(done: int, total: int, info: dict) -> None:
        if info["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_candidate(other, cid, epochs=2, progress=stop)
    job = json.loads(files.job.read_text())
    assert [(s["processes"], s["first_epoch"]) for s in job["sessions"]] == [(1, 0)]
    # The first session stands in for one under --processes 2 (torchrun is too slow here).
    job["sessions"][0]["processes"] = 2
    files.job.write_text(json.dumps(job))
    metrics = train_candidate(other, cid, epochs=2)
    assert metrics["processes"] == 1
    assert [(s["processes"], s["device"], s["first_epoch"], s["epochs"])
            for s in metrics["sessions"]] == [(2, "cpu", 0, 1), (1, "cpu", 1, 1)]
    # Reused as it is: no session is added.
    assert train_candidate(other, cid, epochs=2)["sessions"] == metrics["sessions"]
    # --restart starts the record over.
    again = train_candidate(other, cid, epochs=1, restart=True)
    assert [(s["processes"], s["first_epoch"], s["epochs"]) for s in again["sessions"]] == \
        [(1, 0, 1)]


def test_the_sessions_record_counts_the_epochs_each_one_trained() -> None:
    from moonas.deploy.train import _sessions

    recorded = [{"processes": 4, "first_epoch": 0}, {"processes": 2, "first_epoch": 0},
                {"processes": 2, "first_epoch": 3}, {"processes": 1, "first_epoch": 10}]
    assert [s["epochs"] for s in _sessions(recorded, 10)] == [0, 3, 7, 0]
    assert _sessions(recorded[:1], 5) == [{"processes": 4, "first_epoch": 0, "epochs": 5}]
    assert _sessions([], 5) == []


def test_training_restores_the_callers_threads_and_rng_however_it_ends(tmp_path) -> None:
    """As `moonas.search` does: the run's `threads` and seed apply inside the training only."""
    run = load_run(make_run(tmp_path / "run"))
    cid = run.front.picks[0]
    assert run.config.threads is not None
    before = torch.get_num_threads()
    caller = run.config.threads + 2  # not the run's: a leak would show
    inside = []

    def stop(done: int, total: int, info: dict) -> None:
        inside.append(torch.get_num_threads())
        raise KeyboardInterrupt

    torch.set_num_threads(caller)
    try:
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        train_candidate(run, cid, epochs=1)
        assert torch.get_num_threads() == caller and torch.equal(torch.rand(3), expected)
        torch.manual_seed(123)
        with pytest.raises(KeyboardInterrupt):
            train_candidate(run, cid, epochs=2, restart=True, progress=stop)
        assert inside == [run.config.threads]  # the run's own count while it trained
        assert torch.get_num_threads() == caller and torch.equal(torch.rand(3), expected)
    finally:
        torch.set_num_threads(before)


def test_the_recipe_is_the_documented_one(tmp_path, monkeypatch) -> None:
    """README: SGD with Nesterov momentum 0.9 and weight decay 5e-4, lr 0.05 on a cosine
    schedule stepped per batch down to 0 (no warm-up), 30 epochs, the run's batch size and
    gradient clipping."""
    import dataclasses
    import math

    from moonas.deploy.train import default_recipe

    base = load_run(make_run(tmp_path / "run"))
    # A batch size and clipping that are not TrainRecipe's own defaults: they come from the run.
    config = dataclasses.replace(
        base.config, data=dataclasses.replace(base.config.data, batch_size=16),
        train=dataclasses.replace(base.config.train, grad_clip=2.5))
    run = dataclasses.replace(base, config=config)
    recipe = default_recipe(run)
    assert (recipe.epochs, recipe.lr, recipe.momentum, recipe.weight_decay) == (30, 0.05, 0.9,
                                                                                5e-4)
    assert (recipe.batch_size, recipe.grad_clip) == (16, 2.5)

    optimizers, used = [], []

    class Spy(torch.optim.SGD):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            optimizers.append(self)

        def step(self, closure=None):
            used.append({k: v for k, v in self.param_groups[0].items() if k != "params"})
            return super().step(closure)

    clipped = []
    clip = torch.nn.utils.clip_grad_norm_

    def spy_clip(parameters, max_norm, *args, **kwargs):
        clipped.append(max_norm)
        return clip(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.optim, "SGD", Spy)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy_clip)
    totals = set()
    train_candidate(run, run.front.picks[0], epochs=2,
                    progress=lambda done, total, info: totals.add(total))
    (steps,) = totals
    n_train = len(run_data(run).train)
    assert steps == 2 * (n_train // 16) == len(used) and steps > 2  # several batches per epoch
    assert clipped == [2.5] * steps
    assert len(optimizers) == 1
    assert all(g["nesterov"] and g["momentum"] == 0.9 and g["weight_decay"] == 5e-4
               for g in used)
    lrs = [g["lr"] for g in used]
    assert lrs[0] == 0.05  # no warm-up: the first step takes the full rate
    # Cosine over every batch of the training, down to 0 after the last step.
    for t, lr in enumerate(lrs):
        assert lr == pytest.approx(0.025 * (1 + math.cos(math.pi * t / steps)), abs=1e-12), t
    assert 0 < lrs[-1] < lrs[-2] and optimizers[0].param_groups[0]["lr"] == pytest.approx(
        0, abs=1e-12)


def test_recipe_arguments_of_the_wrong_type_name_the_argument(tmp_path) -> None:
    from moonas.errors import ArgumentError

    run = load_run(make_run(tmp_path / "run"))
    cid = run.front.picks[0]
    for kwargs, message in (({"epochs": "2"}, r"epochs must be an int \(a number of epochs\), "
                                              r"got str '2'"),
                            ({"epochs": 2.5}, r"epochs must be an int .*got float 2.5"),
                            ({"epochs": True}, r"epochs must be an int .*got bool"),
                            ({"lr": "0.1"}, r"lr must be a number \(a learning rate\), got "
                                            r"str '0.1'"),
                            ({"lr": None, "epochs": 1.0}, r"epochs must be an int")):
        with pytest.raises(ArgumentError, match=message):
            train_candidate(run, cid, **kwargs)
    with pytest.raises(ArgumentError, match=r"cid \(the candidate id\) must be an int, got str"):
        train_candidate(run, str(cid), epochs=1)
    with pytest.raises(ConfigError, match=r"--lr must be a finite number > 0, got inf"):
        train_candidate(run, cid, lr=float("inf"))
    assert not (run.dir / "trained").exists()


def test_cli_train_flags_out_of_range_exit_2(tmp_path, capsys) -> None:
    from moonas.cli import main

    run_dir = make_run(tmp_path / "run")
    cid = load_run(run_dir).front.picks[0]
    for flags, message in ((["--epochs", "0"], "--epochs must be >= 1, got 0"),
                           (["--lr", "inf"], "--lr must be a finite number > 0, got inf"),
                           (["--lr", "-1"], "--lr must be a finite number > 0, got -1.0")):
        assert main(["train", str(run_dir), "--id", str(cid), "-q", *flags]) == 2
        assert capsys.readouterr().err == f"moonas train: error: {message}\n"
    assert not (run_dir / "trained").exists()


def test_the_caller_rng_is_forked_on_the_gpus_in_use(monkeypatch) -> None:
    """`torch.manual_seed` seeds every GPU too: a training, or a network built from the
    global RNG, keeps the caller's CUDA generators as well once CUDA is in use (or trains on
    a GPU); a CPU-only caller forks the CPU generator alone."""
    import contextlib

    from moonas.deploy.weights import caller_rng

    forked = []

    @contextlib.contextmanager
    def spy(devices=None, enabled=True, **kwargs):
        forked.append(list(devices))
        yield

    monkeypatch.setattr(torch.random, "fork_rng", spy)
    with caller_rng("cpu"):
        pass
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    with caller_rng(torch.device("cpu")):
        pass
    with caller_rng(torch.device("cuda", 1)):
        pass
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with caller_rng():
        pass
    assert forked == [[], [], [0, 1], [0, 1]]
