"""Grid runner: scheduling, data checks, local/submitit execution, kill + resume, collect."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from rerank_scaling.cli import main
from rerank_scaling.config import load_experiment
from rerank_scaling.errors import UserError
from rerank_scaling.grid.checks import check_data
from rerank_scaling.grid.cli import cell_cost, run_grid, schedule
from rerank_scaling.results import collect
from rerank_scaling.rundir import StudyFolder

from tiny_experiment import TINY

def test_cells_are_scheduled_largest_rung_first(write_experiment):
    cells = load_experiment(write_experiment()).cells
    assert [c.size for c in cells[:2]] == ["L1-H64", "L1-H64"]  # the file's order: smallest first
    ordered = schedule(cells)
    assert [c.size for c in ordered] == ["L2-H128", "L2-H128", "L1-H64", "L1-H64"]
    reseeded = cells + [dataclasses.replace(c, seed=1) for c in cells]
    assert [(c.seed, c.size) for c in schedule(reseeded)] == [
        (0, "L2-H128"), (0, "L2-H128"), (0, "L1-H64"), (0, "L1-H64"),
        (1, "L2-H128"), (1, "L2-H128"), (1, "L1-H64"), (1, "L1-H64")]  # whole replicates first
    longer = dataclasses.replace(cells[0], steps=cells[0].steps * 10)
    assert cell_cost(longer) > cell_cost(cells[0])


def test_budget_larger_than_the_training_set_is_caught_before_training(write_experiment):
    exp = load_experiment(write_experiment(TINY.replace("budgets = [10]", "budgets = [10, 900]")))
    with pytest.raises(UserError, match="budget 900 is larger than the 1\\d\\d training queries"):
        check_data(exp)


def test_cli_reports_bad_experiment_as_one_line(write_experiment, capsys, tmp_path):
    path = write_experiment(TINY.replace('ladder = "scratch"', 'ladder = "gpt"'))
    assert main(["grid", "run", str(path), "--out", str(tmp_path / "study")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown ladder 'gpt'" in err and "\n" not in err
    assert not (tmp_path / "study").exists()


def test_grid_runs_collects_and_skips_finished_cells(write_experiment, tmp_path):
    out = tmp_path / "study"
    run_grid(write_experiment(), out, workers=2)
    states = StudyFolder(out).states()
    assert [s.state for s in states] == ["done"] * 4
    table, path = collect(out)
    assert path == out / "results.parquet"
    runs = set(table.filter(pl.col("model") != "bm25")["run"])
    assert len(runs) == 4
    # 4 cells x 2 checkpoints x 2 eval sets x 6 metrics, + BM25 on 2 sets x 5 metrics
    assert table.height == 4 * 2 * 2 * 6 + 2 * 5
    assert table.filter(pl.col("model") == "bm25").height == 10
    before = {s.run: (out / "cells" / s.run / "metrics.parquet").stat().st_mtime_ns for s in states}
    started = time.perf_counter()
    run_grid(write_experiment(), out, workers=2)
    assert time.perf_counter() - started < 20  # nothing is retrained, no worker is spawned
    after = {s.run: (out / "cells" / s.run / "metrics.parquet").stat().st_mtime_ns for s in StudyFolder(out).states()}
    assert before == after


def test_damaged_cells_are_named_then_repaired_to_the_same_table(write_experiment, tmp_path, capsys):
    import shutil

    reference = tmp_path / "reference"
    run_grid(write_experiment(), reference, workers=1)
    want, _ = collect(reference)
    out = tmp_path / "study"
    shutil.copytree(reference, out)
    (out / "results.parquet").unlink()
    cells = [c.name for c in StudyFolder(out).cells()]
    torn, truncated = StudyFolder(out).cell(cells[0]), StudyFolder(out).cell(cells[1])
    with open(torn.log, "a") as fh:
        fh.write('{"step": 5, "loss": 0.')
    truncated.metrics.write_bytes(truncated.metrics.read_bytes()[:100])
    assert main(["grid", "status", str(out)]) == 0
    shown = capsys.readouterr().out
    assert shown.count("damaged") >= 2
    with pytest.raises(UserError, match="metrics.parquet is truncated"):
        collect(out)
    run_grid(write_experiment(), out, workers=1)
    assert [s.state for s in StudyFolder(out).states()] == ["done"] * 4
    got, _ = collect(out)
    cols = ["run", "step", "eval_set", "metric", "value", "tokens_seen"]
    assert got.select(cols).equals(want.select(cols))


def test_failed_cells_rerun_only_with_retry_failed(write_experiment, tmp_path):
    out = tmp_path / "study"
    run_grid(write_experiment(), out, workers=1)
    cell = StudyFolder(out).cells()[0]
    cell.write_status({"state": "failed", "reason": "out of memory"})
    run_grid(write_experiment(), out, workers=1)
    assert cell.read_status()["reason"] == "out of memory"  # kept: failures are not retried by default
    run_grid(write_experiment(), out, workers=1, retry_failed=True)
    assert cell.read_status()["state"] == "done"


def test_failing_cell_is_recorded_and_others_finish(write_experiment, tmp_path, monkeypatch, capsys):
    import torch

    from rerank_scaling.objectives.reranking import BCE

    monkeypatch.setattr(BCE, "__call__", lambda self, s, l: s.sum() * torch.tensor(float("nan")))
    out = tmp_path / "study"
    run_grid(write_experiment(), out, workers=1)  # in-process, so the patch applies
    states = {s.run: s for s in StudyFolder(out).states()}
    failed = [s for s in states.values() if s.state == "failed"]
    assert len(failed) == 2 and all("pointwise" in s.run and "non-finite loss" in s.reason for s in failed)
    assert sum(s.state == "done" for s in states.values()) == 2
    assert main(["grid", "status", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "failed" in shown and "non-finite" in shown
    # a script sees it: grid run exits non-zero naming the failed cells, grid status --json lists them
    assert main(["grid", "run", str(write_experiment()), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "2 cells failed" in err and all(s.run in err for s in failed)
    assert main(["grid", "status", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"] == {"done": 2, "failed": 2}
    assert {c["run"] for c in report["cells"] if c["state"] == "failed"} == {s.run for s in failed}
    assert all("non-finite loss" in c["reason"] for c in report["cells"] if c["state"] == "failed")


def test_submitit_executor_runs_cells(write_experiment, tmp_path):
    pytest.importorskip("submitit")
    text = TINY.replace('sizes = ["L1-H64", "L2-H128"]', 'sizes = ["L1-H64"]').replace(
        'objectives = ["pointwise", "listwise"]', 'objectives = ["listwise"]')
    out = tmp_path / "study"
    run_grid(write_experiment(text, steps=2), out, executor="submitit-debug")
    assert [s.state for s in StudyFolder(out).states()] == ["done"]


def _run_cli(args, env):
    return subprocess.Popen([sys.executable, "-m", "rerank_scaling", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def test_sigkill_twice_then_rerun_equals_uninterrupted_run(write_experiment, tmp_path):
    text = TINY.replace('sizes = ["L1-H64", "L2-H128"]', 'sizes = ["L1-H64"]')
    exp = write_experiment(text, steps=6)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed = tmp_path / "killed"
    for checkpoints in (1, 2):  # SIGKILL once one (then two) checkpoints exist, mid-cell
        proc = _run_cli(["grid", "run", str(exp), "--out", str(killed)], env)
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if len(list(killed.glob("cells/*/checkpoints/last.ckpt"))) + len(list(killed.glob("cells/*/status.json"))) >= checkpoints:
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert any(s.state != "done" for s in StudyFolder(killed).states())
    assert main(["grid", "run", str(exp), "--out", str(killed)]) == 0
    clean = tmp_path / "clean"
    assert main(["grid", "run", str(exp), "--out", str(clean)]) == 0
    cols = ["run", "step", "eval_set", "metric", "value", "tokens_seen"]
    a = pl.read_parquet(killed / "results.parquet").select(cols).sort(cols[:4])
    b = pl.read_parquet(clean / "results.parquet").select(cols).sort(cols[:4])
    assert a.height == b.height == 2 * 3 * 2 * 6 + 10
    assert a.equals(b)
