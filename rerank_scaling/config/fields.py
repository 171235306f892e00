"""Settings declared once: a dataclass field plus where it lives and how it is checked.

A configuration key is one dataclass field made with :func:`setting`. Its
metadata says where the key sits in an experiment file (``section`` and the
key's name there), whether ``rerank-scaling train`` offers it as a flag, and
its range. Everything else is derived from the fields: the experiment file's
sections and keys, the CLI flags and their parsing, the report's settings
table, and the type and range checks below, whose one error path names the
file, key and value.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any, Literal, Union

from rerank_scaling.errors import UserError


def setting(
    default: Any = dataclasses.MISSING,
    *,
    section: str,
    key: str | None = None,
    doc: str = "",
    flag: bool = True,
    min: float | None = None,
    above: float | None = None,
    choices: Callable[[], Iterable[str]] | None = None,
    label: str | None = None,
    axis: str | None = None,
    path: bool = False,
    tables: bool = False,
) -> Any:
    """A configuration field.

    ``section``: the experiment-file section (``data``, ``candidates``, ``grid``,
    ``train``, ``hardware``, ``eval``, ``study``); ``key``: its name there when
    it differs from the field's; ``axis``: for grid axes, the plural key that
    lists the values (``sizes = [...]``); ``flag``: offered by ``train`` as
    ``--field-name``; ``min`` / ``above``: inclusive / strict lower bounds;
    ``choices``: the allowed values, read when checking (registries);
    ``label``: what a bad value is called in the error (``unknown objective``);
    ``path``: a file or folder, resolved against the experiment file's folder;
    ``tables``: the field holds the section's tables themselves (``[[eval]]``).
    A key of one model family only is declared the same way, in the family's settings class
    (:data:`rerank_scaling.models.FAMILIES`).
    """
    meta = {"section": section, "key": key, "doc": doc, "flag": flag, "min": min, "above": above,
            "choices": choices, "label": label, "axis": axis, "path": path, "tables": tables}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use an immutable default")
    return dataclasses.field(default=default, metadata=meta)


def meta(f: dataclasses.Field) -> dict:
    return f.metadata or {}


def file_key(f: dataclasses.Field) -> str:
    """The key of a field in its experiment-file section."""
    return meta(f).get("key") or f.name


@cache
def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def settings(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if "section" in meta(f)]


def section_keys(*classes: type) -> dict[str, set[str]]:
    """``section -> keys`` an experiment file may hold, from the fields of ``classes``."""
    out: dict[str, set[str]] = {}
    for cls in classes:
        for f in settings(cls):
            if meta(f).get("tables"):
                out.setdefault(meta(f)["section"], set())
                continue
            keys = out.setdefault(meta(f)["section"], set())
            keys.add(file_key(f))  # a grid axis also takes one value under the field's own key (family = ...)
            if meta(f).get("axis"):
                keys.add(meta(f)["axis"])
    return out


def _optional(hint: Any) -> tuple[bool, Any]:
    """``(allows None, the hint without None)``."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != len(typing.get_args(hint)):
            return True, args[0] if len(args) == 1 else Union[tuple(args)]
    return False, hint


def describe(hint: Any, f: dataclasses.Field | None = None) -> str:
    """How a value of this type is named in an error (``a positive integer``)."""
    m = meta(f) if f is not None else {}
    none, hint = _optional(hint)
    if hint is int:
        text = ("a positive integer" if m.get("min") == 1 else
                "a non-negative integer" if m.get("min") == 0 else "an integer")
    elif hint is float:
        text = "a number > 0" if m.get("above") == 0 else ("a number >= 0" if m.get("min") == 0 else "a number")
    elif hint is bool:
        text = "true or false"
    elif hint is str:
        text = "a string"
    elif typing.get_origin(hint) is Literal:
        text = "one of " + ", ".join(map(str, typing.get_args(hint)))
    elif typing.get_origin(hint) is tuple:
        text = "a list"
    else:
        text = getattr(hint, "__name__", str(hint))
    return text + (" or omitted" if none else "")


def check(f: dataclasses.Field, value: Any, hint: Any, name: str | None = None) -> Any:
    """``value`` checked against the field's type and range; returns it normalised
    (ints accepted for floats, lists for tuples). Raises :class:`UserError`
    ``"<name> must be <what>, got <value>"``."""
    name = name or f.name
    m = meta(f)
    none, inner = _optional(hint)
    if value is None:
        if none:
            return None
        raise UserError(f"{name} must be {describe(hint, f)}, got None")
    bad = UserError(f"{name} must be {describe(hint, f)}, got {value!r}")
    choices = m.get("choices")
    if inner is bool:
        if not isinstance(value, bool):
            raise bad
    elif inner is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif inner is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise bad
        value = float(value)
    elif inner is str:
        if not isinstance(value, str):
            raise bad
    elif typing.get_origin(inner) is Literal:
        allowed = typing.get_args(inner)
        if value not in allowed:
            raise UserError(f"unknown {m.get('label') or name} {value!r} (choose from {', '.join(map(str, allowed))})")
    elif typing.get_origin(inner) is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad
        value = tuple(value)
    if choices is not None:
        allowed = tuple(choices())
        if value not in allowed:
            raise UserError(f"unknown {m.get('label') or name} '{value}' (choose from {', '.join(allowed)})")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if m.get("min") is not None and value < m["min"]:
            raise bad
        if m.get("above") is not None and not value > m["above"]:
            raise bad
    return value


def check_all(obj: Any) -> None:
    """Check every setting of a dataclass instance (raises on the first bad one)."""
    cls = type(obj)
    for f in settings(cls):
        value = check(f, getattr(obj, f.name), hints(cls)[f.name])
        if value is not getattr(obj, f.name):
            object.__setattr__(obj, f.name, value)


def parse_text(f: dataclasses.Field, text: str, hint: Any, name: str) -> Any:
    """A flag's text as the field's type (``none`` for None; ``a,b`` for a list)."""
    none, inner = _optional(hint)
    if text.strip().lower() in ("none", "null", "") and none:
        return None
    try:
        if inner is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        if inner is int:
            return int(text)
        if inner is float:
            return float(text)
    except ValueError:
        raise UserError(f"{name} must be {describe(hint, f)}, got '{text}'") from None
    if typing.get_origin(inner) is tuple:
        return tuple(t.strip() for t in text.split(",") if t.strip())
    return text
