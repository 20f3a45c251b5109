"""`moonas train`: retrain one candidate of a run standalone; weights and metrics stay in it.

A training may take several sessions (stopped, then resumed, perhaps with another
`--processes` or `--device`): each session is recorded in `job.json` as it starts, and
`metrics.json` lists them all (`sessions`: processes, device, first epoch, epochs trained)
beside `processes`, the count of the session that finished it.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import numbers
import shutil
import time
from contextlib import ExitStack
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Literal

import torch

from moonas.atomic import remove_stale_temps, write_json
from moonas.checkpoint import load_checkpoint, save_checkpoint
from moonas.devices import device_fields
from moonas.distributed import World, barrier, join, main_first
from moonas.errors import ArgumentError, CheckpointError, ConfigError, MoonasError
from moonas.lock import LOCK, acquire, release
from moonas.retrain import TrainRecipe, train_standalone
from moonas.run import Run
from moonas.deploy.weights import (TRAINED_FORMAT, DamagedMetrics, TrainedFiles, caller_rng,
                                   find_candidate, read_trained_metrics, run_data, run_space,
                                   supernet_network, train_command)

__all__ = ["INITS", "train_candidate", "default_recipe", "check_recipe_args",
           "check_run_device"]

log = logging.getLogger(__name__)

#: How the weights start: random (`scratch`) or the supernet's (batch norm recalibrated).
INITS = ("scratch", "supernet")


def default_recipe(run: Run, epochs: int | None = None, lr: float | None = None) -> TrainRecipe:
    """`TrainRecipe` defaults with the run's batch size and gradient clipping, `epochs` and
    `lr` when given (checked by `check_recipe_args`)."""
    check_recipe_args(epochs, lr)
    recipe = TrainRecipe(batch_size=run.config.data.batch_size,
                         grad_clip=run.config.train.grad_clip)
    if epochs is not None:
        recipe = replace(recipe, epochs=int(epochs))
    if lr is not None:
        recipe = replace(recipe, lr=float(lr))
    return recipe


def check_recipe_args(epochs: int | None = None, lr: float | None = None) -> None:
    """`epochs` an int >= 1 and `lr` a finite number > 0 (None: the default): a value of
    another type raises `ArgumentError` naming the argument, one out of range `ConfigError`
    naming the flag (`moonas train` turns it into a usage error)."""
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral):
            raise ArgumentError(f"epochs must be an int (a number of epochs), got "
                                f"{type(epochs).__name__} {repr(epochs)[:40]}")
        if epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {epochs}")
    if lr is not None:
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
            raise ArgumentError(f"lr must be a number (a learning rate), got "
                                f"{type(lr).__name__} {repr(lr)[:40]}")
        if not (0 < lr and math.isfinite(lr)):  # NaN too
            raise ConfigError(f"--lr must be a finite number > 0, got {lr}")


def train_candidate(run: Run, cid: int, *, epochs: int | None = None,
                    init: Literal["scratch", "supernet"] = "scratch", lr: float | None = None,
                    restart: bool = False,
                    progress: Callable[[int, int, dict], None] | None = None,
                    device: str | None = None) -> dict:
    """Train candidate `cid` of `run` on the run's dataset (same splits and seed) and return its
    metrics (also written to `RUN/trained/ID/metrics.json`).

    Resumable: an interrupted training with the same settings continues from its last epoch;
    a finished one is returned as is. Other settings over an existing one need `restart=True`.
    `device` (`--device`; default: the run's `device`) is where it trains; it may differ
    between a training and its resumption. Under torchrun every process trains its shard of
    each batch (`moonas.distributed`) and rank 0 writes the files. `progress(done, total,
    info)` is called per training step (`info`: `phase` "train", `epoch`, `train_loss`).
    Rank 0 holds `RUN/trained/ID` (`moonas.lock`) from the start of the call to its end,
    however it ends: another training of the id meanwhile is refused with one line.
    The caller's torch thread count and global RNG state (the CPU's, and the GPUs' once CUDA
    is in use: `caller_rng`) are restored on return, as `moonas.search` restores them: the
    training sets its own from the run's config.
    """
    if init not in INITS:
        raise ConfigError(f"--init must be one of {', '.join(INITS)}, got {init!r}")
    if device is None:
        check_run_device(run)
    world, where = join(run.config.device if device is None else device,
                        "device" if device is None else "--device")
    candidate = find_candidate(run, cid)
    recipe = default_recipe(run, epochs, lr)
    files = TrainedFiles.of(run.dir, cid)
    job = {"id": candidate.id, "arch": list(candidate.arch), "init": init,
           "seed": run.config.seed, "recipe": asdict(recipe)}
    # Taken before anything changes, in one step: another `moonas train` of this id, even one
    # started the same moment, is refused; held until this call ends, however it ends.
    made = _take(files) if world.main else None
    threads, rng = torch.get_num_threads(), ExitStack()
    try:
        rng.enter_context(caller_rng(where))
        if restart and world.main:
            _clear(files)
        barrier(world)  # the others read what rank 0 left
        sessions: list[dict] = []  # the earlier sessions of this training
        if files.job.is_file():
            try:
                previous = json.loads(files.job.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError, OSError):  # damaged: not these
                previous = None
            started = any(f.exists() for f in (files.checkpoint, files.weights, files.metrics))
            if _settings(previous) == job:  # its sessions are this training's earlier ones
                sessions = _recorded_sessions(previous)
            elif started:
                raise MoonasError(
                    f"{files.root} holds a training of id {cid} with other settings "
                    f"({_difference(previous, job)}): pass --restart to discard it, or the "
                    "same settings to resume or reuse it"
                )
            if files.complete:
                try:  # the weights must load, or the training is not done: its last checkpoint
                    load_checkpoint(files.weights)  # (a finished one: zero epochs) writes them
                except CheckpointError as err:
                    log.warning("%s: writing it again from the training's last checkpoint (no "
                                "epoch is trained again)", err.problem)
                else:
                    try:
                        metrics = read_trained_metrics(run.dir, cid, candidate.arch,
                                                       damaged="raise")
                    except DamagedMetrics as err:
                        # The weights load: only the record is lost, and the last checkpoint
                        # (a finished one: zero epochs) writes both again, as they were.
                        log.warning("%s is damaged (%s): %s", err.path, err.why,
                                    "writing it again from the training's last checkpoint (no "
                                    "epoch is trained again)" if files.checkpoint.is_file() else
                                    f"training id {cid} again (its checkpoint is gone)")
                    else:
                        if metrics is not None:
                            log.info("id %d of %s is already trained with these settings", cid,
                                     run.dir)
                            return metrics

        if run.config.threads is not None:
            torch.set_num_threads(run.config.threads)
        space = run_space(run)
        data = main_first(world, lambda: run_data(run))  # a download: rank 0 alone
        if init == "supernet":
            net = supernet_network(run, candidate.arch, data=data, space=space, cid=cid)
        else:
            from moonas.nets import SUPERNETS

            torch.manual_seed(run.config.seed)
            net = SUPERNETS.get(space.name).standalone(space, candidate.arch)
        # Recorded as it starts, so that a session killed later is still on record.
        sessions.append(_session(world, where, _resumed_epoch(files)))
        if world.main:  # only now: a job whose inputs fail to load leaves nothing behind
            write_json(files.job, {**job, "sessions": sessions})
        try:
            return _train(run, candidate, cid, init, recipe, files, net, data, where, world,
                          progress, sessions)
        except KeyboardInterrupt:
            if world.main:
                log.warning("the training of id %d stopped; its last epoch is kept: continue "
                            "it with '%s'", cid, train_command(run.dir, cid, files.job))
            raise
    finally:
        torch.set_num_threads(threads)
        rng.close()
        if world.main:
            release(files.root)
            _remove_empty(files.root, made)


def check_run_device(run: Run) -> None:
    """One line naming `--device` when the run's config names a GPU and this machine has
    none: `train` has no `device` setting to change, only `--device`."""
    name = run.config.device
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"run {run.dir} was configured with device={name!r} (its "
                          f"config.yaml), but torch sees no CUDA GPU on this machine (torch "
                          f"{torch.__version__}): pass --device cpu to train here")


def _take(files: TrainedFiles) -> Path | None:
    """Make `trained/ID` and take its lock; the outermost folder this made (None: none), for
    `_remove_empty`. A refusal leaves no folder behind that it made."""
    made = None
    for folder in (files.root, *files.root.parents):
        if folder.exists():
            break
        made = folder
    try:
        files.root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MoonasError(f"cannot write to {files.root} ({err.strerror}): make the run "
                          "directory writable") from None
    try:
        acquire(files.root, "trained")
    except BaseException:
        _remove_empty(files.root, made)
        raise
    remove_stale_temps(files.root)  # held now: any temp file is a killed write's
    return made


def _clear(files: TrainedFiles) -> None:
    """`--restart`: remove an earlier training of the id, keeping this process's lock."""
    for path in files.root.iterdir():
        if path.name == LOCK:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _remove_empty(root: Path, made: Path | None) -> None:
    """Remove the folders `_take` made (`root` up to `made`), innermost first, while empty: a
    job that stopped before training leaves nothing behind."""
    if made is None:
        return
    for folder in (root, *root.parents):
        try:
            folder.rmdir()
        except OSError:  # not empty (another job's, or results), or gone
            return
        if folder == made:
            return


