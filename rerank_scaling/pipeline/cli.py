"""`rerank-scaling train`: one run, from flags or a TOML table.

Every flag is derived from a :class:`RunConfig` field or a model family's own
setting (``--batch-size`` for ``batch_size``, ``--towers`` for the bi-encoder's
``towers``); its text is parsed and range-checked by the field's value type
(:func:`~rerank_scaling.config.fields.value_of`) when the command line is read,
then checked with the rest of the config, before any folder is made.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from typing import Any

from rerank_scaling.config import EvalSpec, RunConfig
from rerank_scaling.config.fields import hints, meta, settings, value_of
from rerank_scaling.config.run import family_fields
from rerank_scaling.errors import UserError
from rerank_scaling.values import OUTPUT_FOLDER, Choice, PathValue, Text, Value


def flag_fields():
    """The common settings' flags, then the families' own (a name several families own is one flag)."""
    return [f for f in (*settings(RunConfig), *family_fields()) if meta(f)["flag"]]


class AnyOwner(Value):
    """A family key several families declare differently (``pooling``: the cross-encoder's cls / mean, the
    bi-encoder's mean / cls / last): a flag text any owner accepts; the cell's family checks it again."""

    def __init__(self, types: list[Value]):
        self.types = types
        self.what = " or ".join(dict.fromkeys(t.described() for t in types))

    def parse(self, text: str, name: str) -> Any:
        errors = []
        for value_type in self.types:
            try:
                return value_type.parse(text, name)
            except UserError as exc:
                errors.append(exc)
        raise UserError(f"{name} must be {self.what}, got {text!r}") from errors[0]

    def bad(self) -> list[str]:
        return [b for b in self.types[0].bad() if all(_refuses(t, b) for t in self.types)]


def _refuses(value_type: Value, text: str) -> bool:
    try:
        value_type.parse(text, "value")
    except UserError:
        return True
    return False


def flag_type(f) -> Value:
    """The value type a flag's text is parsed and checked as (a family's own key: its owners')."""
    from rerank_scaling.models import FAMILIES, owners

    if f.name in hints(RunConfig):
        return value_of(f, hints(RunConfig)[f.name])
    types = []
    for family in owners(f.name):
        cls = FAMILIES[family].settings
        own = next(g for g in settings(cls) if g.name == f.name)
        value_type = value_of(own, hints(cls)[f.name])
        if value_type.described() not in {t.described() for t in types}:
            types.append(value_type)
    if len(types) == 1:
        return types[0]
    if all(isinstance(t, Choice) for t in types):  # one choice among every owner's
        union = Choice(tuple(dict.fromkeys(c for t in types for c in t.choices)), label=types[0].label)
        return union.maybe() if any(t.optional for t in types) else union
    return AnyOwner(types)


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def register(sub) -> None:
    p = sub.add_parser("train", help="train and evaluate one reranker run")
    p.add_argument("--out", required=True, type=OUTPUT_FOLDER, help="run folder (resumed if it exists)")
    p.add_argument("--config", type=PathValue("file", "config file"), help="TOML file with RunConfig keys")
    p.add_argument("--eval", action="append", default=None, metavar="NAME=SPEC[:SPLIT]", type=EVAL,
                   help="evaluation set, e.g. cranfield-test=cranfield:test or cisi=../shared/beir/cisi")
    for f in flag_fields():  # absent unless given (SUPPRESS): an explicit `none` is a value
        p.add_argument(flag_name(f.name), dest=f.name, default=argparse.SUPPRESS, metavar="VALUE",
                       type=flag_type(f),
                       help=(meta(f)["doc"] or f"[{meta(f)['section']}] {meta(f).get('key') or f.name}").replace("%", "%%"))
    p.set_defaults(func=run_command)


EVAL = Text("NAME=SPEC[:SPLIT]", pattern=r"[^=]+=.+", example="nonsense")


def parse_eval(text: str, train_collection: str) -> EvalSpec:
    """``NAME=SPEC[:SPLIT]``: a collection (ir_datasets id or folder) and, after the last ``:``, a split
    of its judged queries (checked against the collection's splits when it is loaded)."""
    if "=" not in text:
        raise UserError(f"--eval '{text}': expected NAME=SPEC[:SPLIT]")
    name, spec = text.split("=", 1)
    split = None
    head, _, tail = spec.rpartition(":")
    if head and not spec.startswith("beir-folder:") and "/" not in tail and tail:
        spec, split = head, tail
    try:
        return EvalSpec(name, spec, split, None, spec == train_collection)
    except UserError as exc:
        raise UserError(f"--eval '{text}': {exc}") from None


def config_from_args(args) -> RunConfig:
    data: dict = {}
    if args.config:
        try:
            data = tomllib.loads(args.config.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{args.config}: invalid TOML: {exc}") from None
    for f in flag_fields():
        if hasattr(args, f.name):  # parsed and range-checked by argparse (the field's value type)
            data[f.name] = getattr(args, f.name)
    if args.eval:
        train = data.get("train_collection", RunConfig.train_collection)
        data["evals"] = [parse_eval(e, train) for e in args.eval]
    return RunConfig.from_dict(data, where=str(args.config or "flags"))


def run_command(args) -> int:
    from rerank_scaling.pipeline.run import train_run
    from rerank_scaling.progress import RunProgress

    config = config_from_args(args)
    with RunProgress() as progress:
        status = train_run(config, args.out, progress=progress.update)
    if status.get("rank", 0):  # another process of a multi-device run: the first one reports
        return 0
    if status["state"] != "done":
        print(f"run failed: {status.get('reason')}")
        return 1
    print(json.dumps({"run": status["run"], "seconds": status["seconds"], **status.get("final", {})}, indent=2))
    return 0
