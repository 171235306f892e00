"""Every value a user can give is declared once and checked before any work.

The walk reads the declarations themselves -- every ``setting()`` field of the
configuration classes and every flag of every command in the real parser --
so a key or flag added later is walked too, and one added without a declared
type fails ``test_every_flag_declares_its_type``. Each declared type hands out
values outside its range (``Value.bad`` for flag texts, ``Value.bad_values`` for
file values); each is fed to the real command, which must exit 2 with one line
naming the key, flag or value, no traceback, and nothing created on disk.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tomllib
from pathlib import Path

import pytest

from rerank_scaling.cli import build_parser, main
from rerank_scaling.config import EvalSpec, RunConfig
from rerank_scaling.config.experiment import ChainSettings, Hardware, StudyInfo
from rerank_scaling.config.fields import file_key, hints, meta, settings, value_of
from rerank_scaling.values import Value

from tiny_experiment import TINY

VALUELESS = (argparse._HelpAction, argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction,
             argparse._AppendConstAction, argparse._CountAction, argparse._SubParsersAction, argparse._VersionAction)

# a valid command line per command: (options, positionals by dest); the walked flag is appended or replaces
# its positional
BASE = {
    "train": (["--out", "{tmp}/run", "--data-root", "{shared}", "--ladder", "scratch", "--size", "L1-H64", "--steps",
               "1", "--warmup-steps", "0", "--eval", "cranfield-test=cranfield:test"], {}),
    "grid prepare": ([], {"experiment": "{tmp}/exp.toml"}),
    "grid run": (["--out", "{tmp}/study"], {"experiment": "{tmp}/exp.toml"}),
    "grid status": ([], {"study": "{tmp}/good-study"}),
    "grid collect": ([], {"study": "{tmp}/good-study"}),
    "forecast": (["--metric", "ndcg@10", "--fit-max-params", "2e6", "--law", "auto", "--bootstrap", "20"],
                 {"results": "{tmp}/good.csv"}),
    "fit": (["--metric", "ndcg@10", "--law", "loglinear", "--bootstrap", "20"], {"results": "{tmp}/good.csv"}),
    "verdicts": (["--fit-max-params", "2e6", "--bootstrap", "20", "--no-exposure"], {"results": "{tmp}/good.csv"}),
    "allocate": (["--metric", "ndcg@10", "--flops", "1e15", "--bootstrap", "20"], {"results": "{tmp}/good.csv"}),
    "backtest": (["--bootstrap", "10", "--estimators", "carry-forward"],
                 {"tables": "{tmp}/good.csv"}),
    "report": (["--bootstrap", "0", "--out", "{tmp}/r/REPORT.md"], {"study": "{tmp}/good-study"}),
    "demo": (["--out", "{tmp}/demo", "--report", "{tmp}/demo/REPORT.md"], {}),
    "rerank": (["--run", "{tmp}/good.csv", "--collection", "cranfield", "--out", "{tmp}/reranked.trec"],
               {"model": "{tmp}/model"}),
}


def commands(parser=None, prefix=()):
    """``(command words, its parser)`` for every command that runs (sub-commands of sub-commands too)."""
    parser = parser or build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    yield from commands(sub, (*prefix, name))
                else:
                    yield " ".join((*prefix, name)), sub


def flags():
    """``(command, action)`` for every flag and positional that takes a value."""
    return [(cmd, a) for cmd, sub in commands() for a in sub._actions if not isinstance(a, VALUELESS)]


def bad_texts(action) -> list[str]:
    if isinstance(action.type, Value):
        return action.type.bad()
    return ["no-such-choice"] if action.choices is not None else []


FLAG_CASES = [(cmd, a.option_strings[0] if a.option_strings else a.dest, text)
              for cmd, a in flags() for text in bad_texts(a)]


def _argv(cmd: str, flag: str, text: str) -> list[str]:
    options, positionals = BASE[cmd]
    sub = dict(commands())[cmd]
    values = {**positionals, **({} if flag.startswith("-") else {flag: text})}
    pos = [values[a.dest] for a in sub._actions if not a.option_strings and not isinstance(a, VALUELESS)]
    return [*cmd.split(), *pos, *options, *([flag, text] if flag.startswith("-") else [])]


@pytest.fixture()
def files(tmp_path, shared_root):
    import polars as pl

    (tmp_path / "a-file").write_text("not a folder\n")
    (tmp_path / "exp.toml").write_text(TINY.format(shared=shared_root, cache=tmp_path / "cache", steps=2))
    rows = ["objective,model,params,metric,value"]
    rows += [f"listwise,m{i},{n:.0f},ndcg@10,{0.3 + 0.02 * i}" for i, n in enumerate((1e6, 2e6, 4e6, 8e6))]
    (tmp_path / "good.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "good-study" / "cells").mkdir(parents=True)
    pl.read_csv(tmp_path / "good.csv").write_parquet(tmp_path / "good-study" / "results.parquet")
    return tmp_path, shared_root, pl


def _fill(text, tmp: Path, shared: Path):
    if isinstance(text, str):
        return text.format(tmp=tmp, shared=shared, missing=tmp / "missing", file=tmp / "a-file")
    return text


def _refused(argv, tmp: Path, capsys, names: tuple[str, ...], allowed=("cache",)) -> str:
    before = {str(p) for p in tmp.rglob("*")}
    try:
        code = main(argv)
    except SystemExit as exc:  # pragma: no cover - main returns argparse's exit status
        code = exc.code
    captured = capsys.readouterr()
    err = [line for line in captured.err.strip().splitlines() if not line.startswith("warning: ")]
    assert code == 2, (argv, captured.out[-300:], captured.err[-600:])
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    assert any(n in err[0] for n in names), (names, err[0])
    created = sorted({str(p) for p in tmp.rglob("*")} - before)
    assert all(any(f"{tmp}/{a}" in p for a in allowed) for p in created), created
    return err[0]


def test_every_flag_declares_its_type():
    """Each flag of each command has a declared value type (rerank_scaling.values) or choices."""
    undeclared = [f"{cmd} {a.option_strings or a.dest}" for cmd, a in flags()
                  if not isinstance(a.type, Value) and a.choices is None]
    assert not undeclared, f"flags without a declared type and range: {undeclared}"
    assert set(BASE) == {cmd for cmd, _ in commands()}, "a command without a valid base command line here"


def test_help_shows_every_range():
    for cmd, sub in commands():
        text = "".join(sub.format_help().split())  # wrapped anywhere, hyphens too
        for a in sub._actions:
            if isinstance(a.type, Value) and not isinstance(a, VALUELESS):
                assert f"[{''.join(a.type.described().split())}]" in text, (cmd, a.dest)


@pytest.mark.parametrize("cmd,flag,text", FLAG_CASES, ids=[f"{c} {f} {t}" for c, f, t in FLAG_CASES])
def test_every_flag_refuses_a_value_outside_its_range(files, cmd, flag, text, capsys):
    tmp, shared, _ = files
    text = _fill(text, tmp, shared)
    argv = [_fill(a, tmp, shared) for a in _argv(cmd, flag, text)]
    dest = flag.lstrip("-").replace("-", "_")
    _refused(argv, tmp, capsys, (flag, dest, dest.replace("_", " "), str(text)), allowed=())


def _key_cases():
    """``(class, field, value)`` for every declared configuration key and each value outside its range."""
    out = []
    for cls in (StudyInfo, RunConfig, EvalSpec, Hardware, ChainSettings):
        for f in settings(cls):
            if meta(f).get("tables"):
                continue
            for value in value_of(f, hints(cls)[f.name]).bad_values():
                out.append((cls.__name__, f.name, value))
    return out


KEY_CASES = _key_cases()
CLASSES = {c.__name__: c for c in (StudyInfo, RunConfig, EvalSpec, Hardware, ChainSettings)}


def _lit(v) -> str:
    """A TOML literal."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_lit(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_lit(x)}" for k, x in v.items()) + "}"


