"""The run folder and the study folder: every file name, every state, one owner.

A run (a grid cell) writes into one folder; everything that looks at a run
(the pipeline that writes it, the grid that schedules it, the report that
reads it) goes through :class:`RunFolder`::

    config.json             the resolved RunConfig
    data.json               training/evaluation query ids, split, data counts
    metrics.parquet         tidy table (rerank_scaling.results), all checkpoints
    baseline.parquet        BM25 on the same candidate lists, same schema
    per_query.parquet       final checkpoint's value per query (and BM25's), for paired tests
    runs/<eval>.trec        final reranked run per evaluation set
    model/                  the final model, with ``save_model`` (the family's ``save``; its ``load`` reads it)
    train_log.jsonl         step, loss, lr, tokens seen, seconds
    checkpoints/last.ckpt   resumable Lightning checkpoint (removed when done)
    status.json             {"state": "done" | "failed", "reason", "seconds", ...}, written last
    .lock                   held by the process running the cell (:meth:`RunFolder.lock`)

A study is a folder of cells keyed by run id (:class:`StudyFolder`)::

    experiment.toml         a copy of the experiment file that made the study
    cells/<run_id>/         one run folder each
    results.parquet         every finished cell's rows + the BM25 baseline (+ the chains' rows)
    per_query.parquet       every finished cell's per-query values + BM25's (+ the chains')
    chains/                 [chain]: rows/<chain>.parquet (one file per chain, written last),
                            per_query/<chain>.parquet, first-stages/<first stage>/<eval set>.json (a
                            first stage's ranking of a set, computed once), meta.json (device, threads, timing)

The lock: ``flock`` on ``.lock`` where the filesystem has it; where it does
not (Lustre mounted ``noflock``: ``flock`` fails with ENOSYS), or with
``RERANK_SCALING_LOCK=file``, the file itself is the lock, created atomically
(a hard link of a finished temporary file: O_EXCL semantics that hold on NFS
too) and removed on release. Either way ``.lock`` names its holder (pid, host,
SLURM job) and its modification time is a heartbeat, touched every
:data:`HEARTBEAT_S` seconds while the holder lives: a holder on this host is
alive while its pid is; one on another host (whose ``flock`` this host may not
see: Lustre ``localflock``) while its heartbeat is younger than
:data:`STALE_S`. A dead holder's lock is taken over.

States: *done* / *failed* once ``status.json`` exists; *running* while a
process holds the lock; *damaged* when a file a crash can tear is torn (a
status or metrics file that is not whole, a truncated checkpoint, a torn last
log line), with the file named; else *pending* (possibly with a checkpoint to
resume from). :meth:`RunFolder.repair` puts a damaged folder back into a state
the run can resume from. Torch-free and polars-free: the checks read a few
bytes at each file's ends.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rerank_scaling.data.util import atomic_write_text
from rerank_scaling.errors import UserError
from rerank_scaling.values import output_path

State = Literal["done", "failed", "running", "pending", "damaged"]
LOCK_MODE = "RERANK_SCALING_LOCK"  # auto (flock, else lock files) | flock | file
HEARTBEAT_S = 30.0  # a lock's holder touches it this often
STALE_S = 300.0  # a lock held from another host whose heartbeat is older than this is abandoned
LOCK_POLL_S = 1.0  # how often a process waiting for a lock file looks again
NO_FLOCK = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL}
PARQUET_MAGIC = b"PAR1"
ZIP_END = b"PK\x05\x06"  # end-of-central-directory record: torch.save files are zip archives


def to_json(obj) -> str:
    """The one JSON layout of the run files (sorted keys, NaN/inf as null)."""
    return json.dumps(_finite(obj), indent=2, sort_keys=True, default=str) + "\n"


def write_json(path: Path, obj) -> None:
    """``obj`` as :func:`to_json` into ``path``, atomically (readers never see half a file)."""
    atomic_write_text(path, to_json(obj))


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _step_of(line: str, default: int) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return default


def _whole_parquet(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(-4, os.SEEK_END)
            return head == PARQUET_MAGIC and fh.read(4) == PARQUET_MAGIC
    except OSError:
        return False


def _whole_zip(path: Path) -> bool:
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            fh.seek(max(0, size - 65_557))  # the record sits in the last 22 + 65,535 bytes
            return ZIP_END in fh.read()
    except OSError:
        return False


def _torn_last_line(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(max(0, fh.tell() - 4096))
            tail = fh.read()
    except OSError:
        return False
    if not tail.endswith(b"\n"):
        return True
    last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return _step_of(last.decode(errors="replace"), -1) < 0 if last else False


def output_folder(path: Path | str, flag: str = "--out") -> Path:
    """``path`` as a folder the command may create or fill (:func:`rerank_scaling.values.output_path`):
    an existing file there, or a file where a parent folder should be, is a one-line error naming it."""
    try:
        return output_path(path)
    except UserError as exc:
        raise UserError(f"{flag} {exc}") from None


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; ``{}`` when missing or not a valid object."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class CellState:
    """What a run folder says about its run."""

    run: str
    state: State
    step: int = 0
    steps: int = 0
    reason: str = ""
    seconds: float | None = None
    final: dict | None = None
    config: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    hardware: dict = field(default_factory=dict)  # status.json "hardware": device, torch, threads, peak RSS
    teacher: dict = field(default_factory=dict)  # status.json "teacher": a query-distill run's teacher, measured

    @property
    def in_domain(self) -> tuple[str, ...]:
        """Names of the run's in-domain evaluation sets."""
        return tuple(e["name"] for e in self.config.get("evals", []) if isinstance(e, dict) and e.get("in_domain"))


