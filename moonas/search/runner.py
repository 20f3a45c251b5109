"""One search run end to end: the run directory, training with checkpoints, the front, the files."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import platform
import shutil
import sys
import time
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from moonas.atomic import remove_stale_temps, write_json, write_text
from moonas.checkpoint import load_checkpoint
from moonas.config import RunConfig, api_overrides, api_path, config_to_dict, load_config
from moonas.costs import COST_UNITS, cost_label
from moonas.devices import device_fields
from moonas.distributed import (World, barrier, check_batch_size, join, launched,
                                launcher_command)
from moonas.errors import ArgumentError, CheckpointError, MoonasError, UsageError
from moonas.lock import acquire, check_free, hold, holder, release
from moonas.run import (CorruptFront, Candidate, Run, RunFiles, candidates_text, is_run_dir,
                        load_run, read_candidates, write_candidates, write_front)
from moonas.search.context import build_context
from moonas.search.front import build_front, front_from_candidates
from moonas.search.loop import Progress, check_config, restore, train, truncate_log
from moonas.search.strategies import STRATEGIES
from moonas.yamlio import dump_yaml, read_yaml

__all__ = ["search", "check_out_dir", "recover", "resume_config"]

log = logging.getLogger(__name__)

_LIBRARIES = ("moonas", "torch", "torchvision", "numpy", "pymoo", "thop", "optuna",
              "scikit-learn", "PyYAML")


def _resolve_config(config: RunConfig | str | Path | Mapping | None,
                    overrides: tuple[str, ...]) -> RunConfig:
    if isinstance(config, RunConfig):
        return load_config(config_to_dict(config), list(overrides)) if overrides else config
    return load_config(config, list(overrides))


def _default_out(config: RunConfig, world: World) -> Path:
    if world.parallel:  # the ranks' clocks may straddle a second
        raise MoonasError("under torchrun, name the run directory with --out")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.space.name}-{config.data.name}-{config.search.strategy}-{stamp}"


def check_out_dir(root: Path, force: bool) -> None:
    """One line when a new run cannot go into `root` (a file; another run or other files
    there without `force`); reads only."""
    if root.exists() and not root.is_dir():
        raise MoonasError(f"--out {root} is a file: choose a directory")
    if root.is_dir() and any(root.iterdir()) and not force:
        if is_run_dir(root) or (root / REPLACED).is_dir():
            raise MoonasError(f"{root} holds another run: pass --resume {root} to continue it, "
                              "--force to overwrite it, or choose another --out")
        raise MoonasError(f"{root} is not empty and holds no moonas run: choose another "
                          "--out (or --force to write into it)")


def _prepare_dir(files: RunFiles, force: bool) -> None:
    """Make `files.root` ready for a new run, and take its lock: under `force`, an old run's
    files are set aside (`_set_aside`) until the new run has a checkpoint."""
    root = files.root
    check_out_dir(root, force)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".moonas-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise MoonasError(f"cannot write to {root} ({err.strerror}): "
                          "choose another --out") from None
    acquire(root)  # before anything moves: of two --force runs started at once, one goes on
    try:
        _recover_replaced(files)  # a replacement killed earlier: its old run first
        if force and any(os.path.lexists(path) for path in _old_files(files)):
            _set_aside(files)
    except BaseException:
        release(root)
        raise


#: Where `--force` keeps the run it replaces until the new run's first checkpoint: a hidden
#: folder inside the run's own (a rename there needs no write access above it).
REPLACED = ".moonas-replaced"
#: In REPLACED once every old file is in it: the run folder's own files are the new run's.
_MOVED = ".set-aside"
#: REPLACED renamed, in one step, on its way to deletion (a kill part-way leaves no doubt).
_DISCARDED = ".moonas-replaced-deleting"


def _old_files(files: RunFiles) -> list[Path]:
    """What --force replaces: the run's files, its sub-runs and its retrained networks (other
    files in the folder stay, as they did when --force deleted)."""
    return [files.config, files.manifest, files.log, files.pareto_json, files.pareto_csv,
            files.pareto_png, files.root / "trained", files.root / "separate",
            files.candidates, files.checkpoint]


def _progressed(files: RunFiles) -> bool:
    """Whether the run in `files.root` has something to resume: a checkpoint (its own, or a
    sub-run's of asng-separate) or its candidates. The folder REPLACED is not looked in."""
    return (files.checkpoint.is_file() or files.candidates.is_file()
            or any((files.root / "separate").glob("budget*/checkpoint.pt")))


def _set_aside(files: RunFiles) -> None:
    """Move the old run's files into REPLACED (renames: no copy, nothing deleted yet), its
    `trained/ID` folders locked first; when one cannot move (or on Ctrl-C), every file goes
    back where it was, and one line says why."""
    root, aside = files.root, files.root / REPLACED
    trainings = _take_trainings(root / "trained")
    try:
        try:
            aside.mkdir()
        except OSError as err:
            raise MoonasError(f"cannot write to {root} ({err.strerror}): make it writable, or "
                              "choose another --out") from None
        try:
            for path in _old_files(files):
                if os.path.lexists(path):
                    os.rename(path, aside / path.name)
            (aside / _MOVED).write_text("")
        except BaseException as err:
            _restore_replaced(files)
            if not isinstance(err, OSError):
                raise
            what = Path(err.filename).name if err.filename else "a file"
            raise MoonasError(f"cannot move the old run in {root} aside ({what}: "
                              f"{err.strerror}): make it writable, or choose another "
                              "--out") from None
    except BaseException:
        for folder in trainings:
            release(folder)
        raise


def _put_back(files: RunFiles) -> None:
    """Return the run set aside in REPLACED to its folder, over a new run that has nothing to
    resume (removed first). Safe to repeat after a kill part-way: the marker goes before
    anything moves, and without it nothing in the folder is the new run's."""
    root, aside = files.root, files.root / REPLACED
    if (aside / _MOVED).exists():
        for path in (files.config, files.manifest, files.log):
            path.unlink(missing_ok=True)
        shutil.rmtree(root / "separate", ignore_errors=True)
        (aside / _MOVED).unlink()
    for path in sorted(aside.iterdir()):
        if os.path.lexists(root / path.name):  # never over a file: left for a person to sort
            raise MoonasError(f"{root / path.name} is in the way of the old run's {path} set "
                              f"aside by --force: move one of them away")
        os.rename(path, root / path.name)
    aside.rmdir()
    for folder in (root / "trained").iterdir() if (root / "trained").is_dir() else ():
        release(folder)  # this process's lock from `_take_trainings`
        with contextlib.suppress(MoonasError):
            check_free(folder, "trained")  # a killed replacement's, now stale: removed


def _discard_replaced(files: RunFiles) -> None:
    """Delete the run that --force replaced, once the new run has a checkpoint (a failure
    only warns: the new run goes on, and the next command of the folder deletes it)."""
    aside, doomed = files.root / REPLACED, files.root / _DISCARDED
    if aside.is_dir():
        try:
            os.rename(aside, doomed)
        except OSError as err:
            log.warning("could not delete the run --force replaced (%s: %s); the next "
                        "'moonas search --resume %s' deletes it", aside, err.strerror,
                        files.root)
            return
        log.info("the run that --force replaced in %s is deleted: the new run has its first "
                 "checkpoint", files.root)
    shutil.rmtree(doomed, ignore_errors=True)


def _recover_replaced(files: RunFiles) -> None:
    """What a --force replacement killed outright (kill -9, power loss) left: its old run is
    put back when the new run has nothing to resume, else deleted. The caller holds the
    folder."""
    shutil.rmtree(files.root / _DISCARDED, ignore_errors=True)
    if not (files.root / REPLACED).is_dir():
        return
    if (files.root / REPLACED / _MOVED).exists() and _progressed(files):
        _discard_replaced(files)
    else:
        _put_back(files)
        log.warning("a --force run in %s was stopped before its first checkpoint: the run it "
                    "replaced is put back", files.root)


def _recover_before_resume(files: RunFiles) -> None:
    """`_recover_replaced` before a resume reads the run (which run is there depends on it),
    the folder held for the while; nothing is written without a replacement left in it."""
    if not ((files.root / REPLACED).is_dir() or (files.root / _DISCARDED).exists()):
        return
    acquire(files.root)
    try:
        _recover_replaced(files)
    finally:
        release(files.root)


#: How long a rank other than 0 waits for rank 0 to sort out a killed --force replacement
#: before it reads the run (renames and a small delete: seconds at most).
_RECOVERY_WAIT_S = 120.0


def _await_recovery(files: RunFiles, world: World) -> None:
    """Under torchrun, on a rank other than 0: wait until rank 0 has put back or deleted the
    run a killed --force replacement set aside, so every rank reads the same run (one that
    read the other would train another config, or wait forever in a collective)."""
    deadline = time.monotonic() + _RECOVERY_WAIT_S
    while (files.root / REPLACED).is_dir() or (files.root / _DISCARDED).exists():
        if time.monotonic() > deadline:
            raise MoonasError(f"rank {world.rank}: the run in {files.root} is still being "
                              f"sorted out by rank 0 after {_RECOVERY_WAIT_S:g} s (a --force "
                              "replacement was killed): resume again")
        time.sleep(0.1)


def recover(root: Path) -> None:
    """Before a resume of `root` read by a launcher (`--processes`): sort out a --force
    replacement a kill left there (`_recover_replaced`), so the run checked is the run
    resumed."""
    files = RunFiles(Path(root))
    check_free(files.root)
    _recover_before_resume(files)


def resume_config(root: Path) -> RunConfig:
    """The config of the run in `root` that a resume continues with. An emptied config.yaml
    reads as every schema default, and the checkpoint's copy then names what differs (a
    config file that sets nothing is refused only as a new run's)."""
    files = RunFiles(Path(root))
    if not files.config.is_file():
        raise MoonasError(f"{files.root} is not a moonas run (no config.yaml): nothing to resume")
    return load_config(files.config if read_yaml(files.config) else {})


def _discarding(files: RunFiles, progress: Progress | None) -> Progress:
    """`progress`, which also deletes the run --force set aside at its first call after the
    new run's first checkpoint (looked for once per epoch and sub-run, and in the front)."""
    looked, pending = None, True

    def call(done: int, total: int, info: dict) -> None:
        nonlocal looked, pending
        key = (info.get("phase"), info.get("epoch"), info.get("run"))
        if pending and key != looked:
            looked = key
            if _progressed(files):
                _discard_replaced(files)
                pending = False
        if progress is not None:
            progress(done, total, info)

    return call


def _take_trainings(trained: Path) -> list[Path]:
    """Lock every `trained/ID` of the run that --force replaces, so no `moonas train` runs or
    starts in one while it goes; one line naming the live training instead (nothing removed,
    the locks taken so far given back)."""
    folders = sorted(p for p in trained.iterdir() if p.is_dir()) if trained.is_dir() else []
    taken: list[Path] = []
    try:
        for folder in folders:
            owner = holder(folder)
            if owner is not None:
                raise MoonasError(
                    f"--force would delete {folder}, but 'moonas train' of id {folder.name} is "
                    f"running there (process {owner.get('pid')}, since "
                    f"{owner.get('since', '?')}): wait for it to end or stop it, or choose "
                    "another --out")
            acquire(folder, "trained")
            taken.append(folder)
    except BaseException:
        for folder in taken:
            release(folder)
        raise
    return taken


def _manifest(config: RunConfig, status: str, wall: float | None, world: World,
              extra: dict | None = None) -> dict:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "status": status,
        "seed": config.seed,
        "versions": {"python": platform.python_version(), **versions},
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    **device_fields(join(config.device)[1]), "processes": world.size},
        "command": launcher_command() or sys.argv,
        "units": {
            "accuracy": "fraction of the validation split classified correctly by the path in "
                        f"the shared supernet weights (batch norm: {config.search.bn})",
            **COST_UNITS,
            **({config.search.cost: f"milliseconds per batch-1 forward, from "
                                    f"{config.search.latency_table}"}
               if config.search.cost.startswith("latency:") else {}),
        },
        "wall_seconds": None if wall is None else round(wall, 2),
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }


