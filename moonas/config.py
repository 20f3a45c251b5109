"""Typed, frozen run configuration: YAML + `--set key=value` overrides -> validated records.

Unknown keys, wrong types and invalid values fail with one line naming the key and the
closest valid key or the allowed values.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import numbers
import os
import re
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from moonas.devices import check_device_name
from moonas.errors import ArgumentError, ConfigError, MoonasError, UsageError
from moonas.plugins.angle import AngleConfig
from moonas.plugins.eoi import EoiConfig
from moonas.plugins.pvll import PVLLConfig
from moonas.plugins.split import SplitConfig
from moonas.registry import closest
from moonas.spaces import SPACES, SearchSpace
from moonas.yamlio import parse_value, read_yaml

__all__ = [
    "DataConfig",
    "SpaceConfig",
    "TrainConfig",
    "SearchConfig",
    "RunConfig",
    "load_config",
    "build_section",
    "apply_overrides",
    "config_to_dict",
    "parse_amount",
    "default_coefficients",
    "packaged_config",
    "PACKAGED_CONFIGS",
]

log = logging.getLogger(__name__)

PACKAGED_CONFIGS = Path(__file__).parent / "configs"

_NUMBER = r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"
_AMOUNT = re.compile(rf"^\s*({_NUMBER})\s*([kKmMgG]?)\s*$")
#: A duration in ms: a number, optionally followed by `ms` (no k/M scale: `20m` is no latency).
_MS = re.compile(rf"^\s*({_NUMBER})\s*(?:ms)?\s*$", re.IGNORECASE)
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}


def parse_amount(text: str, unit: Literal["ms"] | None = None) -> float:
    """`'120k'` -> 120000.0, `'3.5M'` -> 3500000.0, `'2e6'` -> 2000000.0; with `unit="ms"`
    (a latency) a number of milliseconds, `'20'` or `'20ms'` -> 20.0."""
    if unit == "ms":
        match = _MS.match(str(text))
        if not match:
            raise ValueError(f"{text!r} is not a number of milliseconds (examples: 20, 0.5, "
                             "20ms)")
        return _finite(text, float(match.group(1)), "20, 0.5, 20ms")
    match = _AMOUNT.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a number (examples: 120000, 120k, 3.5M)")
    return _finite(text, float(match.group(1)) * _SCALE[match.group(2).lower()],
                   "120000, 120k, 3.5M")


def _finite(text: str, value: float, examples: str) -> float:
    """`value`, unless the digits of `text` overflowed a float (`1e400` reads as inf)."""
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is too large: give a finite number (examples: {examples})")
    return value


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, where it lives, how it is split and batched."""

    name: str = "digits"
    root: str | None = None
    download: bool = False
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    image_size: int | None = None
    augment: bool = False
    batch_size: int = 64
    max_train: int | None = None
    workers: int = 0
    split_seed: int | None = None  # the train/val/test split's seed; None: the run's seed
    check_images: bool = True  # imagefolder: decode every image at load (a damaged one named)

    def __post_init__(self) -> None:
        from moonas.data import DATASETS, check_split_fractions

        if self.name not in DATASETS:
            raise ConfigError(
                f"unknown dataset {self.name!r}{closest(self.name, DATASETS)}; "
                f"valid: {', '.join(DATASETS)}"
            )
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {self.batch_size}")
        if self.workers < 0:
            raise ConfigError(f"data.workers must be >= 0 (0: read items in the training "
                              f"process), got {self.workers}")
        if self.split_seed is not None and self.split_seed < 0:
            raise ConfigError(f"data.split_seed must be >= 0 (or null: the run's seed), got "
                              f"{self.split_seed}")
        check_split_fractions(self.name, self.val_fraction, self.test_fraction)


@dataclass(frozen=True)
class SpaceConfig:
    """The search space's name and settings; `None` data settings come from the dataset."""

    name: str = "nb201"
    settings: tuple[tuple[str, Any], ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.settings).get(key, default)

    def build(self, input_size: int | None, in_channels: int | None, n_classes: int | None,
              data: str = "the dataset") -> SearchSpace:
        """The space, with the data's shape (`data` names the dataset; None: not known before
        loading it) filling the settings left unset; a setting that contradicts the data is a
        `ConfigError` (a network built for other images would fail mid-training, or be priced
        for a size it never sees)."""
        values = dict(self.settings)
        for key, value in (("input_size", input_size), ("in_channels", in_channels),
                           ("n_classes", n_classes)):
            given = values.get(key)
            if given is None:
                values[key] = value
            elif value is not None and given != value:
                raise ConfigError(_shape_clash(key, given, value, data))
        return SPACES.get(self.name)(**values)


