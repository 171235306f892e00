import numpy as np
import pytest

from rerank_scaling.errors import UserError
from rerank_scaling.scaling import allocate
from rerank_scaling.scaling.synthetic import synthetic_table, truth


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
