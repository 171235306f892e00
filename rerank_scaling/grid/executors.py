"""Where cells run: local worker processes, or SLURM through submitit.

A cell is run by :func:`run_cell`, a plain module-level function (picklable
for both engines): it takes the cell lock, runs (or resumes, or skips) the
cell, and turns any crash into a recorded failure so the grid goes on.

What a cell's own code cannot catch is caught here, and every outcome is
recorded in the cell's ``status.json``:

* local: a worker process that dies (SIGKILL, the kernel's OOM killer) breaks
  the pool; the pool is rebuilt and the cells that were running go again,
  resuming from their checkpoints; a cell whose worker dies twice is recorded
  as failed ("worker process died").
* SLURM (submitit): jobs are collected as they finish, in any order; a job
  killed (memory, cancel, node failure) or failed is recorded with submitit's
  reason and the path of its SLURM log; a job at its time limit is
  checkpointed and requeued (:class:`CellJob` is ``Checkpointable``) and
  resumes from the cell's last checkpoint.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
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
    from rerank_scaling.runtime import process_rank

    if process_rank() != 0:  # another task of a multi-device cell: the first task owns the folder
        return train_run(config, run)
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
            exit_ = _pending_exit(exc)
            if exit_ is not None:  # a requeue signal's SystemExit, turned into an error by the code it hit
                raise exit_ from None
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            status = {"state": "failed", "reason": reason, "run": config.run_id,
                      "traceback": traceback.format_exc(limit=5)}
            run.write_status(status)
            return status


def _pending_exit(exc: BaseException) -> SystemExit | None:
    """The SystemExit an exception was raised while handling (submitit exits from a signal
    handler to requeue; inside e.g. torch.save that surfaces as a RuntimeError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, SystemExit):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _die_with_parent() -> None:
    """Worker initialiser: on Linux, get SIGKILL when the grid process dies."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:  # pragma: no cover
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C


WORKER_DEATHS = 2  # a cell whose worker process dies this often is recorded as failed


def _record_failure(run: RunFolder, run_id: str, reason: str, **extra) -> dict:
    """The cell's status after a death its own process could not record (kept if it had one)."""
    status = run.read_status()
    if status is not None:
        return status
    status = {"state": "failed", "reason": reason, "run": run_id, **extra}
    run.write_status(status)
    return status


def run_local(cells: Cells, workers: int, on_done: Callable[[str, dict], None], retry_failed: bool = False) -> None:
    """Run cells in ``workers`` worker processes (spawned, so torch state is fresh)."""
    if workers == 1:
        for config, run in cells:
            on_done(config.run_id, run_cell(config.to_dict(), str(run.path), retry_failed))
        return
    queue, deaths, losses = list(cells), Counter(), Counter()
    while queue:
        broken = []
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_die_with_parent) as pool:
            pending: dict[Future, tuple[RunConfig, RunFolder]] = {
                pool.submit(run_cell, config.to_dict(), str(run.path), retry_failed): (config, run)
                for config, run in queue
            }
            queue = []
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    config, run = pending.pop(future)
                    try:
                        on_done(config.run_id, future.result())
                    except BrokenProcessPool:  # a worker died: every cell still in the pool is lost
                        broken.append((config, run))
        for config, run in broken:
            started = run.exists() and (run.log.exists() or run.config.exists())
            deaths[config.run_id] += started
            losses[config.run_id] += 1  # a pool that breaks before the cell starts, again and again, ends too
            if (run.read_status() is not None or deaths[config.run_id] >= WORKER_DEATHS
                    or losses[config.run_id] > WORKER_DEATHS + 2):
                on_done(config.run_id, _record_failure(
                    run, config.run_id, f"worker process died {deaths[config.run_id]} times "
                    "(killed, or out of memory?)"))
            else:
                queue.append((config, run))  # runs again, from its last checkpoint


class CellJob:
    """One cell as a submitit job that a time limit requeues instead of killing.

    On the time-limit signal submitit calls :meth:`checkpoint`; the cell's state
    is on disk (its last checkpoint), so the resubmission is the same call and
    resumes there.
    """

    def __call__(self, config_dict: dict, folder: str, retry_failed: bool = False) -> dict:
        return run_cell(config_dict, folder, retry_failed)

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _job_failure(job, exc: Exception) -> tuple[str, dict]:
    """submitit's reason for a job that ended without a result, and where its log is."""
    kind = type(exc).__name__
    text = " ".join(str(exc).split())
    if "OUT_OF_MEMORY" in text or "oom" in text.lower():
        kind = "out of memory"
    extra = {}
    try:
        extra["slurm_log"] = str(job.paths.stderr)
    except Exception:  # noqa: BLE001 - a log path is a courtesy
        pass
    return f"{kind}: {text[:300]}", extra


def run_submitit(
    cells: Cells,
    study: Path,
    on_done: Callable[[str, dict], None],
    cluster: str | None = None,
    partition: str | None = None,
    gpus: int = 1,
    cpus: int = 8,
    timeout_min: float = 240,
    parallelism: int = 64,
    retry_failed: bool = False,
    signal_delay_s: int = 120,
    max_requeues: int = 3,
    poll_s: float | None = None,
) -> None:
    """One SLURM array task per cell via submitit (``cluster="local"``/``"debug"`` for tests);
    every job's outcome is recorded, as it completes."""
    try:
        import submitit
    except ImportError:
        from rerank_scaling.errors import UserError

        raise UserError("the slurm executor needs submitit: pip install 'rerank-scaling[slurm]'") from None
    executor = submitit.AutoExecutor(folder=str(Path(study) / "submitit"), cluster=cluster,
                                     slurm_max_num_timeout=max_requeues, local_max_num_timeout=max_requeues)
    devices = max((c.devices for c, _ in cells), default=1)
    params = {"timeout_min": timeout_min, "cpus_per_task": cpus, "name": "rerank-scaling", "tasks_per_node": devices}
    if executor.cluster == "slurm":  # one task per device: Lightning's SLURM environment makes them the DDP ranks
        params.update(slurm_array_parallelism=parallelism, gpus_per_node=max(gpus, devices),
                      slurm_signal_delay_s=signal_delay_s)
        if partition:
            params["slurm_partition"] = partition
    executor.update_parameters(**params)
    configs = [c.to_dict() for c, _ in cells]
    folders = [str(run.path) for _, run in cells]
    jobs = executor.map_array(CellJob(), configs, folders, [retry_failed] * len(configs))
    by_job = {job.job_id: (config, run) for (config, run), job in zip(cells, jobs)}
    poll_s = poll_s or (10.0 if executor.cluster == "slurm" else 0.5)
    finished = jobs if executor.cluster == "debug" else submitit.helpers.as_completed(jobs, poll_frequency=poll_s)
    for job in finished:
        config, run = by_job[job.job_id]
        try:
            status = job.result()
        except (submitit.core.utils.UncompletedJobError, submitit.core.utils.FailedJobError) as exc:
            reason, extra = _job_failure(job, exc)
            status = _record_failure(run, config.run_id, reason, **extra)
        on_done(config.run_id, status)