def _shape_clash(key: str, given: Any, value: int, data: str) -> str:
    """One line: `space.KEY` set to `given` where the data has `value`."""
    has = {"input_size": f"{data} images are {value} px",
           "in_channels": f"{data} images have {value} channel{'s' * (value != 1)}",
           "n_classes": f"{data} has {value} classes"}[key]
    also = f", or resize the images with data.image_size={given}" * (key == "input_size")
    return (f"space.{key}={given} but {has}: drop space.{key} (the data sets it){also}")


@dataclass(frozen=True)
class TrainConfig:
    """Supernet weight training: SGD with momentum, cosine learning rate, clipping."""

    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 4e-5
    grad_clip: float | None = 5.0
    lr_min: float = 0.0
    paths_per_step: int = 2

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"train.momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ConfigError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if self.paths_per_step < 1:
            raise ConfigError(f"train.paths_per_step must be >= 1, got {self.paths_per_step}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError("train.grad_clip must be > 0 (or null for no clipping)")


@dataclass(frozen=True)
class SearchConfig:
    """The architecture search: strategy, objectives, budgets and the step schedule."""

    strategy: str = "multi-asng"
    cost: str = "params"
    latency_table: str | None = None
    budgets: tuple[float, ...] | None = None
    n_budgets: int = 5
    # One per distribution; "default": the grid `default_coefficients(n_budgets)`.
    coefficients: tuple[float, ...] | Literal["default"] | None = None
    samples_per_dist: int | None = None
    utility: Literal["weighted-quantile", "rank"] = "weighted-quantile"
    delta0: float = 0.5
    delta_max: float | None = None       # cap of the adaptive step size; None: delta0
    alpha: float = 1.5
    prune: Literal["keep", "unreachable", "dead"] = "dead"   # what space.prune removes
    epochs: int = 30
    warmup_epochs: int = 5
    front_samples: int = 64
    bn: Literal["train", "recalibrate"] = "train"
    bn_batches: int = 8
    eoi: EoiConfig = field(default_factory=EoiConfig)
    pvll: PVLLConfig = field(default_factory=PVLLConfig)
    angle: AngleConfig = field(default_factory=AngleConfig)
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        if self.budgets is not None:
            if len(self.budgets) < 1:
                raise ConfigError("search.budgets is empty: give at least one budget or null")
            _check_finite("budgets", self.budgets)
            if any(b <= 0 for b in self.budgets):
                raise ConfigError(f"search.budgets must be positive, got {list(self.budgets)}")
            _check_increasing("budgets", self.budgets)
        if self.cost not in ("params", "macs") and not self.cost.startswith("latency:"):
            hint = closest(self.cost, ("params", "macs", "latency:DEVICE"))
            raise ConfigError(f"search.cost={self.cost!r} is unknown{hint}: use params, macs or "
                              "latency:DEVICE (with search.latency_table)")
        if self.cost.startswith("latency:") and not self.cost.split(":", 1)[1].strip():
            raise ConfigError("search.cost='latency:' names no device: give one after the "
                              "colon, e.g. search.cost=latency:raspi4")
        if self.cost.startswith("latency:") and self.latency_table is None:
            raise ConfigError(f"search.cost={self.cost!r} needs search.latency_table=PATH (a "
                              "'moonas profile' table, or NAS-Bench-201's csv for nb201)")
        if self.budgets is not None and self.coefficients is not None:
            raise ConfigError("give search.budgets or search.coefficients, not both")
        if self.samples_per_dist is not None and self.samples_per_dist < 1:
            raise ConfigError(f"search.samples_per_dist must be >= 1, got {self.samples_per_dist}")
        for key in ("n_budgets", "epochs", "front_samples", "bn_batches"):
            if getattr(self, key) < 1:
                raise ConfigError(f"search.{key} must be >= 1, got {getattr(self, key)}")
        if self.coefficients == "default":  # frozen: set once, here
            object.__setattr__(self, "coefficients", default_coefficients(self.n_budgets))
        if self.coefficients is not None:
            if len(self.coefficients) < 1:
                raise ConfigError("search.coefficients is empty: give at least one coefficient, "
                                  "default (search.n_budgets values: 0, then powers of 2 up to "
                                  "2) or null (budget mode)")
            _check_finite("coefficients", self.coefficients)
            if any(c < 0 for c in self.coefficients):
                raise ConfigError(f"search.coefficients must be >= 0, got "
                                  f"{list(self.coefficients)}")
            _check_increasing("coefficients", self.coefficients)
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(
                f"search.warmup_epochs must be in [0, epochs={self.epochs}), got "
                f"{self.warmup_epochs}"
            )
        if self.split.enabled and self.split.split_epoch(self.epochs) <= self.warmup_epochs:
            # The least `at` (3 decimals, rounded up) whose split epoch follows the warm-up.
            least = math.ceil((self.warmup_epochs + 1) / self.epochs * 1000) / 1000
            fix = (f"use at >= {least:g}" if least < 1 else
                   "lower search.warmup_epochs or raise search.epochs")
            raise ConfigError(
                f"search.split.at={self.split.at} splits after epoch "
                f"{self.split.split_epoch(self.epochs)}, inside the warm-up "
                f"(search.warmup_epochs={self.warmup_epochs}), while every distribution is "
                f"still uniform and no choice is contested: {fix}")
        if self.split.enabled and self.split.split_epoch(self.epochs) >= self.epochs:
            raise ConfigError(
                f"search.split.at={self.split.at} splits after epoch "
                f"{self.split.split_epoch(self.epochs)} of {self.epochs}, so nothing would be "
                f"split: use at <= {_last_share(self.epochs):g} or raise search.epochs")
        if self.angle.enabled and not self.angle.shrink_epochs(self.epochs):
            raise ConfigError(
                f"search.angle.warmup={self.angle.warmup} shrinks first after epoch "
                f"{max(1, round(self.angle.warmup * self.epochs))} of {self.epochs}, so no "
                f"option would be removed: use warmup <= {_last_share(self.epochs):g} or raise "
                "search.epochs")
        for key in ("delta0", "alpha"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"search.{key} must be > 0, got {getattr(self, key)}")
        if self.split.enabled and self.strategy != "multi-asng":
            raise ConfigError(f"search.split.enabled needs search.strategy=multi-asng (one copy "
                              f"per distribution), got {self.strategy!r}: switch split off")
        if self.split.enabled and self.angle.enabled:
            raise ConfigError("search.split.enabled and search.angle.enabled do not combine (the "
                              "angle's vector is keyed by unsplit weights): switch one off")
        if self.delta_max is not None and not self.delta_max >= self.delta0:
            raise ConfigError(f"search.delta_max={self.delta_max} is below search.delta0="
                              f"{self.delta0}: use delta_max >= delta0, null for delta0 or .inf "
                              "for no cap")

    @property
    def step_cap(self) -> float:
        """The largest step size the adaptation may reach: ``delta_max``, or ``delta0``."""
        return self.delta0 if self.delta_max is None else self.delta_max


def _last_share(epochs: int) -> float:
    """The largest share of `epochs` (3 decimals) that rounds to an epoch before the last:
    the latest `search.split.at` or `search.angle.warmup` that still acts."""
    share = math.floor((epochs - 0.5) / epochs * 1000) / 1000
    while share > 0 and round(share * epochs) >= epochs:
        share = round(share - 0.001, 3)
    return share


def default_coefficients(k: int) -> tuple[float, ...]:
    """`0` then a geometric grid of ratio 2 up to 2: for K=5, `(0, 0.25, 0.5, 1, 2)`.

    A log grid spends distributions evenly over trade-off scales; 0 keeps the pure-accuracy end.
    """
    return (0.0, *(2.0 ** (1 - j) for j in range(k - 2, -1, -1)))


def _check_finite(key: str, values: tuple[float, ...]) -> None:
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f"search.{key} must be finite numbers, got {list(values)}")


