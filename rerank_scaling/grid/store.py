"""The study folder: one sub-folder per cell, and the collected results table.

    DIR/experiment.toml       a copy of the experiment file that made the study
    DIR/cells/<run_id>/       one run folder each (see rerank_scaling.pipeline.run)
    DIR/results.parquet       every finished cell's rows + the BM25 baseline

A cell is *done* or *failed* once its ``status.json`` exists; *running* while
a process holds its lock file; otherwise *pending* (possibly with a
checkpoint to resume from).
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from rerank_scaling.errors import UserError
from rerank_scaling.pipeline.config import RunConfig
from rerank_scaling.results import SCHEMA, write_parquet


def cell_folder(study: Path, config: RunConfig) -> Path:
    return Path(study) / "cells" / config.run_id


@contextmanager
def cell_lock(folder: Path, wait: bool = True):
    """An exclusive lock on a cell (released by the OS if its holder dies)."""
    folder.mkdir(parents=True, exist_ok=True)
    fh = open(folder / ".lock", "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        yield
    finally:
        fh.close()


def is_locked(folder: Path) -> bool:
    path = folder / ".lock"
    if not path.exists():
        return False
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


@dataclass
class CellState:
    run: str
    state: str  # done | failed | running | pending
    step: int
    steps: int
    reason: str = ""
    seconds: float | None = None
    final: dict | None = None
    in_domain: tuple[str, ...] = ()  # names of the cell's in-domain evaluation sets


def cell_state(folder: Path) -> CellState:
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").exists() else {}
    steps = int(config.get("steps", 0))
    in_domain = tuple(e["name"] for e in config.get("evals", []) if e.get("in_domain"))
    status_path = folder / "status.json"
    if status_path.exists():
        status = json.loads(status_path.read_text())
        return CellState(folder.name, status["state"], steps if status["state"] == "done" else _last_step(folder),
                         steps, status.get("reason", ""), status.get("seconds"), status.get("final"), in_domain)
    state = "running" if is_locked(folder) else "pending"
    return CellState(folder.name, state, _last_step(folder), steps, in_domain=in_domain)


def _last_step(folder: Path) -> int:
    log = folder / "train_log.jsonl"
    if not log.exists():
        return 0
    with open(log, "rb") as fh:
        try:
            fh.seek(-400, os.SEEK_END)
        except OSError:
            fh.seek(0)
        lines = [line for line in fh.read().decode(errors="ignore").splitlines() if line.strip()]
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError):
            continue
    return 0


def study_states(study: Path) -> list[CellState]:
    """Every cell of the study: those with a folder, plus the experiment's cells not started yet."""
    study = Path(study)
    cells = study / "cells"
    if not cells.is_dir():
        raise UserError(f"{study}: not a study folder (no cells/ inside)")
    states = {f.name: cell_state(f) for f in cells.iterdir() if f.is_dir()}
    if (study / "experiment.toml").exists():
        from rerank_scaling.grid.experiment import load_experiment

        try:
            planned = load_experiment(study / "experiment.toml").cells
        except UserError:
            planned = []
        for config in planned:
            if config.run_id not in states:
                states[config.run_id] = CellState(config.run_id, "pending", 0, config.steps)
    return [states[name] for name in sorted(states)]


def collect(study: Path) -> tuple[pl.DataFrame, Path]:
    """Concatenate every finished cell (+ one BM25 baseline) into results.parquet."""
    study = Path(study)
    states = study_states(study)
    frames, baselines = [], []
    for state in states:
        if state.state != "done":
            continue
        folder = study / "cells" / state.run
        frames.append(pl.read_parquet(folder / "metrics.parquet"))
        baselines.append(pl.read_parquet(folder / "baseline.parquet"))
    if not frames:
        raise UserError(f"{study}: no finished cell to collect")
    baseline = pl.concat(baselines).unique(subset=["eval_set", "metric"], keep="first", maintain_order=True)
    table = pl.concat([baseline, *frames]).select(list(SCHEMA)).sort(["run", "step", "eval_set", "metric"])
    out = study / "results.parquet"
    write_parquet(table, out)
    return table, out
