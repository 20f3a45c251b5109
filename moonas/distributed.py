"""Data-parallel training over several processes launched by torchrun (torch.distributed).

`moonas search` and `moonas train` started as ``torchrun --nproc_per_node N -m moonas ...``
run one process per rank. Every process holds the whole supernet (or network) and draws the
same paths from the same seeded generator; each sees one equal shard of every batch
(`data.batch_size` is the global batch, so a config means the same search at any process
count). After each backward pass the gradients are averaged over the processes, and every
measured loss the search learns from is averaged too, so the distributions, the optimizer
steps and the weights stay identical on every rank (checked once per epoch). Batch-norm
statistics are per shard, as in DistributedDataParallel without SyncBatchNorm; running
statistics are averaged before they are used. Rank 0 writes every file.

A plain run is a world of one: every collective here is then a no-op, and nothing is
initialised. GPUs: each process takes the GPU of its local rank (NCCL); CPUs: gloo.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import uuid
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, TypeVar

import numpy as np

from moonas.devices import check_device_name, resolve_device
from moonas.errors import ConfigError, MoonasError, Terminated, UsageError

if TYPE_CHECKING:  # torch loads in the functions that train: the command line's parsing,
    import torch   # launching and reading of the launcher's environment need none
    from torch import nn

T = TypeVar("T")

__all__ = ["World", "SINGLE", "PeerStopped", "launched", "join", "launch",
           "add_processes_argument", "without_processes", "check_launch", "shard",
           "average_gradients", "mean_values", "sum_values", "average_buffers", "barrier",
           "main_first", "check_lockstep", "check_batch_size", "follow_launcher",
           "die_with_parent", "launcher_command", "LAUNCHER_ENV", "note_failure",
           "cause_noted", "launcher_speaks"]


@dataclass(frozen=True)
class World:
    """Which process this is: `rank` of `size`, `local_rank` on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that writes files, logs and draws the progress bar."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1


#: A plain, single-process run.
SINGLE = World()


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"environment variable {name}={text!r} is not an integer: launch "
                          "with torchrun, or unset it for a single process") from None


def launched() -> World:
    """The world torchrun's environment describes (WORLD_SIZE, RANK, LOCAL_RANK); a world of
    one without it. Reads the environment only; joins nothing."""
    size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if size < 1 or not 0 <= rank < size or local < 0:
        raise ConfigError(f"torchrun environment WORLD_SIZE={size}, RANK={rank}, "
                          f"LOCAL_RANK={local} is inconsistent: launch with torchrun")
    return World(rank=rank, size=size, local_rank=local)


def _rank_device(name: str, world: World, key: str) -> torch.device:
    """Each process's device: the GPU of its local rank for auto/cuda, else the CPU."""
    import torch

    check_device_name(name, key)
    if name.startswith("cuda:"):
        raise ConfigError(f"{key}={name!r} names one GPU, but under torchrun each of the "
                          f"{world.size} processes takes the GPU of its local rank: use "
                          f"{key}=cuda or auto (or cpu)")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    resolve_device("cuda", key)  # one line when torch sees no GPU
    count = torch.cuda.device_count()
    if world.local_rank >= count:
        raise ConfigError(f"{key}={name!r}: process {world.local_rank} on this node has no GPU "
                          f"of its own ({count} GPU(s)): start at most {count} processes per node "
                          f"(--processes, --nproc_per_node), or {key}=cpu")
    return torch.device("cuda", world.local_rank)


def join(device_name: str, key: str = "device") -> tuple[World, torch.device]:
    """This process's world and device; under torchrun, joins the process group (once)."""
    import torch
    import torch.distributed as dist

    world = launched()
    if not world.parallel:
        return world, resolve_device(device_name, key)
    device = _rank_device(device_name, world, key)
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:  # torchrun sets them; WORLD_SIZE set by hand does not
        raise ConfigError(f"WORLD_SIZE={world.size} without {' and '.join(missing)}: start the "
                          "processes with torchrun or 'moonas ... --processes N', or unset "
                          "WORLD_SIZE for one process")

    if not dist.is_available():
        raise MoonasError("this torch build has no torch.distributed: run one process, "
                          "without torchrun")
    if not dist.is_initialized():
        if device.type == "cuda":  # NCCL: this process's GPU, bound from the start
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
        # Left to the interpreter's shutdown, the backend's threads can abort the process
        # (SIGABRT, "terminate called without an active exception") after its work is done.
        atexit.register(_leave)
    return world, device


