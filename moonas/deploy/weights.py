"""A run's standalone networks: supernet weights (batch norm recalibrated per path) or retrained.

The supernet's batch-norm running statistics are a mix over all sampled paths, so a network
cut out of it gets its statistics re-estimated on training batches of its own path: the same
batches the front's `bn=recalibrate` evaluation uses, so both see the same network.
"""

from __future__ import annotations

import functools
import logging
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import torch
from torch import nn

from moonas.checkpoint import load_checkpoint
from moonas.deploy.trained import (TRAINED_FORMAT, DamagedMetrics, TrainedFiles,
                                   read_trained_metrics, train_command)
from moonas.errors import ArgumentError, CheckpointError, ConfigError, MoonasError
from moonas.pricing import run_space
from moonas.run import Candidate, Run, RunFiles, read_candidates
from moonas.spaces import Arch, SearchSpace

__all__ = [
    "WEIGHT_SOURCES",
    "TRAINED_FORMAT",
    "TrainedFiles",
    "caller_rng",
    "check_cid",
    "find_candidate",
    "run_space",
    "run_data",
    "calibration_batches",
    "recalibrate_bn",
    "Standalone",
    "supernet_network",
    "trained_network",
    "load_standalone",
    "load_network",
    "read_trained_metrics",
    "DamagedMetrics",
    "train_command",
]

log = logging.getLogger(__name__)

#: Where a network's weights come from: retrained if `moonas train` produced them, else supernet.
WEIGHT_SOURCES = ("auto", "supernet", "trained")


def caller_rng(device: torch.device | str | None = None):
    """`torch.random.fork_rng` over the generators a network build or a training draws from
    or reseeds: the CPU's, and every GPU's once CUDA is in use here or `device` is a GPU
    (`torch.manual_seed` seeds them all). The caller's RNG state is restored on exit, however
    the block ends; a CPU-only process forks the CPU generator alone (CUDA is not started)."""
    gpu = device is not None and torch.device(device).type == "cuda"
    devices: list[int] = []
    if torch.cuda.is_available() and (gpu or torch.cuda.is_initialized()):
        devices = list(range(torch.cuda.device_count()))
    return torch.random.fork_rng(devices=devices)


def check_cid(cid) -> int:
    """`cid` as an int, or `ArgumentError` naming it: a candidate id is an integer (a string
    such as '4' would match no candidate and be reported as one that is not there)."""
    if isinstance(cid, bool) or not isinstance(cid, numbers.Integral):
        raise ArgumentError(f"cid (the candidate id) must be an int, got {type(cid).__name__} "
                            f"{repr(cid)[:40]}: pass the id as a number, e.g. 4")
    return int(cid)


def find_candidate(run: Run, cid: int) -> Candidate:
    """The candidate `cid` of `run` (front members first), or one line listing the front's ids;
    a `cid` that is no int raises `ArgumentError`."""
    cid = check_cid(cid)
    for c in (*run.front.architectures, *run.candidates):
        if c.id == cid:
            return c
    ids = ", ".join(str(c.id) for c in run.front.architectures) or "none"
    raise MoonasError(f"id {cid} is not a candidate of {run.dir}: the front's ids are {ids} "
                      f"(all candidates in {RunFiles(run.dir).candidates.name})")


def run_data(run: Run):
    """The run's dataset splits, exactly as the search loaded them (same seed and settings)."""
    from moonas.errors import DataError

    try:
        return _load_data(run.config.data, run.config.split_seed)
    except DataError as err:  # its fix names data.* settings: here they live in the run's file
        raise DataError(f"{err} (this run's data settings are in "
                        f"{RunFiles(run.dir).config})") from None


@functools.lru_cache(maxsize=2)
def _load_data(d, seed: int):
    # Splits are read, never changed; a process that handles several ids loads them once.
    from moonas.data import load_dataset

    return load_dataset(d.name, root=d.root, download=d.download, seed=seed,
                        val_fraction=d.val_fraction, test_fraction=d.test_fraction,
                        image_size=d.image_size, augment=d.augment, max_train=d.max_train,
                        check_images=d.check_images)


def calibration_batches(run: Run, data, seed: int | None = None
                        ) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """The training batches the front recalibrates batch norm on (`search.bn_batches` of them);
    `seed`: the seed of the search that trained the weights (an asng-separate sub-run's own),
    by default the run's."""
    from moonas.search.batches import Batches
    from moonas.search.context import STREAM_TRAIN_BATCHES
    from moonas.search.measure import calibration_batches as first_calibration_batches

    config = run.config
    seed = config.seed if seed is None else seed
    batches = Batches(data.train, config.data.batch_size, seed, STREAM_TRAIN_BATCHES,
                      drop_last=True, workers=config.data.workers)
    return first_calibration_batches(batches, config.search.bn_batches)


