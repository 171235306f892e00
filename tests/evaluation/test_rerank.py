"""The reranked list: the model orders the head, the first stage's tail follows unchanged."""

import pytest

from rerank_scaling.data import Collection
from rerank_scaling.evaluation.metrics import mean_values
from rerank_scaling.evaluation.rerank import EvalSet, rerank_per_query

COLLECTION = Collection(name="toy", docs={f"d{i}": f"text {i}" for i in range(1, 7)}, titles={},
                        queries={"q": "query"}, qrels={"q": {"d2": 1, "d6": 1}})


def _evalset():
    first_stage = [(f"d{i}", 10.0 - i) for i in range(1, 7)]  # d1 > d2 > ... > d6
    return EvalSet("toy", COLLECTION, {"q": first_stage[:3]}, {}, "ce@1", True, tail={"q": first_stage[3:]})


def test_head_is_reordered_and_tail_kept_below_it_in_first_stage_order():
    scores = {"q": {"d1": 0.1, "d2": 0.9, "d3": 0.5}}
    ranking, per_query = rerank_per_query(scores, _evalset(), ("recall@5", "recall@100", "map"))
    values = mean_values(per_query)
    assert [d for d, _ in ranking["q"]] == ["d2", "d3", "d1", "d4", "d5", "d6"]
    assert all(a[1] > b[1] for a, b in zip(ranking["q"], ranking["q"][1:]))  # strictly decreasing
    # d6 (relevant) is only in the tail: recall@5 misses it, recall@100 counts it
    assert values["recall@5"] == pytest.approx(0.5)
    assert values["recall@100"] == pytest.approx(1.0)
    # MAP over the whole list: relevant at ranks 1 and 6 -> (1/1 + 2/6) / 2
    assert values["map"] == pytest.approx((1.0 + 2 / 6) / 2)


def test_tail_scores_stay_below_a_head_of_large_scores():
    scores = {"q": {"d1": -3e9, "d2": -2e9, "d3": -1e9}}
    ranking, _ = rerank_per_query(scores, _evalset(), ("map",))
    assert [d for d, _ in ranking["q"]] == ["d3", "d2", "d1", "d4", "d5", "d6"]
    assert all(a[1] > b[1] for a, b in zip(ranking["q"], ranking["q"][1:]))
