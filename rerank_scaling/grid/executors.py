"""Where cells run: local worker processes, or SLURM through submitit.

A cell is run by :func:`run_cell`, a plain module-level function (picklable
for both engines): it takes the cell lock, runs (or resumes, or skips) the
cell, and turns any crash into a recorded failure so the grid goes on.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

from rerank_scaling.config import RunConfig
from rerank_scaling.rundir import RunFolder

Cells = Sequence[tuple[RunConfig, RunFolder]]


def run_cell(config_dict: dict, folder: str, retry_failed: bool = False) -> dict:
    """Run one cell to completion; a failure is recorded, never raised.

    Under the cell's lock: repair what a crash tore (:meth:`RunFolder.repair`),
    skip a finished cell (a failed one too, unless ``retry_failed``), else run
    or resume it.
    """
    from rerank_scaling.pipeline.run import train_run

    config = RunConfig.from_dict(config_dict)
    run = RunFolder(folder)
    with run.lock():
        run.repair()
        status = run.read_status()
        if status is not None and status["state"] == "failed" and retry_failed:
            run.status.unlink()
            status = None
        if status is not None:
            return status
        try:
            return train_run(config, run)
        except Exception as exc:  # noqa: BLE001 - any crash of one cell is recorded
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            status = {"state": "failed", "reason": reason, "run": config.run_id,
                      "traceback": traceback.format_exc(limit=5)}
            run.write_status(status)
            return status


def _die_with_parent() -> None:
    """Worker initialiser: on Linux, get SIGKILL when the grid process dies."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:  # pragma: no cover
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C


def run_local(cells: Cells, workers: int, on_done: Callable[[str, dict], None], retry_failed: bool = False) -> None:
    """Run cells in ``workers`` worker processes (spawned, so torch state is fresh)."""
    if workers == 1:
        for config, run in cells:
            on_done(config.run_id, run_cell(config.to_dict(), str(run.path), retry_failed))
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_die_with_parent) as pool:
        pending: dict[Future, str] = {
            pool.submit(run_cell, config.to_dict(), str(run.path), retry_failed): config.run_id
            for config, run in cells
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                on_done(pending.pop(future), future.result())


def run_submitit(
    cells: Cells,
    study: Path,
    on_done: Callable[[str, dict], None],
    cluster: str | None = None,
    partition: str | None = None,
    gpus: int = 1,
    cpus: int = 8,
    timeout_min: int = 240,
    parallelism: int = 64,
    retry_failed: bool = False,
) -> None:
    """One SLURM array task per cell via submitit (``cluster="local"``/``"debug"`` for tests)."""
    try:
        import submitit
    except ImportError:
        from rerank_scaling.errors import UserError

        raise UserError("the slurm executor needs submitit: pip install 'rerank-scaling[slurm]'") from None
    executor = submitit.AutoExecutor(folder=str(Path(study) / "submitit"), cluster=cluster)
    params = {"timeout_min": timeout_min, "cpus_per_task": cpus, "name": "rerank-scaling"}
    if executor.cluster == "slurm":
        params.update(slurm_array_parallelism=parallelism, gpus_per_node=gpus)
        if partition:
            params["slurm_partition"] = partition
    executor.update_parameters(**params)
    configs = [c.to_dict() for c, _ in cells]
    folders = [str(run.path) for _, run in cells]
    jobs = executor.map_array(run_cell, configs, folders, [retry_failed] * len(configs))
    for (config, _), job in zip(cells, jobs):
        on_done(config.run_id, job.result())
