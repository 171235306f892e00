"""Settings declared once: a dataclass field plus where it lives and how it is checked.

A configuration key is one dataclass field made with :func:`setting`. Its
metadata says where the key sits in an experiment file (``section`` and the
key's name there), whether ``rerank-scaling train`` offers it as a flag, and
its range. Everything else is derived from the fields: the experiment file's
sections and keys, the CLI flags and their parsing, the report's settings
table, and the type and range check: :func:`value_of` makes the field's
:class:`~rerank_scaling.values.Value` once, and every consumer asks it (one error
path naming the file, key and value).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any, Literal, Union

from rerank_scaling.values import Bool, Choice, ListOf, Number, Text, Value


def setting(
    default: Any = dataclasses.MISSING,
    *,
    section: str,
    key: str | None = None,
    doc: str = "",
    flag: bool = True,
    min: float | None = None,
    above: float | None = None,
    max: float | None = None,
    below: float | None = None,
    value: Value | None = None,
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
    ``--field-name``; ``min`` / ``above``: inclusive / strict lower bounds; ``max`` / ``below``:
    inclusive / strict upper bounds; ``value``: a named value type of :mod:`rerank_scaling.values`
    instead of bounds (``SEED``, ``PROBABILITY``, ``NAME``); ``choices``: the allowed values, read
    when checking (registries);
    ``label``: what a bad value is called in the error (``unknown objective``);
    ``path``: a file or folder, resolved against the experiment file's folder;
    ``tables``: the field holds the section's tables themselves (``[[eval]]``).
    A key of one model family only is declared the same way, in the family's settings class
    (:data:`rerank_scaling.models.FAMILIES`).
    """
    meta = {"section": section, "key": key, "doc": doc, "flag": flag, "min": min, "above": above,
            "max": max, "below": below, "value": value, "choices": choices, "label": label, "axis": axis,
            "path": path, "tables": tables}
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


@cache
def value_of(f: dataclasses.Field, hint: Any) -> Value:
    """The field's value type (:mod:`rerank_scaling.values`): from its type hint and its declared
    range (``min`` / ``above`` / ``max`` / ``below``), choices or ``value``. One object parses the
    field's flag, checks a value from a file, and names the range in errors and ``--help``."""
    m = meta(f)
    none, inner = _optional(hint)
    if m.get("value") is not None:
        value = m["value"]
    elif inner is bool:
        value = Bool()
    elif inner in (int, float):
        lo = m.get("min") if m.get("above") is None else m["above"]
        hi = m.get("max") if m.get("below") is None else m["below"]
        value = Number(inner, lo=lo, hi=hi, lo_open=m.get("above") is not None, hi_open=m.get("below") is not None)
    elif typing.get_origin(inner) is Literal:
        value = Choice(typing.get_args(inner), label=m.get("label"))
    elif m.get("choices") is not None:
        value = Choice(m["choices"], label=m.get("label"))
    elif typing.get_origin(inner) is tuple:
        item = typing.get_args(inner)[0] if typing.get_args(inner) else Any
        value = ListOf(Text() if item is str else Value())
    else:
        value = Text()
    return value.maybe() if none else value


def check(f: dataclasses.Field, value: Any, hint: Any, name: str | None = None) -> Any:
    """``value`` checked against the field's type and range; returns it normalised
    (ints accepted for floats, lists for tuples). Raises :class:`UserError`
    ``"<name> must be <what>, got <value>"``."""
    return value_of(f, hint).check(value, name or f.name)


def check_all(obj: Any) -> None:
    """Check every setting of a dataclass instance (raises on the first bad one)."""
    cls = type(obj)
    for f in settings(cls):
        value = check(f, getattr(obj, f.name), hints(cls)[f.name])
        if value is not getattr(obj, f.name):
            object.__setattr__(obj, f.name, value)


def parse_text(f: dataclasses.Field, text: str, hint: Any, name: str) -> Any:
    """A flag's text as the field's type, checked (``none`` for None; ``a,b`` for a list)."""
    return value_of(f, hint).parse(text, name)
