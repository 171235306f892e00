"""Paired randomization tests and Holm's correction, on hand-made values."""

import numpy as np
import polars as pl
import pytest

from rerank_scaling.report import significance as sig


def test_identical_systems_are_not_different():
    a = np.array([0.1, 0.5, 0.9])
    assert sig.randomization_p(a, a) == 1.0


def test_a_consistent_gain_is_significant_and_a_noisy_one_is_not():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 40)
    assert sig.randomization_p(base + 0.05, base) < 0.001  # every query better: all 2^40 flips but one are smaller
    noisy = base + rng.normal(0, 0.2, 40)
    assert sig.randomization_p(noisy, base) > 0.05


def test_exact_p_on_two_queries():
    # differences (+1, +1): of the 4 sign patterns, 2 reach |mean| = 1 -> p = 0.5 (up to sampling)
    assert sig.randomization_p(np.array([1.0, 2.0]), np.array([0.0, 1.0]), flips=20_000) == pytest.approx(0.5, abs=0.02)


def test_holm_by_hand():
    assert sig.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_versus_bm25_and_between_objectives_pair_queries_by_id():
    qids = [f"q{i}" for i in range(30)]
    rng = np.random.default_rng(1)
    bm25 = rng.uniform(0.2, 0.6, 30)
    runs = {"bm25": bm25, "r-list": bm25 + 0.1, "r-point": bm25 + rng.normal(0, 0.05, 30)}
    per_query = pl.DataFrame([{"run": r, "eval_set": "t", "metric": "ndcg@10", "qid": q, "value": float(v)}
                              for r, vals in runs.items() for q, v in zip(qids, vals)])
    finals = pl.DataFrame({"run": ["r-list", "r-point"], "model": ["m", "m"], "objective": ["listwise", "pointwise"],
                           "params": [1, 1], "eval_set": ["t", "t"], "metric": ["ndcg@10", "ndcg@10"],
                           "value": [0.5, 0.4]})
    vs = {t.system: t for t in sig.versus_bm25(per_query, finals, "t", "ndcg@10")}
    assert vs["`m` (listwise)"].delta == pytest.approx(0.1) and vs["`m` (listwise)"].significant
    assert not vs["`m` (pointwise)"].significant
    (pair,) = sig.between_objectives(per_query, finals, "t", "ndcg@10")
    assert pair.system == "`m` (listwise)" and pair.other == "pointwise" and pair.queries == 30
