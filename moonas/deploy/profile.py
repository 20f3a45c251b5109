"""Latency measurement on this machine: interleaved batch-1 timings and additive per-option fits."""

from __future__ import annotations

import datetime
import gc
import logging
import math
import os
import platform
import time
from dataclasses import asdict, dataclass
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from torch import nn

from moonas.costs.latency import AdditiveLatency, remeasure_advice
from moonas.errors import ConfigError
from moonas.spaces import Arch, SearchSpace
from moonas.threads import torch_threads

__all__ = ["TimingProtocol", "measure_latency", "profile_space", "profile_archs",
           "fit_additive", "leave_one_out_errors", "check_device_name"]

log = logging.getLogger(__name__)

#: progress(done, total, info) -- the CLI draws a bar from it.
Progress = Callable[[int, int, dict], None]


@dataclass(frozen=True)
class TimingProtocol:
    """How one latency is measured: batch 1, `threads` intra-op threads, `warmup` untimed
    forwards per network, then `repeats` rounds that time every network once in a fresh random
    order (drift and other processes hit all networks alike); the latency is the median round
    (`statistic="median"`) or the fastest (`"min"`: on a shared machine, where other processes
    only ever add time, the minimum is the far more repeatable estimate). A round times
    `inner` forwards in a row, chosen so one sample lasts at least `min_sample_ms` (the
    timer's resolution and call overhead stay negligible)."""

    threads: int = 1
    warmup: int = 10
    repeats: int = 15
    min_sample_ms: float = 1.0
    statistic: Literal["median", "min"] = "median"

    def __post_init__(self) -> None:
        for key in ("threads", "warmup", "repeats"):
            if getattr(self, key) < (0 if key == "warmup" else 1):
                raise ConfigError(f"profile --{key} must be >= {0 if key == 'warmup' else 1}, "
                                  f"got {getattr(self, key)}")
        if self.statistic not in ("median", "min"):
            raise ConfigError(f"profile --statistic must be median or min, got {self.statistic!r}")


@torch.inference_mode()
def measure_latency(nets: Sequence[nn.Module], input_shape: tuple[int, int, int],
                    protocol: TimingProtocol = TimingProtocol(), seed: int = 0,
                    progress: Progress | None = None) -> np.ndarray:
    """Batch-1 forward time in ms of each network `(n,)`, measured interleaved (see
    `TimingProtocol`)."""
    rng = np.random.default_rng(seed)
    x = torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(seed))
    n = len(nets)
    samples = np.empty((n, protocol.repeats))
    with torch_threads(protocol.threads):
        for net in nets:
            net.eval()
        inner = np.ones(n, dtype=np.int64)
        for i, net in enumerate(nets):
            for _ in range(protocol.warmup):
                net(x)
            start = time.perf_counter()
            net(x)
            once = (time.perf_counter() - start) * 1e3
            inner[i] = max(1, math.ceil(protocol.min_sample_ms / max(once, 1e-3)))
        gc_was_enabled = gc.isenabled()
        gc.disable()  # a collection inside a timed sample would count against one network
        try:
            for r in range(protocol.repeats):
                for i in rng.permutation(n):
                    net, k = nets[i], int(inner[i])
                    start = time.perf_counter()
                    for _ in range(k):
                        net(x)
                    samples[i, r] = (time.perf_counter() - start) * 1e3 / k
                if progress is not None:
                    progress(r + 1, protocol.repeats,
                             {"phase": f"timing {n} networks", "unit": "round"})
        finally:
            if gc_was_enabled:
                gc.enable()
    return samples.min(axis=1) if protocol.statistic == "min" else np.median(samples, axis=1)


def _standalone(space: SearchSpace, arch: Arch) -> nn.Module:
    from moonas.nets import SUPERNETS

    return SUPERNETS.get(space.name).standalone(space, arch).eval()


