"""The search loop: a supernet weight step on a training batch, then a distribution step on a
validation batch; a checkpoint at every epoch end so a killed run resumes identically."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from moonas.atomic import write_text
from moonas.checkpoint import load_checkpoint, save_checkpoint
from moonas.config import RunConfig, config_to_dict
from moonas.distributed import average_gradients, check_lockstep, mean_values
from moonas.errors import CheckpointError, MoonasError
from moonas.search.context import SearchContext
from moonas.search.measure import path_losses

__all__ = ["train", "Progress", "truncate_log"]

log = logging.getLogger(__name__)

#: progress(done, total, info) -- the CLI draws a bar from it. `info["phase"]` is "train" (per
#: training step; `total` the run's steps) or "front" (per candidate measured; `total` >= 1).
Progress = Callable[[int, int, dict], None]

CHECKPOINT_FORMAT = 1


def _val_stream(ctx: SearchContext, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Validation minibatches for one training epoch, reshuffled whenever exhausted."""
    for cycle in itertools.count():
        yield from ctx.val_batches.epoch(epoch * 1_000 + cycle)


def _weight_step(ctx: SearchContext, x: torch.Tensor, y: torch.Tensor) -> float:
    t = ctx.config.train
    paths, sources = ctx.strategy.train_sources(ctx.rng, t.paths_per_step)
    # After search.split, a path runs the weight copy of the distribution that drew it.
    dists = sources if ctx.supernet.split_options else [None] * len(paths)
    ctx.supernet.train()
    ctx.optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for arch, dist in zip(paths, dists):
        arch = tuple(int(v) for v in arch)
        loss = nn.functional.cross_entropy(
            ctx.supernet(x, arch) if dist is None else ctx.supernet(x, arch, dist=int(dist)), y)
        (loss / len(paths)).backward()
        total += float(loss.detach())
    # Under torchrun: the whole batch's gradients and loss (a NaN on one shard reaches all).
    total = float(average_gradients(ctx.supernet.parameters(), ctx.world, [total])[0])
    if not np.isfinite(total):
        _diverged(ctx, total)
    if t.grad_clip is not None:
        nn.utils.clip_grad_norm_(ctx.supernet.parameters(), t.grad_clip)
    ctx.optimizer.step()
    ctx.scheduler.step()
    return total / len(paths)


def _diverged(ctx: SearchContext, value: float) -> None:
    raise MoonasError(
        f"the training loss became {value} at step {ctx.scheduler.last_epoch}: {_calmer(ctx)}"
    )


def _calmer(ctx: SearchContext) -> str:
    """The fix for a diverged search: a resume would repeat the divergence (same config, same
    seed), so the search starts again with gentler settings."""
    t = ctx.config.train
    clip = ("set train.grad_clip (e.g. 5)" if t.grad_clip is None
            else f"lower train.grad_clip (now {t.grad_clip:g})")
    return (f"lower train.lr (now {t.lr:g}) or {clip} and start the search again (a resume "
            "repeats the same steps)")


def _distribution_step(ctx: SearchContext, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    archs = ctx.strategy.ask(ctx.rng)
    if archs is None:
        return {}
    # Samples come grouped by the distribution that drew them; after search.split each runs
    # that distribution's copy (one forward per sample, as before the split).
    dists = (np.repeat(np.arange(ctx.objective.n_dists), len(archs) // ctx.objective.n_dists)
             if ctx.supernet.split_options else None)
    # The distributions learn from what they drew; what is measured is the pruned cell.
    measured = ctx.evaluated(archs)
    # Under torchrun each process measured its shard: the means are the whole batch's losses.
    losses = mean_values(path_losses(ctx.supernet, measured, x, y, dists), ctx.world)
    if not np.all(np.isfinite(losses)):
        raise MoonasError(f"a validation loss became NaN or infinite: {_calmer(ctx)}")
    costs = ctx.table.cost(ctx.objective.cost, measured)
    fields = ctx.strategy.tell(archs, losses, costs)
    # Losses per distribution: samples come grouped by the distribution that drew them.
    per = np.asarray(losses).reshape(ctx.objective.n_dists, -1).mean(axis=1)
    return {"val_loss": [round(float(v), 6) for v in per], **fields}


def _state(ctx: SearchContext, epoch: int) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "epoch": epoch,
        "supernet": ctx.supernet.state_dict(),
        "optimizer": ctx.optimizer.state_dict(),
        "scheduler": ctx.scheduler.state_dict(),
        "strategy": ctx.strategy.state_dict(),
        "rng": ctx.rng.bit_generator.state,
        "config": json.dumps(config_to_dict(ctx.config), sort_keys=True),
        **({"split": ctx.supernet.split_state()} if ctx.config.search.split.enabled else {}),
    }


def restore(ctx: SearchContext, path: Path) -> int:
    """Load a checkpoint into `ctx`; returns the number of completed epochs."""
    state = load_checkpoint(path)
    try:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"checkpoint {path} has format {state.get('format')}, this "
                                  f"moonas writes {CHECKPOINT_FORMAT}: start the run again")
        check_config(ctx.config, path, state.get("config"))
        if state.get("split"):  # the copies exist before their weights are loaded
            from moonas.plugins.split import restore_split

            restore_split(ctx.supernet, ctx.optimizer, state["split"])
        ctx.supernet.load_state_dict(state["supernet"])
        ctx.optimizer.load_state_dict(state["optimizer"])
        ctx.scheduler.load_state_dict(state["scheduler"])
        ctx.strategy.load_state_dict(state["strategy"])
        ctx.rng.bit_generator.state = state["rng"]
        return int(state["epoch"])
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        text = " ".join(str(err).split())
        if len(text) > 160:  # load_state_dict lists every mismatched tensor
            text = text[:160].rsplit(" ", 1)[0] + " ..."
        raise CheckpointError(f"checkpoint {path} does not match this run's config ({text}): "
                              "start again with --force") from None