def _check_increasing(key: str, values: tuple[float, ...]) -> None:
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ConfigError(f"search.{key} must be strictly increasing, got {list(values)}: "
                          "sort them and drop duplicates")


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; saved resolved as `config.yaml` in the run directory."""

    seed: int = 0
    threads: int | None = None
    device: str = "auto"  # auto (a CUDA GPU when torch sees one), cpu, cuda or cuda:N
    space: SpaceConfig = field(default_factory=SpaceConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)

    def __post_init__(self) -> None:
        check_device_name(self.device)
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1 (or null for torch's default), got "
                              f"{self.threads}")
        if self.search.split.enabled:  # before any data loads (or downloads)
            from moonas.nets import SUPERNETS

            if not SUPERNETS.get(self.space.name).can_split():
                raise ConfigError(f"search.split.enabled: the {self.space.name} supernet has no "
                                  "per-distribution weights; use space.name=nb201 or switch "
                                  "split off")

    @property
    def split_seed(self) -> int:
        """The seed of the data's train/val/test split: `data.split_seed`, else `seed`."""
        return self.seed if self.data.split_seed is None else self.data.split_seed


# -- validation ------------------------------------------------------------------------------
def _unknown_key(path: str, key: str, valid: list[str], cls: type | None = None) -> ConfigError:
    """One line for `key`, unknown in the section `path`: the closest valid key, or where
    the key is a setting of a section below (`epochs` at the top: `search.epochs`)."""
    nested = _nested_keys(cls, key) if cls is not None else []
    # Beside a setting of that name below, a look-alike here only when it is close.
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.6 if nested else 0.5) + nested
    hint = (f" (did you mean {_join(path, match[0])!r}?)" if len(match) == 1 else
            f" (did you mean one of {', '.join(_join(path, m) for m in match)}?)" if match
            else "")
    return ConfigError(
        f"unknown config key {_join(path, key)!r}{hint}; valid keys: {', '.join(valid)}"
    )