def search(config: RunConfig | str | Path | Mapping | None = None, out: str | Path | None = None,
           *, overrides: tuple[str, ...] = (), resume: bool = False, force: bool = False,
           progress: Progress | None = None) -> Run:
    """Run (or resume) a search and return the run as read back from its directory.

    `config`: a `RunConfig`, a YAML path, a packaged config name, a mapping, or None for the
    embedded default. `out`: the run directory (default `runs/SPACE-DATASET-STRATEGY-TIME`).
    `overrides`: `KEY=VALUE` settings as `--set` takes them (a string is one setting, None
    none).
    `resume=True`: `out` is the run to continue, with its saved config. `force=True`: a run
    already in `out` is replaced; its files are kept aside (in `out/.moonas-replaced`) until
    the new run's first checkpoint, and put back if the new run stops before it. Both are
    bools, and not both True. `progress(done, total, info)`: called as training steps
    (`info["phase"] == "train"`, with step, epoch, lr and losses; `total` the run's steps) and
    then front candidates (`"front"`; `total` the candidates to measure, or spos-nsga2's
    evaluation budget, which it may stop short of) are done; `done <= total`, `total >= 1`.

    Errors are `moonas.MoonasError` (one line each); an argument of the wrong type is its
    subclass `moonas.errors.ArgumentError`, also a TypeError. The caller's torch thread count and
    global RNG states (CPU, and every GPU's where CUDA is available) are restored on return:
    the run sets its own from the config.
    """
    overrides = api_overrides(overrides, "search")
    out = api_path(out, "out", "search", optional=True)
    if config is not None and not isinstance(config, (RunConfig, Mapping, str, os.PathLike)):
        raise ArgumentError(f"search: config must be a RunConfig, a YAML path, a packaged config "
                            f"name, a mapping or None, got {type(config).__name__} {config!r}")
    if progress is not None and not callable(progress):
        raise ArgumentError(f"search: progress must be callable as progress(done, total, info), "
                            f"got {type(progress).__name__}")
    for name, flag in (("resume", resume), ("force", force)):
        if not isinstance(flag, bool):  # "no" or 1 would pass an `if`: overwrite by accident
            raise ArgumentError(f"search: {name} must be True or False, got "
                                f"{type(flag).__name__} {flag!r}")
    if resume and force:
        raise UsageError("search: resume=True continues a run and force=True starts one over: "
                         "pass one")
    threads, rng_state = torch.get_num_threads(), _rng_state()
    try:
        return _search(config, out, overrides, resume, force, progress)
    finally:
        torch.set_num_threads(threads)
        _set_rng_state(rng_state)


