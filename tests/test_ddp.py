"""Data parallel on CPU: two processes (gloo) train the same trajectory as one process with the
same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]


def train_command(out: Path, shared: Path, cache: Path, *extra: str) -> tuple[list[str], dict]:
    """The ``train`` command of a tiny MiniLM-1L cell (6 steps, evaluated at 3 and 6) and its environment."""
    args = ["--data-root", str(shared), "--ladder", "minilm", "--size", "1L", "--objective", "listwise",
            "--steps", "6", "--eval-every", "3", "--batch-size", "4", "--n-negatives", "3", "--max-length", "48",
            "--candidates-k", "20", "--rerank-k", "10", "--ce-negatives", "4", "--lr", "1e-3", "--warmup-steps", "1",
            "--dropout", "0", "--threads", "1", "--budget", "20", "--eval", "cranfield-test=cranfield:test"]
    env = {**os.environ, "RERANK_SCALING_CACHE": str(cache)}
    return [sys.executable, "-m", "rerank_scaling", "train", "--out", str(out), *args, *extra], env


def train_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def _train(out: Path, shared: Path, cache: Path, *extra: str) -> list[dict]:
    command, env = train_command(out, shared, cache, *extra)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return train_log(out)


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tmp_path, shared_root):
    """Two processes, each in two accumulated micro-batches (4 parts of the global batch of 4), and evaluation
    shared out over them: one process's losses and rows."""
    one = _train(tmp_path / "one", shared_root, tmp_path / "cache")
    two = _train(tmp_path / "two", shared_root, tmp_path / "cache", "--devices", "2", "--strategy", "ddp",
                 "--grad-accumulation", "2")
    assert [e["step"] for e in two] == [1, 2, 3, 4, 5, 6]  # one log: the first process writes, the other trains
    assert one[0]["loss"] - one[-1]["loss"] > 0.01  # the trajectory moves, so a wrong update would show
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5)
        assert b["tokens_seen"] == a["tokens_seen"]  # both processes' tokens are counted
    cols = ["step", "eval_set", "metric", "value"]
    m1 = pl.read_parquet(tmp_path / "one" / "metrics.parquet").select(cols).sort(cols[:3])
    m2 = pl.read_parquet(tmp_path / "two" / "metrics.parquet").select(cols).sort(cols[:3])
    assert m1.height == m2.height
    for x, y in zip(m1["value"], m2["value"]):
        assert y == pytest.approx(x, rel=1e-3, abs=1e-4)
    assert json.loads((tmp_path / "two" / "status.json").read_text())["state"] == "done"