def _nested_keys(cls: type, key: str) -> list[str]:
    """Every `section.key` (or deeper) where a section of `cls` has a setting named `key`."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in fields(cls):
        tp = hints.get(f.name)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            if key in {g.name for g in fields(tp)}:
                found.append(f"{f.name}.{key}")
            found += [f"{f.name}.{deeper}" for deeper in _nested_keys(tp, key)]
    return found


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _describe(tp: Any) -> str:
    """What a value of type `tp` looks like in YAML: `a list, 'default' or null`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        names = [_describe(a) for a in typing.get_args(tp)]
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "a list"
    named = {type(None): "null", bool: "true or false", int: "an integer", float: "a number",
             str: "a string"}
    return named.get(tp, _type_name(tp))


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """`value` as type `tp`, or a ConfigError naming `path`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = {}
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as err:
                errors[arg] = str(err)
        # A list fails as a list (naming the bad item), whatever else the key also takes.
        lists = [e for a, e in errors.items() if typing.get_origin(a) is tuple]
        if len(errors) == 1 or (isinstance(value, (list, tuple)) and len(lists) == 1):
            raise ConfigError(lists[0] if len(errors) > 1 else next(iter(errors.values())))
        raise ConfigError(f"config key {path!r}: expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"config key {path!r} is {value!r}; allowed values: {allowed}")
        return args[args.index(value)]  # the plain value (a numpy string: its str)
    if origin is tuple:
        if _is_array(value):  # a numpy vector: its items
            value = value.tolist()
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
            raise ConfigError(f"config key {path!r}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"config key {path!r}: expected {len(args)} items, got {value!r}")
        return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {path!r}: expected true or false, got {value!r}")
    # numbers.Integral / Real: numpy's numbers too, stored as the plain int or float.
    if tp is int:
        if isinstance(value, numbers.Integral) and not _is_bool(value):
            return int(value)
        if isinstance(value, numbers.Real) and not _is_bool(value) and float(value).is_integer():
            return int(value)
        if isinstance(value, str):
            amount = _amount_or_none(value, path)
            if amount is not None and amount.is_integer():
                return int(amount)
        raise ConfigError(f"config key {path!r}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, numbers.Real) and not _is_bool(value):
            return float(value)
        if isinstance(value, str):
            amount = _amount_or_none(value, path)
            if amount is not None:
                return amount
        raise ConfigError(f"config key {path!r}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return str(value)  # a numpy string: its plain str
        if isinstance(value, os.PathLike) and isinstance(os.fspath(value), str):
            return os.fspath(value)  # a pathlib.Path where a path goes
        raise ConfigError(f"config key {path!r}: expected a string, got {value!r}")
    raise ConfigError(f"config key {path!r}: unsupported type {_type_name(tp)}")


def _amount_or_none(text: str, path: str) -> float | None:
    """`text` read as an amount (`120k`), None when it is not one; one that overflows a float
    (`1e400`) is a ConfigError saying so, not "expected a number"."""
    try:
        return parse_amount(text)
    except ValueError as err:
        if _AMOUNT.match(text.strip()):  # a number, only too large
            raise ConfigError(f"config key {path!r}: {err}") from None
        return None


def _is_bool(value: Any) -> bool:
    """A bool, Python's or numpy's: true/false, never a number here."""
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def _is_array(value: Any) -> bool:
    """A one-dimensional numpy array (read as the list of its items)."""
    return type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 1 \
        and hasattr(value, "tolist")


def _plain(data: Any) -> Any:
    """`data` with every nested mapping a dict and every list or tuple a list (a mapping
    proxy, a frozen mapping: copied and edited as overrides need); other values as given."""
    if isinstance(data, Mapping):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    return data


def _build(cls: type, data: Any, path: str) -> Any:
    if cls is SpaceConfig:
        return _build_space(data, path)
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section {path or 'top level'!r} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    for key in data:
        if key not in names:
            raise _unknown_key(path, str(key), names, cls)
    values = {k: _coerce(v, hints[k], _join(path, k)) for k, v in data.items()}
    return cls(**values)


def _build_space(data: Any, path: str) -> SpaceConfig:
    if isinstance(data, SpaceConfig):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section {path!r} must be a mapping with a 'name'")
    data = dict(data)
    name = data.pop("name", SpaceConfig.name)
    space_cls = SPACES.get(str(name))
    hints = typing.get_type_hints(space_cls)
    names = [f.name for f in fields(space_cls)]
    settings = {}
    for key, value in data.items():
        if key not in names:
            raise _unknown_key(path, str(key), ["name", *names])
        tp = hints[key]
        # The data's shape may be left to the dataset.
        if key in ("input_size", "in_channels", "n_classes"):
            tp = int | None
        settings[key] = _coerce(value, tp, _join(path, key))
    # Validate the settings now (with placeholder data shape) so errors surface at load time.
    probe = {k: v for k, v in settings.items()}
    for key in ("input_size", "in_channels", "n_classes"):
        if probe.get(key) is None:
            probe[key] = 32 if key == "input_size" else 3 if key == "in_channels" else 10
    try:
        space_cls(**probe)
    except MoonasError as err:
        raise ConfigError(str(err)) from None
    # A shape setting given as null is one left to the dataset, as if it were absent.
    return SpaceConfig(name=str(name), settings=tuple(sorted(
        (k, v) for k, v in settings.items() if v is not None or k not in _SHARED_SPACE_KEYS)))


# -- loading ---------------------------------------------------------------------------------
def packaged_config(name: str) -> Path | None:
    """Path of a config shipped with moonas (`default`, `smoke`, ...), if there is one."""
    candidate = PACKAGED_CONFIGS / (name if name.endswith(".yaml") else f"{name}.yaml")
    return candidate if candidate.is_file() else None


def _read_yaml(source: str | Path) -> dict:
    path = Path(source)
    if not path.is_file():
        shipped = packaged_config(str(source))
        if shipped is None and path.is_dir():
            raise ConfigError(f"config file {str(source)!r} is a folder: give the path of a "
                              "YAML file")
        if shipped is None:
            names = sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.yaml"))
            raise ConfigError(
                f"config file {str(source)!r} not found; give a YAML path or one of: "
                f"{', '.join(names)}"
            )
        path = shipped
    data = read_yaml(path)
    if data is None or data == {}:
        # Every key would take the schema's defaults, which are not the embedded default's.
        raise ConfigError(f"config file {path} sets no keys: give at least one, or omit it to "
                          "run the embedded default")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `a.b=c` overrides (values parsed as YAML) to nested `data` (a copy is returned)."""
    import copy

    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. --set search.epochs=10")
        key, raw = item.split("=", 1)
        value = parse_value(raw)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def build_section(cls: type, data: Mapping, path: str) -> Any:
    """One validated config record (e.g. `SearchConfig`) from plain data, errors naming `path`."""
    return _build(cls, data, path)