def _rng_state() -> tuple:
    """The caller's global torch RNG state: the CPU generator's and, where the caller has CUDA
    in use, every GPU's (`torch.manual_seed`, which the run calls, reseeds those too). A
    caller that has not started CUDA keeps it unstarted: reading the states would start it
    (seconds, and memory on every GPU) for what may be a CPU run."""
    cuda = (torch.cuda.get_rng_state_all()
            if torch.cuda.is_available() and torch.cuda.is_initialized() else None)
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple) -> None:
    """Restore what `_rng_state` saved."""
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def _search(config: RunConfig | str | Path | Mapping | None, out: str | Path | None,
            overrides: tuple[str, ...], resume: bool, force: bool,
            progress: Progress | None) -> Run:
    start = time.perf_counter()
    world = launched()  # under torchrun: rank 0 writes, every rank trains
    made: Path | None = None  # the outermost folder this call creates, if any
    earlier: list[dict] = []  # the manifests of the run's earlier segments (a resume)
    if resume:
        if out is None:
            raise MoonasError("--resume needs the run directory to continue")
        files = RunFiles(Path(out))
        if config is not None or overrides:
            raise UsageError("--resume continues with the config saved in the run: drop CONFIG "
                             "and --set")
        if world.main:  # the other ranks would find rank 0's own lock
            check_free(files.root)
            _recover_before_resume(files)
        else:  # which run is there depends on rank 0's recovery: read it only after that
            _await_recovery(files, world)
        config = resume_config(files.root)
        earlier = _earlier_segments(files)
        stale: tuple[Path, ...] = ()  # a damaged front's files, rebuilt from the checkpoint
        if files.pareto_json.is_file():
            if not files.candidates.is_file() and files.rebuildable:
                stale = (files.pareto_json,)  # candidates.csv lost: rebuilt with the front
                if world.main:
                    log.warning("run %s has no candidates.csv; rebuilding the front from the "
                                "checkpoint", files.root)
            else:
                try:
                    run = load_run(files.root)
                except CorruptFront as err:
                    if not files.rebuildable:
                        raise
                    if world.main:
                        log.warning("%s; rebuilding the front from the checkpoint", err)
                    stale = (files.pareto_json, files.pareto_csv, files.candidates)
                else:
                    damaged = _check_complete_config(files, config)
                    log.info("run %s is already complete", files.root)
                    if world.main:
                        hold(files.root)
                        try:
                            _mark_complete(files, run.config, world)
                            _repair_derived(files, run)
                        finally:
                            release(files.root)
                        _check_checkpoints(files, damaged)
                    return run
        join(config.device)
        barrier(world)  # every process has read the run before rank 0 removes its stale front
    else:
        config = _absolute_paths(_resolve_config(config, tuple(overrides)))
        _check_strategy(config.search.strategy)  # before a run directory exists
        join(config.device)  # likewise a GPU this machine lacks
        check_batch_size(config.data.batch_size, world, "data.batch_size")
        files = RunFiles(Path(out) if out is not None else _default_out(config, world))
        made = _outermost_missing(files.root)
        if world.main:
            check_free(files.root)
            _prepare_dir(files, force)  # holds the folder from here on
    history = {"earlier": earlier} if earlier else None
    try:
        if world.main:
            hold(files.root)  # (a resume: one line for a read-only folder, before any write)
            if resume:
                for path in stale:
                    path.unlink(missing_ok=True)
            else:  # inside: a failure puts back the run --force set aside
                write_text(files.config, dump_yaml(config_to_dict(config)))
            # The run's folder and asng-separate's sub-runs (not `trained/`: its trainings
            # hold their own folders).
            for folder in (files.root, *sorted((files.root / "separate").glob("budget*"))):
                remove_stale_temps(folder)
            write_json(files.manifest, _manifest(config, "running", None, world, history))
        barrier(world)  # the others start once rank 0 has prepared the directory

        if world.main and (files.root / REPLACED).is_dir():
            progress = _discarding(files, progress)
        if config.search.strategy == "asng-separate":
            _separate(config, files, progress, world)
        else:
            _single(config, files, resume, progress)
        if world.main:  # inside: a stop from here on still records itself, lock held
            write_json(files.manifest, _manifest(config, "complete",
                                                 time.perf_counter() - start, world, history))
            _discard_replaced(files)  # a run with no progress calls had none to delete it
    except BaseException as err:
        if world.main:
            try:
                _stopped(config, files, world, err, new=not resume, made=made, history=history,
                         wall=time.perf_counter() - start)
            except Exception:  # noqa: BLE001 - the tidying must not hide the error itself
                log.debug("could not tidy %s after the run stopped", files.root, exc_info=True)
        raise
    finally:
        if world.main:
            release(files.root)
    barrier(world)  # every rank returns the run rank 0 wrote
    return load_run(files.root)


