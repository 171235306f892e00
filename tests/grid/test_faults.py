"""Faults a cell's own code cannot catch: a worker SIGKILLed, a job killed, a job at its time limit."""

import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from rerank_scaling.config import load_experiment
from rerank_scaling.config.experiment import Slurm
from rerank_scaling.grid.cli import run_grid
from rerank_scaling.grid.executors import CellJob, run_submitit
from rerank_scaling.rundir import RunFolder, StudyFolder

from tiny_experiment import TINY

COLS = ["run", "step", "eval_set", "metric", "value", "tokens_seen"]


def _wait_for(predicate, proc=None, seconds=240):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def _mid_cell(study):
    """A cell that has a checkpoint and is still running, with the pid of its process."""
    for cell in StudyFolder(study).cells():
        if cell.checkpoint.exists() and cell.read_status() is None and cell.is_locked() and cell.holder():
            return cell
    return None


def _table(study):
    from rerank_scaling.results import collect

    return collect(study)[0].select(COLS).sort(COLS[:4])


@pytest.fixture(scope="module")
def clean(tmp_path_factory, shared_root):
    folder = tmp_path_factory.mktemp("clean")
    exp = folder / "exp.toml"
    exp.write_text(TINY.format(shared=shared_root, cache=folder / "cache", steps=8))
    run_grid(exp, folder / "study", workers=1)
    return exp, _table(folder / "study")


def test_a_sigkilled_worker_is_recovered_and_the_grid_finishes(clean, tmp_path):
    exp, want = clean
    out = tmp_path / "study"
    proc = subprocess.Popen([sys.executable, "-m", "rerank_scaling", "grid", "run", str(exp), "--out", str(out),
                             "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert _wait_for(lambda: _mid_cell(out) is not None, proc), "no cell reached a checkpoint"
    victim = _mid_cell(out)
    os.kill(victim.holder(), signal.SIGKILL)  # one worker, mid-cell: not the grid
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    states = StudyFolder(out).states()
    assert [s.state for s in states] == ["done"] * 4  # the killed cell resumed from its checkpoint
    assert _table(out).equals(want)


def test_a_dying_worker_takes_only_its_own_cell(write_experiment, tmp_path, monkeypatch):
    """Each local cell has a process of its own: a death is its cell's alone (the neighbour running beside
    it is not charged with it), and a cell whose process dies WORKER_DEATHS times is recorded as failed."""
    import threading

    import rerank_scaling.grid.executors as executors
    from rerank_scaling.grid.executors import run_local

    monkeypatch.setattr(executors, "WORKER_DEATHS", 1)
    exp = load_experiment(write_experiment(TINY.replace('objectives = ["pointwise", "listwise"]',
                                                        'objectives = ["listwise"]'), steps=40))
    study = StudyFolder(tmp_path / "study")
    cells = [(c, study.cell(c.run_id)) for c in exp.cells]
    seen = {}
    grid = threading.Thread(target=run_local, args=(cells, 2, lambda r, s: seen.update({r: s})))
    grid.start()
    both = lambda: all(run.is_locked() and run.holder() and run.log.exists() for _, run in cells)  # noqa: E731
    assert _wait_for(both, seconds=300), "the two cells never ran side by side"
    victim = cells[0][1]
    os.kill(victim.holder(), signal.SIGKILL)
    grid.join(600)
    assert seen[cells[0][0].run_id]["reason"].startswith("worker process died 1 times (last killed")
    assert seen[cells[1][0].run_id]["state"] == "done"  # it ran beside the dying one, and finished


def test_submitit_job_killed_is_recorded_and_the_others_collected(clean, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    exp, want = clean
    out = tmp_path / "study"
    cells = load_experiment(exp).cells
    study = StudyFolder(out)
    out.mkdir()

    import threading

    def kill_one():
        if _wait_for(lambda: _mid_cell(out) is not None, seconds=300):
            os.kill(_mid_cell(out).holder(), signal.SIGKILL)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    seen = {}
    run_submitit([(c, study.cell(c.run_id)) for c in cells], out, lambda run, status: seen.update({run: status}),
                 cluster="local", slurm_of=lambda config: Slurm(timeout_min=10), poll_s=0.2)
    killer.join(5)
    failed = [run for run, status in seen.items() if status["state"] == "failed"]
    assert len(seen) == 4 and len(failed) == 1, seen
    status = study.cell(failed[0]).read_status()
    assert status["reason"].startswith("UncompletedJobError") and status["slurm_log"].endswith(".err")
    got = _table(out)
    assert got.filter(pl.col("run") != failed[0]).equals(want.filter(pl.col("run") != failed[0]))


def test_a_job_at_its_time_limit_is_requeued_and_resumes_to_the_same_numbers(clean, tmp_path):
    import dataclasses

    from rerank_scaling.pipeline.run import train_run

    submitit = pytest.importorskip("submitit")
    exp, _ = clean
    config = dataclasses.replace(load_experiment(exp).cells[0], steps=60, eval_every=3)  # long enough to interrupt
    assert train_run(config, tmp_path / "reference")["state"] == "done"
    run = RunFolder(tmp_path / "study" / "cells" / config.run_id)
    executor = submitit.AutoExecutor(folder=str(tmp_path / "submitit"), cluster="local", local_max_num_timeout=3)
    executor.update_parameters(timeout_min=10)
    job = executor.submit(CellJob(), config.to_dict(), str(run.path))
    assert _wait_for(lambda: run.checkpoint.exists() and run.read_status() is None and run.is_locked(), seconds=300)
    os.kill(run.holder(), signal.SIGUSR2)  # what submitit's controller sends the task as the time limit nears
    status = job.result()
    assert status["state"] == "done"
    log = job.stderr() + (job.stdout() or "")
    assert "Caught signal SIGUSR2" in log, log[-2000:]  # checkpointed and requeued, then resumed
    assert log.count("Starting with JobEnvironment") == 2
    got = pl.read_parquet(run.metrics).select(COLS[1:]).sort(COLS[1:4])
    want = pl.read_parquet(tmp_path / "reference" / "metrics.parquet").select(COLS[1:]).sort(COLS[1:4])
    assert got.equals(want)
