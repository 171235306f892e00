"""`rerank-scaling grid run|status|collect`."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rerank_scaling.errors import UserError
from rerank_scaling.grid.experiment import check_data, load_experiment
from rerank_scaling.grid.store import cell_folder, collect, study_states
from rerank_scaling.models.ladder import LADDERS
from rerank_scaling.pipeline.config import RunConfig
from rerank_scaling.pipeline.run import read_status

EXECUTORS = ("local", "slurm", "submitit-local", "submitit-debug")


def register(sub) -> None:
    grid = sub.add_parser("grid", help="run, inspect and collect a grid of runs")
    gsub = grid.add_subparsers(dest="grid_command", required=True, metavar="GRID_COMMAND")
    p = gsub.add_parser("run", help="train every cell of an experiment file (resumable)")
    p.add_argument("experiment", type=Path)
    p.add_argument("--out", type=Path, help="study folder (default: runs/<study name>)")
    p.add_argument("--workers", type=int, help="local worker processes (default: [hardware] workers)")
    p.add_argument("--executor", choices=EXECUTORS, default="local")
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
             executor: str = "local", console: Console | None = None) -> Path:
    """Validate, then run every unfinished cell; returns the study folder."""
    from rerank_scaling.grid.executors import run_local, run_submitit
    from rerank_scaling.grid.live import GridProgress

    console = console or Console(stderr=True)
    experiment = load_experiment(experiment_path)
    out = Path(out or Path("runs") / experiment.name)
    todo = [c for c in experiment.cells if read_status(cell_folder(out, c)) is None]
    with console.status("checking data and warming caches"):
        check_data(experiment, todo)
    copy = out / "experiment.toml"
    if copy.exists() and copy.read_text() != experiment.path.read_text():
        raise UserError(f"{out} holds a study made from a different experiment file; use another --out")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(experiment.path, copy)
    cells = [(c, cell_folder(out, c)) for c in schedule(todo)]
    workers = workers or experiment.hardware.workers
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if not cells:
        console.print(f"every cell of {out} is finished")
        return out
    started = time.perf_counter()
    with GridProgress(out, experiment.cells, console) as progress:
        if executor == "local":
            run_local(cells, workers, progress.cell_finished)
        else:
            hw = experiment.hardware
            cluster = {"slurm": "slurm", "submitit-local": "local", "submitit-debug": "debug"}[executor]
            run_submitit(cells, out, progress.cell_finished, cluster=cluster, partition=hw.slurm_partition,
                         gpus=hw.slurm_gpus, cpus=hw.slurm_cpus, timeout_min=hw.slurm_timeout_min)
    states = study_states(out)
    failed = [s for s in states if s.state == "failed"]
    console.print(f"[bold]{len(states) - len(failed)}[/] cells done, [bold red]{len(failed)}[/] failed "
                  f"in {time.perf_counter() - started:.0f}s -> {out}")
    return out


def run_command(args) -> int:
    out = run_grid(args.experiment, args.out, args.workers, args.executor)
    collect(out)
    return 0


def status_table(study: Path) -> Table:
    states = study_states(study)
    table = Table(title=f"{study}  ({sum(s.state == 'done' for s in states)}/{len(states)} done)")
    for col in ("cell", "state", "step", "seconds", "in-domain ndcg@10 / reason"):
        table.add_column(col)
    colours = {"done": "green", "failed": "red", "running": "yellow", "pending": "dim"}
    for s in states:
        detail = s.reason
        if s.final:
            detail = " ".join(f"{name}={s.final[name + ':ndcg@10']:.3f}" for name in s.in_domain
                              if name + ":ndcg@10" in s.final)
        table.add_row(s.run, f"[{colours.get(s.state, '')}]{s.state}", f"{s.step}/{s.steps}",
                      "" if s.seconds is None else f"{s.seconds:.0f}", detail)
    return table


def status_command(args) -> int:
    Console().print(status_table(args.study))
    return 0


def collect_command(args) -> int:
    table, path = collect(args.study)
    print(f"{path}: {table.height} rows, {table['run'].n_unique() - 1} runs + bm25")
    return 0
