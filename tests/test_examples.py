"""Training groups on real Cranfield qrels and BM25 candidates."""

import pytest

from rerank_scaling.candidates import bm25_candidates
from rerank_scaling.errors import UserError
from rerank_scaling.examples import build_training_set


@pytest.fixture(scope="module")
def train_set(cranfield, data_cache):
    sub = cranfield.subset(sorted(cranfield.queries)[:30])
    cands = bm25_candidates(cranfield, sub.queries, k=100, cache_dir=data_cache)
    return build_training_set(sub, cands, n_negatives=10, seed=3), cands


def test_groups_put_the_positive_first_and_hard_negatives_after(train_set, cranfield):
    tset, cands = train_set
    for position in range(25):
        g = tset.group_at(position)
        assert len(g.doc_ids) == 11 and len(set(g.doc_ids)) == 11
        assert g.labels[0] > 0 and all(label == 0 for label in g.labels[1:])
        relevant = cranfield.positives(g.qid)
        assert g.doc_ids[0] in relevant
        pool = {d for d, _ in cands[g.qid]}
        assert all(d not in relevant and d in pool for d in g.doc_ids[1:])


def test_stream_is_a_pure_function_of_seed_and_position(train_set, cranfield):
    tset, cands = train_set
    again = build_training_set(tset.collection, cands, n_negatives=10, seed=3)
    assert [again.group_at(p) for p in (0, 7, 500)] == [tset.group_at(p) for p in (0, 7, 500)]
    assert tset.batch(4, 8) == [tset.group_at(32 + i) for i in range(8)]
    other = build_training_set(tset.collection, cands, n_negatives=10, seed=4)
    assert [other.group_at(p) for p in range(10)] != [tset.group_at(p) for p in range(10)]


def test_each_epoch_visits_every_instance_once(train_set):
    tset, _ = train_set
    n = len(tset)
    seen = sorted((g.qid, g.doc_ids[0]) for g in (tset.group_at(n + i) for i in range(n)))
    assert seen == sorted((q, d) for q, d, _ in tset.instances)


def test_short_candidate_lists_are_topped_up_from_the_corpus(cranfield):
    sub = cranfield.subset(sorted(cranfield.queries)[:3])
    cands = {q: [] for q in sub.queries}  # empty candidate lists
    tset = build_training_set(sub, cands, n_negatives=5, seed=0)
    g = tset.group_at(0)
    assert len(g.doc_ids) == 6 and not set(g.doc_ids[1:]) & set(cranfield.positives(g.qid))
    assert tset.info["queries_with_short_candidate_pool"] == 3


def test_no_positive_anywhere_is_a_user_error(cranfield):
    sub = cranfield.subset(sorted(cranfield.queries)[:2])
    sub.qrels = {q: {d: 0 for d in docs} for q, docs in sub.qrels.items()}
    with pytest.raises(UserError, match="no training query"):
        build_training_set(sub, {}, n_negatives=3)