def profile_archs(space: SearchSpace, n_random: int | None,
                  rng: np.random.Generator) -> np.ndarray:
    """What `profile_space` measures `(M, D)`: the all-zeros reference, every one-option change
    of it (so every option of every choice is timed), then `n_random` uniform architectures
    (default as many as the changes) that average the fit over many contexts.

    The fit has one unknown per network before the random ones (`base` and one per change),
    so `n_random >= 1` keeps it overdetermined; only the networks beyond the unknowns check
    it, though: with few random ones, most networks cannot be predicted from the others and
    the leave-one-out error (`leave_one_out_errors`) rests on a handful."""
    n_options = space.n_options
    ref = np.zeros(len(n_options), dtype=np.int64)
    archs = [ref]
    for d, k_d in enumerate(n_options):
        for k in range(1, k_d):
            arch = ref.copy()
            arch[d] = k
            archs.append(arch)
    n_random = len(archs) - 1 if n_random is None else n_random
    if n_random < 1:
        raise ConfigError(f"profile --random must be >= 1, got {n_random}: the fit has "
                          f"{len(archs)} unknowns, as many as the one-option networks, so it "
                          f"needs random ones to be checked (default {len(archs) - 1})")
    archs.extend(space.sample(rng, n_random))
    return np.stack(archs)


def _design(archs: np.ndarray, n_options: tuple[int, ...]) -> np.ndarray:
    """One-hot design with reference coding: a column of ones, then one column per (d, k>0)."""
    columns = [np.ones(len(archs))]
    for d, k_d in enumerate(n_options):
        for k in range(1, k_d):
            columns.append((archs[:, d] == k).astype(np.float64))
    return np.column_stack(columns)


def fit_additive(archs: np.ndarray, latency_ms: np.ndarray,
                 n_options: tuple[int, ...]) -> tuple[float, np.ndarray]:
    """Least-squares `base, table (D, Kmax)` of `latency = base + sum_d table[d, x_d]`, each
    choice shifted so its fastest option is 0 (the shift goes into `base`)."""
    coef, *_ = np.linalg.lstsq(_design(archs, n_options), latency_ms, rcond=None)
    table = np.zeros((len(n_options), max(n_options)))
    j = 1
    for d, k_d in enumerate(n_options):
        table[d, 1:k_d] = coef[j:j + k_d - 1]
        j += k_d - 1
    base = float(coef[0])
    for d, k_d in enumerate(n_options):
        low = table[d, :k_d].min()
        table[d, :k_d] -= low
        base += low
    return base, table


#: A network whose leverage (hat-matrix diagonal) is within this of 1 is determined by its own
#: timing alone: no other network predicts it, so it has no leave-one-out error.
_LEVERAGE_ONE = 1e-6

#: Fewer networks than this beyond the fit's unknowns: its leave-one-out error is rough.
_MIN_SPARE = 10