#: Settings a resume may change: where the data is and how this machine runs, not the run.
_RESUME_MAY_CHANGE = ("device", "threads", "data.root", "data.download", "data.workers",
                      "data.check_images")


def check_config(config: RunConfig, path: Path, saved: Any) -> None:
    """One line when the run's config (its config.yaml, read for the resume) differs from the
    one the checkpoint was written with: a damaged or edited config.yaml would otherwise resume
    as another run. Settings the checkpoint lacks (added by a later moonas) are not compared;
    checkpoints written before the config was saved in them pass."""
    if not isinstance(saved, str):
        return
    try:
        before = _flat(json.loads(saved))
    except ValueError:
        raise CheckpointError(f"checkpoint {path} is damaged (its config record is not JSON): "
                              "start again with --force") from None
    now = _flat(config_to_dict(config))
    changed = [key for key in before
               if key in now and now[key] != before[key] and key not in _RESUME_MAY_CHANGE]
    if changed:
        shown = ", ".join(f"{key} {before[key]!r} -> {now[key]!r}" for key in changed[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise CheckpointError(
            f"{path.parent / 'config.yaml'} differs from the config the checkpoint was written "
            f"with ({shown}{more}): put those settings back (config.yaml is damaged or was "
            "edited), or start the run again with --force")


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """`{"a.b": value}` for the nested mappings of a config."""
    if not isinstance(data, dict):
        return {prefix[:-1]: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}{key}."))
    return out


def truncate_log(path: Path, last_step: int) -> None:
    """Drop log lines past `last_step` (written after the checkpoint a resume starts from)."""
    if not path.is_file():
        return
    keep, bad = [], []
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        step = record.get("step", -1) if isinstance(record, dict) else None
        if not isinstance(step, (int, float)):
            bad.append(number)  # a torn last line from a kill mid-write, or a damaged one
        elif step <= last_step:
            keep.append(line)
    if bad and bad != [len(lines)]:
        log.warning("%s: line%s %s %s not a log record; dropped", path,
                    "s" * (len(bad) > 1), ", ".join(map(str, bad[:5])) + " ..." * (len(bad) > 5),
                    "are" if len(bad) > 1 else "is")
    write_text(path, "".join(f"{line}\n" for line in keep))


def _fingerprint(ctx: SearchContext) -> np.ndarray:
    """Numbers every process must share after an epoch: the generator's state, the
    distributions' parameters and a weight statistic."""
    state = ctx.rng.bit_generator.state["state"]
    rng = [float(int(v) % 2**50) for v in (state.values() if isinstance(state, dict) else [state])]
    theta = getattr(getattr(ctx.strategy, "core", None), "thetas", None)
    theta = [] if theta is None else np.asarray(theta, dtype=np.float64).ravel().tolist()
    with torch.no_grad():
        weights = [float(sum(p.double().sum() for p in ctx.supernet.parameters()))]
    return np.array(rng + theta + weights)


def train(ctx: SearchContext, checkpoint: Path, log_path: Path, start_epoch: int = 0,
          progress: Progress | None = None) -> None:
    """Run the epochs from `start_epoch`, checkpointing after each."""
    search = ctx.config.search
    total = ctx.total_steps
    step = start_epoch * ctx.steps_per_epoch
    # Plug-ins that read the weights (angle: V0 at a fresh start; restored on resume).
    ctx.strategy.bind_supernet(ctx.supernet)
    for epoch in range(start_epoch, search.epochs):
        lines: list[str] = []
        learn = epoch >= search.warmup_epochs
        val = _val_stream(ctx, epoch)
        for x, y in ctx.train_batches.epoch(epoch):
            lr = ctx.optimizer.param_groups[0]["lr"]
            train_loss = _weight_step(ctx, x, y)
            entry: dict[str, Any] = {"step": step + 1, "epoch": epoch, "lr": round(lr, 8),
                                     "train_loss": round(train_loss, 6)}
            if learn:
                vx, vy = next(val)
                entry.update(_distribution_step(ctx, vx, vy))
            step += 1
            lines.append(json.dumps(entry))
            if progress is not None:
                progress(step, total, {"phase": "train", **entry})
        shrink = ctx.strategy.end_epoch(ctx.supernet, epoch + 1)  # before the state is logged
        if search.split.enabled:
            from moonas.plugins.split import maybe_split

            shrink.update(maybe_split(search.split, search.epochs, ctx.supernet, ctx.optimizer,
                                      ctx.strategy.core, epoch + 1))
        modes = ctx.strategy.modes()
        theta = getattr(getattr(ctx.strategy, "core", None), "thetas", None)
        lines.append(json.dumps({
            "step": step, "epoch": epoch, "kind": "epoch",
            "modes": None if modes is None else modes.tolist(),
            "theta": None if theta is None else np.round(theta, 5).tolist(),
            **shrink,
        }))
        if ctx.world.parallel:
            check_lockstep(_fingerprint(ctx), ctx.world, f"the search state after epoch {epoch}")
        if ctx.world.main:  # under torchrun, rank 0 writes
            with log_path.open("a") as handle:
                handle.write("".join(f"{line}\n" for line in lines))
            save_checkpoint(checkpoint, _state(ctx, epoch + 1))
        log.debug("epoch %d done (step %d of %d)", epoch, step, total)
