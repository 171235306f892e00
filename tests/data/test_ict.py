"""Inverse-cloze weak queries on the real collections, and a training set built from them."""

import pytest

from rerank_scaling.config import EvalSpec, RunConfig
from rerank_scaling.data.weak import ict_queries, ict_source
from rerank_scaling.errors import UserError
from rerank_scaling.pipeline.prepare import training_set


def test_each_query_is_a_sentence_cut_out_of_its_document(cranfield):
    ict = ict_queries(cranfield)
    assert len(ict.queries) > 1300 and ict.info["supervision"] == "ict"
    for qid in sorted(ict.queries)[:200]:
        source, sentence = ict_source(qid), ict.queries[qid]
        (positive,) = ict.qrels[qid]
        assert positive == qid and ict.qrels[qid][positive] == 1
        assert sentence in " ".join(cranfield.docs[source].split())
        assert sentence not in ict.docs[positive]
        assert len(ict.docs[positive]) < len(cranfield.docs[source])
    assert set(cranfield.docs) < set(ict.docs) and not any(d.startswith("ict:") for d in cranfield.docs)
    assert ict_queries(cranfield).queries == ict.queries  # the same sentences in every run
    assert ict_queries(cranfield, seed=1).queries != ict.queries


def test_a_corpus_without_punctuation_is_a_one_line_error(vaswani):
    with pytest.raises(UserError, match="no document with two sentences or more") as info:
        ict_queries(vaswani)
    assert "\n" not in str(info.value)


def test_ict_training_set_keeps_the_source_document_out_of_the_negatives(shared_root, tmp_path):
    config = RunConfig(supervision="ict", budget=40, n_negatives=3, candidates_k=20, rerank_k=10, data_root=str(shared_root),
                       cache_dir=str(tmp_path), evals=(EvalSpec("cranfield-test", "cranfield", "test", 3, True),))
    tset, info = training_set(config)
    assert info["supervision"] == "ict" and tset.info["queries"] == 40
    for position in range(40):
        group = tset.group_at(position)
        assert group.doc_ids[0] == group.qid and ict_source(group.qid) not in group.doc_ids
    assert RunConfig(supervision="ict").run_id.endswith("__ict__ball__s0")
