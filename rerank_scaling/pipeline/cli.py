"""`rerank-scaling train`: one run, from flags or a TOML table.

Every flag is derived from a :class:`RunConfig` field or a model family's own
setting (``--batch-size`` for ``batch_size``, ``--towers`` for the bi-encoder's
``towers``); its text is parsed by the field's type and checked like any other
value of the config.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from rerank_scaling.config import EvalSpec, RunConfig
from rerank_scaling.config.fields import hints, meta, parse_text, settings
from rerank_scaling.config.run import family_fields
from rerank_scaling.errors import UserError
from rerank_scaling.rundir import output_folder


def flag_fields():
    """The common settings' flags, then the families' own (a name several families own is one flag)."""
    return [f for f in (*settings(RunConfig), *family_fields()) if meta(f)["flag"]]


def _hint(name: str):
    """The type a flag's text is parsed as (a family's own key: as its first owner declares it)."""
    from rerank_scaling.models import FAMILIES, owners

    return hints(RunConfig)[name] if name in hints(RunConfig) else hints(FAMILIES[owners(name)[0]].settings)[name]


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def register(sub) -> None:
    p = sub.add_parser("train", help="train and evaluate one reranker run")
    p.add_argument("--out", required=True, type=Path, help="run folder (resumed if it exists)")
    p.add_argument("--config", type=Path, help="TOML file with RunConfig keys")
    p.add_argument("--eval", action="append", default=None, metavar="NAME=SPEC[:SPLIT]",
                   help="evaluation set, e.g. cranfield-test=cranfield:test or cisi=../shared/beir/cisi")
    for f in flag_fields():
        p.add_argument(flag_name(f.name), dest=f.name, default=None, metavar="VALUE",
                       help=meta(f)["doc"] or None)
    p.set_defaults(func=run_command)


def parse_eval(text: str, train_collection: str) -> EvalSpec:
    if "=" not in text:
        raise UserError(f"--eval '{text}': expected NAME=SPEC[:SPLIT]")
    name, spec = text.split("=", 1)
    split = None
    head, _, tail = spec.rpartition(":")
    if head and tail in ("train", "dev", "test"):
        spec, split = head, tail
    return EvalSpec(name, spec, split, None, spec == train_collection)


def config_from_args(args) -> RunConfig:
    data: dict = {}
    if args.config:
        if not args.config.exists():
            raise UserError(f"config file not found: {args.config}")
        try:
            data = tomllib.loads(args.config.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{args.config}: invalid TOML: {exc}") from None
    for f in flag_fields():
        text = getattr(args, f.name)
        if text is not None:
            data[f.name] = parse_text(f, text, _hint(f.name), flag_name(f.name))
    if args.eval:
        train = data.get("train_collection", RunConfig.train_collection)
        data["evals"] = [parse_eval(e, train) for e in args.eval]
    return RunConfig.from_dict(data, where=str(args.config or "flags"))


def run_command(args) -> int:
    from rerank_scaling.pipeline.run import train_run
    from rerank_scaling.progress import RunProgress

    config = config_from_args(args)
    output_folder(args.out)
    with RunProgress() as progress:
        status = train_run(config, args.out, progress=progress.update)
    if status.get("rank", 0):  # another process of a multi-device run: the first one reports
        return 0
    if status["state"] != "done":
        print(f"run failed: {status.get('reason')}")
        return 1
    print(json.dumps({"run": status["run"], "seconds": status["seconds"], **status.get("final", {})}, indent=2))
    return 0
