"""Where cells run: local processes (one per cell slot, pinned to GPUs), or SLURM through submitit.

A cell is run by :func:`run_cell`, a plain module-level function (picklable
for both engines): it takes the cell lock, runs (or resumes, or skips) the
cell, and turns any crash into a recorded failure so the grid goes on.

What a cell's own code cannot catch is caught here, and every outcome is
recorded in the cell's ``status.json``:

* local (:func:`run_local`): each running cell has a process of its own -- on a
  CPU machine a reused single-worker pool per slot, on a GPU machine (or for a
  multi-device cell) a fresh ``python -m rerank_scaling.grid.worker`` whose
  ``CUDA_VISIBLE_DEVICES`` are the GPUs it was given, so cells never share a
  GPU and as many run as the GPUs hold (``GPUs / devices per cell``). A process
  that dies (SIGKILL, the kernel's OOM killer) takes only its own cell with it:
  that cell runs again from its checkpoint, and is recorded as failed ("worker
  process died") after :data:`WORKER_DEATHS` deaths; its neighbours go on.
* SLURM (:func:`run_submitit`): the cells of one resource profile
  (``[hardware.sizes.<size>]``) are one job array; jobs are collected as they
  finish, in any order; a job killed (memory, cancel, node failure) or failed
  is recorded with submitit's reason and the path of its SLURM log; a job at
  its time limit is checkpointed and requeued (:class:`CellJob` is
  ``Checkpointable``) and resumes from the cell's last checkpoint. A driver run
  again re-attaches to the cells still queued or running (their job ids are in
  ``submitit/jobs.json``; a running cell holds its lock) instead of submitting
  them twice.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path

from rerank_scaling.config import RunConfig
from rerank_scaling.config.experiment import Slurm
from rerank_scaling.errors import UserError
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
    """A cell process: on Linux, get SIGKILL when the process that started it dies; leave Ctrl-C to it."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:  # pragma: no cover
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C


WORKER_DEATHS = 2  # a cell whose process dies this often is recorded as failed


def _record_failure(run: RunFolder, run_id: str, reason: str, **extra) -> dict:
    """The cell's status after a death its own process could not record (kept if it had one)."""
    status = run.read_status()
    if status is not None:
        return status
    status = {"state": "failed", "reason": reason, "run": run_id, **extra}
    run.write_status(status)
    return status


def local_gpus() -> list[str]:
    """The GPUs local cells may use: ``CUDA_VISIBLE_DEVICES`` when set, else every GPU torch sees."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no torch or no driver: no GPU
        return []


class _Cell:
    """A cell running in a process of its own: a slot's pool, or a ``grid.worker`` subprocess."""

    def __init__(self, config: RunConfig, run: RunFolder, future: Future, gpus: list[str],
                 pool: ProcessPoolExecutor | None = None, proc: subprocess.Popen | None = None):
        self.config, self.run, self.future, self.gpus, self.pool, self.proc = config, run, future, gpus, pool, proc