def api_overrides(overrides: Any, where: str) -> tuple[str, ...]:
    """`overrides` of a Python call as a tuple of `KEY=VALUE` strings: one string is one
    setting, None none; anything else is an `ArgumentError` naming `where`'s argument."""
    if overrides is None:
        return ()
    if isinstance(overrides, str):
        return (overrides,)
    items = list(overrides) if isinstance(overrides, (list, tuple)) else None
    if items is None or not all(isinstance(item, str) for item in items):
        bad = overrides if items is None else next(i for i in items if not isinstance(i, str))
        raise ArgumentError(f"{where}: overrides must be 'KEY=VALUE' strings as --set takes "
                            f"them (e.g. ['search.epochs=3']), got {bad!r}")
    return tuple(items)


def api_path(value: Any, name: str, where: str, *, optional: bool = False) -> Path | None:
    """`value` as a Path (a str or os.PathLike; None when `optional`), else an
    `ArgumentError` naming the argument."""
    if value is None and optional:
        return None
    if isinstance(value, (str, os.PathLike)):
        return Path(value)
    raise ArgumentError(f"{where}: {name} must be a path (str or pathlib.Path)"
                        f"{' or None' * optional}, got {type(value).__name__} {value!r}")


def load_config(source: str | Path | Mapping | None = None,
                overrides: Sequence[str] | str = ()) -> RunConfig:
    """A validated `RunConfig` from a YAML path (or packaged name, or mapping) plus overrides
    (`KEY=VALUE` strings as `--set` takes them; one string is one setting).

    `None` means the packaged default (`configs/default.yaml`).
    """
    overrides = api_overrides(overrides, "load_config")
    if source is not None and not isinstance(source, (Mapping, str, os.PathLike)):
        raise ArgumentError(f"load_config: source must be a YAML path, a packaged config name, "
                            f"a mapping or None, got {type(source).__name__} {source!r}")
    if source is None:
        data = _read_yaml(PACKAGED_CONFIGS / "default.yaml")
    elif isinstance(source, Mapping):
        data = _plain(source)
    else:
        data = _read_yaml(source)
    data = apply_overrides(_switch_space(data, list(overrides)), list(overrides))
    return _build(RunConfig, data, "")


