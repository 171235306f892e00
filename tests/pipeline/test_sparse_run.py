"""Distillation end to end on real Cranfield data: a toolkit-trained reranker teaches a sparse and a dense
retriever; its scores are computed once per (teacher, training set) and cached."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rerank_scaling.config import EvalSpec, RunConfig
from rerank_scaling.pipeline import teacher as teacher_module
from rerank_scaling.pipeline.run import train_run

SPLADE_TINY = str(Path(__file__).resolve().parents[3] / "shared" / "models" / "splade-tiny")


def test_a_trained_reranker_teaches_sparse_and_dense_retrievers(shared_root, tmp_path, monkeypatch):
    common = dict(steps=2, eval_every=2, batch_size=3, n_negatives=2, max_length=32, max_query_length=16,
                  candidates_k=10, rerank_k=10, ce_negatives=3, lr=1e-4, warmup_steps=0, budget=6,
                  data_root=str(shared_root), cache_dir=str(tmp_path / "cache"),
                  evals=(EvalSpec("cranfield-test", "cranfield", "test", 4, True),))
    teacher = RunConfig(family="cross-encoder", objective="listwise", ladder="scratch", size="L1-H32",
                        save_model=True, **common)
    assert train_run(teacher, tmp_path / "teacher")["state"] == "done"
    sparse = RunConfig(family="sparse", objective="cl-kd", ladder="hf", size=SPLADE_TINY,
                       teacher=str(tmp_path / "teacher"), **common)
    assert train_run(sparse, tmp_path / "sparse")["state"] == "done"
    caches = list((tmp_path / "cache" / "teacher-scores").glob("*/teacher.json"))
    assert len(caches) == 1
    cached = json.loads(caches[0].read_text())
    scores = np.load(caches[0].parent / "scores.npy")
    assert cached["pairs"] == len(scores) > 6 * 3 and np.ptp(scores) > 0  # every training query x (positives + pool)
    df = pl.read_parquet(tmp_path / "sparse" / "metrics.parquet")
    assert {"active-q", "active-d", "flops", "ndcg@10"} <= set(df["metric"])
    assert (df.filter(pl.col("metric") == "active-q")["value"] > 0).all()
    # the teacher as the students see it, recorded beside BM25 (run "teacher"): here unfused, so its values are
    # the teacher run's own on the same candidates
    own = pl.read_parquet(tmp_path / "teacher" / "per_query.parquet").filter(
        (pl.col("run") == teacher.run_id) & (pl.col("metric") == "ndcg@10")).sort("qid")
    seen = pl.read_parquet(tmp_path / "sparse" / "per_query.parquet").filter(
        (pl.col("run") == "teacher") & (pl.col("metric") == "ndcg@10")).sort("qid")
    assert seen["qid"].to_list() == own["qid"].to_list() and seen.height == 4
    np.testing.assert_allclose(seen["value"].to_numpy(), own["value"].to_numpy(), atol=1e-6)

    # a second student of the same teacher and training set reuses the file: the teacher is not loaded
    monkeypatch.setattr(teacher_module, "load_teacher", lambda *a, **k: pytest.fail("teacher scored again"))
    dense = RunConfig(family="bi-encoder", objective="marginmse", ladder="scratch", size="L1-H32",
                      teacher=str(tmp_path / "teacher"), **common)
    assert train_run(dense, tmp_path / "dense")["state"] == "done"
    assert len(list((tmp_path / "cache" / "teacher-scores").glob("*/teacher.json"))) == 1
    assert pl.read_parquet(tmp_path / "dense" / "per_query.parquet").filter(pl.col("run") == "teacher").height  # cached
    monkeypatch.undo()

    # another teacher (the same run, its weights changed) or another training set: new scores
    (tmp_path / "teacher" / "model" / "head-note.txt").write_text("changed")
    other = RunConfig(**{**dense.__dict__, "budget": 5})
    assert train_run(other, tmp_path / "dense-5")["state"] == "done"
    assert len(list((tmp_path / "cache" / "teacher-scores").glob("*/teacher.json"))) == 2


def test_a_bad_teacher_is_a_one_line_error(shared_root, tmp_path):
    from rerank_scaling.errors import UserError

    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="teacher = '.*empty': a folder without a saved model"):
        teacher_module.load_teacher(str(tmp_path / "empty"))
    with pytest.raises(UserError, match="no such folder"):
        teacher_module.load_teacher(str(tmp_path / "missing"))
