"""Value types, declared once: every value a user gives is checked by one of these, before any work.

A configuration key (``config.fields.setting``) and a command-line flag of
any command (``type=`` of ``add_argument``) are declared with a :class:`Value`:
its type and range (``POSITIVE_INT``, ``PROBABILITY``, ``LEVEL``, a
:class:`Choice`, a path that must exist, a folder that may be created, ...).
The declaration is the one place: it parses a flag's text, checks a value
read from a file, names itself in errors and in ``--help`` (``[a level in
(0, 1)]``), and gives the tests a value outside its range (:meth:`Value.bad`).

Every error has one shape, ``<name> must be <what>, got <value>`` (choices:
``unknown <label> 'x' (choose from ...)``), raised as :class:`UserError`; as an
argparse ``type=`` the same text reaches the command's one-line error before
the command runs. Standard library only: ``rerank-scaling --help`` builds
every parser with these.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerank_scaling.errors import UserError

NONE_TEXTS = ("none", "null", "")
_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


class Value:
    """A value type and its range. ``what`` names it (``a positive integer``); ``optional``: None
    (``none`` on the command line, the key left out in a file) is allowed too."""

    what: str = "a value"
    optional: bool = False

    def described(self) -> str:
        return self.what + (" or omitted" if self.optional else "")

    def maybe(self) -> "Value":
        """The same type with None allowed too."""
        new = copy.copy(self)
        object.__setattr__(new, "optional", True)
        return new

    def _bad(self, name: str, value: Any) -> UserError:
        return UserError(f"{name} must be {self.described()}, got {value!r}")

    def check(self, value: Any, name: str) -> Any:
        """``value`` (from a file or already parsed) checked; returns it normalised."""
        if value is None:
            if self.optional:
                return None
            raise self._bad(name, None)
        return self._check(value, name)

    def _check(self, value: Any, name: str) -> Any:
        return value

    def parse(self, text: str, name: str) -> Any:
        """A flag's text as this type, checked."""
        if self.optional and text.strip().lower() in NONE_TEXTS:
            return None
        try:
            value = self._parse(text)
        except ValueError:
            raise UserError(f"{name} must be {self.described()}, got {text!r}") from None
        return self.check(value, name)

    def _parse(self, text: str) -> Any:
        return text

    def __call__(self, text: str) -> Any:
        """argparse ``type=``: the error text follows ``argument --flag: `` (see :func:`flag_error`)."""
        try:
            return self.parse(text, "\0")
        except UserError as exc:
            message = str(exc).replace("each value of \0", "each value").replace("\0 ", "").replace("\0", "value")
            raise argparse.ArgumentTypeError(message) from None

    def bad(self) -> list[str]:
        """Flag texts outside the range (the walk-every-key test feeds each of them)."""
        return []

    def bad_values(self) -> list[Any]:
        """Values outside the range as a file would give them (TOML)."""
        return [{"not": "a value"}]

    @property
    def __name__(self) -> str:  # argparse names a type by it in its own messages
        return self.what


@dataclass(frozen=True, eq=False)
class Number(Value):
    """An int or a finite float in a range: ``lo``/``hi`` bounds, ``lo_open``/``hi_open`` strict.
    ``amount``: the text may carry a suffix (``400M``, ``1.5B``, ``3e17``)."""

    kind: type = float
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    optional: bool = False
    name: str | None = None
    amount: bool = False

    @property
    def what(self) -> str:
        if self.name:
            return self.name
        noun = "integer" if self.kind is int else "number"
        lo, hi = self.lo, self.hi
        if hi is None:
            if lo is None:
                return f"an {noun}" if noun == "integer" else "a number"
            if self.kind is int and lo == 1 and not self.lo_open:
                return "a positive integer"
            if self.kind is int and lo == 0 and not self.lo_open:
                return "a non-negative integer"
            return f"a{'n' if noun == 'integer' else ''} {noun} {'>' if self.lo_open else '>='} {_num(lo)}"
        if lo is None:
            return f"a{'n' if noun == 'integer' else ''} {noun} {'<' if self.hi_open else '<='} {_num(hi)}"
        return (f"a{'n' if noun == 'integer' else ''} {noun} in {'(' if self.lo_open else '['}{_num(lo)}, "
                f"{_num(hi)}{')' if self.hi_open else ']'}")

    def _check(self, value: Any, name: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self._bad(name, value)
        if self.kind is int and not isinstance(value, int):
            raise self._bad(name, value)
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            raise self._bad(name, value)
        if self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi):
            raise self._bad(name, value)
        return value if self.kind is int else float(value)

    def parse(self, text: str, name: str) -> Any:
        try:
            return super().parse(text, name)
        except UserError as exc:  # out of range: name the value as it was typed
            if str(exc).startswith(f"{name} must be") and not str(exc).endswith(repr(text)):
                raise UserError(f"{name} must be {self.described()}, got {text.strip()}") from None
            raise

    def _parse(self, text: str) -> Any:
        if self.kind is int:
            return int(text)
        if self.amount:
            return parse_amount(text)
        return float(text)

    def inside(self, value: float) -> bool:
        try:
            self._check(value, "")
        except UserError:
            return False
        return True

    def bad(self) -> list[str]:
        out = []
        if self.lo is not None:
            out.append(_num(self.lo if self.lo_open else self.lo - 1))
        if self.hi is not None:
            out.append(_num(self.hi if self.hi_open else self.hi + 1))
        if self.kind is float:
            out.append("nan")
        return out + ["1.5" if self.kind is int else "many"]

    def bad_values(self) -> list[Any]:
        out: list[Any] = [float(t) if t == "nan" else _number(t) for t in self.bad()[:-1]]
        return out + ["many", True]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def parse_amount(text: str) -> float:
    """``400e6``, ``400M``, ``1.5B``, ``3e17`` -> float (``ValueError`` otherwise)."""
    m = re.fullmatch(r"\s*([-+]?[0-9.]+(?:e[+-]?\d+)?)\s*([kmbgt]?)\s*", str(text).lower())
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _SUFFIX.get(m.group(2), 1.0)


