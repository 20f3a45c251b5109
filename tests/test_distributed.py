"""moonas.distributed: data-parallel search and training over processes (torchrun / --processes).

The collectives run in real two-process gloo groups launched by torch.distributed's launcher;
the end-to-end tests drive the CLI as a user does."""

from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from moonas.checkpoint import load_checkpoint
from moonas.distributed import (SINGLE, World, _rank_device, average_buffers, average_gradients,
                                check_batch_size, check_lockstep, launched, mean_values, shard,
                                sum_values, without_processes)
from moonas.errors import ConfigError
from moonas.search.batches import Batches

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


# --- the world and each process's device -------------------------------------------------

def test_without_torchrun_the_world_is_one_process(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert launched() == SINGLE
    assert SINGLE.main and not SINGLE.parallel


def test_torchrun_environment_is_read(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    world = launched()
    assert world == World(rank=3, size=4, local_rank=1)
    assert world.parallel and not world.main


@pytest.mark.parametrize("env, message", [
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, "inconsistent"),
    ({"WORLD_SIZE": "0"}, "inconsistent"),
])
def test_a_broken_torchrun_environment_is_one_line(monkeypatch, env, message):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message) as caught:
        launched()
    assert "\n" not in str(caught.value)


def test_each_process_takes_the_gpu_of_its_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert _rank_device("auto", World(1, 2, 1), "device") == torch.device("cuda", 1)
    assert _rank_device("cuda", World(0, 2, 0), "device") == torch.device("cuda", 0)
    assert _rank_device("cpu", World(1, 2, 1), "device") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no GPU of its own.*at most 2 processes per node"):
        _rank_device("cuda", World(2, 3, 2), "device")
    with pytest.raises(ConfigError, match="'cuda:1' names one GPU.*use device=cuda or auto"):
        _rank_device("cuda:1", World(0, 2, 0), "device")


def test_without_a_gpu_auto_processes_use_the_cpu_and_cuda_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _rank_device("auto", World(1, 2, 1), "device") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        _rank_device("cuda", World(1, 2, 1), "device")


def test_the_global_batch_must_split_evenly():
    check_batch_size(64, World(0, 2, 0), "data.batch_size")
    check_batch_size(63, SINGLE, "data.batch_size")
    with pytest.raises(ConfigError, match="data.batch_size=63 does not split evenly over 2 "
                                          "processes: use a process count that divides 63, or "
                                          "a batch size that is a multiple of 2"):
        check_batch_size(63, World(0, 2, 0), "data.batch_size")
    # A split smaller than the batch is drawn as one batch of its size: it must split too.
    check_batch_size(64, World(0, 2, 0), "data.batch_size", {"training": 100, "validation": 6})
    check_batch_size(64, SINGLE, "data.batch_size", {"training": 3})
    for n in (1, 3):
        with pytest.raises(ConfigError, match=f"the validation split has {n} "
                                              f"item{'s' * (n != 1)}, fewer than "
                                              f"data.batch_size=64, and its one batch of {n} "
                                              "does not split evenly over 2 processes"):
            check_batch_size(64, World(1, 2, 1), "data.batch_size",
                             {"training": 100, "validation": n})


@pytest.mark.parametrize("n, size", [(64, 2), (65, 3), (2, 3)])
def test_shards_partition_a_batch(n, size):
    index = np.random.default_rng(0).permutation(n)
    parts = [shard(index, World(r, size, r)) for r in range(size)]
    assert np.array_equal(np.concatenate(parts), index)
    lengths = [len(p) for p in parts]
    assert max(lengths) - min(lengths) <= 1
    assert shard(index, SINGLE) is index


def test_without_processes_drops_only_that_option():
    argv = ["search", "smoke", "--processes", "2", "--set", "seed=1", "--processes=3", "-q"]
    assert without_processes(argv) == ["search", "smoke", "--set", "seed=1", "-q"]


def test_collectives_are_no_ops_for_one_process():
    net = torch.nn.Linear(3, 2)
    net(torch.ones(4, 3)).sum().backward()
    before = net.weight.grad.clone()
    assert np.array_equal(average_gradients(net.parameters(), SINGLE, [2.5]), [2.5])
    assert torch.equal(net.weight.grad, before)
    assert np.array_equal(mean_values(np.array([1.0, 2.0]), SINGLE), [1.0, 2.0])
    assert np.array_equal(sum_values(np.array([1.0, 2.0]), SINGLE), [1.0, 2.0])
    average_buffers(torch.nn.BatchNorm1d(3), SINGLE)
    check_lockstep(np.array([1.0]), SINGLE, "x")


