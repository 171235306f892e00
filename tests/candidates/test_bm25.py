"""BM25 candidates: cache, determinism, edge cases, and a real baseline."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rerank_scaling.candidates import BM25Settings, bm25_cache_path, bm25_candidates
from rerank_scaling.candidates import bm25 as bm25_mod
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
    assert path.is_file()
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert set(first) == set(cranfield.queries)
    assert all(len(v) == 100 for v in first.values())
    assert all(
        [s for _, s in v] == sorted((s for _, s in v), reverse=True) for v in first.values()
    )

    # second call is served from the cache file, without retrieving
    def boom(*a, **k):
        raise AssertionError("retrieval ran although the cache exists")

    monkeypatch.setattr(bm25_mod, "_retrieve", boom)
    t0 = time.perf_counter()
    second = bm25_candidates(cranfield, cranfield.queries, k=100, cache_dir=tmp_path)
    t_second = time.perf_counter() - t0
    assert second == first
    print(f"\nBM25 Cranfield: computed in {t_first:.2f}s, loaded from cache in {t_second:.3f}s")
    assert json.loads(path.read_text())["k"] == 100

    res = evaluate(first, cranfield.qrels, ("ndcg@10", "map", "mrr@10"))
    print(f"\nBM25 Cranfield top-100 ({BM25Settings()}): {res}")
    assert 0.25 < res["ndcg@10"] < 0.6


def test_corrupt_cache_is_recomputed(tmp_path: Path):
    col = _tiny()
    q = {"q1": "cream"}
    r = bm25_candidates(col, q, k=5, cache_dir=tmp_path)
    path = bm25_cache_path(col, q, 5, BM25Settings(), tmp_path)
    path.write_text("{not json")
    assert bm25_candidates(col, q, k=5, cache_dir=tmp_path) == r
    assert json.loads(path.read_text())["ranking"]["q1"][0][0] == "a"