def _train(run: Run, candidate, cid: int, init: str, recipe: TrainRecipe, files: TrainedFiles,
           net: torch.nn.Module, data, where: torch.device, world: World,
           progress: Callable[[int, int, dict], None] | None, sessions: list[dict]) -> dict:
    """The training itself, its weights and metrics written (rank 0), the folder held."""
    if files.checkpoint.is_file():
        log.info("resuming the training of id %d from %s", cid, files.checkpoint)
    start = time.perf_counter()
    result = train_standalone(net, data, recipe, seed=run.config.seed,
                              checkpoint=files.checkpoint, device=where, world=world,
                              workers=run.config.data.workers,
                              progress=progress if world.main else None)
    metrics = _metrics(candidate, run, init, recipe, result, where, world,
                       time.perf_counter() - start, sessions)
    if world.main:
        save_checkpoint(files.weights, {"format": TRAINED_FORMAT, "arch": list(candidate.arch),
                                        "arch_str": candidate.arch_str,
                                        "state_dict": net.state_dict()})
        write_json(files.metrics, metrics)  # last: marks the training complete
    barrier(world)
    return metrics


def _metrics(candidate, run: Run, init: str, recipe: TrainRecipe, result, where: torch.device,
             world: World, wall: float, sessions: list[dict] | None = None) -> dict:
    """What `metrics.json` records of a finished training (the GPU's name too, as the search's
    manifest does). `sessions`: those of `job.json`, this one last (None: this one alone)."""
    if sessions is None:
        sessions = [_session(world, where, 0)]
    return {
        "id": candidate.id,
        "arch": list(candidate.arch),
        "arch_str": candidate.arch_str,
        "dataset": run.config.data.name,
        "init": init,
        "seed": run.config.seed,
        "recipe": asdict(recipe),
        "test_accuracy": result.test_accuracy,
        "val_accuracy": result.val_accuracy,
        "supernet_val_accuracy": candidate.accuracy,
        "params": candidate.params,
        "macs": candidate.macs,
        "history": [list(h) for h in result.history],
        **device_fields(where),
        "processes": world.size,  # the session that finished it; each one's in `sessions`
        "sessions": _sessions(sessions, recipe.epochs),
        "wall_seconds_last_session": round(wall, 2),
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _settings(recorded: Any) -> Any:
    """A `job.json`'s settings, to compare with this job's: all but its `sessions`."""
    if not isinstance(recorded, dict):
        return recorded
    return {k: v for k, v in recorded.items() if k != "sessions"}


def _session(world: World, where: torch.device, first_epoch: int) -> dict:
    """The record of this session as it starts (`job.json`'s `sessions`)."""
    return {"processes": world.size, **device_fields(where), "first_epoch": int(first_epoch),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds")}


def _resumed_epoch(files: TrainedFiles) -> int:
    """The epoch this session starts at: that of the training's checkpoint, else 0 (a damaged
    checkpoint fails here with the one line `train_standalone` would give)."""
    if not files.checkpoint.is_file():
        return 0
    try:
        return int(load_checkpoint(files.checkpoint)["epoch"])
    except (KeyError, TypeError, ValueError):  # no training checkpoint: refused when resumed
        return 0


def _recorded_sessions(job: dict) -> list[dict]:
    """The well-formed sessions `job.json` records (a job written before they were: none)."""
    recorded = job.get("sessions")
    if not isinstance(recorded, list):
        return []
    return [s for s in recorded if isinstance(s, dict)
            and isinstance(s.get("processes"), int) and isinstance(s.get("first_epoch"), int)]


def _sessions(recorded: list[dict], epochs: int) -> list[dict]:
    """`metrics.json`'s `sessions`: each recorded session with the epochs it trained, up to
    the epoch the next one started at (the last one: to the end). A session stopped before
    its first epoch was saved trained 0."""
    out = []
    for i, session in enumerate(recorded):
        end = recorded[i + 1]["first_epoch"] if i + 1 < len(recorded) else epochs
        out.append({**session, "epochs": max(0, end - session["first_epoch"])})
    return out


def _difference(previous: dict | None, job: dict) -> str:
    """The settings in which an earlier job differs from this one, for the refusal."""
    if not isinstance(previous, dict):
        return "unreadable job.json"
    parts = []
    for key in ("init", "seed", "arch"):
        if previous.get(key) != job[key]:
            parts.append(f"{key} {previous.get(key)} vs {job[key]}")
    old, new = previous.get("recipe") or {}, job["recipe"]
    parts += [f"{k} {old.get(k)} vs {v}" for k, v in new.items() if old.get(k) != v]
    return ", ".join(parts) or "different job"