@torch.no_grad()
def recalibrate_bn(net: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> int:
    """Re-estimate every batch norm's running statistics as the plain average over `batches`;
    leaves `net` in eval mode. Returns the number of batches used."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    n = 0
    for x, _ in batches:
        net(x)
        n += 1
    for m, momentum in zip(bns, saved):
        m.momentum = momentum
    net.eval()
    return n


def _separate_source(run: Run, arch: Arch, cid: int | None
                     ) -> tuple[Path, tuple[Candidate, ...]]:
    """`asng-separate`: the checkpoint of the sub-run that measured pooled id `cid`, and that
    sub-run's candidates. The run pooled sub-run k's candidates, in their order, after those of
    the sub-runs before it (`moonas.search.runner._separate`), so the ids map back by counts.
    Without `cid`, the one sub-run that measured `arch`."""
    root = run.dir / "separate"
    subs: list[tuple[RunFiles, tuple[Candidate, ...]]] = []
    while (sub := RunFiles(root / f"budget{len(subs)}")).candidates.is_file():
        try:
            subs.append((sub, read_candidates(sub.candidates)))
        except (KeyError, ValueError, TypeError):
            raise CheckpointError(f"{sub.candidates} is corrupt: search again with --force"
                                  ) from None
    total = sum(len(cands) for _, cands in subs)
    pooled = len(run.candidates)
    if not subs or (pooled and total != pooled):
        raise CheckpointError(f"{root} holds {total} candidates in {len(subs)} sub-runs, "
                              f"{RunFiles(run.dir).candidates} pools {pooled}: the folders "
                              "disagree; search again with --force")
    if cid is None:
        ks = [k for k, (_, cands) in enumerate(subs)
              if any(tuple(c.arch) == tuple(arch) for c in cands)]
        if len(ks) != 1:
            what = (f"{len(ks)} sub-runs (budget{', budget'.join(map(str, ks))}) measured it, "
                    "each with its own supernet" if ks else "no sub-run measured it")
            raise MoonasError(f"architecture {list(arch)} of {run.dir}: {what}; give the "
                              "candidate id (see candidates.csv)")
        k = ks[0]
    else:
        offset, k = int(cid), 0
        while k < len(subs) and offset >= len(subs[k][1]):
            offset -= len(subs[k][1])
            k += 1
        measured = subs[k][1][offset] if k < len(subs) and offset >= 0 else None
        if measured is None or tuple(measured.arch) != tuple(arch):
            raise CheckpointError(f"id {cid} of {run.dir} ({list(arch)}) is not the "
                                  f"architecture of row {offset} of separate/budget{k}/"
                                  "candidates.csv it was pooled from: the folders disagree; "
                                  "search again with --force")
    sub, cands = subs[k]
    if not sub.checkpoint.is_file():
        raise CheckpointError(f"sub-run {sub.root} has no supernet checkpoint (checkpoint.pt): "
                              "retrain the network with 'moonas train' or search again")
    return sub.checkpoint, cands


def _supernet_state(run: Run, arch: Arch, cid: int | None = None
                    ) -> tuple[dict, Path, tuple[Candidate, ...]]:
    """The supernet state dict that trained `arch` (candidate `cid`), its file, and the
    candidates measured with it (asng-separate runs: the sub-run's own)."""
    path, measured = RunFiles(run.dir).checkpoint, run.candidates
    if run.config.search.strategy == "asng-separate":
        path, measured = _separate_source(run, arch, cid)
    elif not path.is_file():
        raise CheckpointError(f"run {run.dir} has no supernet checkpoint (checkpoint.pt): "
                              "retrain the network with 'moonas train' or search again")
    state = load_checkpoint(path)
    if not isinstance(state.get("supernet"), dict):
        raise CheckpointError(f"checkpoint {path} holds no supernet weights: search again with "
                              "--force")
    return state, path, measured


@dataclass(frozen=True)
class Standalone:
    """A candidate's standalone network (eval mode), where its weights came from (`supernet`
    or `trained`), the file they were read from, and the number of training batches its batch
    norm was recalibrated on (supernet weights only)."""

    net: nn.Module
    weights: str
    path: Path
    bn_batches: int | None = None


def _supernet_standalone(run: Run, arch: Arch, cid: int | None, data,
                         space: SearchSpace | None) -> Standalone:
    from moonas.nets import build_supernet

    space = space or run_space(run)
    arch = space.validate(arch)
    saved, path, measured = _supernet_state(run, arch, cid)
    supernet = build_supernet(space)
    try:
        if saved.get("split"):  # search.split: per-distribution copies of some options
            supernet.split({int(d): js for d, js in zip(saved["split"]["choices"],
                                                        saved["split"]["options"])},
                           int(saved["split"]["n_copies"]))
        supernet.load_state_dict(saved["supernet"])
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(f"checkpoint {path} does not match the run's space "
                              f"({str(err).splitlines()[0][:100]}): was config.yaml edited?"
                              ) from None
    dist = None
    if supernet.split_options:  # the copy the front measured it with (the home copy)
        from moonas.plugins.split import home_copy

        modes = [c.mode_of for c in measured if tuple(c.arch) == tuple(arch)]
        dist = home_copy(supernet, arch, saved["strategy"]["distributions"]["theta"],
                         modes[0] if modes else None)
    net = supernet.extract(arch, dist)
    data = data if data is not None else run_data(run)
    seed = None
    if run.config.search.strategy == "asng-separate":  # the sub-run's own seed (seed + k)
        seed = _sub_run_seed(run, path.parent)
    n = recalibrate_bn(net, calibration_batches(run, data, seed))
    log.debug("recalibrated batch norm of %s on %d training batches", space.to_str(arch), n)
    return Standalone(net.eval(), "supernet", path, n)


def _sub_run_seed(run: Run, sub_dir: Path) -> int:
    """The seed of asng-separate sub-run `sub_dir` (`separate/budget{k}`): its config.yaml's,
    else the runner's rule, the run's seed + k (`moonas.search.runner._separate`)."""
    from moonas.yamlio import read_yaml

    config = RunFiles(sub_dir).config
    data = read_yaml(config) if config.is_file() else None
    if isinstance(data, dict) and isinstance(data.get("seed"), int):
        return int(data["seed"])
    k = int(sub_dir.name.removeprefix("budget"))
    log.debug("%s has no seed: using the run's seed + %d, as the search did", config, k)
    return run.config.seed + k


def supernet_network(run: Run, arch: Arch, data=None, space: SearchSpace | None = None, *,
                     cid: int | None = None) -> nn.Module:
    """The standalone network of `arch` with the run's supernet weights, batch norm
    recalibrated on the run's calibration batches; eval mode. `cid` (the candidate's id)
    picks the supernet of the sub-run that measured it in asng-separate runs. The caller's
    torch RNG state is kept (`caller_rng`)."""
    with caller_rng():
        return _supernet_standalone(run, arch, cid, data, space).net


def trained_network(run: Run, cid: int, space: SearchSpace | None = None) -> nn.Module:
    """The standalone network of candidate `cid` with the weights `moonas train` stored; eval.
    The caller's torch RNG state is kept (`caller_rng`)."""
    with caller_rng():
        return _trained_network(run, cid, space)


def _trained_network(run: Run, cid: int, space: SearchSpace | None) -> nn.Module:
    from moonas.nets import SUPERNETS

    cid = check_cid(cid)
    files = TrainedFiles.of(run.dir, cid)
    if not files.complete:
        if files.checkpoint.is_file() and files.job.is_file():  # stopped part-way
            raise MoonasError(f"the training of id {cid} of {run.dir} was stopped before its "
                              f"end: finish it with the command that started it, "
                              f"'{train_command(run.dir, cid, files.job)}' (same settings, see "
                              f"{files.job}), or use the supernet weights")
        raise MoonasError(f"id {cid} of {run.dir} has not been retrained: run 'moonas train "
                          f"{run.dir} --id {cid}' first, or use the supernet weights")
    space = space or run_space(run)
    arch = find_candidate(run, cid).arch
    try:
        state = load_checkpoint(files.weights)
    except CheckpointError as err:
        if not files.checkpoint.is_file():
            raise
        raise CheckpointError(f"the retrained weights {files.weights} are damaged or "
                              f"truncated: run the same '{train_command(run.dir, cid, files.job)}'"
                              " again, which writes them again from the training's last "
                              "checkpoint (no epoch is trained again)") from err
    net = SUPERNETS.get(space.name).standalone(space, arch)
    try:
        if state.get("format") != TRAINED_FORMAT or tuple(state["arch"]) != tuple(arch):
            raise ValueError("not the weights of this candidate")
        net.load_state_dict(state["state_dict"])
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        raise CheckpointError(f"{files.weights} does not hold the weights of id {cid} "
                              f"({str(err).splitlines()[0][:100]}): retrain with 'moonas train "
                              f"{run.dir} --id {cid} --restart'") from None
    return net.eval()


def load_standalone(run: Run, cid: int,
                    weights: Literal["auto", "supernet", "trained"] = "auto",
                    data=None) -> Standalone:
    """Candidate `cid`'s network and where its weights came from; `auto` prefers retrained
    weights when `moonas train` produced them. The caller's torch RNG state is kept (building
    the network draws from it: `caller_rng`)."""
    if weights not in WEIGHT_SOURCES:
        raise ConfigError(f"weights must be one of {', '.join(WEIGHT_SOURCES)}, got {weights!r}")
    with caller_rng():
        return _load_standalone(run, cid, weights, data)


def _load_standalone(run: Run, cid: int, weights: str, data) -> Standalone:
    candidate = find_candidate(run, cid)
    space = run_space(run)
    trained = TrainedFiles.of(run.dir, cid)
    # `auto` takes the retrained weights only where `pick` and `plot` show the retraining:
    # not when its record is damaged or another architecture's (each warned about once).
    if weights == "trained" or (weights == "auto" and read_trained_metrics(
            run.dir, cid, candidate.arch) is not None):
        return Standalone(_trained_network(run, cid, space), "trained", trained.weights)
    return _supernet_standalone(run, candidate.arch, cid, data, space)


def load_network(run: Run, cid: int,
                 weights: Literal["auto", "supernet", "trained"] = "auto",
                 data=None) -> tuple[nn.Module, str]:
    """`(network in eval mode, weight source)` of candidate `cid` (see `load_standalone`)."""
    loaded = load_standalone(run, cid, weights, data)
    return loaded.net, loaded.weights
