"""Ranking metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from rerank_scaling.errors import UserError
from rerank_scaling.evaluation import evaluate, evaluate_per_query, ranx_metric_name

# d1 is judged non-relevant (-1), d2 grade 2, d3 grade 1, d4 relevant but not retrieved
RANKING = {"q": [("d1", 3.0), ("d2", 2.0), ("d3", 1.0)]}
QRELS = {"q": {"d1": -1, "d2": 2, "d3": 1, "d4": 1}}


def test_hand_computed_values():
    res = evaluate(RANKING, QRELS, ("ndcg@3", "map", "mrr@10", "recall@100", "p@10", "p@2"))
    dcg = 0 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert res["ndcg@3"] == pytest.approx(dcg / idcg, abs=1e-12)
    assert res["ndcg@3"] == pytest.approx(0.5627273, abs=1e-6)
    assert res["map"] == pytest.approx((1 / 2 + 2 / 3) / 3, abs=1e-12)
    assert res["mrr@10"] == pytest.approx(0.5)
    assert res["recall@100"] == pytest.approx(2 / 3)
    assert res["p@10"] == pytest.approx(0.2)
    assert res["p@2"] == pytest.approx(0.5)
    assert list(res) == ["ndcg@3", "map", "mrr@10", "recall@100", "p@10", "p@2"]


def test_non_positive_grades_are_non_relevant():
    same = {"q": {"d2": 2, "d3": 1, "d4": 1}}
    zero = {"q": {"d1": 0, "d2": 2, "d3": 1, "d4": 1}}
    assert evaluate(RANKING, QRELS) == evaluate(RANKING, same) == evaluate(RANKING, zero)


@pytest.mark.parametrize("order", [[("b", 1.0), ("a", 1.0)], [("a", 1.0), ("b", 1.0)]])
def test_ties_broken_by_doc_id(order):
    # equal scores: 'a' ranks before 'b' whatever the list / dict order
    assert evaluate({"q": order}, {"q": {"a": 1}}, ("mrr@10", "ndcg@1")) == {"mrr@10": 1.0, "ndcg@1": 1.0}
    assert evaluate({"q": order}, {"q": {"b": 1}}, ("mrr@10", "ndcg@1")) == {"mrr@10": 0.5, "ndcg@1": 0.0}


def test_scores_not_list_order_decide():
    # a list given out of score order is re-ordered by score
    assert evaluate({"q": [("x", 0.1), ("y", 0.9)]}, {"q": {"y": 1}}, ("mrr@10",))["mrr@10"] == 1.0


def test_absent_and_unjudged_queries():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}
    ranking = {"q1": [("a", 1.0)], "q9": [("z", 1.0)], "q3": [("c", 1.0)]}
    per_q = evaluate_per_query(ranking, qrels, ("ndcg@10", "map"))
    # q2 absent from the ranking counts 0; q3 has no relevant doc, q9 no judgments: not evaluated
    assert per_q == {"ndcg@10": {"q1": 1.0, "q2": 0.0}, "map": {"q1": 1.0, "q2": 0.0}}
    assert evaluate(ranking, qrels, ("ndcg@10",)) == {"ndcg@10": 0.5}
    assert evaluate({"q1": []}, qrels, ("map",)) == {"map": 0.0}


def test_metric_names():
    assert ranx_metric_name("p@10") == "precision@10"
    assert ranx_metric_name("NDCG@10") == "ndcg@10"
    assert ranx_metric_name("map") == "map"
    with pytest.raises(UserError, match=r"unknown metric 'bleu' \(valid: ndcg, ndcg@k, map"):
        evaluate(RANKING, QRELS, ("bleu",))
    with pytest.raises(UserError, match="needs a cut-off"):
        ranx_metric_name("p")
    with pytest.raises(UserError, match="no relevant judgment"):
        evaluate(RANKING, {"q": {"d1": -1}})


# q1: a (grade 2) under b (grade 1); q2 has only a grade-1 document
LEVELS_RUN = {"q1": [("b", 3.0), ("a", 2.0), ("c", 1.0)], "q2": [("d", 1.0)]}
LEVELS_QRELS = {"q1": {"a": 2, "b": 1, "c": 0}, "q2": {"d": 1}}
NDCG_Q1 = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))  # graded gains at any level: 0.8597


def test_relevance_level_1_counts_every_positive_grade():
    res = evaluate(LEVELS_RUN, LEVELS_QRELS, ("mrr@10", "map", "recall@1", "p@2", "ndcg@10"))
    # q1: b at rank 1 is relevant; q2: d at rank 1
    assert res["mrr@10"] == 1.0 and res["map"] == 1.0 and res["p@2"] == pytest.approx((1.0 + 0.5) / 2)
    assert res["recall@1"] == pytest.approx((1 / 2 + 1) / 2)
    assert res["ndcg@10"] == pytest.approx((NDCG_Q1 + 1) / 2)
    assert evaluate(LEVELS_RUN, LEVELS_QRELS, ("mrr@10", "map"), relevance_level=1) == {
        k: res[k] for k in ("mrr@10", "map")}


def test_relevance_level_2_is_trec_dl_binary_relevance_and_keeps_graded_ndcg():
    per_q = evaluate_per_query(LEVELS_RUN, LEVELS_QRELS, ("mrr@10", "map", "recall@1", "p@2", "ndcg@10"),
                               relevance_level=2)
    assert set(per_q["map"]) == {"q1"}  # q2 has no grade >= 2: not evaluated
    q1 = {m: v["q1"] for m, v in per_q.items()}
    # only a (rank 2) is relevant: MRR 1/2, AP 1/2, recall@1 0, P@2 1/2; NDCG still gains 1 from b
    assert q1 == pytest.approx({"mrr@10": 0.5, "map": 0.5, "recall@1": 0.0, "p@2": 0.5, "ndcg@10": NDCG_Q1})
    assert NDCG_Q1 == pytest.approx(0.85972, abs=1e-5)


@pytest.mark.parametrize("level", [0, -1, 1.5, True])
def test_bad_relevance_level_is_a_one_line_user_error(level):
    with pytest.raises(UserError, match=f"relevance_level must be a positive integer, got {level!r}"):
        evaluate(LEVELS_RUN, LEVELS_QRELS, ("map",), relevance_level=level)


def test_no_query_at_the_level_is_a_user_error():
    with pytest.raises(UserError, match="no relevant judgment .grade >= relevance_level 3."):
        evaluate(LEVELS_RUN, LEVELS_QRELS, ("map",), relevance_level=3)