def _dump(doc: dict) -> str:
    lines = []
    for section, body in doc.items():
        for table in body if isinstance(body, list) else [body]:
            lines.append(f"[[{section}]]" if isinstance(body, list) else f"[{section}]")
            lines += [f"{k} = {_lit(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("cls,name,value", KEY_CASES, ids=[f"{c}.{n}={v!r}" for c, n, v in KEY_CASES])
def test_every_key_refuses_a_value_outside_its_range(files, cls, name, value, capsys):
    tmp, shared, _ = files
    f = next(x for x in dataclasses.fields(CLASSES[cls]) if x.name == name)
    value = _fill(value, tmp, shared)
    doc = tomllib.loads((tmp / "exp.toml").read_text())
    section, key = meta(f)["section"], file_key(f)
    if section == "eval":
        doc["eval"][0][key] = value
    else:
        table = doc.setdefault(section, {})
        table.pop(meta(f).get("axis") or "", None)
        table[key] = value
    path = tmp / "bad.toml"
    path.write_text(_dump(doc))
    names = tuple(filter(None, (key, meta(f).get("axis"), meta(f).get("label"), str(value))))
    _refused(["grid", "run", str(path), "--out", str(tmp / "study")], tmp, capsys, names)


def test_the_walk_covers_every_key_and_flag():
    """The counts the closing note quotes: declared keys and flags, and the bad values fed to them."""
    keys = {(c, n) for c, n, _ in KEY_CASES}
    declared = {(cls.__name__, f.name) for cls in CLASSES.values() for f in settings(cls) if not meta(f)["tables"]}
    assert keys == declared  # every key has at least one value outside its range
    walked = {(c, f) for c, f, _ in FLAG_CASES}
    free = sorted(f"{c} {a.option_strings[0] if a.option_strings else a.dest}" for c, a in flags()
                  if (c, a.option_strings[0] if a.option_strings else a.dest) not in walked)
    print(f"\nkeys: {len(keys)} ({len(KEY_CASES)} bad values); flags: {len(flags())} of {len(BASE)} commands, "
          f"{len(walked)} walked ({len(FLAG_CASES)} bad values), free text: {free}")
    assert len(walked) > 0.85 * len(flags())
