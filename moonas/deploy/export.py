"""Export a run's network as TorchScript, ONNX or a state dict, with a JSON sidecar.

The one home of onnx and onnxruntime (imported lazily). The sidecar describes the input (with
the steps that turn an image into it), normalisation, class names, architecture and costs.

The network file and its sidecar are two files, so no one rename replaces both: the network
is written first and the sidecar last (each whole, by an atomic rename), and the sidecar
records the sha256 of the network file it describes (`file_sha256`). A kill between the two
renames leaves the new network beside the old sidecar (or beside none): `read_sidecar` tells
by the digest, and exporting to the same OUT again replaces the pair.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from moonas.atomic import atomic_path, check_output_path, write_text
from moonas.deploy.trained import run_file
from moonas.errors import CheckpointError, ConfigError, MoonasError
from moonas.run import Run

if TYPE_CHECKING:
    from moonas.deploy.weights import Standalone

__all__ = [
    "FORMATS",
    "PT_FORMAT",
    "ExportResult",
    "export_network",
    "export_module",
    "check_output_path",
    "check_format_suffix",
    "check_export_out",
    "sidecar_path",
    "read_sidecar",
    "sidecar_latency",
    "load_pt",
    "onnx_outputs",
]

log = logging.getLogger(__name__)

FORMATS = ("torchscript", "onnx", "pt")
#: The file suffixes of each format; another format's suffix is refused, others are allowed.
SUFFIXES = {"torchscript": (".ts",), "onnx": (".onnx",), "pt": (".pt", ".pth")}
#: `format` of a `--format pt` file: a plain dict loadable with `torch.load(weights_only=True)`.
PT_FORMAT = "moonas-standalone/1"
#: Largest |PyTorch - exported| output difference accepted on random inputs.
TOLERANCE = 1e-4
_ONNX_OPSET = 17


@dataclass(frozen=True)
class ExportResult:
    """Where the network and its sidecar went, and the checked output difference."""

    path: Path
    sidecar: Path
    format: str
    weights: str
    max_abs_diff: float | None
    meta: dict


def sidecar_path(path: str | Path) -> Path:
    """`model.onnx` -> `model.onnx.json` (one sidecar per artefact, never shared)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def check_format_suffix(path: str | Path, fmt: str) -> Path:
    """`path` unless its suffix belongs to a format other than `fmt` (one line saying which)."""
    path = Path(path)
    suffix = path.suffix.lower()
    owner = next((f for f, known in SUFFIXES.items() if suffix in known), fmt)
    if owner != fmt:
        raise ConfigError(f"--out {path}: {suffix} is the suffix of --format {owner}; "
                          f"{'an' if fmt[0] in 'aeiou' else 'a'} {fmt} "
                          f"file ends in {' or '.join(SUFFIXES[fmt])}, e.g. "
                          f"{path.with_suffix(SUFFIXES[fmt][0])}")
    return path


def check_export_out(out: str | Path, run: Run, fmt: str) -> Path:
    """`out` unless writing it or its sidecar `out.json` would destroy what it must not: a file
    of the run it exports from (its records, supernet checkpoint, retrainings, latency table)
    or a file that is not `out`'s own sidecar; else one line saying why (nothing written)."""
    out = Path(out)
    if out.suffix.lower() == ".json":  # an earlier export's sidecar is called OUT.json
        stem = out.with_suffix("")
        named = stem if stem.suffix.lower() in SUFFIXES[fmt] else out.with_suffix(SUFFIXES[fmt][0])
        raise ConfigError(f"--out {out}: .json names an export's sidecar (OUT.json), not the "
                          f"network: give a {fmt} file name, e.g. {named}")
    side = sidecar_path(out)
    table = run.config.search.latency_table
    for path in (out, side):
        target = run_file(run.dir, path, () if table is None else (table,))
        if target is not None:
            what = "it" if path is out else f"its sidecar {side.name}"
            raise ConfigError(f"--out {out}: {what} would overwrite {target}, which the run "
                              f"{run.dir} needs: write the export elsewhere")
    if side.exists() and not _sidecar_of(side, out):
        raise ConfigError(f"--out {out}: its sidecar would overwrite {side}, which is not the "
                          f"sidecar of an earlier export to {out.name}: choose another --out")
    return out