def worker_command(config: RunConfig, folder: Path, retry_failed: bool) -> list[str]:
    """The command that runs one cell in a process of its own (Lightning's launcher re-runs it, with
    ``LOCAL_RANK`` set, for the other processes of a multi-device cell)."""
    return [sys.executable, "-m", "rerank_scaling.grid.worker", json.dumps(config.to_dict()), str(folder),
            *(["--retry-failed"] if retry_failed else [])]


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def run_local(cells: Cells, workers: int, on_done: Callable[[str, dict], None], retry_failed: bool = False,
              gpus: Sequence[str] | None = None) -> None:
    """Run cells, at most ``workers`` at a time and, with ``gpus``, each on ``devices`` GPUs of its own
    (module docstring); in this process, one after the other, when there is one worker and no GPU."""
    gpus = list(gpus or ())
    if any(config.nodes > 1 for config, _ in cells):
        raise UserError("the local executor runs on one machine: cells with nodes > 1 need --executor slurm")
    if workers == 1 and not gpus and all(config.devices == 1 for config, _ in cells):
        for config, run in cells:
            on_done(config.run_id, run_cell(config.to_dict(), str(run.path), retry_failed))
        return
    queue, deaths = deque(cells), Counter()
    free_gpus, units = list(gpus), workers  # with GPUs a cell takes its devices' GPUs, else its devices' slots
    running: dict[Future, _Cell] = {}
    idle: list[ProcessPoolExecutor] = []
    waiter = ThreadPoolExecutor(max_workers=max(workers, len(gpus), 1), thread_name_prefix="cell")
    try:
        while queue or running:
            while queue:
                config, run = queue[0]
                need = config.devices
                if gpus and need > len(gpus):
                    queue.popleft()
                    on_done(config.run_id, _record_failure(run, config.run_id, f"needs {need} GPUs (devices); "
                                                           f"this machine lends {len(gpus)}"))
                    continue
                fits = len(free_gpus) >= need and len(running) < workers if gpus else units >= min(need, workers)
                if not fits:
                    break
                queue.popleft()
                given = [free_gpus.pop(0) for _ in range(need)] if gpus else []
                units -= 0 if gpus else min(need, workers)
                if gpus or need > 1:  # a fresh process: its own CUDA_VISIBLE_DEVICES, Lightning's launcher
                    env = {**os.environ, **({"CUDA_VISIBLE_DEVICES": ",".join(given)} if gpus else {})}
                    proc = subprocess.Popen(worker_command(config, run.path, retry_failed), env=env,
                                            stdout=subprocess.DEVNULL)
                    cell = _Cell(config, run, waiter.submit(proc.wait), given, proc=proc)
                else:  # a reused single-worker pool: one death breaks only its own cell
                    while True:
                        pool = idle.pop() if idle else ProcessPoolExecutor(
                            1, mp_context=get_context("spawn"), initializer=_die_with_parent)
                        try:
                            future = pool.submit(run_cell, config.to_dict(), str(run.path), retry_failed)
                            break
                        except BrokenProcessPool:  # its worker died while idle
                            pool.shutdown(wait=False)
                    cell = _Cell(config, run, future, given, pool=pool)
                running[cell.future] = cell
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                cell = running.pop(future)
                free_gpus.extend(cell.gpus)
                units += 0 if gpus else min(cell.config.devices, workers)
                status, died = None, None
                if cell.pool is not None:
                    try:
                        status = future.result()
                        idle.append(cell.pool)
                    except BrokenProcessPool:
                        cell.pool.shutdown(wait=False)
                        died = "killed"
                else:
                    code = future.result()
                    status = cell.run.read_status()
                    if status is None:
                        died = _death(code)
                if died is None:
                    on_done(cell.config.run_id, status)
                    continue
                run_id = cell.config.run_id
                deaths[run_id] += 1
                if deaths[run_id] >= WORKER_DEATHS:
                    on_done(run_id, _record_failure(cell.run, run_id, f"worker process died {deaths[run_id]} times "
                                                    f"(last {died}: out of memory?)"))
                else:
                    queue.appendleft((cell.config, cell.run))  # again, from its last checkpoint
    finally:
        for cell in running.values():
            if cell.proc is not None and cell.proc.poll() is None:
                cell.proc.kill()
        for pool in idle + [c.pool for c in running.values() if c.pool is not None]:
            pool.shutdown(wait=False, cancel_futures=True)
        waiter.shutdown(wait=False)


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


def submission_parameters(slurm: Slurm, cluster: str, devices: int = 1, nodes: int = 1,
                          name: str = "rerank-scaling") -> dict:
    """submitit's parameters for a job of ``devices`` per node on ``nodes`` nodes (every cell of one profile
    gets the same): one task per device (Lightning's SLURM environment makes them the DDP/FSDP ranks), and
    the ``[slurm]`` keys passed through; on the local and debug clusters only what they understand."""
    params: dict = {"timeout_min": slurm.timeout_min, "cpus_per_task": slurm.cpus_per_task, "name": name}
    if cluster != "slurm":
        return params
    params.update(nodes=nodes, tasks_per_node=devices, slurm_array_parallelism=slurm.array_parallelism,
                  slurm_signal_delay_s=slurm.signal_delay_s)
    if slurm.gres:
        params["slurm_gres"] = slurm.gres
    else:
        params["gpus_per_node"] = devices if slurm.gpus_per_node is None else slurm.gpus_per_node
    for key in ("account", "partition", "qos", "constraint", "mem", "exclude"):
        if getattr(slurm, key) is not None:
            params[f"slurm_{key}"] = getattr(slurm, key)
    if slurm.setup:
        params["slurm_setup"] = list(slurm.setup)
    if slurm.extra:
        params["slurm_additional_parameters"] = dict(item.split("=", 1) for item in slurm.extra)
    return params