#: Whether a collective of this process failed (a peer died): its group is then left to the
#: process's end, since destroying it could wait on the dead peer (NCCL).
_GROUP = {"broken": False}


def _leave() -> None:
    """Destroy this process's group, if it still has one and it is whole (at exit)."""
    import torch.distributed as dist

    if dist.is_initialized() and not _GROUP["broken"]:
        dist.destroy_process_group()


def check_batch_size(batch_size: int, world: World, key: str,
                     splits: dict[str, int] | None = None) -> None:
    """Equal shards: the global batch must split evenly over the processes, and so must the
    one batch of a split (`splits`: name -> items) smaller than it, drawn at its own size."""
    if batch_size % world.size:
        raise ConfigError(f"{key}={batch_size} does not split evenly over {world.size} "
                          f"processes: use a process count that divides {batch_size}, or a "
                          f"batch size that is a multiple of {world.size}")
    for name, n in (splits or {}).items():
        if min(batch_size, n) % world.size:
            raise ConfigError(f"the {name} split has {n} item{'s' * (n != 1)}, fewer than "
                              f"{key}={batch_size}, "
                              f"and its one batch of {n} does not split evenly over "
                              f"{world.size} processes: use a process count that divides {n}, "
                              f"or more {name} data")


def shard(index: np.ndarray, world: World) -> np.ndarray:
    """This rank's contiguous part of one batch's item indices (near-equal parts)."""
    if not world.parallel:
        return index
    return np.array_split(index, world.size)[world.rank]


class PeerStopped(MoonasError):
    """Another process of the run stopped (its own error says why), so this one cannot go on."""


def _collective(run: Callable[[], T]) -> T:
    """`run()` (a collective); a peer that died mid-way is one line, not gloo's traceback."""
    try:
        return run()
    except RuntimeError as err:  # gloo's and NCCL's errors (DistBackendError is one)
        _GROUP["broken"] = True
        # Its first line, without gloo's source-file prefix: what this process saw.
        seen = re.sub(r"^\[[^\]]*\]\s*", "", str(err).splitlines()[0] if str(err) else "")
        raise PeerStopped("another process stopped, so this one stops too (that process's "
                          f"error, if it printed one, says why; this one saw: {seen[:80]})"
                          ) from None


def _all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """`tensor` reduced over the processes, in place (NCCL reduces on the process's GPU)."""
    import torch
    import torch.distributed as dist

    reduce_op = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op]
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
        on_gpu = tensor.to(torch.device("cuda", torch.cuda.current_device()))
        _collective(lambda: dist.all_reduce(on_gpu, op=reduce_op))
        return tensor.copy_(on_gpu.cpu())
    _collective(lambda: dist.all_reduce(tensor, op=reduce_op))
    return tensor


def average_gradients(params: Iterable[nn.Parameter], world: World,
                      extra: Iterable[float] = ()) -> np.ndarray:
    """Average the gradients of `params` over the processes in place (one flat all-reduce)
    and return `extra` (e.g. the step's loss) averaged the same way.

    The processes must agree on which parameters have gradients (they draw the same paths);
    a disagreement is one line instead of a hang or a silent mix-up."""
    import torch

    extra = np.asarray(list(extra), dtype=np.float64)
    if not world.parallel:
        return extra
    grads = [p.grad for p in params if p.grad is not None]
    n = sum(g.numel() for g in grads)
    sizes = _all_reduce(torch.tensor([n, -n], dtype=torch.float64), "max")
    if sizes[0] != -sizes[1]:
        raise MoonasError("the processes trained different paths in one step (their "
                          "generators diverged): report this with the run's config")
    device = grads[0].device if grads else torch.device("cpu")
    tail = _average_in_place(grads + [torch.as_tensor(extra, dtype=torch.float32,
                                                      device=device)], world)
    return tail.double().cpu().numpy()