class Bool(Value):
    what = "true or false"

    def __init__(self, optional: bool = False):
        self.optional = optional

    def _check(self, value: Any, name: str) -> Any:
        if not isinstance(value, bool):
            raise self._bad(name, value)
        return value

    def _parse(self, text: str) -> Any:
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(text)
        return lowered in ("true", "1", "yes")

    def bad(self) -> list[str]:
        return ["maybe"]

    def bad_values(self) -> list[Any]:
        return ["no", 1]


class Choice(Value):
    """One of ``choices`` (a tuple, or a function that lists them: a registry read when checking).
    ``label`` names the value in the error: ``unknown <label> 'x' (choose from ...)``."""

    def __init__(self, choices: Iterable[str] | Callable[[], Iterable[str]], label: str | None = None,
                 optional: bool = False):
        self._choices = choices if callable(choices) else tuple(choices)
        self.label = label
        self.optional = optional

    @property
    def choices(self) -> tuple:
        return tuple(self._choices()) if callable(self._choices) else self._choices

    @property
    def what(self) -> str:
        return "one of " + ", ".join(map(str, self.choices))

    def _check(self, value: Any, name: str) -> Any:
        if value not in self.choices:
            label = self.label or name
            raise UserError(f"unknown {label} {value!r} (choose from {', '.join(map(str, self.choices))})")
        return value

    def bad(self) -> list[str]:
        return ["no-such-choice"]

    def bad_values(self) -> list[Any]:
        return ["no-such-choice", 3]


class Text(Value):
    """A string; ``pattern`` (a regular expression the whole text matches) narrows it."""

    def __init__(self, what: str = "a string", pattern: str | None = None, optional: bool = False,
                 example: str | None = None):
        self.what, self.pattern, self.optional, self.example = what, pattern, optional, example

    def _check(self, value: Any, name: str) -> Any:
        if not isinstance(value, str) or (self.pattern and not re.fullmatch(self.pattern, value)):
            raise self._bad(name, value)
        return value

    def bad(self) -> list[str]:
        return [self.example] if self.example else []

    def bad_values(self) -> list[Any]:
        return [3, *([self.example] if self.example else [])]


class ListOf(Value):
    """A list: comma-separated on the command line (``a,b``), a list in a file; each item an ``item``."""

    def __init__(self, item: Value, optional: bool = False):
        self.item, self.optional = item, optional

    @property
    def what(self) -> str:
        return f"a comma-separated list, each {self.item.what}"

    def _check(self, value: Any, name: str) -> Any:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise self._bad(name, value)
        return tuple(self.item.check(v, f"each value of {name}") for v in value)

    def parse(self, text: str, name: str) -> Any:
        if self.optional and text.strip().lower() in ("none", "null"):
            return None
        parts = [t.strip() for t in text.split(",") if t.strip()]
        return tuple(self.item.parse(t, f"each value of {name}") for t in parts)

    def bad(self) -> list[str]:
        return self.item.bad()[:1]

    def bad_values(self) -> list[Any]:
        return ["a, b", *[[b] for b in self.item.bad_values()[:1]]]