def _mark_complete(files: RunFiles, config: RunConfig, world: World) -> None:
    """A complete run (its front written) whose manifest still says otherwise (stopped in the
    moment between the two writes) is recorded complete. A missing or damaged manifest is
    written again, saying so: its record of the run's versions and machine is lost, and a
    manifest that says nothing would leave the run looking unfinished."""
    try:
        manifest = json.loads(files.manifest.read_text())
    except (FileNotFoundError, ValueError):
        manifest = None
    except OSError:  # unreadable here (permissions): left as it is
        return
    if not isinstance(manifest, dict):
        log.warning("%s is missing or damaged; written again (status complete; its versions "
                    "and machine are this resume's)", files.manifest)
        write_json(files.manifest, _manifest(config, "complete", None, world, {
            "rewritten": "the run's own manifest was missing or damaged: this one was written "
                         "by 'moonas search --resume', with that command's versions and "
                         "machine"}))
        return
    if manifest.get("status") != "complete":
        write_json(files.manifest, {**{k: v for k, v in manifest.items() if k != "error"},
                                    "status": "complete"})


def _check_complete_config(files: RunFiles, config: RunConfig) -> CheckpointError | None:
    """One line when a complete run's config.yaml (`config`) differs from the one its
    checkpoint was written with, as for an unfinished run: an edit would make `train`,
    `export` and `pick` read another run. Returns the checkpoint's damage, if it is damaged,
    for `_check_checkpoints` to report after the other repairs (the checkpoint read once)."""
    if not files.checkpoint.is_file():
        return None
    try:
        saved = load_checkpoint(files.checkpoint).get("config")
    except CheckpointError as err:
        return err
    check_config(config, files.checkpoint, saved)
    return None