def _average_in_place(tensors: list[torch.Tensor], world: World) -> torch.Tensor:
    """Average `tensors` over the processes in place with one flat all-reduce (in their
    common dtype); returns the last one's averaged values."""
    import torch

    dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors))
    flat = torch.cat([t.reshape(-1).to(dtype) for t in tensors])
    _all_reduce(flat).div_(world.size)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    return flat[offset - tensors[-1].numel():offset]


def sum_values(values: np.ndarray, world: World) -> np.ndarray:
    """`values` summed over the processes (float64)."""
    import torch

    values = np.asarray(values, dtype=np.float64)
    if not world.parallel:
        return values
    return _all_reduce(torch.from_numpy(values.copy())).numpy()


def mean_values(values: np.ndarray, world: World) -> np.ndarray:
    """`values` averaged over the processes (float64): e.g. each process's losses of the
    same paths on its shard -> the losses on the whole batch."""
    return sum_values(values, world) / world.size


def average_buffers(module: nn.Module, world: World) -> None:
    """Average the floating-point buffers (batch-norm running statistics) over the processes,
    so a network evaluated in eval mode or saved is the same on every rank."""
    if not world.parallel:
        return
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if buffers:
        _average_in_place(buffers, world)


def barrier(world: World) -> None:
    """Wait until every process gets here (e.g. rank 0 has written a file the others read)."""
    if world.parallel:
        import torch.distributed as dist

        _collective(dist.barrier)


def main_first(world: World, load: Callable[[], T]) -> T:
    """`load()` on rank 0 first, then on the others: a dataset download or cache that rank 0
    writes is there for them to read, never written by two processes at once."""
    result = None
    for turn in (True, False):
        if world.main == turn:
            result = load()
        barrier(world)
    return result


def check_lockstep(values: np.ndarray, world: World, what: str) -> None:
    """One line if the processes hold different `values` (which must be identical)."""
    import torch

    if not world.parallel:
        return
    values = np.asarray(values, dtype=np.float64).ravel()
    both = torch.from_numpy(np.concatenate([values, -values]))
    _all_reduce(both, "max")
    high, low = both[:len(values)], -both[len(values):]
    if not torch.equal(high, low):
        raise MoonasError(f"the processes disagree on {what} (they are no longer in "
                          "lockstep): report this with the run's config")


def add_processes_argument(parser: argparse.ArgumentParser) -> None:
    """`--processes N` of the commands that train (search, train)."""
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="train data-parallel in N processes on this machine (one per GPU; "
                        "on CPUs, each takes its share of the cores), as `torchrun "
                        "--standalone --nproc_per_node N -m moonas ...` does; default 1")


def check_launch(config, processes: int, device_key: str = "device") -> None:
    """Before `processes` processes start: the config's settings they would each reject
    (`config`: a RunConfig), so a bad one is one line, not one per process. `device_key`:
    where the device was given (`--device` for train)."""
    check_device_name(config.device, device_key)
    if processes > 1:  # the last process needs a GPU of its own too
        _rank_device(config.device, World(processes - 1, processes, processes - 1), device_key)
    check_batch_size(config.data.batch_size, World(0, processes, 0), "data.batch_size")


def without_processes(argv: list[str]) -> list[str]:
    """`argv` with its `--processes N` (or `--processes=N`) removed."""
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == "--processes":
            skip = True
        elif not token.startswith("--processes="):
            out.append(token)
    return out


#: Set by `launch` for the processes it starts: {"pid": the launcher's, "command": its argv}.
LAUNCHER_ENV = "MOONAS_LAUNCHER"


def _launcher() -> dict | None:
    try:
        found = json.loads(os.environ.get(LAUNCHER_ENV, "null"))
    except ValueError:
        return None
    return found if isinstance(found, dict) and isinstance(found.get("pid"), int) else None


