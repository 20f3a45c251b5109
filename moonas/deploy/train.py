"""`moonas train`: retrain one candidate of a run standalone; weights and metrics stay in it."""

from __future__ import annotations

import datetime
import json
import logging
import shutil
import time
from dataclasses import asdict, replace
from typing import Callable, Literal

import torch

from moonas.atomic import write_json
from moonas.checkpoint import load_checkpoint, save_checkpoint
from moonas.distributed import World, barrier, join, main_first
from moonas.errors import CheckpointError, ConfigError, MoonasError
from moonas.lock import check_free, hold, release
from moonas.retrain import TrainRecipe, train_standalone
from moonas.run import Run
from moonas.deploy.weights import (TRAINED_FORMAT, TrainedFiles, find_candidate,
                                   read_trained_metrics, run_data, run_space, supernet_network)

__all__ = ["INITS", "train_candidate", "default_recipe"]

log = logging.getLogger(__name__)

#: How the weights start: random (`scratch`) or the supernet's (batch norm recalibrated).
INITS = ("scratch", "supernet")


def default_recipe(run: Run, epochs: int | None = None, lr: float | None = None) -> TrainRecipe:
    """`TrainRecipe` defaults with the run's batch size and gradient clipping."""
    recipe = TrainRecipe(batch_size=run.config.data.batch_size,
                         grad_clip=run.config.train.grad_clip)
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {epochs}")
        recipe = replace(recipe, epochs=int(epochs))
    if lr is not None:
        if not 0 < lr < float("inf"):  # NaN too
            raise ConfigError(f"--lr must be a number > 0, got {lr}")
        recipe = replace(recipe, lr=float(lr))
    return recipe


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
    """
    if init not in INITS:
        raise ConfigError(f"--init must be one of {', '.join(INITS)}, got {init!r}")
    world, where = join(run.config.device if device is None else device,
                        "device" if device is None else "--device")
    candidate = find_candidate(run, cid)
    recipe = default_recipe(run, epochs, lr)
    files = TrainedFiles.of(run.dir, cid)
    job = {"id": candidate.id, "arch": list(candidate.arch), "init": init,
           "seed": run.config.seed, "recipe": asdict(recipe)}
    if world.main:  # another live `moonas train` of this id: refused before anything changes
        check_free(files.root, "trained")
    if restart and files.root.exists() and world.main:
        shutil.rmtree(files.root)
    barrier(world)  # the others read what rank 0 left
    if files.job.is_file():
        try:
            previous = json.loads(files.job.read_text())
        except json.JSONDecodeError:
            previous = None
        started = any(f.exists() for f in (files.checkpoint, files.weights, files.metrics))
        if previous != job and started:
            raise MoonasError(
                f"{files.root} holds a training of id {cid} with other settings "
                f"({_difference(previous, job)}): pass --restart to discard it, or the same "
                "settings to resume or reuse it"
            )
        if files.complete:
            try:  # the weights must load, or the training is not done: its last checkpoint
                load_checkpoint(files.weights)  # (a finished one: zero epochs) writes them again
            except CheckpointError as err:
                log.warning("%s; writing them again from the training's last checkpoint", err)
            else:
                log.info("id %d of %s is already trained with these settings", cid, run.dir)
                metrics = read_trained_metrics(run.dir, cid)
                if metrics is not None:
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
    if world.main:  # only now: a job whose inputs fail to load leaves nothing behind
        try:
            files.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise MoonasError(f"cannot write to {files.root} ({err.strerror}): make the run "
                              "directory writable") from None
        write_json(files.job, job)
        hold(files.root)
    try:
        return _train(run, candidate, cid, init, recipe, files, net, data, where, world,
                      progress)
    except KeyboardInterrupt:
        if world.main:
            log.warning("the training of id %d stopped; its last epoch is kept: run the same "
                        "'moonas train' command again (without --restart) to continue it", cid)
        raise
    finally:
        if world.main:
            release(files.root)


def _train(run: Run, candidate, cid: int, init: str, recipe: TrainRecipe, files: TrainedFiles,
           net: torch.nn.Module, data, where: torch.device, world: World,
           progress: Callable[[int, int, dict], None] | None) -> dict:
    """The training itself, its weights and metrics written (rank 0), the folder held."""
    if files.checkpoint.is_file():
        log.info("resuming the training of id %d from %s", cid, files.checkpoint)
    start = time.perf_counter()
    result = train_standalone(net, data, recipe, seed=run.config.seed,
                              checkpoint=files.checkpoint, device=where, world=world,
                              workers=run.config.data.workers,
                              progress=progress if world.main else None)
    metrics = _metrics(candidate, run, init, recipe, result, where, world,
                       time.perf_counter() - start)
    if world.main:
        save_checkpoint(files.weights, {"format": TRAINED_FORMAT, "arch": list(candidate.arch),
                                        "arch_str": candidate.arch_str,
                                        "state_dict": net.state_dict()})
        write_json(files.metrics, metrics)  # last: marks the training complete
    barrier(world)
    return metrics


def _metrics(candidate, run: Run, init: str, recipe: TrainRecipe, result, where: torch.device,
             world: World, wall: float) -> dict:
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
        "device": str(where),
        "processes": world.size,
        "wall_seconds_last_session": round(wall, 2),
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _difference(previous: dict | None, job: dict) -> str:
    if not isinstance(previous, dict):
        return "unreadable job.json"
    parts = []
    for key in ("init", "seed", "arch"):
        if previous.get(key) != job[key]:
            parts.append(f"{key} {previous.get(key)} vs {job[key]}")
    old, new = previous.get("recipe") or {}, job["recipe"]
    parts += [f"{k} {old.get(k)} vs {v}" for k, v in new.items() if old.get(k) != v]
    return ", ".join(parts) or "different job"
