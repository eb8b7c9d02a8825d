"""The one validator of configs: every path into a config (the command line, `--config` files, a run's config.json,
the Python API) builds the dataclass through these checks, so a wrong key, kind or range is one `ConfigError` that
names the field and what was expected."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from electra.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_D = TypeVar("_D", bound="DataclassInstance")  # a config dataclass


# Fields that earlier versions recorded and this one no longer has, with the value that meant "off": a run that
# recorded that value loads as if the field never existed; any other value is refused (the run needs the version
# that had it; docs/research/2026-12-08-options-removed.md says which commit).
RETIRED_FIELDS: dict[str, dict[str, Any]] = {"PretrainConfig": {"generator_adam_epsilon": None}}


def without_retired(cls: type, values: dict[str, Any], where: str = "") -> dict[str, Any]:
    """`values` without the fields of `cls` that this version retired (`RETIRED_FIELDS`), refusing one that is set
    to anything but its "off" value."""
    retired = RETIRED_FIELDS.get(cls.__name__, {})
    for key, off in retired.items():
        if key in values and values[key] != off:
            raise ConfigError(
                f"{where or cls.__name__}: {key}={values[key]!r} was an experimental option of electra 0.1.0 that this "
                "version no longer has; continue that run with electra 0.1.0"
            )
    return {k: v for k, v in values.items() if k not in retired}


def from_dict(cls: type[_D], values: dict[str, Any], where: str = "") -> _D:
    """Build dataclass `cls` from a dict, rejecting unknown keys with a suggestion."""
    known = {f.name for f in fields(cls)}
    values = without_retired(cls, values, where)
    for key in values:
        if key not in known:
            raise ConfigError(unknown_key_message(key, known, where or cls.__name__))
    return cls(**values)


def unknown_key_message(key: str, known: typing.Iterable[str], where: str) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown config key {key!r} in {where}{hint}"


def check_range(
    obj: DataclassInstance, name: str, lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False
) -> None:
    """Raise a ConfigError naming the field and its allowed range when obj.<name> lies outside it."""
    value = getattr(obj, name)
    bad = (lo is not None and (value < lo or (lo_open and value == lo))) or (
        hi is not None and (value > hi or (hi_open and value == hi))
    )
    if isinstance(value, bool) or not isinstance(value, int | float) or bad or value != value:  # (NaN)
        if hi is None:
            allowed = f"{'>' if lo_open else '>='} {lo:g}"
        else:
            allowed = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ConfigError(f"{name} must be {allowed}, got {value!r}")


_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def check_types(obj: DataclassInstance) -> None:
    """Raise a ConfigError naming the field when a plain field (a number, a count, a flag, a string, or None where
    allowed) holds a value of another kind, e.g. `"fast"` for learning_rate read from a JSON file."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        hint, value = hints[f.name], getattr(obj, f.name)
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        kinds = [k for k in (typing.get_args(hint) if union else (hint,)) if k is not type(None)]
        optional = union and type(None) in typing.get_args(hint)
        if not all(k in _KINDS for k in kinds) or (value is None and optional):
            continue  # a Literal, a dataclass, a list (checked elsewhere), or None where None is allowed
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not any(
            (k is bool and isinstance(value, bool))
            or (k is str and isinstance(value, str))
            or (k is int and numeric and isinstance(value, int))
            or (k is float and numeric)
            for k in kinds
        ):
            allowed = " or ".join(_KINDS[k] for k in kinds) + (" or null" if optional else "")
            raise ConfigError(f"{f.name} must be {allowed}, got {value!r}")


def check_literals(obj: DataclassInstance) -> None:
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        hint = hints[f.name]
        if typing.get_origin(hint) is Literal:
            allowed = typing.get_args(hint)
            if getattr(obj, f.name) not in allowed:
                raise ConfigError(
                    f"{f.name} must be one of {', '.join(map(repr, allowed))}, got {getattr(obj, f.name)!r}"
                )


def flat_fields(*classes: type) -> list[tuple[str, Any]]:
    out = []
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                continue
            out.append((f.name, hints[f.name]))
    return out