def launcher_command() -> list[str] | None:
    """The command of the `--processes` launcher that started this process (what a user
    typed, `--processes N` included), or None outside one."""
    found = _launcher()
    command = found.get("command") if found else None
    return [str(c) for c in command] if isinstance(command, list) else None


def follow_launcher() -> None:
    """A process started by `launch` gets SIGTERM (it stops as under a time limit: its run
    interrupted and resumable, the lock released) when the launcher dies, even by SIGKILL,
    instead of running on alone; Linux only (prctl), elsewhere nothing."""
    found = _launcher()
    if found is not None and not die_with_parent(found["pid"]):
        raise Terminated()


def die_with_parent(parent: int) -> bool:
    """Have Linux send this process SIGTERM when its parent dies, even by SIGKILL (prctl
    PR_SET_PDEATHSIG); False when the parent, pid `parent`, died before that took hold (no
    signal will come). Elsewhere, or where prctl cannot be called, nothing is set (True)."""
    if not sys.platform.startswith("linux"):
        return True
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return True
    return os.getppid() == parent  # else the parent died before the line above


def note_failure(world: World, err: BaseException) -> bool:
    """Under `launch`, leave this process's own error (not a `PeerStopped`) where the
    launcher reads it after the processes end (`_first_cause`), which then prints it once
    for every process that hit it; whether it was left (else the process prints it)."""
    found = _launcher()
    folder = found.get("errors") if found else None
    if not world.parallel or isinstance(err, PeerStopped) or not isinstance(folder, str):
        return False
    try:
        with open(os.path.join(folder, f"rank{world.rank}.txt"), "w") as handle:
            handle.write(str(err))
    except OSError:
        return False  # the process says it itself
    return True


def launcher_speaks() -> bool:
    """Whether this process was started by a `launch` that is still alive: it then says, once,
    why the processes stopped (an error, an interrupt), and the processes need not."""
    found = _launcher()
    return found is not None and os.getppid() == found["pid"]


def cause_noted() -> bool:
    """Whether, under `launch`, a process has noted its own error (`note_failure`): it has
    printed it too, so a process stopped by its end (`PeerStopped`) need not say so (the
    noting process writes before it prints and exits, so before a peer can see it gone)."""
    found = _launcher()
    folder = found.get("errors") if found else None
    try:
        return isinstance(folder, str) and _first_cause(folder) is not None
    except OSError:
        return False


def _first_cause(folder: str) -> str | None:
    """The error of the lowest rank that failed on its own (`note_failure`), e.g. "process 1:
    ...", or "processes 0, 1: ..." when others failed with the same words; None if none did."""
    ranks = sorted(int(m.group(1)) for m in map(re.compile(r"rank(\d+)\.txt$").match,
                                                    os.listdir(folder)) if m)
    texts: dict[int, str] = {}
    for rank in ranks:
        try:
            with open(os.path.join(folder, f"rank{rank}.txt")) as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text:
            texts[rank] = text
    if not texts:
        return None
    first = texts[min(texts)]
    alike = [rank for rank, text in texts.items() if text == first]
    who = (f"process {alike[0]}" if len(alike) == 1 else
           f"processes {', '.join(str(r) for r in alike)}")
    return f"{who}: {first}"


def _record_cause(run_dir: str | os.PathLike[str] | None, cause: str | None) -> None:
    """Put `cause` in the manifest of the run the processes stopped (rank 0 could only record
    that another process stopped)."""
    from moonas.atomic import write_json

    if run_dir is None or cause is None:
        return
    manifest = Path(run_dir) / "manifest.json"
    try:
        record = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(record, dict):
        return
    # "running": rank 0 itself was killed (no process could record the stop).
    if record.get("status") == "running" or (record.get("status") == "failed" and str(
            record.get("error", "")).startswith("another process stopped")):
        record["status"], record["error"] = "failed", cause[:500]
        write_json(manifest, record)


#: Name of the folder where `launch`'s processes leave their errors: this + launcher pid + "-".
_ERRORS_PREFIX = "moonas-launch-"


