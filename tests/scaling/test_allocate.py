import numpy as np
import pytest

from rerank_scaling.errors import UserError
from rerank_scaling.scaling import allocate
from benchmarks.synthetic import synthetic_table, truth


def test_allocation_matches_truth_optimum(study):
    budget = 2e17
    (a,) = allocate(study, "ndcg@10", budget, objective="listwise", n_boot=50)
    t = truth("ndcg@10", "listwise")
    # brute-force optimum of the true law on the same budget line (384 tokens/example)
    n = np.geomspace(1e6, 4e9, 4000)
    d = budget / (6 * n * 384)
    best = n[np.argmax(t.mean(n, d))]
    assert a.tokens_per_example == 384
    assert a.train_flops == pytest.approx(budget, rel=1e-9)
    assert abs(np.log(a.params / best)) < np.log(2.0)  # within a factor 2 in N
    assert abs(a.predicted - t.mean(a.params, a.examples)) < 0.01
    assert a.lower < a.predicted < a.upper
    assert a.equal_compute and a.best_grid is not None
    for p in a.equal_compute:
        assert abs(np.log(p.flops / budget)) <= np.log(1.25)


def test_inference_cost_shrinks_the_model(study):
    (train_only,) = allocate(study, "ndcg@10", 2e17, objective="listwise", n_boot=0)
    (served,) = allocate(study, "ndcg@10", 2e17, objective="listwise", n_boot=0,
                         inference_queries=1e6, candidates=100)
    assert served.params < train_only.params
    assert served.inference_flops + served.train_flops == pytest.approx(2e17, rel=1e-9)


def test_needs_tokens_per_example():
    df = synthetic_table(objectives=("listwise",), checkpoints=3, metrics=("map",)).drop("tokens_seen")
    with pytest.raises(UserError, match="--tokens-per-example"):
        allocate(df, "map", 1e17)
    (a,) = allocate(df, "map", 1e17, tokens_per_example=256, n_boot=0)
    assert a.tokens_per_example == 256


def test_inference_cost_per_parameter_by_hand():
    from rerank_scaling.scaling.allocate import inference_per_param

    # a reranker: 1,000 queries x 100 candidates x 96 tokens a pair x 2 FLOPs
    assert inference_per_param("rerank", 1000, candidates=100, tokens_per_pair=96) == 2 * 96 * 100 * 1000
    # a bi-encoder: 1,000 queries of 32 tokens online + Cranfield's 1,400 documents of 128 tokens offline
    assert inference_per_param("retrieval", 1000, query_tokens=32, doc_tokens=128,
                               corpus_size=1400) == 2 * (32 * 1000 + 128 * 1400) == 422_400
    assert inference_per_param("retrieval", 0, doc_tokens=128, corpus_size=1400) == 358_400  # offline only


@pytest.mark.parametrize("kwargs, message", [
    (dict(stage="retrieval", queries=10, doc_tokens=128), "--query-tokens"),
    (dict(stage="retrieval", corpus_size=5, query_tokens=32), "--corpus-size 5 needs --doc-tokens"),
    (dict(stage="retrieval", queries=10, query_tokens=32, tokens_per_pair=96), "--tokens-per-pair = 96"),
    (dict(stage="rerank", queries=10, tokens_per_pair=96, corpus_size=1400), "--corpus-size = 1400"),
    (dict(stage="dense", queries=10), "--stage must be one of rerank, retrieval, got 'dense'"),
])
def test_inference_cost_bad_input(kwargs, message):
    from rerank_scaling.scaling.allocate import inference_per_param

    with pytest.raises(UserError, match=message):
        inference_per_param(**kwargs)


def test_bi_encoder_inference_shrinks_the_model(study):
    """Fang et al.'s finding as a check: counting a retriever's inference (1e9 queries of 32 tokens, a
    corpus of 8.8M documents of 128 tokens) moves the compute-optimal N down; the budget is spent exactly."""
    budget = 2e17
    (train_only,) = allocate(study, "ndcg@10", budget, objective="listwise", n_boot=0)
    (served,) = allocate(study, "ndcg@10", budget, objective="listwise", n_boot=0, stage="retrieval",
                         inference_queries=1e9, query_tokens=32, doc_tokens=128, corpus_size=8.8e6)
    per_param = 2 * (32 * 1e9 + 128 * 8.8e6)
    assert served.stage == "retrieval" and train_only.inference_flops == 0
    assert served.inference_flops == pytest.approx(per_param * served.params, rel=1e-12)
    assert served.train_flops + served.inference_flops == pytest.approx(budget, rel=1e-9)
    assert served.examples == pytest.approx((budget - per_param * served.params) / (6 * served.params * 384))
    assert served.params < train_only.params
