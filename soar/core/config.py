"""Typed configs: dataclasses whose defaults run, loaded from YAML/JSON and `--set key=value` overrides.

Unknown keys are errors that name the valid ones (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    pass


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, typ: Any, where: str) -> Any:
    origin = typing.get_origin(typ)
    if dataclasses.is_dataclass(typ):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {typ.__name__}, got {value!r}")
        return from_dict(typ, value, where)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(typ) or (Any,)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        elif not isinstance(value, list | tuple):
            value = [value]  # `--set levels=5` means the one-element list
        seq = [_coerce(v, inner, where) for v in value]
        return tuple(seq) if origin is tuple else seq
    if origin is dict or typ is dict:
        return dict(value)
    if typ in (bool, int, float, str):
        return _scalar(value, typ, where)
    return value


def _scalar(value: Any, typ: type, where: str) -> Any:
    """A strict scalar: 3.7 is not an int, true is not a number, null is not a string, NaN is not a value."""
    if typ is bool:
        words = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in words:
            return words[value.lower()]
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if typ is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # `--set out=2024` reads as a number
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    number = value
    if isinstance(value, str):
        try:
            number = float(value) if typ is float else int(value)
        except ValueError:
            raise ConfigError(
                f"{where}: expected {'a number' if typ is float else 'an integer'}, got {value!r}"
            ) from None
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
        raise ConfigError(f"{where}: expected {'a finite number' if typ is float else 'an integer'}, got {value!r}")
    if typ is int:
        if not float(number).is_integer():
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(number)
    return float(number)


def at_least(cfg: Any, minimum: float, *names: str) -> None:
    """Raise ValueError naming the first of `names` whose value in `cfg` is below `minimum`."""
    for name in names:
        value = getattr(cfg, name)
        if value < minimum:
            raise ValueError(f"{name} must be at least {minimum:g}, got {value!r}")


def from_dict(cls: type[T], data: dict, where: str = "config") -> T:
    """Build dataclass `cls` from a (nested) dict; unknown keys raise ConfigError naming the valid ones."""
    types_ = _field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} for {cls.__name__}; valid keys: {', '.join(types_)}"
        )
    kwargs = {k: _coerce(v, types_[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from e


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def extend(settings: Any, cls: type[T], **more: Any) -> T:
    """A `cls` (a config that adds fields to the type of `settings`) holding `settings`' values and `more`."""
    values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    return cls(**{**values, **more})


def _set_path(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        data = data.setdefault(k, {})
        if not isinstance(data, dict):
            raise ConfigError(f"--set {dotted}: {k} is not a section")
    data[keys[-1]] = value


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults <- file (YAML or JSON; `include: OTHER` first reads OTHER, a path relative to the file) <-
    `key.sub=value` overrides, validated into `cls`."""
    data = read_config_file(Path(path)) if path is not None else {}
    merged = merge(to_dict(cls()), data)
    for o in overrides or []:
        if "=" not in o:
            raise ConfigError(f"--set expects key=value, got {o!r}")
        k, v = o.split("=", 1)
        _set_path(merged, k.strip(), yaml.safe_load(v))
    return from_dict(cls, merged, str(path) if path else "config")


def read_config_file(p: Path, chain: tuple[Path, ...] = ()) -> dict:
    """The mapping in config file `p`, on top of the file its `include:` key names (recursively)."""
    if not p.exists():
        raise ConfigError(f"config file {p} does not exist" + (f" (included by {chain[-1]})" if chain else ""))
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder; expected a YAML/JSON config file")
    if p.resolve() in chain:
        raise ConfigError(f"{p}: includes itself (through {' -> '.join(map(str, chain))})")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text (a binary file?); expected a YAML/JSON config file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML/JSON: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping")
    include = data.pop("include", None)
    if include is None:
        return data
    if not isinstance(include, str):
        raise ConfigError(f"{p}: include must be one file path, got {include!r}")
    return merge(read_config_file(p.parent / include, (*chain, p.resolve())), data)


def merge(base: dict, new: dict) -> dict:
    """`new` over `base`, section by section."""
    out = dict(base)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def dump_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(json.loads(json.dumps(to_dict(cfg))), sort_keys=False))


class ConfigMismatch(RuntimeError):
    """`--resume` with a config that differs from the one the run started with."""


def check_same_config(
    saved_path: str | Path, cfg: Any, ignore: tuple[str, ...] = ("resume", "threads", "out", "parallel")
) -> None:
    """Refuse to resume a run whose saved config (YAML) differs from `cfg` outside `ignore` (`out` is where the
    folder is now: a moved or copied run folder resumes where it lies)."""
    saved_path = Path(saved_path)
    if not saved_path.exists():
        raise FileNotFoundError(f"nothing to resume: {saved_path} does not exist")
    # A key the saved file lacks (added to soar after the run started) counts as its default.
    defaults = json.loads(json.dumps(to_dict(type(cfg)())))
    saved = merge(defaults, yaml.safe_load(saved_path.read_text()) or {})
    now = json.loads(json.dumps(to_dict(cfg)))  # tuples -> lists, as in YAML
    diff = [k for k in sorted(set(saved) | set(now)) if k not in ignore and saved.get(k) != now.get(k)]
    if diff:
        raise ConfigMismatch(
            f"{saved_path.parent} was started with a different config (keys that differ: {', '.join(diff)}); "
            f"resume with the saved config ({saved_path}) or start a new run in another folder"
        )
