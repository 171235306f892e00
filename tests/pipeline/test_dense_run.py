"""A bi-encoder run end to end on the real shared data: first-stage retrieval rows, `train` and `grid run`."""

import dataclasses
from pathlib import Path

import polars as pl
import pytest

from rerank_scaling.candidates import read_trec_run
from rerank_scaling.cli import main
from rerank_scaling.config import EvalSpec, RunConfig, load_experiment
from rerank_scaling.evaluation.checkpoint import evaluate_checkpoint
from rerank_scaling.models import get_family
from rerank_scaling.pipeline.prepare import prepare, training_set
from rerank_scaling.pipeline.run import train_run
from rerank_scaling.results import SCHEMA, collect

from tiny_experiment import TINY

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dense(shared_root, tmp_path_factory):
    return RunConfig(
        family="bi-encoder", objective="infonce-hard", ladder="scratch", size="L1-H64", steps=4, eval_every=2,
        batch_size=4, n_negatives=2, max_length=64, candidates_k=30, rerank_k=10, ce_negatives=5,
        ce_variants=("ce-corpus@16",), lr=1e-3, warmup_steps=1, data_root=str(shared_root),
        cache_dir=str(tmp_path_factory.mktemp("cache")), budget=20, supervision="mixed",
        evals=(EvalSpec("cranfield-test", "cranfield", "test", 6, True),
               EvalSpec("cranfield-dev", "cranfield", "dev", 4, True)),
    )


def test_a_bi_encoder_run_retrieves_from_the_whole_corpus(dense, tmp_path):
    status = train_run(dense, tmp_path / "run")
    assert status["state"] == "done", status
    df = pl.read_parquet(tmp_path / "run" / "metrics.parquet")
    assert dict(df.schema) == SCHEMA
    assert set(df["metric"]) == {"ndcg@10", "map", "mrr@10", "recall@100", "p@10", "ce@5", "ce-corpus@16"}
    assert df.height == 2 * 2 * 7 and df["run"][0].startswith("bi-encoder__scratch-L1-H64__infonce-hard__mixed")
    assert (df["params"] > 0).all() and (df["flops"] > 0).all()
    # the lists are the model's top k of all 1,400 documents, not a reordering of BM25's candidates
    bm25 = prepare(dense).evalsets[0]
    dense_run = read_trec_run(tmp_path / "run" / "runs" / "cranfield-test.trec")
    assert all(len(docs) == dense.candidates_k for docs in dense_run.values())
    outside = {d for q, docs in dense_run.items() for d, _ in docs} - {
        d for q in bm25.candidates for d, _ in [*bm25.candidates[q], *bm25.tail[q]]}
    assert outside
    # chaining stages: the dense lists are the candidate stage of a reranker cell
    reranker = dataclasses.replace(dense, family="cross-encoder", family_settings=None, objective="listwise",
                                   ce_variants=(), candidates_run=str(tmp_path / "run" / "runs" / "cranfield-test.trec"),
                                   evals=dense.evals[:1])
    assert train_run(reranker, tmp_path / "rerank")["state"] == "done"
    reranked = read_trec_run(tmp_path / "rerank" / "runs" / "cranfield-test.trec")
    assert {q: {d for d, _ in docs} for q, docs in reranked.items()} == {
        q: {d for d, _ in docs} for q, docs in dense_run.items()}


def test_exact_search_is_the_top_of_every_document_scored(dense):
    prepared = prepare(dense)
    model = get_family("bi-encoder").build(dense)
    calls = []
    encode = model.encode
    model.encode = lambda texts, kind, batch_size=64: (calls.append(kind), encode(texts, kind, batch_size))[1]
    rows, rankings, _ = evaluate_checkpoint(model, prepared.evalsets, dense.metrics, {"run": "r"}, depth=10)
    assert calls.count("doc") == 1  # the corpus is encoded once for both Cranfield sets
    es = prepared.evalsets[0]
    docs = sorted(es.collection.docs)
    for qid in sorted(es.collection.queries)[:2]:
        scores = dict(zip(docs, model.score([es.collection.queries[qid]] * len(docs),
                                            [es.collection.docs[d] for d in docs]).tolist()))
        found = dict(rankings[es.name][qid])
        assert len(found) == 10 and all(abs(found[d] - scores[d]) < 1e-4 for d in found)
        # nothing left out scores higher (up to the float rounding of a different batching)
        assert max(v for d, v in scores.items() if d not in found) <= min(found.values()) + 1e-4
    assert {r["metric"] for r in rows} >= {"recall@100", "ce-corpus@16"}


def test_train_cli_and_grid_run_take_the_bi_encoder(write_experiment, tmp_path, shared_root):
    argv = ["train", "--out", str(tmp_path / "one"), "--family", "bi-encoder", "--objective", "infonce",
            "--ladder", "scratch", "--size", "L1-H64", "--steps", "2", "--eval-every", "2", "--batch-size", "3",
            "--max-length", "48", "--candidates-k", "20", "--rerank-k", "10", "--ce-negatives", "4", "--budget", "6",
            "--data-root", str(shared_root), "--cache-dir", str(tmp_path / "cache"), "--threads", "1",
            "--eval", "cranfield-test=cranfield:test"]
    assert main(argv) == 0
    assert pl.read_parquet(tmp_path / "one" / "metrics.parquet").height > 0
    text = TINY.replace('objectives = ["pointwise", "listwise"]', 'objectives = ["infonce", "infonce-corpus"]'
                        '\nfamily = "bi-encoder"').replace("[train]", "[train]\ncorpus_negatives = 8")
    out = tmp_path / "study"
    assert main(["grid", "run", str(write_experiment(text, steps=2)), "--out", str(out)]) == 0
    table, _ = collect(out)
    runs = set(table.filter(pl.col("model") != "bm25")["run"])
    assert len(runs) == 4 and all(r.startswith("bi-encoder__") for r in runs)
    assert main(["report", str(out), "--out", str(out / "REPORT.md")]) == 0
    assert "each bi-encoder's own top-20 of the whole corpus" in (out / "REPORT.md").read_text()


def test_the_dense_demo_is_the_minilm_ladder_of_bi_encoders_on_the_shared_data(shared_root):
    exp = load_experiment(ROOT / "experiments" / "dense-demo.toml")
    # every rung a truncation of all-MiniLM-L6-v2 (the whole 6-layer model would be the only intact one)
    assert sorted({c.size for c in exp.cells}) == ["1L", "2L", "4L"] and len(exp.cells) == 30
    budgets = sorted({c.budget for c in exp.cells})
    assert budgets == [4, 8, 16, 32, 64] and budgets[-1] / budgets[0] >= 16  # nested budgets: the data axis
    assert {(c.family, c.objective) for c in exp.cells} == {("bi-encoder", "infonce")}
    assert {c.supervision for c in exp.cells} == {"human", "ict"}  # annotation quality
    assert Path(exp.cells[0].data_root).resolve() == shared_root.resolve()
    # every cell trains the same groups, enough that the largest human budget is seen about twice: a
    # larger budget is more data, not fewer repeats of a fixed training
    assert len({(c.steps, c.batch_size) for c in exp.cells}) == 1
    largest = next(c for c in exp.cells if c.supervision == "human" and c.budget == budgets[-1])
    tset, _ = training_set(largest)
    assert largest.steps * largest.batch_size >= 1.9 * len(tset)
