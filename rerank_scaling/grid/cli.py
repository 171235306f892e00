"""`rerank-scaling grid prepare|run|status|collect`.

Exit status of ``grid run``: 0 when every cell is done, 1 when some cell failed (named on stderr; ``grid
status --json`` for scripts), 2 for a bad experiment file or flag.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from typing import Literal, get_args

from rerank_scaling.config import RunConfig, load_experiment
from rerank_scaling.config.experiment import Experiment, study_changes
from rerank_scaling.errors import UserError
from rerank_scaling.models.ladder import LADDERS
from rerank_scaling.rundir import StudyFolder, output_folder
from rerank_scaling.values import OUTPUT_FOLDER, POSITIVE, POSITIVE_INT, PathValue, Text

EXPERIMENT_FILE = PathValue("file", "experiment file")
STUDY_FOLDER = PathValue("folder", "study folder")

Executor = Literal["local", "slurm", "submitit-local", "submitit-debug"]
EXECUTORS: tuple[str, ...] = get_args(Executor)


def register(sub) -> None:
    grid = sub.add_parser("grid", help="run, inspect and collect a grid of runs")
    gsub = grid.add_subparsers(dest="grid_command", required=True, metavar="GRID_COMMAND")
    p = gsub.add_parser("prepare", help="build the caches every cell reads (collections, BM25 index and "
                                       "candidates, teacher caches), as its own job")
    p.add_argument("experiment", type=EXPERIMENT_FILE, help="experiment file (TOML)")
    p.set_defaults(func=prepare_command)
    p = gsub.add_parser("run", help="train every cell of an experiment file, then evaluate its [chain] chains "
                                   "(resumable)")
    p.add_argument("experiment", type=EXPERIMENT_FILE, help="experiment file (TOML)")
    p.add_argument("--out", type=OUTPUT_FOLDER, help="study folder (default: runs/<study name>)")
    p.add_argument("--workers", type=POSITIVE_INT,
                   help="local cells at once (default: [hardware] workers on CPU; with GPUs, as many as they hold)")
    p.add_argument("--executor", choices=EXECUTORS, default="local")
    p.add_argument("--retry-failed", action="store_true", help="run failed cells again (default: keep their failure)")
    p.add_argument("--gpus", type=GpuList(), default=None, metavar="IDS",
                   help="local executor: the GPUs cells may use, e.g. 0,1,2,3, or none (default: every visible GPU)")
    p.add_argument("--dry-run", action="store_true",
                   help="print every cell's resources, memory estimate, steps and FLOPs, and the [chain] chains; "
                        "train and download nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: the plan as JSON")
    p.add_argument("--gpu-memory", type=POSITIVE, default=None, metavar="GB",
                   help="with --dry-run: mark cells whose memory estimate exceeds GB per device")
    p.set_defaults(func=run_command)
    p = gsub.add_parser("status", help="show the state of every cell")
    p.add_argument("study", type=STUDY_FOLDER, help="study folder")
    p.add_argument("--json", action="store_true", help="every cell's state as JSON (for scripts)")
    p.set_defaults(func=status_command)
    p = gsub.add_parser("collect", help="write STUDY/results.parquet from the finished cells")
    p.add_argument("study", type=STUDY_FOLDER, help="study folder")
    p.set_defaults(func=collect_command)


class GpuList(Text):
    """``0,1,2,3`` -> ["0", "1", "2", "3"]; ``none`` -> [] (train on the CPU)."""

    def __init__(self):
        super().__init__("a comma-separated list of GPU indices, or none", pattern=r"\s*(none|\d+(\s*,\s*\d+)*)\s*",
                         example="gpu0")

    def _check(self, value, name: str) -> list[str]:
        if isinstance(value, list):
            return value
        text = super()._check(value, name).strip().lower()
        return [] if text == "none" else [t.strip() for t in text.split(",")]


def cell_cost(config: RunConfig) -> tuple[int, int]:
    """Larger = more work: the rung's place in its ladder, then tokens per run."""
    sizes = LADDERS.get(config.ladder, ())
    rung = sizes.index(config.size) if config.size in sizes else 0
    return rung, config.steps * config.batch_size * (config.n_negatives + 1) * config.max_length


