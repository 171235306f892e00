"""`rerank-scaling` command line: one sub-command per pipeline stage.

Each sub-command lives in the module that owns its stage and exposes
``register(subparsers)``; this file only wires them together and turns
:class:`UserError` into a one-line message with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rerank_scaling.errors import UserError

# module path of every sub-command owner, in the order shown by --help
COMMAND_MODULES = (
    "rerank_scaling.pipeline.cli",
    "rerank_scaling.grid.cli",
    "rerank_scaling.scaling.cli",
    "rerank_scaling.report.cli",
    "rerank_scaling.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rerank-scaling",
        description="Train reranker grids, fit scaling laws, forecast large models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # stage not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