# --- batches: every process walks the same batches and takes its shard --------------------

class _Items(torch.utils.data.Dataset):
    def __init__(self, n: int, augment: bool) -> None:
        self.n = n
        if augment:  # the attribute that sends Batches through a DataLoader
            self.augment = type("Augment", (), {"generator": torch.Generator()})()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return torch.full((1, 2, 2), float(i)), i


def test_stacked_batches_shard_the_single_process_batches():
    data = _Items(50, augment=False)
    whole = list(Batches(data, 8, seed=3, stream=1, drop_last=True).epoch(2))
    shards = [list(Batches(data, 8, seed=3, stream=1, drop_last=True,
                           world=World(r, 2, r)).epoch(2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == len(whole) == 6
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *shards):
        assert torch.equal(torch.cat([y0, y1]), y) and len(y0) == len(y1) == 4
        assert torch.equal(torch.cat([x0, x1]), x)


@pytest.mark.parametrize("augment", [False, True])
def test_whole_batches_are_the_single_process_batches_on_every_rank(augment):
    data = _Items(30, augment=augment)
    single = list(Batches(data, 8, seed=3, stream=1, drop_last=True).epoch(4))
    for rank in range(2):
        sharded = Batches(data, 8, seed=3, stream=1, drop_last=True, world=World(rank, 2, rank))
        whole = list(sharded.whole().epoch(4))
        assert len(whole) == len(single) == 3
        for (x, y), (xs, ys) in zip(whole, single):
            assert torch.equal(x, xs) and torch.equal(y, ys)
        assert sharded.world.size == 2  # the sharded view itself is untouched
        assert len(next(iter(sharded.epoch(4)))[1]) == 4


@pytest.mark.parametrize("drop_last", [True, False])
def test_loader_batches_are_shards_of_one_order(drop_last):
    data = _Items(21, augment=True)
    shards = [list(Batches(data, 4, seed=5, stream=1, drop_last=drop_last,
                           world=World(r, 2, r)).epoch(0)) for r in range(2)]
    # The last batch of 21 items, one item, leaves rank 1 an empty shard: skipped.
    assert [len(s) for s in shards] == ([5, 5] if drop_last else [6, 5])
    seen = torch.cat([y for rank in shards for _, y in rank]).tolist()
    assert len(seen) == len(set(seen)) == (20 if drop_last else 21)
    if drop_last:
        assert all(len(y0) == len(y1) == 2 for (_, y0), (_, y1) in zip(*shards))
    again = [list(Batches(data, 4, seed=5, stream=1, drop_last=drop_last,
                          world=World(0, 2, 0)).epoch(0))]
    assert all(torch.equal(a[1], b[1]) for a, b in zip(again[0], shards[0]))


# --- the collectives in a real two-process group ----------------------------------------

_WORKER = textwrap.dedent('''
    import json, sys
    import numpy as np
    import torch
    import torch.distributed as dist
    from moonas.distributed import (average_buffers, average_gradients, check_lockstep, join,
                                    main_first, mean_values, shard, sum_values)
    from moonas.errors import MoonasError

    import atexit, os

    def at_exit():  # registered first, so it runs after what join registers
        with open(f"{sys.argv[1]}/exit{os.environ['RANK']}.txt", "w") as handle:
            handle.write(str(dist.is_initialized()))

    atexit.register(at_exit)
    world, device = join("cpu")
    out = {"rank": world.rank, "size": world.size, "backend": dist.get_backend()}
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(2))
    part = torch.from_numpy(shard(np.arange(16), world))
    loss = torch.nn.functional.cross_entropy(net(x[part]), y[part])
    loss.backward()
    out["loss"] = float(average_gradients(net.parameters(), world, [float(loss)])[0])
    out["grads"] = [p.grad.reshape(-1).tolist() for p in net.parameters()]
    out["mean"] = mean_values(np.array([world.rank + 1.0, 10.0 * (world.rank + 1)]), world).tolist()
    out["sum"] = sum_values(np.array([world.rank + 1.0]), world).tolist()
    bn = torch.nn.BatchNorm1d(2)
    bn.running_mean.fill_(float(world.rank))
    average_buffers(bn, world)
    out["running_mean"] = bn.running_mean.tolist()
    check_lockstep(np.array([1.0, 2.0]), world, "same values")
    try:
        check_lockstep(np.array([float(world.rank)]), world, "the rank")
        out["lockstep_error"] = None
    except MoonasError as err:
        out["lockstep_error"] = str(err)
    other = torch.nn.Linear(2, 1 + world.rank)  # different parameter sets: one line, no hang
    other(torch.ones(1, 2)).sum().backward()
    try:
        average_gradients(other.parameters(), world)
        out["paths_error"] = None
    except MoonasError as err:
        out["paths_error"] = str(err)
    def load():
        with open(f"{sys.argv[1]}/order.txt", "a") as handle:
            handle.write(f"{world.rank} saw {open(f'{sys.argv[1]}/order.txt').read()!r};")
        return world.rank

    out["main_first"] = main_first(world, load)
    with open(f"{sys.argv[1]}/rank{world.rank}.json", "w") as handle:
        json.dump(out, handle)
''')


def test_collectives_in_a_two_process_group(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(_WORKER)
    done = subprocess.run([*TORCHRUN, str(worker), str(tmp_path)], env=_env(),
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["rank"] for r in ranks] == [0, 1] and ranks[0]["backend"] == "gloo"

    # The averaged shard gradients are the whole batch's gradient in one process.
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(2))
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    loss = float(loss.detach())
    whole = [p.grad.reshape(-1).tolist() for p in net.parameters()]
    for rank in ranks:
        assert rank["loss"] == pytest.approx(loss, abs=1e-6)
        for got, want in zip(rank["grads"], whole):
            np.testing.assert_allclose(got, want, atol=1e-6)
        assert rank["mean"] == [1.5, 15.0] and rank["sum"] == [3.0]
        assert rank["running_mean"] == [0.5, 0.5]
        assert "disagree on the rank" in rank["lockstep_error"]
        assert "trained different paths" in rank["paths_error"]
    assert ranks[0]["grads"] == ranks[1]["grads"]  # bit-identical on both ranks
    # main_first: rank 0 loads (downloads) before rank 1 starts.
    assert [r["main_first"] for r in ranks] == [0, 1]
    assert (tmp_path / "order.txt").read_text() == "0 saw '';1 saw \"0 saw '';\";"
    # The group is destroyed at exit: left to the interpreter's shutdown, gloo's threads could
    # abort a process that had finished its work (SIGABRT, about 1 run in 10 here).
    assert [(tmp_path / f"exit{r}.txt").read_text() for r in range(2)] == ["False", "False"]


# --- end to end: the CLI as a user runs it ------------------------------------------------

def _moonas(*args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "moonas", *args], env=_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "run"
    done = _moonas("search", "smoke", "--processes", "2", "--out", str(out), "-q",
                   "--set", "search.epochs=4", "--set", "search.warmup_epochs=1")
    return out, done


def test_a_search_in_two_processes_writes_one_complete_run(two_process_run):
    out, done = two_process_run
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("front of ") == 1  # rank 1 prints nothing
    assert "[rank 1]" not in done.stderr and "Traceback" not in done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["machine"]["processes"] == 2
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()
             if "kind" not in json.loads(line)]
    assert steps == list(range(1, len(steps) + 1))  # one writer: no line twice
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["epoch"] == 4
    front = json.loads((out / "pareto.json").read_text())
    assert front["architectures"] and len(front["picks"]) == 5


def _copy_of(run: Path, tmp_path: Path) -> Path:
    """A copy of the shared run for a test that changes it: the other tests keep theirs."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def test_resuming_a_two_process_run_rebuilds_the_same_front(two_process_run, tmp_path):
    run, done = two_process_run
    assert done.returncode == 0
    out = _copy_of(run, tmp_path)
    candidates = (out / "candidates.csv").read_text()
    (out / "pareto.json").unlink()  # as if killed after the last checkpoint
    again = _moonas("search", "--resume", str(out), "--processes", "2", "-q")
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "candidates.csv").read_text() == candidates


def test_the_front_of_two_processes_is_the_front_one_process_measures(two_process_run,
                                                                      tmp_path):
    # Given the weights, the front does not depend on the process count: every process
    # measures whole batches (batch-norm statistics included), as one process does.
    run, done = two_process_run
    assert done.returncode == 0
    out = _copy_of(run, tmp_path)
    candidates = (out / "candidates.csv").read_text()
    (out / "pareto.json").unlink()
    again = _moonas("search", "--resume", str(out), "-q")  # one process
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "candidates.csv").read_text() == candidates


@pytest.mark.parametrize("n", [1, 2, 3])
def test_front_candidates_are_dealt_dearest_first_to_the_least_loaded(n):
    from moonas.search.front import _deal

    work = np.random.default_rng(n).integers(1, 100, size=17).astype(float)
    owner = _deal(work, n)
    assert np.array_equal(owner, _deal(work, n))  # the same on every process
    loads = np.bincount(owner, weights=work, minlength=n)
    assert set(owner.tolist()) == set(range(n))
    assert loads.max() - loads.min() <= work.max()
    assert np.array_equal(_deal(np.array([5.0, 4, 3, 3, 3]), 2), [0, 1, 1, 0, 1])


def test_a_recalibrated_front_of_two_processes_is_the_one_process_front(tmp_path):
    # search.bn=recalibrate: batch norm re-estimated on whole training batches by every
    # process, as one process and `moonas export` do.
    out = tmp_path / "run"
    done = _moonas("search", "smoke", "--processes", "2", "--out", str(out), "-q",
                   "--set", "search.epochs=2", "--set", "search.warmup_epochs=1",
                   "--set", "search.bn=recalibrate")
    assert done.returncode == 0, done.stderr[-3000:]
    candidates = (out / "candidates.csv").read_text()
    (out / "pareto.json").unlink()
    again = _moonas("search", "--resume", str(out), "-q")
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "candidates.csv").read_text() == candidates


def test_retraining_in_two_processes(two_process_run, tmp_path):
    run, done = two_process_run
    assert done.returncode == 0
    out = _copy_of(run, tmp_path)  # `train` writes trained/ into the run
    cid = json.loads((out / "pareto.json").read_text())["picks"][0]
    trained = _moonas("train", str(out), "--id", str(cid), "--epochs", "2", "--processes", "2",
                      "-q")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert trained.stdout.count("retrained") == 1
    metrics = json.loads((out / "trained" / str(cid) / "metrics.json").read_text())
    assert metrics["processes"] == 2 and 0.2 < metrics["test_accuracy"] <= 1.0
    weights = load_checkpoint(out / "trained" / str(cid) / "weights.pt")
    assert weights["arch"] == metrics["arch"]


def test_a_bad_setting_under_processes_is_one_line_before_any_process_starts(tmp_path):
    done = _moonas("search", "smoke", "--processes", "2", "--out", str(tmp_path / "r"), "-q",
                   "--set", "data.batch_size=63")
    assert done.returncode == 1
    assert done.stderr.strip() == ("moonas search: error: data.batch_size=63 does not split "
                                   "evenly over 2 processes: use a process count that divides "
                                   "63, or a batch size that is a multiple of 2")
    assert not (tmp_path / "r").exists()
    done = _moonas("search", "smoke", "--processes", "2", "--set", "device=cuda:1", "--out",
                   str(tmp_path / "r"))
    assert done.returncode == 1 and "names one GPU" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    if not torch.cuda.is_available():
        done = _moonas("search", "smoke", "--processes", "2", "--set", "device=cuda", "--out",
                       str(tmp_path / "r"))
        assert done.returncode == 1 and "no CUDA GPU" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    done = _moonas("search", "smoke", "--processes", "2")
    assert done.stderr.strip() == ("moonas search: error: with --processes, name the run "
                                   "directory with --out")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    done = _moonas("search", "smoke", "--processes", "2", "--out", str(tmp_path / "other"))
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert "holds no moonas run" in done.stderr
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_under_torchrun_each_process_says_what_it_rejects(tmp_path):
    done = subprocess.run([*TORCHRUN, "-m", "moonas", "search", "smoke", "--out",
                           str(tmp_path / "r"), "-q", "--set", "data.batch_size=63"],
                          env=_env(), cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if "does not split evenly" in line]
    assert sorted(line.split(":")[0] for line in lines) == [
        "moonas search (rank 0 of 2)", "moonas search (rank 1 of 2)"]
    assert not (tmp_path / "r").exists()


def test_processes_must_be_positive():
    done = _moonas("search", "smoke", "--processes", "0")
    assert done.returncode == 2  # a usage error, as argparse's `--processes abc`
    assert done.stderr.strip() == "moonas search: error: --processes must be >= 1, got 0"


def _stop_after_a_checkpoint(out, signum) -> tuple[int, str]:
    """A two-process smoke search sent `signum` after its first checkpoint: exit code, stderr."""
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "moonas", "search", "smoke", "--processes", "2", "--out",
         str(out), "-q", "--set", "search.epochs=12"], env=_env(), cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").is_file():
        if process.poll() is not None:
            _fail_with_output(process, f"ended (exit {process.returncode}) before its first "
                                       "checkpoint")
        if time.monotonic() > deadline:
            process.kill()
            _fail_with_output(process, "wrote no checkpoint in 120 s")
        time.sleep(0.2)
    time.sleep(0.5)  # into the next epoch: the stop lands inside the training
    if process.poll() is not None:
        _fail_with_output(process, f"ended (exit {process.returncode}) before it could be "
                                   "stopped")
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert "Traceback" not in stderr
    return process.returncode, stderr


def _fail_with_output(process: subprocess.Popen, what: str) -> None:
    stdout, stderr = process.communicate(timeout=60)
    pytest.fail(f"the two-process search {what}:\n{stdout[-1000:]}\n{stderr[-3000:]}")


def test_ctrl_c_stops_every_process_with_one_line_each_and_the_run_resumes(tmp_path):
    import signal

    out = tmp_path / "run"
    code, stderr = _stop_after_a_checkpoint(out, signal.SIGINT)
    assert code == 130, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == "moonas search: interrupted"
    assert not (out / "pareto.json").exists()
    resumed = _moonas("search", "--resume", str(out), "--processes", "2", "-q",
                      "--set", "search.epochs=12")
    assert resumed.returncode != 0 and "drop CONFIG and --set" in resumed.stderr
    resumed = _moonas("search", "--resume", str(out), "--processes", "2", "-q")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stderr and (out / "pareto.json").is_file()


def test_sigterm_to_the_launcher_stops_every_process_as_in_one_process(tmp_path):
    """A scheduler's SIGTERM to `--processes 2`: exit 143 and the SIGTERM line, as one process
    says it (it was 130, "interrupted"), the stop recorded for --resume."""
    import signal

    out = tmp_path / "run"
    code, stderr = _stop_after_a_checkpoint(out, signal.SIGTERM)
    assert code == 143, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == "moonas search: terminated (SIGTERM)"
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"


def test_a_killed_launcher_stops_its_processes_and_the_run_resumes(tmp_path):
    """SIGKILL of `--processes 2` (the OOM killer, kill -9): the processes it started stop as
    under SIGTERM, instead of running on alone with the run's lock; the manifest names the
    command the user typed, --processes included."""
    import signal
    import time

    out = tmp_path / "run"
    code, stderr = _stop_after_a_checkpoint(out, signal.SIGKILL)
    assert code == -signal.SIGKILL
    deadline = time.monotonic() + 60
    while (out / ".moonas-lock").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and not (out / ".moonas-lock").exists()
    assert manifest["command"][-7:-3] == ["--processes", "2", "--out", str(out)]
    resumed = _moonas("search", "--resume", str(out), "-q")
    assert resumed.returncode == 0, resumed.stderr[-2000:]


def test_a_failure_inside_the_processes_is_summed_up_in_one_line(tmp_path):
    done = _moonas("search", "smoke", "--processes", "2", "--out", str(tmp_path / "r"), "-q",
                   "--set", "data.name=cifar10", "--set", f"data.root={tmp_path / 'none'}")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    # The error once, said by the launcher: the processes leave it to it (each may hit it),
    # and one stopped by another's end adds nothing ("another process stopped ...").
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert re.match(r"moonas search: error: process(es 0, 1| 0): ", lines[0]), lines
    assert "cifar10" in lines[0]


def test_a_dead_peer_in_a_collective_is_one_line():
    from moonas.distributed import PeerStopped, _collective

    def broken():
        raise RuntimeError("[gloo/transport/tcp/pair.cc:561] Connection closed by peer\nmore")

    with pytest.raises(PeerStopped) as caught:
        _collective(broken)
    assert str(caught.value) == ("another process stopped, so this one stops too (that "
                                 "process's error, if it printed one, says why; this one saw: "
                                 "Connection closed by peer)")
    assert _collective(lambda: 7) == 7


def test_the_manifest_of_a_failed_multi_process_run_names_the_first_cause(tmp_path,
                                                                          monkeypatch):
    """Rank 0 only sees that another process stopped; the launcher puts the error of the
    process that failed on its own into the manifest (`note_failure`, `_first_cause`)."""
    from moonas.distributed import (LAUNCHER_ENV, PeerStopped, _first_cause, _record_cause,
                                    note_failure)
    from moonas.errors import MoonasError

    errors = tmp_path / "errors"
    errors.mkdir()
    monkeypatch.setenv(LAUNCHER_ENV, json.dumps({"pid": 1, "command": [], "errors": str(errors)}))
    note_failure(World(0, 2, 0), PeerStopped("another process stopped, so this one stops too"))
    note_failure(SINGLE, MoonasError("not under the launcher"))
    assert _first_cause(str(errors)) is None
    note_failure(World(1, 2, 1), MoonasError("rank 1 alone: the fix is X"))
    assert _first_cause(str(errors)) == "process 1: rank 1 alone: the fix is X"
    run = tmp_path / "run"
    run.mkdir()
    stopped = {"status": "failed", "error": "another process stopped, so this one stops too"}
    (run / "manifest.json").write_text(json.dumps(stopped))
    _record_cause(run, _first_cause(str(errors)))
    assert json.loads((run / "manifest.json").read_text())["error"] == \
        "process 1: rank 1 alone: the fix is X"
    # A manifest that already names its own cause keeps it.
    (run / "manifest.json").write_text(json.dumps({"status": "failed", "error": "mine"}))
    _record_cause(run, "process 1: other")
    assert json.loads((run / "manifest.json").read_text())["error"] == "mine"


def test_a_process_stopped_by_anothers_error_stays_silent_once_that_error_is_noted(
        tmp_path, monkeypatch, capsys):
    """`--processes 2` with a data error printed three lines: rank 0's error, rank 1's
    "another process stopped ... Connection closed by peer", the launcher's count. A process
    that failed on its own notes its error before printing it and exiting, so a peer stopped
    by its end finds it and says nothing."""
    import moonas.cli
    import moonas.distributed
    from moonas.distributed import LAUNCHER_ENV, PeerStopped, _first_cause, cause_noted
    from moonas.errors import ConfigError

    errors = tmp_path / "errors"
    errors.mkdir()
    monkeypatch.setenv(LAUNCHER_ENV, json.dumps({"pid": 1, "command": [], "errors": str(errors)}))
    for name, value in (("WORLD_SIZE", "2"), ("RANK", "1"), ("LOCAL_RANK", "1")):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(moonas.distributed, "follow_launcher", lambda: None)

    def stopped(args):
        raise PeerStopped("another process stopped, so this one stops too (that process's "
                          "error says why; this one saw: Connection closed by peer)")

    monkeypatch.setattr(moonas.cli, "_cmd_cost", stopped)
    assert not cause_noted()
    assert moonas.cli.main(["cost", "0,0,0,0,0,0"]) == 1  # no cause noted: it says why it stops
    assert capsys.readouterr().err == (
        "moonas cost (rank 1 of 2): error: another process stopped, so this one stops too (that "
        "process's error says why; this one saw: Connection closed by peer)\n")
    (errors / "rank0.txt").write_text("dataset 'imagefolder' not found: the fix")
    assert cause_noted()
    assert moonas.cli.main(["cost", "0,0,0,0,0,0"]) == 1
    assert capsys.readouterr().err == ""

    def own(args):  # an error of its own: noted for the launcher to say once, not printed
        raise ConfigError("budget 1 is below the cheapest architecture: raise it")

    monkeypatch.setattr(moonas.cli, "_cmd_cost", own)
    assert moonas.cli.main(["cost", "0,0,0,0,0,0"]) == 1
    assert capsys.readouterr().err == ""
    assert (errors / "rank1.txt").read_text() == "budget 1 is below the cheapest architecture: " \
                                                 "raise it"
    (errors / "rank0.txt").write_text("budget 1 is below the cheapest architecture: raise it")
    assert _first_cause(str(errors)) == ("processes 0, 1: budget 1 is below the cheapest "
                                         "architecture: raise it")
    monkeypatch.delenv(LAUNCHER_ENV)
    assert not cause_noted()


def test_a_process_killed_outright_is_named_with_its_signal_and_the_way_on(tmp_path,
                                                                            monkeypatch):
    """kill -9 of one process: the launcher said "2 of 2 processes stopped (exit signal 9,
    signal 15); their errors are above" (none was printed) and the manifest kept rank 0's
    "another process stopped" (or "running" when rank 0 itself was killed)."""
    from types import SimpleNamespace

    from moonas.distributed import _killed_cause, _record_cause

    def failed(rank, code):
        return SimpleNamespace(get_first_failure=lambda: (rank, SimpleNamespace(exitcode=code)))

    assert _killed_cause(failed(1, -9)) == ("process 1 was killed by SIGKILL (kill -9, or the "
                                            "out-of-memory killer)")
    assert _killed_cause(failed(0, -15)) == "process 0 was killed by SIGTERM"
    assert _killed_cause(failed(1, 3)) == "process 1 exited with code 3 (its output above says why)"
    assert _killed_cause(object()) is None
    manifest = tmp_path / "manifest.json"
    for status, error in (("running", None), ("failed", "another process stopped, so ...")):
        manifest.write_text(json.dumps({"status": status, "error": error, "seed": 0}))
        _record_cause(tmp_path, "process 0 was killed by SIGKILL")
        assert json.loads(manifest.read_text()) == {
            "status": "failed", "error": "process 0 was killed by SIGKILL", "seed": 0}
    manifest.write_text(json.dumps({"status": "complete"}))  # a finished run: left alone
    _record_cause(tmp_path, "process 0 was killed by SIGKILL")
    assert json.loads(manifest.read_text()) == {"status": "complete"}


def test_error_folders_of_dead_launchers_are_swept(tmp_path, monkeypatch):
    """A launcher killed outright never removed its errors folder from the temp dir; the next
    launch removes those whose launcher is gone (its pid in the name), and only those."""
    import tempfile

    from moonas.distributed import _sweep_stale_error_folders

    gone = subprocess.Popen(["true"])
    gone.wait()
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    dead = tmp_path / f"moonas-launch-{gone.pid}-abc"
    alive = tmp_path / f"moonas-launch-{os.getpid()}-abc"
    older = tmp_path / "moonas-launch-x1y2z3"  # no pid in the name: not known to be stale
    for folder in (dead, alive, older):
        folder.mkdir()
        (folder / "rank0.txt").write_text("x")
    _sweep_stale_error_folders()
    assert not dead.exists() and alive.is_dir() and older.is_dir()


def test_world_size_set_by_hand_without_a_rendezvous_is_one_line(monkeypatch):
    """WORLD_SIZE=2 RANK=0 without MASTER_ADDR/MASTER_PORT was a 14-frame traceback from
    init_process_group."""
    from moonas.distributed import join
    from moonas.errors import ConfigError

    for name, value in (("WORLD_SIZE", "2"), ("RANK", "0"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(name, value)
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match=r"^WORLD_SIZE=2 without MASTER_ADDR and MASTER_PORT: "
                                          r"start the processes with torchrun"):
        join("cpu")


def test_an_interrupt_under_the_launcher_is_said_once_by_it(monkeypatch, capsys):
    """Ctrl-C at --processes 2 printed "interrupted" three times (each process and the
    launcher); the processes leave it to a live launcher, and say it when it is gone."""
    import moonas.cli
    import moonas.distributed
    from moonas.distributed import LAUNCHER_ENV

    for name, value in (("WORLD_SIZE", "2"), ("RANK", "1"), ("LOCAL_RANK", "1")):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(moonas.distributed, "follow_launcher", lambda: None)

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(moonas.cli, "_cmd_cost", interrupted)
    monkeypatch.setenv(LAUNCHER_ENV, json.dumps({"pid": os.getppid(), "command": []}))
    assert moonas.cli.main(["cost", "0,0,0,0,0,0"]) == 130
    assert capsys.readouterr().err == ""
    monkeypatch.setenv(LAUNCHER_ENV, json.dumps({"pid": 1, "command": []}))  # not its parent
    assert moonas.cli.main(["cost", "0,0,0,0,0,0"]) == 130
    assert capsys.readouterr().err == "moonas cost (rank 1 of 2): interrupted\n"