def schedule(cells: list[RunConfig]) -> list[RunConfig]:
    """The order cells start in: seed by seed, and within a seed largest first.

    A grid stopped part-way then holds whole replicates (every size and
    objective of the first seeds) rather than every seed of the largest
    sizes; within a replicate the longest cell starts first so it does not
    start last and leave the other workers idle (longest-processing-time
    first).
    """
    return sorted(cells, key=lambda c: (c.seed, tuple(-x for x in cell_cost(c))))


def check_study(out: Path, experiment: Experiment) -> None:
    """A study folder made from another experiment file may go on only where the new file changes how cells
    run, not what they compute (:func:`~rerank_scaling.config.experiment.study_changes`)."""
    copy = StudyFolder(out).experiment
    if not copy.exists() or copy.read_text() == experiment.path.read_text():
        return
    try:
        changes = study_changes(load_experiment(experiment.path, text=copy.read_text()), experiment)
    except UserError as exc:
        changes = [f"its experiment.toml no longer loads: {exc}"]
    if changes:
        more = f" and {len(changes) - 1} more" if len(changes) > 1 else ""
        raise UserError(f"{out} holds a study made from a different experiment file ({changes[0]}{more}); only "
                        "[hardware], [slurm] and how cells run may change in a study; use another --out")


def run_grid(experiment_path: Path, out: Path | None = None, workers: int | None = None,
             executor: Executor = "local", console=None, retry_failed: bool = False,
             gpus: list[str] | None = None, on_submit=None) -> Path:
    """Validate, then run every unfinished or damaged cell (and failed ones with
    ``retry_failed``); returns the study folder. ``gpus``: the local executor's GPUs (None: every
    visible one); ``on_submit(parameters, run_ids)``: told of each SLURM array submitted."""
    from rich.console import Console

    from rerank_scaling.grid.chains import chain_summary, plan_chains, run_chains
    from rerank_scaling.grid.prepare import prepare_study

    console = console or Console(stderr=True)
    experiment = load_experiment(experiment_path)
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    out = output_folder(Path(out or Path("runs") / experiment.name))
    study = StudyFolder(out)
    check_study(out, experiment)  # [hardware]/[slurm] edits are fine; anything that changes numbers is not
    plan_chains(experiment, out, strict=True)  # a study: first stage that is missing fails before any cell runs
    todo = [c for c in experiment.cells if _needs_run(study.cell(c.run_id), retry_failed)]
    with console.status("preparing: collections, BM25 index and candidates, teacher caches"):
        prepare_study(experiment, todo)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(experiment.path, study.experiment)
    cells = [(c, study.cell(c.run_id)) for c in schedule(todo)]
    if not cells:
        console.print(f"every cell of {out} is finished")
    else:
        _run_cells(experiment, out, cells, executor, workers, retry_failed, gpus, on_submit, console)
    if experiment.chain is not None:
        console.print(chain_summary(run_chains(experiment, out, console)) + f" -> {out}")
    return out


def _run_cells(experiment, out, cells, executor, workers, retry_failed, gpus, on_submit, console) -> None:
    from rerank_scaling.grid.executors import local_gpus, run_local, run_submitit
    from rerank_scaling.grid.live import GridProgress

    study = StudyFolder(out)
    started = time.perf_counter()
    with GridProgress(out, experiment.cells, console) as progress:
        if executor == "local":
            gpus = local_gpus() if gpus is None else gpus
            run_local(cells, workers or (len(gpus) if gpus else experiment.hardware.workers),
                      progress.cell_finished, retry_failed, gpus=gpus)
        else:
            cluster = {"slurm": "slurm", "submitit-local": "local", "submitit-debug": "debug"}[executor]
            run_submitit(cells, out, progress.cell_finished, cluster=cluster, slurm_of=experiment.slurm_of,
                         retry_failed=retry_failed, on_submit=on_submit)
    states = study.states()
    failed = [s for s in states if s.state in ("failed", "damaged")]
    console.print(f"[bold]{len(states) - len(failed)}[/] cells done, [bold red]{len(failed)}[/] failed "
                  f"in {time.perf_counter() - started:.0f}s -> {out}")


def failed_cells(study: Path) -> list:
    """The cells of a study that failed (or are damaged), with their reasons."""
    return [s for s in StudyFolder(study).states() if s.state in ("failed", "damaged")]