class _File:
    """A file of a folder: ``Folder.attr`` is its name, ``folder.attr`` its path."""

    def __init__(self, name: str):
        self.filename = name

    def __get__(self, folder, owner=None):
        return self.filename if folder is None else folder.path / self.filename


class RunFolder:
    config = _File("config.json")
    data = _File("data.json")
    metrics = _File("metrics.parquet")
    per_query = _File("per_query.parquet")  # final checkpoint, every query: the model's and BM25's values
    baseline = _File("baseline.parquet")
    log = _File("train_log.jsonl")
    status = _File("status.json")
    checkpoints = _File("checkpoints")
    runs = _File("runs")
    model = _File("model")  # the final model (``save_model``), in its family's save format
    lock_file = _File(".lock")
    logs = _File("logs")  # the Lightning logger's folder (csv / tensorboard / wandb), one version per (re)start

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    def exists(self) -> bool:
        return self.path.is_dir()

    @property
    def checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    def run_file(self, eval_set: str) -> Path:
        return self.runs / f"{eval_set}.trec"

    # writing
    def create(self) -> None:
        for sub in (self.path, self.runs, self.checkpoints):
            sub.mkdir(parents=True, exist_ok=True)

    def write_json(self, path: Path, obj) -> None:
        write_json(path, obj)

    def write_status(self, status: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_json(self.status, status)

    def append_log(self, record: dict) -> None:
        with open(self.log, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def trim_log(self, last_step: int) -> None:
        """Drop log lines past the checkpoint a run resumes from (they will be redone),
        and a line torn by a crash while it was appended."""
        if self.log.exists():
            keep = [line for line in self.log.read_text().splitlines() if _step_of(line, last_step + 1) <= last_step]
            atomic_write_text(self.log, "".join(line + "\n" for line in keep))

    def clear_checkpoints(self) -> None:
        import shutil

        shutil.rmtree(self.checkpoints, ignore_errors=True)

    # reading
    def read_status(self) -> dict | None:
        """``status.json`` as a dict; None while the run is unfinished (or its status is torn:
        see :meth:`damage`)."""
        if not self.status.exists():
            return None
        status = read_json(self.status)
        return status if status.get("state") in ("done", "failed") else None

    def damaged_files(self) -> dict[Path, str]:
        """What a crash tore in this folder: ``file -> what is wrong`` (empty when whole)."""
        found: dict[Path, str] = {}
        status = self.read_status()
        if status is None and self.status.exists():
            found[self.status] = "is not a whole status file"
        done = (status or {}).get("state") == "done"
        for path in (self.metrics, self.baseline):
            if (path.exists() or done) and not _whole_parquet(path):
                found[path] = "is truncated" if path.exists() else "is missing"
        if self.checkpoint.exists() and not _whole_zip(self.checkpoint):
            found[self.checkpoint] = "is truncated"
        if _torn_last_line(self.log):
            found[self.log] = "has a torn last line"
        return found

    def damage(self) -> list[str]:
        """:meth:`damaged_files` as sentences naming each file."""
        return [f"{path} {what}" for path, what in self.damaged_files().items()]

    def repair(self) -> list[str]:
        """Put a damaged folder back where the run can resume (or re-run) from; returns what
        was done. Runs are deterministic, so redoing lost steps gives the same rows."""
        damaged = self.damaged_files()
        done: list[str] = []
        staged = self.checkpoint.with_suffix(".tmp")
        if staged.exists():  # a save the process did not finish: the real checkpoint is the last good one
            staged.unlink()
            done.append(f"removed {staged}")

        def drop(*paths: Path) -> None:
            for path in paths:
                if path.exists():
                    path.unlink()
                    done.append(f"removed {path}")

        if self.log in damaged:
            self.trim_log(10**18)
            done.append(f"dropped the torn last line of {self.log}")
        if self.metrics in damaged or self.checkpoint in damaged:
            drop(self.metrics, self.checkpoint, self.status)  # rows up to the checkpoint are lost: start over
        if self.baseline in damaged or self.status in damaged:
            drop(self.baseline, self.status)  # the baseline is rewritten when the run starts
        return done

    def read_config(self) -> dict:
        return read_json(self.config)

    def last_step(self) -> int:
        """The last step in the training log (0 without one; a torn last line is skipped)."""
        if not self.log.exists():
            return 0
        with open(self.log, "rb") as fh:
            try:
                fh.seek(-400, os.SEEK_END)
            except OSError:
                fh.seek(0)
            lines = [line for line in fh.read().decode(errors="ignore").splitlines() if line.strip()]
        for line in reversed(lines):
            step = _step_of(line, -1)
            if step >= 0:
                return step
        return 0

    @contextmanager
    def lock(self):
        """An exclusive lock on the run, held while the block runs (module docstring: flock, or a lock
        file where the filesystem has no flock); waits for a live holder, takes over a dead one's."""
        self.path.mkdir(parents=True, exist_ok=True)
        mode = lock_mode()
        if mode != "file":
            fh = open(self.lock_file, "a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX)
            except OSError as exc:
                fh.close()
                if mode == "flock" or exc.errno not in NO_FLOCK:
                    raise
            else:
                try:
                    fh.seek(0)
                    fh.truncate()
                    fh.write(json.dumps(_holder_record()) + "\n")  # who runs the cell (grid status, fault tests)
                    fh.flush()
                    with _Heartbeat(self.lock_file):
                        yield
                finally:
                    fh.seek(0)
                    fh.truncate()  # released: no holder (another host reading it must not see one)
                    fh.close()
                return
        token = self._acquire_file_lock()
        try:
            with _Heartbeat(self.lock_file):
                yield
        finally:
            if self.lock_record().get("token") == token:
                self.lock_file.unlink(missing_ok=True)

    def _acquire_file_lock(self) -> str:
        """Create ``.lock`` atomically (a hard link of a whole file); returns this acquisition's token."""
        token = uuid.uuid4().hex
        staged = self.path / f".lock.{token}.tmp"
        staged.write_text(json.dumps({**_holder_record(), "token": token}) + "\n")
        try:
            while True:
                try:
                    os.link(staged, self.lock_file)  # atomic: fails while the lock file exists
                    return token
                except FileExistsError:
                    pass
                if not self._held_by_record():
                    self._take_over()
                    continue
                time.sleep(LOCK_POLL_S)
        finally:
            staged.unlink(missing_ok=True)

    def _take_over(self) -> None:
        """Move a dead holder's lock file aside (one of several takers wins the rename), then drop it."""
        aside = self.path / f".lock.{uuid.uuid4().hex}.stale"
        try:
            os.rename(self.lock_file, aside)
        except FileNotFoundError:
            return
        aside.unlink(missing_ok=True)

    def lock_record(self) -> dict:
        """What ``.lock`` says of its holder (``{}`` when none): pid, host, job, since."""
        return read_json(self.lock_file)

    def holder(self) -> int | None:
        """The process id of the process that holds the lock (None when none)."""
        pid = self.lock_record().get("pid")
        return pid if isinstance(pid, int) else None

    def _held_by_record(self) -> bool:
        """Whether the lock file names a live holder: on this host a running pid, elsewhere a fresh heartbeat."""
        record = self.lock_record()
        if not record:  # released (flock mode empties it), or not ours to read
            return False
        if record.get("host") == socket.gethostname():
            return _alive(record.get("pid"))
        try:
            return time.time() - self.lock_file.stat().st_mtime < STALE_S
        except OSError:
            return False

    def is_locked(self) -> bool:
        """Whether a live process holds the lock (flock where it works and the holder is on this host, else
        what the lock file says)."""
        path = self.lock_file
        if not path.exists():
            return False
        if lock_mode() != "file":
            with open(path, "a") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                except OSError as exc:
                    if exc.errno not in NO_FLOCK:
                        raise
                else:
                    fcntl.flock(fh, fcntl.LOCK_UN)
                    if self.lock_record().get("host", socket.gethostname()) == socket.gethostname():
                        return False  # flock is this host's truth
        return self._held_by_record()

    def state(self) -> CellState:
        config = self.read_config()
        steps = int(config.get("steps", 0) or 0)
        status = self.read_status()
        damage = self.damaged_files()
        if damage and not self.is_locked():
            reason = "; ".join(f"{path.relative_to(self.path)} {what}" for path, what in damage.items())
            return CellState(self.name, "damaged", self.last_step(), steps, reason, config=config)
        if status is None:
            state: State = "running" if self.is_locked() else "pending"
            return CellState(self.name, state, self.last_step(), steps, config=config)
        seconds = status.get("seconds")
        hardware = status.get("hardware")
        return CellState(
            self.name, status["state"],
            steps if status["state"] == "done" else self.last_step(), steps, str(status.get("reason", "")),
            float(seconds) if isinstance(seconds, (int, float)) else None,
            status.get("final") if isinstance(status.get("final"), dict) else None,
            config, read_json(self.data), hardware if isinstance(hardware, dict) else {},
            status["teacher"] if isinstance(status.get("teacher"), dict) else {},
        )


def lock_mode() -> str:
    """``$RERANK_SCALING_LOCK``: ``auto`` (flock, falling back to lock files where the filesystem refuses
    it), ``flock`` or ``file`` (for filesystems whose flock is not shared between nodes)."""
    mode = os.environ.get(LOCK_MODE, "auto").strip().lower() or "auto"
    if mode not in ("auto", "flock", "file"):
        raise UserError(f"{LOCK_MODE}={mode!r}: choose auto, flock or file")
    return mode


def _holder_record() -> dict:
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{job}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if job else os.environ.get("SLURM_JOB_ID")
    return {"pid": os.getpid(), "host": socket.gethostname(), "job": job, "since": round(time.time(), 3)}


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Heartbeat:
    """Touch ``path`` every :data:`HEARTBEAT_S` seconds from a daemon thread while the block runs."""

    def __init__(self, path: Path):
        self.path, self._stop = path, threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="lock-heartbeat")

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


class StudyFolder:
    experiment = _File("experiment.toml")
    cells_dir = _File("cells")
    results = _File("results.parquet")
    per_query = _File("per_query.parquet")
    # what a report needs of the cells, beside a report folder that has no cells/ (report.study.export_study)
    cells_digest = _File("cells.json")
    chains_dir = _File("chains")

    def chain_rows(self, chain: str | None = None) -> Path:
        """A chain's tidy rows (written last: its presence says the chain is done); None: their folder."""
        folder = self.chains_dir / "rows"
        return folder if chain is None else folder / f"{chain}.parquet"

    def chain_per_query(self, chain: str) -> Path:
        return self.chains_dir / "per_query" / f"{chain}.parquet"

    def first_stage_ranking(self, first_stage: str, eval_set: str) -> Path:
        """A first stage's ranking of an eval set, with its measured costs (computed once, reused by every chain)."""
        return self.chains_dir / "first-stages" / first_stage / f"{eval_set}.json"

    @property
    def chains_meta(self) -> Path:
        return self.chains_dir / "meta.json"

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def check(self) -> None:
        """A one-line error unless this is a study folder (it has ``cells/``)."""
        if not self.cells_dir.is_dir():
            raise UserError(f"{self.path}: not a study folder (no {StudyFolder.cells_dir}/ inside)")

    def cell(self, run_id: str) -> RunFolder:
        return RunFolder(self.cells_dir / run_id)

    def cells(self) -> list[RunFolder]:
        """Every cell folder, sorted by run id."""
        if not self.cells_dir.is_dir():
            return []
        return [RunFolder(p) for p in sorted(self.cells_dir.iterdir()) if p.is_dir()]

    def states(self, planned: Iterable[tuple[str, int]] | None = None) -> list[CellState]:
        """Every cell with a folder, plus the planned ``(run_id, steps)`` not started yet
        (by default the cells of the study's experiment.toml), sorted by run id."""
        self.check()
        states = {cell.name: cell.state() for cell in self.cells()}
        for run_id, steps in self.planned() if planned is None else planned:
            states.setdefault(run_id, CellState(run_id, "pending", 0, steps))
        return [states[name] for name in sorted(states)]

    def planned(self) -> list[tuple[str, int]]:
        """``(run_id, steps)`` of every cell of the study's experiment.toml (none if it is unreadable)."""
        if not self.experiment.exists():
            return []
        from rerank_scaling.config import load_experiment

        try:
            return [(c.run_id, c.steps) for c in load_experiment(self.experiment).cells]
        except UserError:
            return []
