"""YAML in and out (the home of PyYAML): files read strictly, `--set` values, records dumped.

A mapping that repeats a key is refused with its line: PyYAML alone keeps the last value
silently, which hides a typo'd section or a pasted block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from moonas.errors import ConfigError

__all__ = ["read_yaml", "parse_value", "dump_yaml"]


class _StrictLoader(yaml.SafeLoader):
    """`SafeLoader` that refuses a key repeated within one mapping."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: its keys may be overridden
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            if key in seen:
                raise ConfigError(
                    f"{loader.name} line {key_node.start_mark.line + 1}: key {key!r} repeats the "
                    f"one on line {seen[key] + 1} (a mapping takes each key once): remove or merge "
                    "one of them")
            seen[key] = key_node.start_mark.line
        except TypeError:  # an unhashable key: PyYAML reports it below
            continue
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | Path) -> Any:
    """The data of a YAML file (None when empty). Invalid YAML or a repeated key raises a
    one-line ConfigError naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}): save the config as "
                          "UTF-8 YAML") from None
    loader = _StrictLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})"
        ) from None
    finally:
        loader.dispose()


def parse_value(raw: str) -> Any:
    """A `KEY=VALUE` value: YAML scalar or collection (`0.5`, `true`, `[1, 2]`, `{a: 1}`, a
    section as `enabled: true`), else the raw text; an empty value is None. A bare `word:`
    (YAML: a mapping of one key to nothing, as in `search.cost=latency:`) stays the text, for
    the key to check (a cost names a device after the colon)."""
    if not raw.strip():
        return None
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if (isinstance(value, dict) and len(value) == 1 and None in value.values()
            and raw.strip().endswith(":")):
        return raw.strip()
    return value


def dump_yaml(data: Any) -> str:
    """Plain data as block YAML, keys in the given order."""
    return yaml.safe_dump(data, sort_keys=False)