def plan_command(args) -> int:
    from rich.console import Console

    from rerank_scaling.grid.chains import plan_chains, plan_json, plan_table
    from rerank_scaling.grid.plan import as_json, plan, table

    experiment = load_experiment(args.experiment)
    out = Path(args.out or Path("runs") / experiment.name)
    states = {}
    if (out / StudyFolder.cells_dir).is_dir():
        states = {s.run: s.state for s in StudyFolder(out).states()}
    cells = plan(experiment, states)
    chains = plan_chains(experiment, out)
    if args.json:
        print(json.dumps({**as_json(experiment, cells), **({"chains": plan_json(chains)} if chains else {})},
                         indent=2))
    else:
        console = Console(width=max(Console().width, 200))
        console.print(table(experiment, cells, args.gpu_memory))
        if chains:
            console.print(plan_table(chains))
    return 0


def _needs_run(cell, retry_failed: bool) -> bool:
    status = cell.read_status()
    return status is None or bool(cell.damage()) or (retry_failed and status["state"] == "failed")


def run_command(args) -> int:
    from rerank_scaling.results import collect

    if args.dry_run:
        return plan_command(args)
    if args.json or args.gpu_memory is not None:
        raise UserError("--json and --gpu-memory go with --dry-run (grid status --json for a study's state)")
    out = run_grid(args.experiment, args.out, args.workers, args.executor, retry_failed=args.retry_failed,
                   gpus=args.gpus)
    collect(out)
    failed = failed_cells(out)
    if failed:
        print(f"{len(failed)} cell{'s' * (len(failed) != 1)} failed: "
              + "; ".join(f"{s.run} ({s.reason or s.state})" for s in failed), file=sys.stderr)
        return 1
    return 0


def prepare_command(args) -> int:
    from rich.console import Console

    from rerank_scaling.grid.prepare import prepare_study

    console = Console(stderr=True)
    experiment = load_experiment(args.experiment)
    with console.status("preparing: collections, BM25 index and candidates, teacher caches"):
        summary = prepare_study(experiment)
    print(f"{args.experiment}: prepared {summary['training_sets']} training sets, {summary['teachers']} teacher "
          f"caches for {summary['cells']} cells in {summary['seconds']:.0f}s")
    return 0


def status_table(study: Path):
    from rich.table import Table

    states = StudyFolder(study).states()
    table = Table(title=f"{study}  ({sum(s.state == 'done' for s in states)}/{len(states)} done)")
    for col in ("cell", "state", "step", "seconds", "in-domain ndcg@10 / reason"):
        table.add_column(col)
    colours = {"done": "green", "failed": "red", "damaged": "magenta", "running": "yellow", "pending": "dim"}
    for s in states:
        detail = s.reason
        if s.final:
            detail = " ".join(f"{name}={s.final[name + ':ndcg@10']:.3f}" for name in s.in_domain
                              if name + ":ndcg@10" in s.final)
        table.add_row(s.run, f"[{colours.get(s.state, '')}]{s.state}", f"{s.step}/{s.steps}",
                      "" if s.seconds is None else f"{s.seconds:.0f}", detail)
    return table


def status_json(study: Path) -> dict:
    """Every cell's state, step, reason, final values, hardware and lock holder, and the counts by state."""
    folder = StudyFolder(study)
    states = folder.states()
    counts: dict[str, int] = {}
    cells = []
    for s in states:
        counts[s.state] = counts.get(s.state, 0) + 1
        cell = {"run": s.run, "state": s.state, "step": s.step, "steps": s.steps, "seconds": s.seconds,
                "reason": s.reason or None, "final": s.final, "hardware": s.hardware or None}
        if s.state == "running":
            cell["holder"] = folder.cell(s.run).lock_record() or None
        cells.append(cell)
    return {"study": str(study), "counts": counts, "cells": cells}


def status_command(args) -> int:
    if args.json:
        from rerank_scaling.rundir import to_json

        print(to_json(status_json(args.study)), end="")
        return 0
    from rich.console import Console

    Console().print(status_table(args.study))
    return 0


def collect_command(args) -> int:
    from rerank_scaling.results import collect

    import polars as pl

    table, path = collect(args.study)
    chains = table.filter(pl.col("stage") == "chain")
    runs = table.filter(pl.col("stage").is_null())["run"].n_unique() - 1
    more = f", {chains.select('first_stage', 'run', 'depth').unique().height} chains" if chains.height else ""
    print(f"{path}: {table.height} rows, {runs} runs + bm25{more}")
    return 0