def leave_one_out_errors(archs: np.ndarray, latency_ms: np.ndarray,
                         n_options: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """Relative error `(M,)` of the additive least-squares fit on each network when that
    network is left out of the fit (`e_i / (1 - h_ii) / latency_i`, `h` the hat matrix's
    diagonal, exact for least squares), NaN for the networks no others predict (`h_ii` = 1:
    an option timed in that network only); and the fit's number of unknowns (its rank)."""
    design = _design(archs, n_options)
    u, s, _ = np.linalg.svd(design, full_matrices=False)
    rank = int(np.sum(s > s[0] * max(design.shape) * np.finfo(np.float64).eps))
    leverage = np.sum(u[:, :rank] ** 2, axis=1)
    coef, *_ = np.linalg.lstsq(design, latency_ms, rcond=None)
    residual = latency_ms - design @ coef
    errors = np.full(len(archs), np.nan)
    ok = leverage < 1 - _LEVERAGE_ONE
    errors[ok] = residual[ok] / (1 - leverage[ok]) / latency_ms[ok]
    return errors, rank


#: A fit that predicts the fastest architecture below this share of the fastest measured
#: network is implausible: every option's own time was measured, so the fastest is at most a
#: few options' savings below it.
_FASTEST_SHARE = 0.5


def _check_fastest(model: AdditiveLatency, measured: np.ndarray) -> None:
    """Warn (one line) when the fit predicts the space's fastest architecture at <= 0 ms, or
    far below every measured network: the timings were too noisy for the table to be used.
    The table is still returned (and `moonas profile` saves it: the timings are not lost),
    but at <= 0 ms loading it is refused (`AdditiveLatency.from_json`)."""
    fastest, arch = model.extreme(cheapest=True)
    floor = float(np.min(measured))
    if fastest > 0 and fastest >= _FASTEST_SHARE * floor:
        return
    refused = ("; the table is kept, but search, pick, plot and export will refuse to load it"
               if not fastest > 0 else "")
    log.warning("the fit predicts %.4g ms for the fastest architecture %s (the fastest measured "
                "network took %.4g ms): the timings were too noisy for an additive table%s; "
                "measure again with %s", fastest, list(arch), floor, refused,
                remeasure_advice(model.measured))


def check_device_name(device: str) -> str:
    """`device` unless it is no plain word (a file and a `latency:DEVICE` cost are named after
    it): one line saying so."""
    if not isinstance(device, str) or not device or any(c in device for c in "/\\: "):
        raise ConfigError(f"device name {device!r} must be a plain word (no '/', ':' or spaces), "
                          "e.g. --name laptop")
    return device


def profile_space(space: SearchSpace, device: str, protocol: TimingProtocol = TimingProtocol(),
                  n_random: int | None = None, seed: int = 0,
                  progress: Progress | None = None) -> AdditiveLatency:
    """Measure an additive latency table of `space` on this machine, named `device`.

    Every option of every choice is timed as a one-option change of a reference network, and
    `n_random` random networks are timed with them; a least-squares fit over all of them gives
    each option's latency (see `profile_archs`, `fit_additive`). Networks are standalone,
    randomly initialised (from `seed`; the caller's torch RNG state is kept), in eval mode,
    PyTorch eager on the CPU.
    """
    check_device_name(device)
    if seed < 0:
        raise ConfigError(f"profile --seed must be >= 0, got {seed}")
    rng = np.random.default_rng(seed)
    archs = profile_archs(space, n_random, rng)
    from moonas.deploy.weights import caller_rng

    with caller_rng():
        torch.manual_seed(seed)
        nets = [_standalone(space, tuple(int(v) for v in a)) for a in archs]
    shape = (space.in_channels, space.input_size, space.input_size)
    started = time.perf_counter()
    measured = measure_latency(nets, shape, protocol, seed, progress)
    base, table = fit_additive(archs, measured, space.n_options)
    valid = np.arange(table.shape[1])[None, :] < np.asarray(space.n_options)[:, None]
    model = AdditiveLatency(
        device=device, base=base, table=table, valid=valid, space=space.settings(),
        option_names=tuple(c.options for c in space.choices),
        choice_names=tuple(c.name for c in space.choices),
    )
    fitted = model.price(archs)
    fit_ape = np.abs(fitted - measured) / measured
    loo, unknowns = leave_one_out_errors(archs, measured, space.n_options)
    predicted = np.isfinite(loo)
    info = {
        **asdict(protocol),
        "batch": 1,
        "runtime": f"PyTorch {torch.__version__} eager, CPU, inference_mode",
        "networks": int(len(archs)),
        "random_networks": int(len(archs) - 1 - sum(k - 1 for k in space.n_options)),
        "fit_unknowns": unknowns,
        # The error on each network when it is left out of the fit: what the table's
        # predictions of other networks can be expected to miss by.
        "leave_one_out_mape_percent": (round(float(np.abs(loo[predicted]).mean() * 100), 3)
                                       if predicted.any() else None),
        "leave_one_out_networks": int(predicted.sum()),
        "not_predictable_networks": int((~predicted).sum()),
        # The error on the networks the fit was made from (old key; with as many unknowns as
        # networks it is ~0 whatever the noise): in-sample.
        "fit_mape_percent": round(float(fit_ape.mean() * 100), 3),
        "fit_mape_kind": "in-sample",
        "machine": {"platform": platform.platform(), "processor": platform.processor()
                    or platform.machine(), "cpus": os.cpu_count()},
        "seconds": round(time.perf_counter() - started, 2),
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    log.info("profiled %d networks of %s for %s: leave-one-out error %s over %d of them, "
             "in-sample %.2f%%", len(archs), space.name, device,
             "n/a" if info["leave_one_out_mape_percent"] is None
             else f"{info['leave_one_out_mape_percent']:.2f}%", info["leave_one_out_networks"],
             info["fit_mape_percent"])
    spare = len(archs) - unknowns
    if spare < _MIN_SPARE:
        log.warning("the fit has %d unknowns and %d networks: only %d beyond them check it, so "
                    "its leave-one-out error is rough (%d of the networks are predictable from "
                    "the others); time %d or more random networks (profile --random)", unknowns,
                    len(archs), spare, info["leave_one_out_networks"],
                    _MIN_SPARE + info["random_networks"] - spare)
    model = AdditiveLatency(device=model.device, base=model.base, table=model.table,
                            valid=model.valid, space=model.space,
                            option_names=model.option_names, choice_names=model.choice_names,
                            measured=info)
    _check_fastest(model, measured)
    return model