#: Space settings every space shares (the data's shape): kept when --set switches the space.
_SHARED_SPACE_KEYS = ("input_size", "in_channels", "n_classes")


def _switch_space(data: dict, overrides: list[str]) -> dict:
    """`data` without its space's own settings when an override names another space (e.g.
    `--set space.name=mobilenet` on the nb201 default): they belong to the space being left,
    so they would be unknown keys of the new one. Overrides of space settings still apply."""
    names = [parse_value(item.split("=", 1)[1]) for item in overrides
             if item.split("=", 1)[0].strip() == "space.name" and "=" in item]
    space = data.get("space")
    if not names or not isinstance(space, Mapping):
        return data
    old = space.get("name", SpaceConfig.name)
    if names[-1] == old:
        return data
    dropped = [k for k in space if k not in ("name", *_SHARED_SPACE_KEYS)]
    if dropped:
        log.info("space.name %s -> %s: the config's %s settings (%s) are dropped", old,
                 names[-1], old, ", ".join(map(str, dropped)))
    return {**data, "space": {k: v for k, v in space.items() if k in _SHARED_SPACE_KEYS}}


def config_to_dict(config: Any) -> Any:
    """Plain data (dicts, lists, scalars) of a config record, as saved to `config.yaml`."""
    if isinstance(config, SpaceConfig):
        # Every setting of the space: given, its default, or null for the data's shape left to
        # the dataset; a run then reads back the same space whatever later defaults become.
        given = dict(config.settings)
        out: dict[str, Any] = {"name": config.name}
        for f in fields(SPACES.get(config.name)):
            if f.name in given:
                out[f.name] = config_to_dict(given[f.name])
            elif f.name in _SHARED_SPACE_KEYS:
                out[f.name] = None
            elif f.default is not dataclasses.MISSING:
                out[f.name] = config_to_dict(f.default)
        return out
    if dataclasses.is_dataclass(config):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in fields(config)}
    if isinstance(config, tuple):
        return [config_to_dict(v) for v in config]
    return config
