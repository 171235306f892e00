"""`rerank-scaling grid prepare|run|status|collect`."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from typing import Literal, get_args

from rerank_scaling.config import RunConfig, load_experiment
from rerank_scaling.errors import UserError
from rerank_scaling.models.ladder import LADDERS
from rerank_scaling.rundir import StudyFolder, output_folder

Executor = Literal["local", "slurm", "submitit-local", "submitit-debug"]
EXECUTORS: tuple[str, ...] = get_args(Executor)


def register(sub) -> None:
    grid = sub.add_parser("grid", help="run, inspect and collect a grid of runs")
    gsub = grid.add_subparsers(dest="grid_command", required=True, metavar="GRID_COMMAND")
    p = gsub.add_parser("prepare", help="build the caches every cell reads (collections, BM25 index and "
                                       "candidates, teacher caches), as its own job")
    p.add_argument("experiment", type=Path)
    p.set_defaults(func=prepare_command)
    p = gsub.add_parser("run", help="train every cell of an experiment file (resumable)")
    p.add_argument("experiment", type=Path)
    p.add_argument("--out", type=Path, help="study folder (default: runs/<study name>)")
    p.add_argument("--workers", type=int, help="local worker processes (default: [hardware] workers)")
    p.add_argument("--executor", choices=EXECUTORS, default="local")
    p.add_argument("--retry-failed", action="store_true", help="run failed cells again (default: keep their failure)")
    p.set_defaults(func=run_command)
    p = gsub.add_parser("status", help="show the state of every cell")
    p.add_argument("study", type=Path)
    p.set_defaults(func=status_command)
    p = gsub.add_parser("collect", help="write STUDY/results.parquet from the finished cells")
    p.add_argument("study", type=Path)
    p.set_defaults(func=collect_command)


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


def run_grid(experiment_path: Path, out: Path | None = None, workers: int | None = None,
             executor: Executor = "local", console=None, retry_failed: bool = False) -> Path:
    """Validate, then run every unfinished or damaged cell (and failed ones with
    ``retry_failed``); returns the study folder."""
    from rich.console import Console

    from rerank_scaling.grid.executors import run_local, run_submitit
    from rerank_scaling.grid.live import GridProgress
    from rerank_scaling.grid.prepare import prepare_study

    console = console or Console(stderr=True)
    experiment = load_experiment(experiment_path)
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    out = output_folder(Path(out or Path("runs") / experiment.name))
    study = StudyFolder(out)
    todo = [c for c in experiment.cells if _needs_run(study.cell(c.run_id), retry_failed)]
    with console.status("preparing: collections, BM25 index and candidates, teacher caches"):
        prepare_study(experiment, todo)
    if study.experiment.exists() and study.experiment.read_text() != experiment.path.read_text():
        raise UserError(f"{out} holds a study made from a different experiment file; use another --out")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(experiment.path, study.experiment)
    cells = [(c, study.cell(c.run_id)) for c in schedule(todo)]
    workers = workers or experiment.hardware.workers
    if not cells:
        console.print(f"every cell of {out} is finished")
        return out
    started = time.perf_counter()
    with GridProgress(out, experiment.cells, console) as progress:
        if executor == "local":
            run_local(cells, workers, progress.cell_finished, retry_failed)
        else:
            hw = experiment.hardware
            cluster = {"slurm": "slurm", "submitit-local": "local", "submitit-debug": "debug"}[executor]
            run_submitit(cells, out, progress.cell_finished, cluster=cluster, partition=hw.slurm_partition,
                         gpus=hw.slurm_gpus, cpus=hw.slurm_cpus, timeout_min=hw.slurm_timeout_min,
                         retry_failed=retry_failed)
    states = study.states()
    failed = [s for s in states if s.state in ("failed", "damaged")]
    console.print(f"[bold]{len(states) - len(failed)}[/] cells done, [bold red]{len(failed)}[/] failed "
                  f"in {time.perf_counter() - started:.0f}s -> {out}")
    return out


def _needs_run(cell, retry_failed: bool) -> bool:
    status = cell.read_status()
    return status is None or bool(cell.damage()) or (retry_failed and status["state"] == "failed")


def run_command(args) -> int:
    from rerank_scaling.results import collect

    out = run_grid(args.experiment, args.out, args.workers, args.executor, retry_failed=args.retry_failed)
    collect(out)
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


def status_command(args) -> int:
    from rich.console import Console

    Console().print(status_table(args.study))
    return 0


def collect_command(args) -> int:
    from rerank_scaling.results import collect

    table, path = collect(args.study)
    print(f"{path}: {table.height} rows, {table['run'].n_unique() - 1} runs + bm25")
    return 0