def _sweep_stale_error_folders() -> None:
    """Remove the error folders of launchers no longer alive (one killed outright never
    removed its own)."""
    base = Path(tempfile.gettempdir())
    for folder in base.glob(f"{_ERRORS_PREFIX}*"):
        match = re.match(rf"{_ERRORS_PREFIX}(\d+)-", folder.name)
        if not match or not folder.is_dir():
            continue  # a folder of an older moonas (no pid): its launcher's state unknown
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass  # alive (another user's): not ours to remove


def _killed_cause(err) -> str | None:
    """What stopped the processes when none left an error of its own (`ChildFailedError`
    `err`): the first process to stop, and the signal that killed it (kill -9, the
    out-of-memory killer) or its exit code."""
    try:
        rank, failure = err.get_first_failure()
    except (AttributeError, ValueError):
        return None
    code = int(failure.exitcode)
    if code >= 0:
        return f"process {rank} exited with code {code} (its output above says why)"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    why = " (kill -9, or the out-of-memory killer)" if -code == signal.SIGKILL else ""
    return f"process {rank} was killed by {name}{why}"


def launch(processes: int, argv: list[str], run_dir: str | os.PathLike[str] | None = None
           ) -> None:
    """Run ``python -m moonas ARGV`` in `processes` processes on this machine through
    torch.distributed's elastic launcher (what ``torchrun --standalone`` does); a failed
    process is one line, not the launcher's traceback: the error a process failed with on its
    own (`note_failure`: it printed nothing), once however many hit it, else the launcher's
    count of the processes that stopped."""
    if processes < 1:
        raise UsageError(f"--processes must be >= 1, got {processes}")
    if launched().parallel:
        raise UsageError("--processes under torchrun: launch with one of them, not both")
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    _sweep_stale_error_folders()
    # Each failed process's own error; the launcher's pid in the name, so a folder a killed
    # launcher left is told from a live one's and removed by the next launch.
    errors = tempfile.mkdtemp(prefix=f"{_ERRORS_PREFIX}{os.getpid()}-")
    os.environ[LAUNCHER_ENV] = json.dumps({"pid": os.getpid(), "command": sys.argv,
                                           "errors": errors})
    if "OMP_NUM_THREADS" not in os.environ:  # as torchrun: no oversubscribed cores
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // processes))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=processes,
                          run_id=str(uuid.uuid4()), rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1)
    # The launcher's own log lines repeat what the processes printed (their errors, an
    # interrupt); its modules set their own levels, so each is quietened.
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        elastic_launch(config, sys.executable)("-m", "moonas", *argv)
    except SignalException as err:  # Ctrl-C or a kill: the processes stopped, the checkpoint
        # stays; SIGTERM is said (and exits) as in one process
        raise (Terminated() if err.sigval == signal.SIGTERM else KeyboardInterrupt()) from None
    except ChildFailedError as err:
        codes = sorted({int(f.exitcode) for f in err.failures.values()}, reverse=True)
        # A negative code: the launcher stopped that process (a signal) after another failed.
        said = ", ".join(str(c) if c >= 0 else f"signal {-c}" for c in codes)
        failure = MoonasError(f"{len(err.failures)} of {processes} processes stopped (exit "
                              f"{said}); their errors are above")
        failure.exit_code = codes[0] if codes and codes[0] > 0 else 1
        cause = _first_cause(errors)
        if cause is None:  # none failed on its own: which one was killed, and the way on
            cause = _killed_cause(err)
            if cause is not None and run_dir is not None and \
                    (Path(run_dir) / "checkpoint.pt").is_file():
                cause += (f"; its last checkpoint is kept: continue it with 'moonas search "
                          f"--resume {run_dir} --processes {processes}'")
        _record_cause(run_dir, cause)
        if cause is not None:  # the processes left their errors to be said here, once
            failure = MoonasError(cause)
            failure.exit_code = codes[0] if codes and codes[0] > 0 else 1
        raise failure from None
    finally:
        shutil.rmtree(errors, ignore_errors=True)
