"""Contrastive entropy: definition, stability and sampling determinism."""

from __future__ import annotations

import math
import random

import pytest

from rerank_scaling.data import Collection
from rerank_scaling.evaluation import (
    ContrastiveSet,
    ce_name,
    contrastive_entropy,
    contrastive_entropy_per_query,
    sample_contrastive_sets,
)


def test_one_positive_two_negatives_matches_log_softmax():
    sets = {"q": ContrastiveSet(positives=["p"], negatives=["n1", "n2"])}
    scores = {"q": {"p": 2.0, "n1": 1.0, "n2": 0.5, "unused": 99.0}}
    expected = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(1.0) + math.exp(0.5)))
    assert contrastive_entropy(scores, sets) == pytest.approx(expected, abs=1e-12)
    assert ce_name(64) == "ce@64"


def test_average_over_positives_then_queries_and_stability():
    sets = {
        "q1": ContrastiveSet(positives=["p1", "p2"], negatives=["n"]),
        "q2": ContrastiveSet(positives=["p"], negatives=["n"]),
    }
    scores = {"q1": {"p1": 0.0, "p2": 1.0, "n": 0.0}, "q2": {"p": 1000.0, "n": 999.0}}
    ce_q1 = (math.log(2) + (math.log(math.e + 1) - 1)) / 2
    ce_q2 = math.log(1 + math.exp(-1))  # huge logits: must not overflow
    per_q = contrastive_entropy_per_query(scores, sets)
    assert per_q["q1"] == pytest.approx(ce_q1, abs=1e-12)
    assert per_q["q2"] == pytest.approx(ce_q2, abs=1e-12)
    assert contrastive_entropy(scores, sets) == pytest.approx((ce_q1 + ce_q2) / 2, abs=1e-12)
    with pytest.raises(ValueError, match="no score for document 'n'"):
        contrastive_entropy({"q1": {"p1": 0.0, "p2": 1.0}, "q2": scores["q2"]}, sets)


def test_sampling_rules_and_determinism():
    cands = {"q": [(f"d{i}", float(100 - i)) for i in range(100)], "empty": []}
    qrels = {
        "q": {"d0": 1, "d5": 2, "far": 1, "d1": 0, "d2": -1},
        "empty": {"x": 1},
        "nopos": {"d0": 0},
    }
    sets = sample_contrastive_sets(cands, qrels, m=10, seed=0)
    assert set(sets) == {"q"}  # no candidates / no positives: left out
    cs = sets["q"]
    assert cs.positives == ["d0", "d5", "far"]  # incl. a positive not among the candidates
    assert len(cs.negatives) == 10 == len(set(cs.negatives))
    assert not set(cs.negatives) & set(cs.positives)
    # same candidates in another order -> same negatives; other seed -> others
    shuffled = cands["q"][:]
    random.Random(3).shuffle(shuffled)
    assert sample_contrastive_sets({"q": shuffled}, qrels, m=10, seed=0)["q"] == cs
    assert sample_contrastive_sets(cands, qrels, m=10, seed=1)["q"] != cs
    # fewer than m available: all of them (judged non-relevant ones included)
    small = sample_contrastive_sets({"q": cands["q"][:6]}, qrels, m=64)["q"]
    assert small.negatives == ["d1", "d2", "d3", "d4"]


def test_same_negatives_for_every_model(cranfield: Collection, tmp_path):
    from rerank_scaling.candidates import bm25_candidates

    cands = bm25_candidates(cranfield, cranfield.queries, k=100, cache_dir=tmp_path)
    sets = sample_contrastive_sets(cands, cranfield.qrels, m=64, seed=0)
    assert sets == sample_contrastive_sets(cands, cranfield.qrels, m=64, seed=0)
    assert len(sets) == 225
    # model A: an oracle scoring positives 1 and negatives 0
    model_a = {q: {**{d: 0.0 for d in cs.negatives}, **{d: 1.0 for d in cs.positives}} for q, cs in sets.items()}
    # model B: constant scores -> CE = log(1 + #negatives) exactly
    model_b = {q: {d: 0.0 for d in cs.positives + cs.negatives} for q, cs in sets.items()}
    ce_a = contrastive_entropy(model_a, sets)
    ce_b = contrastive_entropy(model_b, sets)
    expected_b = sum(math.log(1 + len(cs.negatives)) for cs in sets.values()) / len(sets)
    assert ce_b == pytest.approx(expected_b, abs=1e-9)
    expected_a = sum(math.log(1 + len(cs.negatives) * math.exp(-1)) for cs in sets.values()) / len(sets)
    assert ce_a == pytest.approx(expected_a, abs=1e-9)
    assert ce_a < ce_b


def test_positives_follow_the_relevance_level():
    cands = {"q": [("a", 3.0), ("b", 2.0), ("c", 1.0), ("d", 0.5)]}
    qrels = {"q": {"a": 2, "b": 1, "c": 0}}
    one = sample_contrastive_sets(cands, qrels, m=10)["q"]
    two = sample_contrastive_sets(cands, qrels, m=10, relevance_level=2)["q"]
    assert (one.positives, one.negatives) == (["a", "b"], ["c", "d"])
    assert (two.positives, two.negatives) == (["a"], ["b", "c", "d"])  # grade 1 is below the level: a negative
    assert sample_contrastive_sets(cands, qrels, m=10, relevance_level=3) == {}


def test_corpus_negatives_exclude_positives_and_are_shared_and_seeded():
    from rerank_scaling.evaluation.contrastive import parse_variant, sample_contrastive_sets

    qrels = {"q1": {"d1": 1, "d2": 2}, "q2": {"d3": 1}}
    corpus = [f"d{i}" for i in range(1, 41)]
    a = sample_contrastive_sets({}, qrels, m=8, corpus=corpus, salt="ce-corpus@8")
    b = sample_contrastive_sets({}, qrels, m=8, corpus=corpus, salt="ce-corpus@8")
    assert a == b and set(a) == {"q1", "q2"}  # no candidate list needed
    assert len(a["q1"].negatives) == 8 and not {"d1", "d2"} & set(a["q1"].negatives)
    other = sample_contrastive_sets({}, qrels, m=8, corpus=corpus, salt="ce-corpus@8b")
    assert other["q1"].negatives != a["q1"].negatives  # a variant's own draw
    candidates = {"q1": [(d, 1.0) for d in corpus[:20]]}
    assert sample_contrastive_sets(candidates, qrels, m=5) == sample_contrastive_sets(candidates, qrels, m=5, salt="")
    assert parse_variant("ce@31") == ("candidates", 31) and parse_variant("ce-corpus@256") == ("corpus", 256)
    with pytest.raises(ValueError):
        parse_variant("ce@0")
