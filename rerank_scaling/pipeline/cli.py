"""`rerank-scaling train`: one run, from flags or a TOML table."""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

from rerank_scaling.errors import UserError
from rerank_scaling.pipeline.config import EvalSpec, RunConfig

FLAG_KEYS = ("ladder", "size", "objective", "supervision", "budget", "steps", "batch_size", "lr",
             "eval_every", "max_length", "rerank_k", "candidates_k", "n_negatives", "seed", "data_root",
             "cache_dir", "train_collection", "train_split", "candidates_run", "ce_negatives", "threads")


def register(sub) -> None:
    p = sub.add_parser("train", help="train and evaluate one reranker run")
    p.add_argument("--out", required=True, type=Path, help="run folder (resumed if it exists)")
    p.add_argument("--config", type=Path, help="TOML file with RunConfig keys")
    p.add_argument("--eval", action="append", default=None, metavar="NAME=SPEC[:SPLIT]",
                   help="evaluation set, e.g. cranfield-test=cranfield:test or cisi=../shared/beir/cisi")
    for key in FLAG_KEYS:
        p.add_argument("--" + key.replace("_", "-"), dest=key, default=None)
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


def _coerce(key: str, value: str):
    default = RunConfig.__dataclass_fields__[key].default
    if value.lower() in ("none", "null", ""):
        return None
    if isinstance(default, bool):
        return value.lower() in ("1", "true", "yes")
    if isinstance(default, int) or key in ("budget", "threads"):
        try:
            return int(value)
        except ValueError:
            raise UserError(f"--{key.replace('_', '-')} must be an integer, got '{value}'") from None
    if isinstance(default, float):
        try:
            return float(value)
        except ValueError:
            raise UserError(f"--{key.replace('_', '-')} must be a number, got '{value}'") from None
    return value


def config_from_args(args) -> RunConfig:
    data: dict = {}
    if args.config:
        if not args.config.exists():
            raise UserError(f"config file not found: {args.config}")
        try:
            data = tomllib.loads(args.config.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{args.config}: invalid TOML: {exc}") from None
    for key in FLAG_KEYS:
        value = getattr(args, key)
        if value is not None:
            data[key] = _coerce(key, value)
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
    if status["state"] != "done":
        print(f"run failed: {status.get('reason')}")
        return 1
    print(json.dumps({"run": status["run"], "seconds": status["seconds"], **status.get("final", {})}, indent=2))
    return 0