def _sidecar_of(side: Path, out: Path) -> bool:
    """Whether `side` is the sidecar an earlier export to `out` wrote (replaced with it; also
    when that export was killed before its sidecar: this export mends the pair)."""
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("file") == out.name and "format" in meta


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sidecar(path: str | Path) -> dict:
    """The sidecar of the exported network `path` (`path.json`), checked against it: one line
    when it is missing, unreadable, another file's, or describes other bytes than `path`
    holds (an export killed between its two files; see the module docstring). A sidecar
    written before `file_sha256` was recorded is taken as it is."""
    path = Path(path)
    side = sidecar_path(path)
    again = f"export to {path} again"
    if not path.is_file():
        raise MoonasError(f"{path} is not there (its sidecar is {side}): {again}")
    try:
        meta = json.loads(side.read_text())
    except FileNotFoundError:
        raise MoonasError(f"{path} has no sidecar {side.name} (its export was stopped before "
                          f"writing it): {again}") from None
    except (OSError, ValueError) as err:
        raise MoonasError(f"sidecar {side} is unreadable ({str(err).splitlines()[0][:80]}): "
                          f"{again}") from None
    if not isinstance(meta, dict) or meta.get("file") != path.name:
        raise MoonasError(f"{side} is not the sidecar of {path.name}: {again}")
    recorded = meta.get("file_sha256")
    if recorded is not None and recorded != _sha256(path):
        raise MoonasError(f"{side} describes another {path.name} than the one there (sha256 "
                          f"differs: an export stopped between its two files): {again}")
    return meta


