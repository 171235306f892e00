"""BM25 candidates: cache, determinism, edge cases, and a real baseline."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

import numpy as np

from rerank_scaling.candidates import BM25Settings, bm25_cache_path, bm25_candidates, bm25_index
from rerank_scaling.candidates import bm25 as bm25_mod
from rerank_scaling.candidates.tokens import tokenizer
from rerank_scaling.data import Collection
from rerank_scaling.errors import UserError


def _tiny() -> Collection:
    docs = {
        "b": "apple pie with cream",
        "a": "apple pie with cream",
        "c": "banana bread",
        "d": "apples and pears",
    }
    return Collection(name="tiny", docs=docs, titles={d: "" for d in docs}, queries={}, qrels={})


def test_ties_broken_by_doc_id_and_empty_queries(tmp_path: Path):
    col = _tiny()
    queries = {"q1": "apple", "q2": "zzzz unknownword", "q3": "the of and", "q4": "banana"}
    r = bm25_candidates(col, queries, k=10, cache_dir=tmp_path)
    assert list(r) == ["q1", "q2", "q3", "q4"]
    docs_q1 = [d for d, _ in r["q1"]]
    # 'a' and 'b' have equal scores: doc_id order ('d' matches too when stemming)
    i = docs_q1.index("a")
    assert docs_q1[i + 1] == "b"
    assert r["q1"][i][1] == r["q1"][i + 1][1] > 0
    assert r["q2"] == [] and r["q3"] == []
    assert [d for d, _ in r["q4"]] == ["c"]
    # tie at the cut-off is resolved by doc_id too
    assert [d for d, _ in bm25_candidates(col, {"q1": "cream"}, k=1, cache_dir=tmp_path)["q1"]] == ["a"]


def test_settings_are_frozen_and_in_cache_key(tmp_path: Path):
    s = BM25Settings()
    with pytest.raises(Exception):
        s.k1 = 1.2  # type: ignore[misc]
    col = _tiny()
    p1 = bm25_cache_path(col, {"q": "apple"}, 10, s, tmp_path)
    p2 = bm25_cache_path(col, {"q": "apple"}, 10, BM25Settings(k1=1.2), tmp_path)
    p3 = bm25_cache_path(col, {"q": "apple"}, 20, s, tmp_path)
    p4 = bm25_cache_path(col, {"q": "apples"}, 10, s, tmp_path)
    assert len({p1, p2, p3, p4}) == 4
    assert p1.parent == tmp_path / "candidates"
    with pytest.raises(UserError, match="k must be a positive integer"):
        bm25_candidates(col, {"q": "apple"}, k=0, cache_dir=tmp_path)


def test_cranfield_baseline_and_cache(cranfield: Collection, tmp_path: Path, monkeypatch):
    from rerank_scaling.evaluation import evaluate

    t0 = time.perf_counter()
    first = bm25_candidates(cranfield, cranfield.queries, k=100, cache_dir=tmp_path)
    t_first = time.perf_counter() - t0
    path = bm25_cache_path(cranfield, cranfield.queries, 100, BM25Settings(), tmp_path)
    assert (path / "candidates.json").is_file()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left
    assert set(first) == set(cranfield.queries)
    assert all(len(v) == 100 for v in first.values())
    assert all(
        [s for _, s in v] == sorted((s for _, s in v), reverse=True) for v in first.values()
    )
    # memory-mapped, read-only (an array read into memory would be writeable)
    assert not first.rows.flags.writeable and first.rows.dtype == np.int32 and first.scores.dtype == np.float32

    # second call is served from the cache folder, without opening the index
    def boom(*a, **k):
        raise AssertionError("retrieval ran although the cache exists")

    monkeypatch.setattr(bm25_mod, "bm25_index", boom)
    t0 = time.perf_counter()
    second = bm25_candidates(cranfield, cranfield.queries, k=100, cache_dir=tmp_path)
    t_second = time.perf_counter() - t0
    assert second == first
    print(f"\nBM25 Cranfield: computed in {t_first:.2f}s, loaded from cache in {t_second:.3f}s")
    assert json.loads((path / "candidates.json").read_text())["k"] == 100

    res = evaluate(dict(first), cranfield.qrels, ("ndcg@10", "map", "mrr@10"))
    print(f"\nBM25 Cranfield top-100 ({BM25Settings()}): {res}")
    assert 0.25 < res["ndcg@10"] < 0.6


def test_corrupt_cache_is_recomputed(tmp_path: Path):
    col = _tiny()
    q = {"q1": "cream"}
    r = dict(bm25_candidates(col, q, k=5, cache_dir=tmp_path))
    path = bm25_cache_path(col, q, 5, BM25Settings(), tmp_path)
    (path / "rows.npy").write_bytes(b"not an array")
    assert bm25_candidates(col, q, k=5, cache_dir=tmp_path) == r
    assert bm25_candidates(col, q, k=5, cache_dir=tmp_path)["q1"][0][0] == "a"


def test_index_is_built_once_per_corpus_and_shared_by_query_sets(cranfield: Collection, tmp_path: Path,
                                                                 monkeypatch):
    """Two query sets (and the two halves of a split) over one corpus: one saved index, searched by
    both; a third call with new queries opens it instead of building again."""
    from rerank_scaling.candidates import index as index_mod

    qids = sorted(cranfield.queries)
    a = bm25_candidates(cranfield, {q: cranfield.queries[q] for q in qids[:100]}, k=20, cache_dir=tmp_path)
    folders = list((tmp_path / "bm25").iterdir())
    assert len(folders) == 1 and (folders[0] / "index.json").is_file()
    assert not bm25_index(cranfield, cache_dir=tmp_path).data.flags.writeable  # memory-mapped

    def no_build(*args, **kwargs):
        raise AssertionError("the index was built again")

    monkeypatch.setattr(index_mod, "build_index", no_build)
    b = bm25_candidates(cranfield, {q: cranfield.queries[q] for q in qids[100:]}, k=20, cache_dir=tmp_path)
    both = bm25_candidates(cranfield, cranfield.queries, k=20, cache_dir=tmp_path)
    assert dict(both) == {**dict(a), **dict(b)}
    # another query set's collection over the same corpus (a BEIR folder's dev qrels, an ir_datasets
    # sub-id) searches the same index: the folder is the corpus's, not the query set's
    for name in ("cranfield#dev", "cranfield/other/queries"):
        other = dataclasses.replace(cranfield.subset(qids[:7]), name=name)
        assert dict(bm25_candidates(other, other.queries, k=20, cache_dir=tmp_path)) == {q: both[q] for q in qids[:7]}
    assert len(list((tmp_path / "bm25").iterdir())) == 1


def test_threads_do_not_change_the_lists(vaswani: Collection, tmp_path: Path):
    index = bm25_index(vaswani, cache_dir=tmp_path)
    texts = [vaswani.queries[q] for q in sorted(vaswani.queries)]
    one_rows, one_scores = index.search(texts, 50, threads=1)
    two_rows, two_scores = index.search(texts, 50, threads=2)
    assert (one_rows == two_rows).all() and (one_scores == two_scores).all()
    assert (one_rows[:, 0] >= 0).all()


# --------------------------------------------------------------------------- #
# identical lists to the per-query scoring they replace
# --------------------------------------------------------------------------- #
def _reference(docs: dict, queries: dict, k: int, settings: BM25Settings) -> dict:
    """The candidates as the toolkit computed them before the saved index (main at fb51091): bm25s's own
    index over the documents in collection order, ``get_scores_from_ids`` for every document, and the
    top k by score descending, doc_id ascending (``data.types.rank``'s rule, ties at the cut-off too)."""
    import bm25s

    doc_ids = list(docs)
    tok = tokenizer(settings)
    corpus = tok.tokenize([docs[d] for d in doc_ids], update_vocab=True, return_as="ids", show_progress=False)
    vocab = tok.get_vocab_dict()
    retriever = bm25s.BM25(k1=settings.k1, b=settings.b, method=settings.method)
    retriever.index((corpus, vocab), show_progress=False)
    qids = list(queries)
    query_ids = tok.tokenize([queries[q] for q in qids], update_vocab=False, return_as="ids", show_progress=False)
    out = {}
    for qid, ids in zip(qids, query_ids):
        ids = [i for i in ids if i != vocab.get("")]
        if not ids:
            out[qid] = []
            continue
        scores = retriever.get_scores_from_ids(ids)
        ranked = sorted(((doc_ids[i], float(scores[i])) for i in np.flatnonzero(scores > 0)),
                        key=lambda kv: (-kv[1], kv[0]))
        out[qid] = ranked[:k]
    return out


@pytest.mark.parametrize("name", ["cranfield", "vaswani", "cisi"])
def test_identical_lists_to_per_query_scoring(name, request, tmp_path: Path):
    """The saved index and its compiled search give the very lists (ids and float32 scores) of bm25s's
    per-query scoring on the three real collections -- every query, depth 100 -- and at a depth where
    the cut-off falls inside ties; with and without stemming, and for a method with a non-occurrence
    term (bm25+, every document scored)."""
    collection = request.getfixturevalue(name)
    queries = dict(collection.queries)
    queries["no-overlap"] = "zzzz qqqq"  # no known term: an empty list, as before
    for settings, k in ((BM25Settings(), 100), (BM25Settings(stemmer="none"), 7), (BM25Settings(method="bm25+"), 30)):
        ours = bm25_candidates(collection, queries, k=k, settings=settings, cache_dir=tmp_path)
        assert dict(ours) == _reference(collection.docs, queries, k, settings), (name, settings, k)
    assert ours["no-overlap"] == []
