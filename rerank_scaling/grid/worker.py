"""``python -m rerank_scaling.grid.worker CONFIG_JSON FOLDER [--retry-failed]``: one grid cell in a process of its own.

The local executor starts one per cell on a GPU machine (with the cell's
``CUDA_VISIBLE_DEVICES``) and for multi-device cells: Lightning's launcher
starts a multi-device cell's other processes by running this same command
again (with ``LOCAL_RANK`` set), which a pool worker could not offer. The
process dies with the one that started it, and leaves Ctrl-C to it.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str] | None = None) -> int:
    from rerank_scaling.grid.executors import _die_with_parent, run_cell

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] != "--retry-failed"):
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    _die_with_parent()
    status = run_cell(json.loads(argv[0]), argv[1], retry_failed=len(argv) == 3)
    return 0 if status.get("state") in ("done", "failed") else 1


if __name__ == "__main__":
    sys.exit(main())