def _check_checkpoints(files: RunFiles, damaged: CheckpointError | None) -> None:
    """One line for a complete run whose checkpoint (`damaged`: its damage, as
    `_check_complete_config` found it) or a sub-run's is damaged: its front is whole, but
    `export` and `weights` inherit the supernet's weights from it."""
    subs = sorted((files.root / "separate").glob("budget*/checkpoint.pt"))
    for err in (damaged, *(_damage(path) for path in subs)):
        if err is not None:
            raise CheckpointError(f"{err.problem}: run {files.root} is complete, but its "
                                  "supernet weights are lost; restore the checkpoint from a "
                                  "copy, or run the search again with --force",
                                  err.problem) from None


def _damage(path: Path) -> CheckpointError | None:
    """Why the checkpoint at `path` does not load, or None."""
    try:
        load_checkpoint(path)
    except CheckpointError as err:
        return err
    return None


def _earlier_segments(files: RunFiles) -> list[dict]:
    """What the manifest of a run being resumed recorded of each earlier segment (command,
    processes, wall time, status), oldest first, so a resume does not overwrite its history."""
    try:
        old = json.loads(files.manifest.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(old, dict):
        return []
    segment = {"command": old.get("command"), "status": old.get("status"),
               "processes": (old.get("machine") or {}).get("processes"),
               "wall_seconds": old.get("wall_seconds"), "written": old.get("written")}
    return [*old.get("earlier", []), segment]


def _outermost_missing(path: Path) -> Path | None:
    """The outermost folder of `path` that does not exist yet (what making it would create)."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing


def _absolute_paths(config: RunConfig) -> RunConfig:
    """`config` with a relative data.root or search.latency_table made absolute, so that the
    run's later commands (train, export, pick, plot) find them from any directory."""
    data, search = config.data, config.search
    if data.root is not None and not os.path.isabs(data.root):
        data = replace(data, root=os.path.abspath(os.path.expanduser(data.root)))
    table = search.latency_table
    if table is not None and not os.path.isabs(table) and Path(table).exists():
        search = replace(search, latency_table=os.path.abspath(table))
    return replace(config, data=data, search=search)


def _stopped(config: RunConfig, files: RunFiles, world: World, err: BaseException, *,
             new: bool, made: Path | None, history: dict | None, wall: float) -> None:
    """Leave the run directory as a rerun or a resume needs it after `err` stopped the run.

    A new run stopped before its first checkpoint (bad data, an infeasible budget, a
    divergence in the first epoch, Ctrl-C) has nothing to resume: its files are removed, and
    the directory too if this run made it, so the corrected command runs without --force;
    the run that --force was replacing is put back. Otherwise the manifest records the stop
    (the replaced run is deleted), and after Ctrl-C the log says how to resume.
    """
    if new and not _progressed(files):
        if (files.root / REPLACED).is_dir():  # the folder still held: no one starts in it
            _restore_replaced(files)
            release(files.root)
            return
        release(files.root)  # before the folder goes (the caller's release is then a no-op)
        for path in (files.config, files.manifest, files.log):
            path.unlink(missing_ok=True)
        shutil.rmtree(files.root / "separate", ignore_errors=True)
        if made is not None:  # the folders this run made, innermost first, while empty
            for folder in (files.root, *files.root.parents):
                if not folder.is_dir() or any(folder.iterdir()):
                    break
                folder.rmdir()
                if folder == made:
                    break
        return
    if new:  # the new run has a checkpoint: the one --force replaced goes
        _discard_replaced(files)
    interrupted = isinstance(err, KeyboardInterrupt)
    write_json(files.manifest, _manifest(config, "interrupted" if interrupted else "failed",
                                         wall, world, {**(history or {}),
                                                       "error": str(err)[:500]}))
    if interrupted:
        log.warning("run %s stopped; its last checkpoint is kept: continue it with "
                    "'moonas search --resume %s'", files.root, files.root)


def _restore_replaced(files: RunFiles) -> None:
    """Put back the run --force set aside, after the new run stopped with nothing to resume;
    a failure says where the old run waits and that the next resume puts it back."""
    try:
        _put_back(files)
    except (OSError, MoonasError) as err:
        log.warning("the run --force replaced is still in %s (%s): 'moonas search --resume %s' "
                    "puts it back", files.root / REPLACED, err, files.root)


def _check_strategy(name: str) -> None:
    """One line for a strategy the search does not know (`asng-separate` runs here, outside
    the strategy registry)."""
    if name not in STRATEGIES and name != "asng-separate":
        raise STRATEGIES.unknown(name, also=("asng-separate",))


def _single(config: RunConfig, files: RunFiles, resume: bool, progress: Progress | None) -> None:
    ctx = build_context(config)
    main = ctx.world.main
    if main:
        log.info("training on %s%s", " ".join(device_fields(ctx.device).values()),
                 f" and {ctx.world.size - 1} more processes" if ctx.world.parallel else "")
    start_epoch = 0
    if resume and files.checkpoint.is_file():
        start_epoch = restore(ctx, files.checkpoint)
        if main:
            log.info("resuming %s after epoch %d", files.root, start_epoch)
    if main:
        truncate_log(files.log, start_epoch * ctx.steps_per_epoch)
    train(ctx, files.checkpoint, files.log, start_epoch, progress if main else None)
    candidates, front = build_front(ctx, progress if main else None)
    if main:
        _write_results(files, candidates, front, config)


def _write_results(files: RunFiles, candidates: list[Candidate], front, config: RunConfig) -> None:
    digest = write_candidates(files.candidates, candidates)
    _plot_front(files, candidates, front, config)
    # last: pareto.json marks the run complete
    write_front(files, front, candidates_sha256=digest, n_candidates=len(candidates))


def _repair_derived(files: RunFiles, run: Run) -> None:
    """Rewrite what a complete run's front files derive from (pareto.csv from pareto.json,
    pareto.png from the candidates) when missing or damaged: a resume leaves a whole run."""
    expected = candidates_text(run.front.architectures)
    try:
        intact = files.pareto_csv.read_text() == expected
    except (OSError, UnicodeDecodeError):
        intact = False
    if not intact:
        log.warning("%s is missing or damaged; written again from pareto.json", files.pareto_csv)
        write_text(files.pareto_csv, expected)
    if run.candidates and not _png_whole(files.pareto_png):
        log.warning("%s is missing or damaged; drawn again", files.pareto_png)
        _plot_front(files, list(run.candidates), run.front, run.config)


def _png_whole(path: Path) -> bool:
    """Whether `path` is a PNG file that was written to its end (signature and IEND chunk)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 12))
            tail = handle.read()
    except OSError:
        return False
    return head == b"\x89PNG\r\n\x1a\n" and tail[4:8] == b"IEND"


def _plot_front(files: RunFiles, candidates: list[Candidate], front, config: RunConfig) -> None:
    from moonas.plotting import FrontSeries, plot_front_overlay

    cost = np.array([c.cost(front.cost) for c in candidates], dtype=np.float64)
    plot_front_overlay(
        [FrontSeries(label=config.search.strategy, cost=cost,
                     accuracy=np.array([c.accuracy for c in candidates]),
                     on_front=np.array([c.on_front for c in candidates]),
                     mode_of=tuple(c.mode_of for c in candidates))],
        files.pareto_png, xlabel=cost_label(front.cost),
        budgets=[front.budgets or ()],
    )


def _sub_run_whole(files: RunFiles, world: World) -> bool:
    """Whether an asng-separate sub-run is complete with whole front files; a damaged one's
    front goes (every rank decides before rank 0 removes it), to be rebuilt from its checkpoint."""
    if not files.pareto_json.is_file():
        return False
    try:
        load_run(files.root)
    except CorruptFront as err:
        damage = str(err)
    else:
        return True
    rebuild = files.checkpoint.is_file()  # else nothing to rebuild from: pooled as before
    barrier(world)
    if world.main and rebuild:
        log.warning("%s; rebuilding it from the checkpoint", damage)
        files.pareto_json.unlink(missing_ok=True)
    barrier(world)
    return not rebuild


def _run_progress(progress: Progress | None, k: int, runs: int) -> Progress | None:
    """`progress` for sub-run `k` of `runs`: its calls carry `info["run"]` and `info["runs"]`."""
    if progress is None:
        return None
    return lambda done, total, info: progress(done, total, {**info, "run": k, "runs": runs})


def _separate(config: RunConfig, files: RunFiles, progress: Progress | None,
              world: World) -> None:
    """`asng-separate`: K independent single-budget ASNG runs, each as long as the joint run,
    each with its own supernet; their candidates (and modes) pooled into one front."""
    from moonas.pricing import static_space
    from moonas.search.context import cost_model, run_objective

    if config.search.coefficients is not None:
        raise MoonasError("asng-separate runs one budget per run: give search.budgets or "
                          "search.n_budgets, not coefficients")
    space = static_space(config)
    objective = run_objective(config, space, cost_model(space, config.search))
    pooled: list[Candidate] = []
    for k, budget in enumerate(objective.budgets):
        sub_files = RunFiles(files.root / "separate" / f"budget{k}")
        # Independent runs: sub-run k draws from seed + k (its weights, batches and samples),
        # on the run's own data split, so the pooled candidates are measured on one split.
        sub_config = replace(config, seed=config.seed + k,
                             data=replace(config.data, split_seed=config.split_seed),
                             search=replace(config.search, strategy="asng",
                                            budgets=(budget,), n_budgets=1))
        if not _sub_run_whole(sub_files, world):
            if world.main:
                sub_files.root.mkdir(parents=True, exist_ok=True)
                if not sub_files.config.is_file():
                    write_text(sub_files.config, dump_yaml(config_to_dict(sub_config)))
            barrier(world)
            _single(sub_config, sub_files, resume=sub_files.checkpoint.is_file(),
                    progress=_run_progress(progress, k, len(objective.budgets)))
        barrier(world)  # rank 0 has written the sub-run's candidates
        for c in read_candidates(sub_files.candidates):
            pooled.append(replace(c, id=len(pooled), mode_of=k if c.modes else None,
                                  modes=(k,) if c.modes else ()))
    if not world.main:
        return
    pooled_log = []  # written whole (atomically): a kill leaves the old log or the new one
    for k in range(len(objective.budgets)):
        sub_log = files.root / "separate" / f"budget{k}" / "log.jsonl"
        pooled_log += [json.dumps({"run": k, **json.loads(line)}) + "\n"
                       for line in sub_log.read_text().splitlines()]
    write_text(files.log, "".join(pooled_log))
    candidates, front = front_from_candidates(config.space.name, config.data.name, objective,
                                              pooled)
    _write_results(files, candidates, front, config)