def submissions(cells: Cells, slurm_of: Callable[[RunConfig], Slurm], cluster: str) -> list[tuple[dict, int, Cells]]:
    """The cells grouped into one submission (job array) per distinct set of parameters, in the cells' order:
    ``(parameters, max requeues, cells)``."""
    groups: dict[str, tuple[dict, int, list]] = {}
    for config, run in cells:
        slurm = slurm_of(config)
        params = submission_parameters(slurm, cluster, config.devices, config.nodes)
        key = json.dumps([params, slurm.max_requeues], sort_keys=True)
        groups.setdefault(key, (params, slurm.max_requeues, []))[2].append((config, run))
    return list(groups.values())


ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED", "REQUEUE_HOLD",
          "REQUEUE_FED", "SIGNALING", "STAGE_OUT"}


class JobRegistry:
    """``STUDY/submitit/jobs.json``: the job id each cell was last submitted as (for a driver run again)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / "jobs.json"

    def read(self) -> dict[str, dict]:
        try:
            value = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def record(self, entries: dict[str, dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staged = self.path.with_name(f".jobs.{os.getpid()}.tmp")
        staged.write_text(json.dumps({**self.read(), **entries}, indent=2, sort_keys=True) + "\n")
        os.replace(staged, self.path)


class _LockWatch:
    """A cell some other process runs (it holds the cell's lock): done when its status is written or the
    lock is let go; its result is the status (None: ended without one, to be submitted again)."""

    def __init__(self, run: RunFolder):
        self.run = run

    def done(self) -> bool:
        return self.run.read_status() is not None or not self.run.is_locked()

    def result(self) -> dict | None:
        return self.run.read_status()


def _active_job(executor, entry: dict | None):
    """The recorded SLURM job of a cell while it is queued or running (None otherwise)."""
    if not entry or entry.get("cluster") != "slurm" or executor.cluster != "slurm":
        return None
    job = executor._executor.job_class(folder=executor.folder, job_id=str(entry["job_id"]))
    try:
        state = job.state
    except Exception:  # noqa: BLE001 - sacct unreachable: submit again (the cell lock keeps it single)
        return None
    return job if state.split()[0].upper() in ACTIVE else None


def run_submitit(
    cells: Cells,
    study: Path,
    on_done: Callable[[str, dict], None],
    cluster: str | None = None,
    slurm_of: Callable[[RunConfig], Slurm] | None = None,
    retry_failed: bool = False,
    poll_s: float | None = None,
    on_submit: Callable[[dict, list[str]], None] | None = None,
) -> None:
    """Submit the cells via submitit, one job array per resource profile (``slurm_of(cell)``; the defaults of
    :class:`Slurm` without it), re-attaching to cells already queued or running; every job's outcome is
    recorded as it completes. ``cluster``: ``slurm`` (default where sbatch exists), ``local``/``debug``
    (tests). ``on_submit(parameters, run_ids)`` is told of each array submitted."""
    try:
        import submitit
    except ImportError:
        raise UserError("the slurm executor needs submitit: pip install 'rerank-scaling[slurm]'") from None
    slurm_of = slurm_of or (lambda config: Slurm())
    folder = Path(study) / "submitit"
    probe = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    cluster = probe.cluster
    registry = JobRegistry(folder)
    poll_s = poll_s or (10.0 if cluster == "slurm" else 0.5)
    pending, rounds = list(cells), 0
    while pending:
        rounds += 1
        recorded = registry.read()
        watching: list[tuple[RunConfig, RunFolder, object]] = []
        submit = []
        for config, run in pending:
            job = None if run.is_locked() else _active_job(probe, recorded.get(config.run_id))
            if run.is_locked():
                watching.append((config, run, _LockWatch(run)))
            elif job is not None:
                watching.append((config, run, job))
            else:
                submit.append((config, run))
        if rounds > WORKER_DEATHS + 1:  # a cell whose runs keep ending without a status
            for config, run in submit:
                on_done(config.run_id, _record_failure(run, config.run_id, "its process ended without a status "
                                                       f"{rounds - 1} times"))
            submit = []
        for params, requeues, group in submissions(submit, slurm_of, cluster):
            executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster, slurm_max_num_timeout=requeues,
                                             local_max_num_timeout=requeues)
            executor.update_parameters(**params)
            jobs = executor.map_array(CellJob(), [c.to_dict() for c, _ in group], [str(r.path) for _, r in group],
                                      [retry_failed] * len(group))
            registry.record({c.run_id: {"job_id": job.job_id, "cluster": cluster} for (c, _), job in zip(group, jobs)})
            if on_submit:
                on_submit(params, [c.run_id for c, _ in group])
            watching += [(c, r, job) for (c, r), job in zip(group, jobs)]
        pending = []
        if cluster == "debug":  # debug jobs run when their result is asked for
            for config, run, job in watching:
                pending += _collect(config, run, job, on_done, submitit)
            continue
        while watching:
            still = []
            for config, run, job in watching:
                if job.done():
                    pending += _collect(config, run, job, on_done, submitit)
                else:
                    still.append((config, run, job))
            watching = still
            if watching:
                time.sleep(poll_s)


def _collect(config: RunConfig, run: RunFolder, job, on_done, submitit) -> list:
    """Record a finished job's (or watched cell's) outcome; returns the cell when it must be submitted again."""
    if isinstance(job, _LockWatch):
        status = job.result()
        if status is None:
            return [(config, run)]
        on_done(config.run_id, status)
        return []
    try:
        status = job.result()
    except (submitit.core.utils.UncompletedJobError, submitit.core.utils.FailedJobError) as exc:
        reason, extra = _job_failure(job, exc)
        status = _record_failure(run, config.run_id, reason, **extra)
    on_done(config.run_id, status)
    return []


def run_task(fn: Callable, args: tuple, study: Path, executor: str = "local", slurm: Slurm | None = None,
             name: str = "task", devices: int = 0):
    """Run one function the way cells run, and return its result: in this process with the local executor,
    else as one submitit job with the ``[slurm]`` pass-through (``devices``: GPUs it asks for; 0 for a CPU
    job). For a grid's steps that are not cells -- data preparation (indexes, candidates, a teacher's
    scores) before the cells that read it. A job that fails is a :class:`UserError` naming its log."""
    if executor == "local":
        return fn(*args)
    try:
        import submitit
    except ImportError:
        raise UserError("the slurm executor needs submitit: pip install 'rerank-scaling[slurm]'") from None
    cluster = {"slurm": "slurm", "submitit-local": "local", "submitit-debug": "debug"}.get(executor, executor)
    slurm = slurm or Slurm()
    runner = submitit.AutoExecutor(folder=str(Path(study) / "submitit"), cluster=cluster,
                                   slurm_max_num_timeout=slurm.max_requeues)
    params = submission_parameters(slurm, runner.cluster, max(devices, 1), 1, name=f"rerank-scaling-{name}")
    if runner.cluster == "slurm" and devices == 0:
        params.pop("gpus_per_node", None)
    runner.update_parameters(**params)
    job = runner.submit(fn, *args)
    try:
        return job.result()
    except (submitit.core.utils.UncompletedJobError, submitit.core.utils.FailedJobError) as exc:
        reason, extra = _job_failure(job, exc)
        raise UserError(f"{name} job {job.job_id} failed: {reason}"
                        + (f" (log: {extra['slurm_log']})" if "slurm_log" in extra else "")) from None
