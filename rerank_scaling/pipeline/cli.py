"""`rerank-scaling train`: one run, from flags or a TOML table.

Every flag is derived from a :class:`RunConfig` field (``--batch-size`` for
``batch_size``); its text is parsed and range-checked by the field's value type
(:func:`~rerank_scaling.config.fields.value_of`) when the command line is read,
then checked with the rest of the config, before any folder is made.
"""

from __future__ import annotations

import argparse
import json
import tomllib

from rerank_scaling.config import EvalSpec, RunConfig
from rerank_scaling.config.fields import hints, meta, settings, value_of
from rerank_scaling.errors import UserError
from rerank_scaling.values import OUTPUT_FOLDER, PathValue, Text


def flag_fields():
    return [f for f in settings(RunConfig) if meta(f)["flag"]]


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
                       type=value_of(f, hints(RunConfig)[f.name]),
                       help=meta(f)["doc"] or f"[{meta(f)['section']}] {meta(f).get('key') or f.name}")
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
