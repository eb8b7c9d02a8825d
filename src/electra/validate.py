"""The one validator of configs, whichever way they come in: a wrong key, kind or range is one `ConfigError` that
names the field and what was expected."""

from __future__ import annotations

import dataclasses
import difflib
import functools
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
    if not isinstance(values, dict):
        raise ConfigError(f"{where or cls.__name__}: expected an object of {cls.__name__} fields, got {values!r}")
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


def check_fields(obj: DataclassInstance) -> None:
    """The one check of a config's values against its field annotations (`int` not a bool, `float` taking an int,
    `bool`, `str`, `Literal`, `X | None`, `list[X]`, a nested config built from a dict); anything else raises a
    ConfigError naming the field, what it expects and what it got. `__post_init__` calls this, then `check_range`."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        hint = _hints(type(obj))[f.name]
        ok, conformed = conform(value, hint)
        if not ok:
            raise ConfigError(f"{f.name} must be {_expected(hint)}, got {value!r}")
        if conformed is not value:
            setattr(obj, f.name, conformed)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def conform(value: Any, hint: Any) -> tuple[bool, Any]:
    """(whether `value` is of type `hint`, the value to store: an int for a float field becomes a float, a dict for a
    config dataclass field becomes that dataclass)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for arg in sorted(args, key=lambda a: a is not type(None)):  # None first
            ok, conformed = conform(value, arg)
            if ok:
                return True, conformed
        return False, value
    if hint is type(None):
        return value is None, value
    if origin is Literal:  # (True is not 1, and 1.0 not 1)
        return any(type(value) is type(a) and value == a for a in args), value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)  # (NaN: the range checks)
        return ok, float(value) if ok else value
    if origin is list:
        if not isinstance(value, list | tuple):
            return False, value
        items = [conform(v, args[0] if args else Any) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if dataclasses.is_dataclass(hint):
        if isinstance(value, dict):
            return True, from_dict(hint, value)
        return isinstance(value, hint), value
    if isinstance(hint, type):
        return isinstance(value, hint), value
    return True, value


def _expected(hint: Any) -> str:
    """What a value of type `hint` is, in words: "an integer", "a number or none", "one of 'a', 'b'"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        kinds = [_expected(a) for a in args if a is not type(None)]
        return " or ".join(kinds) + (" or none" if type(None) in args else "")
    if origin is Literal:
        return f"one of {', '.join(map(repr, args))}"
    if origin is list:
        return "a list" + (f" of {_expected(args[0]).split(' ', 1)[-1]}s" if args and args[0] is not Any else "")
    if dataclasses.is_dataclass(hint):
        return f"an object of {hint.__name__} fields"
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return words.get(hint, getattr(hint, "__name__", str(hint)))


def flat_fields(*classes: type) -> list[tuple[str, Any]]:
    out = []
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                continue
            out.append((f.name, hints[f.name]))
    return out
