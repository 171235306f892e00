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


def _first_stage_frames():
    """Three bi-encoder lists on 20 queries: one equal to BM25 on every query, one better on every query,
    one worse on every query; two supervisions so the labels carry the variant."""
    qids = [f"q{i:02d}" for i in range(20)]
    bm25 = np.linspace(0.3, 0.9, 20)
    lists = {"same": bm25, "better": np.minimum(bm25 + 0.1, 1.0) + 0.01, "worse": bm25 - 0.2}
    runs = {"same": ("minilm-1L", "human", 8), "better": ("minilm-6L", "human", 64), "worse": ("minilm-6L", "ict", 64)}
    per_query = pl.DataFrame([{"run": r, "eval_set": "t", "metric": "recall@100", "qid": q, "value": float(v)}
                              for r, vals in {"bm25": bm25, **lists}.items() for q, v in zip(qids, vals)])
    finals = pl.DataFrame([{"run": r, "model": m, "objective": "infonce", "params": 1.0, "supervision": s, "budget": b,
                            "eval_set": "t", "metric": "recall@100", "value": float(lists[r].mean())}
                           for r, (m, s, b) in runs.items()])
    return per_query, finals


def test_each_first_stage_list_against_bm25_keyed_by_system():
    per_query, finals = _first_stage_frames()
    tests = sig.versus_bm25_by_system(per_query, finals, "t", "recall@100")
    assert set(tests) == {("minilm-1L", "infonce", 1.0, "human", 8), ("minilm-6L", "infonce", 1.0, "human", 64),
                          ("minilm-6L", "infonce", 1.0, "ict", 64)}
    same = tests[("minilm-1L", "infonce", 1.0, "human", 8)]
    better = tests[("minilm-6L", "infonce", 1.0, "human", 64)]
    worse = tests[("minilm-6L", "infonce", 1.0, "ict", 64)]
    assert same.p == 1.0 and same.p_holm == 1.0 and same.delta == 0.0 and not same.significant
    assert better.delta > 0 and better.p < 0.001 and better.significant  # all 2^20 flips but one are smaller
    assert worse.delta == pytest.approx(-0.2) and worse.significant
    assert better.p_holm == pytest.approx(min(1.0, 3 * better.p), rel=0.5)  # Holm over the three lists
    # the varying column (supervision) is named; the constant budget of the 6L lists is not left out
    assert worse.system == "`minilm-6L` (infonce; ict, budget 64)" and worse.queries == 20
    assert [t.system for t in sig.versus_bm25(per_query, finals, "t", "recall@100")] == [
        t.system for t in tests.values()]


def test_between_sizes_pairs_the_largest_with_the_smallest_model_of_each_configuration():
    qids = [f"q{i}" for i in range(25)]
    base = np.linspace(0.2, 0.7, 25)
    runs = {"s-list": ("m1", 1.0, "listwise", base), "l-list": ("m3", 3.0, "listwise", base + 0.1),
            "mid-list": ("m2", 2.0, "listwise", base + 0.5),  # the middle size is not compared
            "s-point": ("m1", 1.0, "pointwise", base), "l-point": ("m3", 3.0, "pointwise", base)}
    per_query = pl.DataFrame([{"run": r, "eval_set": "t", "metric": "ndcg@10", "qid": q, "value": float(v)}
                              for r, (_, _, _, vals) in runs.items() for q, v in zip(qids, vals)])
    finals = pl.DataFrame([{"run": r, "model": m, "objective": o, "params": p, "eval_set": "t", "metric": "ndcg@10",
                            "value": float(v.mean())} for r, (m, p, o, v) in runs.items()])
    tests = {t.system: t for t in sig.between_sizes(per_query, finals, "t", "ndcg@10")}
    assert set(tests) == {"`m3` (listwise)", "`m3` (pointwise)"}
    assert tests["`m3` (listwise)"].other == "`m1`" and tests["`m3` (listwise)"].delta == pytest.approx(0.1)
    assert tests["`m3` (listwise)"].significant and not tests["`m3` (pointwise)"].significant
    assert sig.standard_error(pl.DataFrame({"qid": ["a"], "value": [1.0]})) is None
    assert sig.standard_error(pl.DataFrame({"qid": ["a", "b"], "value": [0.0, 2.0]})) == pytest.approx(1.0)


def test_teacher_against_bm25_pairs_its_own_rows_and_ignores_the_models():
    """The distillation teacher's per-query rows (run "teacher") against BM25's, one uncorrected test; the
    students' rows play no part; no teacher rows: no test."""
    qids = [f"q{i}" for i in range(25)]
    rng = np.random.default_rng(3)
    bm25 = rng.uniform(0.2, 0.6, 25)
    runs = {"bm25": bm25, "teacher": bm25 + 0.04, "student": bm25 - 0.3}
    per_query = pl.DataFrame([{"run": r, "eval_set": "t", "metric": "ndcg@10", "qid": q, "value": float(v)}
                              for r, vals in runs.items() for q, v in zip(qids, vals)])
    teacher, base, test = sig.teacher_versus_bm25(per_query, "t", "ndcg@10")
    assert teacher == pytest.approx(bm25.mean() + 0.04) and base == pytest.approx(bm25.mean())
    assert test.delta == pytest.approx(0.04) and test.p_holm == test.p and test.significant and test.queries == 25
    assert sig.teacher_versus_bm25(per_query.filter(pl.col("run") != "teacher"), "t", "ndcg@10") is None
    assert sig.teacher_versus_bm25(per_query, "other-set", "ndcg@10") is None
