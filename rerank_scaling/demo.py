"""`rerank-scaling demo`: the default study, end to end, offline on the shared data.

Runs ``experiments/demo.toml`` (train on Cranfield; evaluate in-domain on the
Cranfield test split and out-of-domain on Vaswani and CISI), collects the
results and writes the scaling report.
"""

from __future__ import annotations

import time
from pathlib import Path

from rerank_scaling.errors import UserError
from rerank_scaling.values import OUTPUT_FILE, OUTPUT_FOLDER, POSITIVE_INT, PathValue

REPO = Path(__file__).resolve().parents[1]


def find_experiment(name: str = "demo.toml") -> Path:
    for base in (Path.cwd(), REPO):
        path = base / "experiments" / name
        if path.exists():
            return path
    raise UserError(f"experiments/{name} not found (run from the rerank-scaling checkout)")


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the default study (experiments/demo.toml) and write its report")
    p.add_argument("--out", type=OUTPUT_FOLDER, default=Path("runs/demo"), help="study folder (default: runs/demo)")
    p.add_argument("--report", type=OUTPUT_FILE, default=Path("reports/demo/REPORT.md"),
                   help="where the report goes (default: reports/demo/REPORT.md)")
    p.add_argument("--experiment", type=PathValue("file", "experiment file"),
                   help="another experiment file (default: experiments/demo.toml)")
    p.add_argument("--workers", type=POSITIVE_INT,
                   help="local worker processes (default: the file's [hardware] workers)")
    p.set_defaults(func=run_command)


def run_command(args) -> int:
    from rich.console import Console

    from rerank_scaling.grid.cli import run_grid
    from rerank_scaling.results import collect
    from rerank_scaling.report.build import build_report

    console = Console(stderr=True)
    started = time.perf_counter()
    experiment = args.experiment or find_experiment()
    study = run_grid(experiment, args.out, args.workers, "local", console)
    collect(study)
    report = build_report(study, out=args.report)
    console.print(f"report: {report}  (demo wall time {time.perf_counter() - started:.0f}s)")
    return 0
