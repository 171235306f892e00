"""The sparse (SPLADE) family on the real pretrained splade-tiny and real Cranfield texts."""

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch

from rerank_scaling.config import EvalSpec, RunConfig
from rerank_scaling.evaluation.checkpoint import evaluate_checkpoint
from rerank_scaling.models import FAMILIES, get_family
from rerank_scaling.pipeline.prepare import prepare

SPLADE_TINY = str(Path(__file__).resolve().parents[3] / "shared" / "models" / "splade-tiny")


@pytest.fixture(scope="module")
def config(shared_root, tmp_path_factory):
    return RunConfig(family="sparse", objective="infonce-hard", ladder="hf", size=SPLADE_TINY, steps=9,
                     max_length=48, max_query_length=32, n_negatives=2, candidates_k=20, rerank_k=10, ce_negatives=5,
                     data_root=str(shared_root), cache_dir=str(tmp_path_factory.mktemp("cache")), budget=8,
                     evals=(EvalSpec("cranfield-test", "cranfield", "test", 5, True),))


@pytest.fixture(scope="module")
def model(config):
    return get_family("sparse").build(config).eval()  # dropout off: encode and embed agree


def test_registered_with_the_in_batch_layout():
    assert FAMILIES["sparse"].layout == "in-batch" and FAMILIES["sparse"].stage == "retrieval"
    assert get_family("sparse").name == "sparse"


def test_splade_tiny_expands_a_real_query(model):
    q = model.encode(["what is the lift of a swept wing at supersonic speed"], "query")
    assert scipy.sparse.issparse(q) and q.shape == (1, 30522)
    terms = set(model.texts.tokenizer.convert_ids_to_tokens(q.indices.tolist()))
    assert {"lift", "swept", "wing", "wings", "lifting"} <= terms  # expansion terms beyond the query's words
    assert 5 < q.nnz < 100


def test_encode_score_and_save_load_agree(model, cranfield, tmp_path):
    queries = [cranfield.queries[q] for q in sorted(cranfield.queries)[:3]]
    docs = [cranfield.docs[d] for d in sorted(cranfield.docs)[:4]]
    Q, D = model.encode(queries, "query", batch_size=2), model.encode(docs, "doc", batch_size=3)
    with torch.no_grad():
        dense_q = model.embed(model.texts.collate(model.texts.encode(queries, True)))
    np.testing.assert_allclose(Q.toarray(), dense_q.numpy(), rtol=1e-5, atol=1e-6)  # input order kept
    pairs_q, pairs_d = [queries[i] for i in (0, 1, 2, 0)], [docs[j] for j in (3, 2, 0, 1)]
    expected = [float(Q[i].multiply(D[j]).sum()) for i, j in ((0, 3), (1, 2), (2, 0), (0, 1))]
    np.testing.assert_allclose(model.score(pairs_q, pairs_d), expected, rtol=1e-5)
    np.testing.assert_allclose(model.similarity(Q, D).numpy(), (Q @ D.T).toarray(), rtol=1e-6)
    model.save(tmp_path / "m")
    again = get_family("sparse").load(tmp_path / "m")
    np.testing.assert_allclose(again.score(pairs_q, pairs_d), expected, rtol=1e-5)


def test_retrieval_is_exact_over_the_corpus_and_reports_sparsity(model, config):
    prepared = prepare(config)
    seen = {}
    encode = model.encode
    model.encode = lambda texts, kind, batch_size=64: seen.setdefault(kind, encode(texts, kind, batch_size))
    try:
        rows, rankings, queries = evaluate_checkpoint(model, prepared.evalsets, config.metrics, {"run": "r"}, depth=10)
    finally:
        del model.encode
    values = {r["metric"]: r["value"] for r in rows}
    es = prepared.evalsets[0]
    qids = sorted(es.collection.queries)
    Q, D = seen["query"], seen["doc"]  # every query and all 1,400 documents, encoded by the evaluation
    assert Q.shape[0] == len(qids) and D.shape[0] == len(es.collection.docs) == 1400
    full = (Q @ D.T).toarray()
    for i, q in enumerate(qids):
        found = rankings[es.name][q]
        assert [s for _, s in found] == pytest.approx(sorted(full[i], reverse=True)[:10], rel=1e-5)
    assert values["active-q"] == pytest.approx(np.diff(Q.indptr).mean())
    assert values["active-d"] == pytest.approx(np.diff(D.indptr).mean())
    df = np.bincount(D.indices, minlength=D.shape[1]) / D.shape[0]
    assert values["flops"] == pytest.approx(np.mean([df[Q[i].indices].sum() for i in range(len(qids))]))
    assert 0 < values["flops"] < values["active-q"] and values["ndcg@10"] > 0.2  # pretrained: it retrieves


def test_penalty_is_the_ramped_weighted_flops_of_the_batch(config, model):
    prepared = prepare(config)
    groups = prepared.train.batch(0, 3)
    batch = model.training_batch(groups, prepared.train.collection)
    assert model.regularizer_warmup == 3  # a third of 9 steps
    scores = model.group_scores(batch)
    assert scores.shape == (3, 9)
    q, d = (t.detach() for t in model._last)
    full = 0.05 * float((q.mean(0) ** 2).sum()) + 0.04 * float((d.mean(0) ** 2).sum())
    assert float(model.penalty(3)) == pytest.approx(full, rel=1e-5)
    model.group_scores(batch)
    assert float(model.penalty(1)) == pytest.approx(full / 9, rel=1e-5)
    with pytest.raises(RuntimeError):
        model.penalty(1)  # one penalty per scored batch


def test_minilm_head_starts_lexical_and_sparse(cranfield):
    """MiniLM ships no MLM head: the new one starts lexical (each token's top term is itself) and sparse
    (about 1% of the vocabulary active per text), not as a random head that activates nearly every term."""
    from rerank_scaling.models.backbone import LEXICAL_HEAD_BIAS, load_backbone
    from rerank_scaling.models.ladder import ModelSpec
    from rerank_scaling.models.sparse import SparseEncoder

    mlm, tokenizer = load_backbone(ModelSpec("minilm", "1L"), pooling="mlm")
    head = mlm.cls.predictions
    assert torch.equal(head.transform.dense.weight, torch.eye(384)) and bool((head.bias == LEXICAL_HEAD_BIAS).all())
    encoder = SparseEncoder(mlm.eval(), tokenizer, max_length=48, max_query_length=32)
    docs = [cranfield.docs[d] for d in sorted(cranfield.docs)[:20]]
    vectors = encoder.encode(docs, "doc")
    active = vectors.getnnz(axis=1)
    assert 0 < active.min() and active.max() < 0.02 * 30522  # sparse from step 0
    batch = encoder.texts.collate(encoder.texts.encode(docs[:4], False))
    with torch.no_grad():
        logits = mlm(**batch).logits
    real = batch["attention_mask"].bool()
    top = logits.argmax(-1)[real]
    assert (top == batch["input_ids"][real]).float().mean() > 0.9  # the token itself leads
    own = {int(i) for i in batch["input_ids"][0][real[0]]} - set(tokenizer.all_special_ids)
    assert own <= set(vectors[0].indices.tolist())  # every word of the text is among its active terms