def _random_inputs(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _quiet():
    """Silence torch's deprecation chatter about the exporters we call on purpose."""
    stack = ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", FutureWarning)
    warnings.simplefilter("ignore", UserWarning)
    return stack


def _torchscript(net: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    with _quiet():
        try:
            return torch.jit.script(net)
        except Exception as err:  # noqa: BLE001 - some modules only trace; the check catches errors
            log.debug("torch.jit.script failed (%s); tracing instead", err)
            return torch.jit.trace(net, example)


def _save_onnx(net: nn.Module, example: torch.Tensor, path: Path) -> None:
    import inspect

    kwargs: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript-based exporter needs no onnxscript
    with _quiet():
        torch.onnx.export(net, (example,), str(path), input_names=["input"],
                          output_names=["logits"], opset_version=_ONNX_OPSET,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, **kwargs)
    import onnx

    onnx.checker.check_model(onnx.load(str(path)))


def onnx_outputs(path: str | Path, x: np.ndarray) -> np.ndarray:
    """Run an exported ONNX file on `x` `(B, C, H, W)` with onnxruntime (CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]


def export_module(net: nn.Module, fmt: Literal["torchscript", "onnx", "pt"], out: str | Path,
                  input_shape: tuple[int, int, int], meta: dict[str, Any],
                  pt_extra: dict[str, Any] | None = None) -> tuple[float | None, dict]:
    """Write `net` (eval mode) to `out`, then its sidecar `out.json` (with `out`'s sha256),
    each atomically, after checking the exported artefact against PyTorch on random inputs.
    Returns (max abs diff, sidecar)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    net = net.eval()
    example = _random_inputs((2, *input_shape), seed=0)
    check = _random_inputs((3, *input_shape), seed=1)
    with torch.no_grad():
        expected = net(check).numpy()
    sidecar = {**meta, "format": fmt, "file": out.name}
    try:
        with atomic_path(out) as tmp:
            if fmt == "torchscript":
                scripted = _torchscript(net, example)
                # Through a file object here and below: given a path, torch names the
                # archive's records after the temp file, so equal networks differ in bytes.
                with _quiet(), open(tmp, "wb") as handle:
                    torch.jit.save(scripted, handle)
                with _quiet():
                    got = torch.jit.load(str(tmp))(check).detach().numpy()
                sidecar["load"] = "torch.jit.load(path)(x)"
            elif fmt == "onnx":
                _save_onnx(net, example, tmp)
                got = onnx_outputs(tmp, check.numpy())
                sidecar["onnx_opset"] = _ONNX_OPSET
                sidecar["load"] = ("onnxruntime.InferenceSession(path).run(None, "
                                   "{'input': x})[0]")
            else:
                with open(tmp, "wb") as handle:
                    torch.save({"format": PT_FORMAT, "state_dict": net.state_dict(),
                                **(pt_extra or {})}, handle)
                got = None
                sidecar["load"] = "moonas.deploy.export.load_pt(path) (needs moonas)"
            diff = None if got is None else float(np.abs(got - expected).max())
            if diff is not None and not diff <= TOLERANCE:
                raise MoonasError(f"the {fmt} export differs from the PyTorch network by "
                                  f"{diff:.2e} (> {TOLERANCE:g}) on random inputs; nothing was "
                                  "written")
            sidecar["max_abs_diff_vs_pytorch"] = diff
            sidecar["file_sha256"] = _sha256(tmp)
    except OSError as err:
        raise MoonasError(f"cannot write {out} ({err.strerror or err}): choose another --out"
                          ) from None
    # The sidecar last, naming the bytes just put in place: a kill before it is replaced
    # leaves the old sidecar (or none) beside the new network, which the digest gives away.
    side = sidecar_path(out)
    try:
        write_text(side, json.dumps(sidecar, indent=2) + "\n")
    except OSError as err:
        raise MoonasError(f"cannot write the sidecar {side} ({err.strerror or err}), so {out} "
                          "has none that matches it: free the folder and export again"
                          ) from None
    return diff, sidecar


def _class_names(run: Run) -> list[str] | None:
    from moonas.data import dataset_info

    info = dataset_info(run.config.data.name, image_size=run.config.data.image_size)
    if info.class_names is None:
        from moonas.deploy.weights import run_data

        info = run_data(run).info
    return None if info.class_names is None else list(info.class_names)


def sidecar_latency(run: Run, cid: int, device: str | None = None,
                    latency_table: str | Path | None = None
                    ) -> tuple[dict[str, float], dict[str, str], dict[str, dict[str, Any]]]:
    """Latencies (ms, device -> value) of candidate `cid` for the sidecar's `costs`, per
    device a note when the figure is only relative (a table measured on other settings, e.g.
    NAS-Bench-201's network for a smaller nb201 space), and per device how its table timed
    it (batch, threads, statistic, repeats of a 'moonas profile' table; none known for a
    benchmark's or recorded figures): on the
    device the run searched on (`search.cost: latency:DEVICE`), priced as `moonas pick` prices
    it (the run's own table, else the latencies its search recorded), and on `device` of
    `latency_table` when either is given (see `moonas.deploy.pick.resolve_latency`).

    A named device that cannot be priced fails; the run's own device, not asked for, is left
    out with a warning."""
    from moonas.costs.latency import device_name, round_ms
    from moonas.deploy.pick import resolve_latency
    from moonas.deploy.weights import find_candidate

    arch = np.array([find_candidate(run, cid).arch], dtype=np.int64)
    named = None
    if device is not None or latency_table is not None:
        named = resolve_latency(run, device, latency_table)
    searched = run.config.search.cost
    own = device_name(searched) if searched.startswith("latency:") else None
    models = []
    if own is not None and (named is None or named.device != own):
        try:
            models.append(resolve_latency(run, own, None))
        except MoonasError as err:
            log.warning("the sidecar leaves out latency_ms:%s, the cost the run searched on: "
                        "%s", own, err)
    if named is not None:
        models.append(named)
    from moonas.pricing import run_space

    space = run_space(run)
    notes = {model.device: note for model in models
             if (note := model.relative_note(space)) is not None}
    conditions = {model.device: timed for model in models if (timed := model.conditions())}
    return ({model.device: round_ms(model.price(arch)[0]) for model in models}, notes,
            conditions)


def export_network(run: Run, cid: int, fmt: Literal["torchscript", "onnx", "pt"],
                   out: str | Path, weights: Literal["auto", "supernet", "trained"] = "auto",
                   latency: dict[str, float] | None = None,
                   latency_notes: dict[str, str] | None = None,
                   latency_measured: dict[str, dict[str, Any]] | None = None) -> ExportResult:
    """Export candidate `cid` of `run` (retrained weights when there are some and `weights`
    allows, else supernet weights with recalibrated batch norm) to `out` plus `out.json`.

    `latency` (device -> ms) goes into the sidecar's `costs` as `latency_ms:DEVICE`; None
    records the latency on the device the run searched on, if it did (`sidecar_latency`);
    `latency_notes` (device -> why a figure is only relative) go into `latency_notes`, and
    `latency_measured` (device -> how its table timed it: threads, statistic, ...) into
    `latency_measured`."""
    import moonas
    from moonas.data import dataset_info, preprocess_description
    from moonas.deploy.weights import find_candidate, load_standalone
    from moonas.pricing import run_space

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = check_export_out(check_output_path(check_format_suffix(out, fmt)), run, fmt)
    candidate = find_candidate(run, cid)
    if latency is None:
        latency, latency_notes, latency_measured = sidecar_latency(run, cid)
    space = run_space(run)
    loaded = load_standalone(run, cid, weights)
    net, source = loaded.net, loaded.weights
    info = dataset_info(run.config.data.name, image_size=run.config.data.image_size)
    # From the data modules' own constants, so the sidecar says what the training data went
    # through (a stretch, not a crop, for imagefolder) and cannot drift from it.
    preprocess = preprocess_description(run.config.data.name, image_size=run.config.data.image_size)
    shape = (space.in_channels, space.input_size, space.input_size)
    from moonas.deploy.trained import DamagedMetrics, read_trained_metrics

    trained = None
    if source == "trained":
        try:
            trained = read_trained_metrics(run.dir, cid, candidate.arch, damaged="raise")
        except DamagedMetrics as err:  # the weights load on their own: only the numbers miss
            log.warning("%s is damaged (%s): the sidecar leaves out the retrained accuracies; "
                        "%s", err.path, err.why, err.fix)
    meta: dict[str, Any] = {
        "moonas_version": moonas.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "run": str(run.dir.resolve()),
        "id": candidate.id,
        "space": space.settings(),
        "arch": list(candidate.arch),
        "arch_str": candidate.arch_str,
        "weights": _weights_note(run, loaded, trained),
        "costs": {"params": candidate.params, "macs": candidate.macs,
                  **{f"latency_ms:{k}": v for k, v in (latency or {}).items()}},
        **({"latency_notes": {f"latency_ms:{k}": v for k, v in latency_notes.items()}}
           if latency_notes else {}),
        # The conditions a latency holds for: other threads or another statistic time the
        # same network otherwise.
        **({"latency_measured": {f"latency_ms:{k}": dict(v)
                                 for k, v in latency_measured.items()}}
           if latency_measured else {}),
        "accuracy": {"supernet_val": candidate.accuracy,
                     **({"trained_test": trained.get("test_accuracy"),
                         "trained_val": trained.get("val_accuracy")} if trained else {})},
        "input": {"name": "input", "shape": [1, *shape], "dtype": "float32", "layout": "NCHW",
                  "dynamic_batch": True, "preprocess": preprocess},
        "output": {"name": "logits", "shape": [1, space.n_classes],
                   "meaning": "unnormalised class scores; softmax for probabilities"},
        "normalisation": {"mean": list(info.mean), "std": list(info.std),
                          "formula": "x = (image - mean) / std per channel, image scaled to "
                                     f"[0, 1] first (/ {preprocess['scale']['divide_by']:g}); "
                                     "input.preprocess gives every step in order"},
        "class_names": _class_names(run),
        "dataset": run.config.data.name,
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    pt_extra = {"space": space.settings(), "arch": list(candidate.arch)}
    diff, sidecar = export_module(net, fmt, out, shape, meta, pt_extra=pt_extra)
    log.info("exported id %d (%s weights) to %s", cid, source, out)
    return ExportResult(path=out, sidecar=sidecar_path(out), format=fmt, weights=source,
                        max_abs_diff=diff, meta=sidecar)


def _weights_note(run: Run, loaded: Standalone, trained: dict | None) -> str:
    """The sidecar's `weights`: retrained, or supernet (which one, in asng-separate runs) with
    the number of batches batch norm was actually recalibrated on."""
    if loaded.weights == "trained":
        return f"retrained standalone ({trained['init'] if trained else '?'} init)"
    sub = loaded.path.parent.relative_to(run.dir) if loaded.path.parent != run.dir else None
    return (f"supernet{f' of sub-run {sub.as_posix()}' if sub else ''}, batch norm "
            f"recalibrated on {loaded.bn_batches} training batches")


def load_pt(path: str | Path) -> nn.Module:
    """Rebuild the network of a `--format pt` export (needs moonas for the network classes);
    the caller's torch RNG state is kept."""
    from moonas.checkpoint import load_checkpoint
    from moonas.deploy.weights import caller_rng

    state = load_checkpoint(path)
    with caller_rng():
        return _rebuild_pt(path, state)


def _rebuild_pt(path: str | Path, state: dict) -> nn.Module:
    from moonas.nets import SUPERNETS
    from moonas.spaces import build_space

    try:
        if state.get("format") != PT_FORMAT:
            raise ValueError(f"format {state.get('format')!r}, expected {PT_FORMAT!r}")
        settings = dict(state["space"])
        space = build_space(settings.pop("name"), **{k: tuple(map(_tuple, v))
                                                     if isinstance(v, list) else v
                                                     for k, v in settings.items()})
        net = SUPERNETS.get(space.name).standalone(space, space.validate(state["arch"]))
        net.load_state_dict(state["state_dict"])
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"{path} is not a moonas --format pt export ({err}): export it "
                              "again") from None
    return net.eval()


def _tuple(value: Any) -> Any:
    return tuple(_tuple(v) for v in value) if isinstance(value, list) else value