class PathValue(Value):
    """A path on the command line. ``must``: ``file`` or ``folder`` (must exist as one), ``exists``
    (a file or a folder), ``output`` (a folder the command may create or fill: an existing file
    there, or a file where a parent folder should be, is an error), ``output-file`` (a file the command
    writes: not a folder, no file where its folder should be). ``what`` names it in errors."""

    def __init__(self, must: str, what: str | None = None):
        assert must in ("file", "folder", "exists", "output", "output-file"), must
        self.must = must
        self.noun = what or {"file": "file", "folder": "folder", "exists": "file or folder",
                             "output": "folder", "output-file": "file"}[must]
        self.what = {"output": f"a {self.noun} to write (not a file)",
                     "output-file": f"a {self.noun} to write (not a folder)"}.get(must, f"an existing {self.noun}")

    def _parse(self, text: str) -> Any:
        return Path(text)

    def check(self, value: Any, name: str) -> Any:
        path = Path(value)
        if self.must in ("output", "output-file"):
            output_path(path, file=self.must == "output-file")
            return path
        if not path.exists():
            raise UserError(f"{self.noun} not found: {path}")
        if self.must == "file" and not path.is_file():
            raise UserError(f"{path} is a folder, not a {self.noun}")
        if self.must == "folder" and not path.is_dir():
            raise UserError(f"{path} is not a {self.noun} (it is a file)")
        return path

    def __call__(self, text: str) -> Any:
        try:
            return self.parse(text, "\0")
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def bad(self) -> list[str]:
        # {missing}: a path that does not exist; {file}: an existing file (the walk test fills both in)
        if self.must in ("output", "output-file"):
            return ["{file}/sub" if self.must == "output-file" else "{file}"]
        return ["{missing}"] + (["{file}"] if self.must == "folder" else [])

    def bad_values(self) -> list[Any]:
        return [3]


def output_path(path: Path | str, file: bool = False) -> Path:
    """``path`` as a folder (``file``: a file) a command may create or fill: an existing file where the
    folder goes (or a folder where the file goes), or a file where a parent folder should be, or a
    parent that cannot be written, is a one-line error naming it."""
    path = Path(path)
    if file and path.is_dir():
        raise UserError(f"{path} is a folder, not a file to write")
    for p in (path.parent if file else path, *(path.parent if file else path).parents):
        if p.exists():
            if not p.is_dir():
                raise UserError(f"{path}: {p} exists and is not a folder")
            if not os.access(p, os.W_OK | os.X_OK):
                raise UserError(f"{path}: {p} is not writable")
            break
    return path


# the ranges used across the project, named once
POSITIVE_INT = Number(int, lo=1)
NON_NEGATIVE_INT = Number(int, lo=0)
SEED = Number(int, lo=0, hi=2**32 - 1, name="a seed (an integer in [0, 2^32))")
POSITIVE = Number(float, lo=0, lo_open=True)
NON_NEGATIVE = Number(float, lo=0)
PROBABILITY = Number(float, lo=0, hi=1, hi_open=True, name="a probability in [0, 1)")
FRACTION = Number(float, lo=0, hi=1, name="a fraction in [0, 1]")
LEVEL = Number(float, lo=0, hi=1, lo_open=True, hi_open=True, name="a level in (0, 1)")
AMOUNT = Number(float, lo=0, lo_open=True, amount=True, name="a number > 0 (400e6, 400M, 1.5B)")
NON_NEGATIVE_AMOUNT = Number(float, lo=0, amount=True, name="a number >= 0 (400e6, 400M, 1.5B)")
# a name that becomes a file or folder name and a table value: an eval set, a study
NAME = Text("a name (letters, digits and - _ . + @, not starting with . or -)",
            pattern=r"[A-Za-z0-9_+@][A-Za-z0-9_.+@-]*", example="a/b")
OUTPUT_FOLDER = PathValue("output")
OUTPUT_FILE = PathValue("output-file")


def help_text(help: str | None, value: Any) -> str | None:
    """``help`` with the value's range appended (``bootstrap resamples [a positive integer]``)."""
    if not isinstance(value, Value) or help == argparse.SUPPRESS:
        return help
    text = (help or "").rstrip()
    return f"{text} [{value.described().replace('%', '%%')}]".strip()  # argparse %-formats help strings


def flag_error(message: str) -> str:
    """argparse's ``argument --x: must be ...`` as ``--x must be ...`` (the shape of every value error)."""
    return re.sub(r"^argument (\S+?)(?:/\S+)?: must be ", r"\1 must be ", message)
