"""`rerank-scaling` command line: one sub-command per pipeline stage.

Each sub-command lives in the module that owns its stage and exposes
``register(subparsers)``; this file only wires them together and turns
:class:`UserError` (and an ``OSError`` on a path the user named: permission
denied, read-only, disk full) into a one-line message with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rerank_scaling.errors import UserError
from rerank_scaling.values import flag_error, help_text

# module path of every sub-command owner, in the order shown by --help
COMMAND_MODULES = (
    "rerank_scaling.pipeline.cli",
    "rerank_scaling.pipeline.rerank",
    "rerank_scaling.grid.cli",
    "rerank_scaling.scaling.cli",
    "rerank_scaling.report.cli",
    "rerank_scaling.demo",
)


class _Help(argparse.HelpFormatter):
    """Each flag's help ends with its declared range (``[a level in (0, 1)]``, :mod:`rerank_scaling.values`)."""

    def _get_help_string(self, action):
        return help_text(action.help, action.type)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``error: <command>: <what>``), like every other error here, and
    every flag's range in its help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"error: {self.prog.removeprefix('rerank-scaling ')}: {flag_error(' '.join(message.split()))}"
                     f" (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rerank-scaling",
        description="Train reranker grids, fit scaling laws, forecast large models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from rerank_scaling.data.util import keep_library_caches_in_cache

    keep_library_caches_in_cache()  # before any library that writes a cache of its own is imported
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # every flag's type and range is checked here (rerank_scaling.values)
    except SystemExit as exc:  # --help, or a bad flag already reported on one line
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user named cannot be written or read: one line, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
