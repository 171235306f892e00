"""The run folder and the study folder: names, atomic status, locks, states."""

import json
import multiprocessing
import time

import pytest

from rerank_scaling.errors import UserError
from rerank_scaling.rundir import RunFolder, StudyFolder, to_json


def _hold_lock(path, ready, release):
    with RunFolder(path).lock():
        ready.set()
        release.wait(10)


def test_status_is_written_whole_and_read_back(tmp_path):
    run = RunFolder(tmp_path / "cell")
    assert run.read_status() is None and run.state().state == "pending"
    run.write_status({"state": "done", "seconds": 1.5, "final": {"t:ndcg@10": float("nan")}})
    assert run.read_status() == {"state": "done", "seconds": 1.5, "final": {"t:ndcg@10": None}}
    assert [p.name for p in run.path.iterdir()] == ["status.json"]  # no temporary file left behind


def test_a_torn_status_is_damage_that_repair_removes(tmp_path):
    run = RunFolder(tmp_path / "cell")
    run.path.mkdir()
    run.status.write_text('{"state": "do')
    state = run.state()
    assert state.state == "damaged" and state.reason == "status.json is not a whole status file"
    assert run.read_status() is None
    assert run.repair() == [f"removed {run.status}"] and run.state().state == "pending"


def test_truncated_tables_and_checkpoints_are_damage(tmp_path):
    import polars as pl
    import torch

    run = RunFolder(tmp_path / "cell")
    run.create()
    pl.DataFrame({"step": [1, 2]}).write_parquet(run.metrics)
    torch.save({"global_step": 2}, run.checkpoint)
    assert run.damage() == []
    run.metrics.write_bytes(run.metrics.read_bytes()[:-10])
    run.checkpoint.write_bytes(run.checkpoint.read_bytes()[:50])
    assert run.damaged_files() == {run.metrics: "is truncated", run.checkpoint: "is truncated"}
    run.repair()
    assert not run.metrics.exists() and not run.checkpoint.exists() and run.damage() == []
    run.write_status({"state": "done"})  # a finished run must have its tables
    assert run.damaged_files() == {run.metrics: "is missing", run.baseline: "is missing"}


def test_last_step_skips_a_torn_log_line(tmp_path):
    run = RunFolder(tmp_path / "cell")
    run.create()
    for step in (1, 2, 3):
        run.append_log({"step": step, "loss": 0.5})
    assert run.damage() == []
    with open(run.log, "a") as fh:
        fh.write('{"step": 4, "lo')
    assert run.last_step() == 3
    assert run.damage() == [f"{run.log} has a torn last line"]
    run.trim_log(2)
    assert [json.loads(line)["step"] for line in run.log.read_text().splitlines()] == [1, 2]


def test_a_held_lock_shows_the_cell_running(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(tmp_path / "cell"), ready, release))
    proc.start()
    try:
        assert ready.wait(30)
        assert RunFolder(tmp_path / "cell").is_locked()
        assert RunFolder(tmp_path / "cell").state().state == "running"
    finally:
        release.set()
        proc.join(30)
    deadline = time.time() + 5
    while RunFolder(tmp_path / "cell").is_locked() and time.time() < deadline:
        time.sleep(0.05)
    assert not RunFolder(tmp_path / "cell").is_locked()


def test_study_states_merge_folders_and_planned_cells(tmp_path):
    study = StudyFolder(tmp_path / "study")
    with pytest.raises(UserError, match="not a study folder"):
        study.states()
    import polars as pl

    done = study.cell("a")
    done.create()
    for table in (done.metrics, done.baseline):
        pl.DataFrame({"value": [0.5]}).write_parquet(table)
    done.write_json(done.config, {"steps": 10, "evals": [{"name": "t", "in_domain": True}]})
    done.write_status({"state": "done", "final": {"t:ndcg@10": 0.5}, "seconds": 3})
    states = study.states(planned=[("a", 10), ("b", 20)])
    assert [(s.run, s.state, s.step, s.steps) for s in states] == [("a", "done", 10, 10), ("b", "pending", 0, 20)]
    assert states[0].in_domain == ("t",) and states[0].final == {"t:ndcg@10": 0.5}


def test_json_layout_is_sorted_and_finite():
    assert to_json({"b": float("inf"), "a": [1.0, float("nan")]}) == '{\n  "a": [\n    1.0,\n    null\n  ],\n  "b": null\n}\n'


def test_tables_written_before_the_size_axis_column_read_as_non_embedding(tmp_path):
    import polars as pl

    from rerank_scaling.results import SCHEMA, conform, frame, read_rows

    row = {c: None for c in SCHEMA} | {"run": "r", "model": "m", "params": 7, "metric": "map", "value": 0.5}
    old = frame([row]).drop("size_axis")
    old.write_parquet(tmp_path / "metrics.parquet")
    table = conform(pl.read_parquet(tmp_path / "metrics.parquet"))
    assert dict(table.schema) == SCHEMA and table["size_axis"].to_list() == ["non-embedding"]
    assert read_rows(tmp_path / "metrics.parquet")[0]["size_axis"] == "non-embedding"
