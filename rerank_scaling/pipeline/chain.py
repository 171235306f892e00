"""One chain end to end: a first stage's ranking of an eval set, reranked to each depth, with its costs.

The two halves are measured apart and joined per query
(:mod:`rerank_scaling.evaluation.chain` defines the rows):

* :func:`first_stage_pass` -- a first stage (BM25's saved index, or a saved
  retriever: the corpus encoded once, offline) ranks every query of the set
  (its top ``k``, ``k`` = the deepest depth and at least 100); per query it
  records the tokens its query encoding reads and the multiply-adds of its
  search, and it times, for the chain's timed queries, encoding one query and
  searching (batch 1), and ``batch_queries`` queries at once (batched). A plain
  dict, saved once per (first stage, eval set) and reused by every reranker
  and depth.
* :func:`rerank_pass` -- a reranker scores each query's top ``max(depths)``
  pairs once; each depth's list is the head ordered by those scores over the
  first stage's tail. It times reranking one query's ``depth`` pairs in one
  forward, and ``batch_queries`` queries' pairs batched.

A timed query's ``chain-ms`` is its first-stage time plus its reranking time;
the row holds the median over the timed queries. Tokenisation is done before
timing (cached, as ``query-ms-*`` does: the same WordPiece work whatever the
model size), so the times are the models' and the search's (BM25's search
tokenises its query itself: its times include that).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import numpy as np
import torch

from rerank_scaling.evaluation.chain import (ALONE_RECALL_DEPTH, CHAIN_FLOPS, CHAIN_MS, CHAIN_MS_BATCHED, FS_RECALL,
                                             chain_flops, chain_list)
from rerank_scaling.evaluation.checkpoint import per_query_rows
from rerank_scaling.evaluation.metrics import evaluate_per_query, mean_values
from rerank_scaling.evaluation.retrieval import search_corpus

WARMUP = 3  # untimed calls before each timing


def list_depth(depths: Sequence[int]) -> int:
    """How deep a first stage ranks: the deepest rerank depth, at least the depth-0 recall's."""
    return max(ALONE_RECALL_DEPTH, *depths)


def timed_queries(qids: Sequence[str], n: int) -> list[str]:
    """The ``n`` queries timed one at a time: the set's, by sorted id, cycled to ``n``."""
    ordered = sorted(qids)
    return [ordered[i % len(ordered)] for i in range(n)]


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _ms(fn) -> float:
    _sync()
    start = time.perf_counter()
    fn()
    _sync()
    return 1000.0 * (time.perf_counter() - start)


class _KeepCorpus:
    """A retriever whose document encodings are kept, in the search's dtype (the timings search them again).
    The whole corpus's encodings are then held at once, on the model's device: 8.8M MS MARCO passages at 768
    dimensions are 27 GB in float32 (``embedding_dtype = "float16"`` halves it)."""

    def __init__(self, model, dtype: str = "float32"):
        from rerank_scaling.evaluation.retrieval import DTYPES

        self.model, self.docs, self.dtype = model, [], DTYPES[dtype]

    def encode(self, texts, kind, batch_size=64):
        out = self.model.encode(texts, kind, batch_size=batch_size)
        if kind == "doc":
            self.docs.append(out.to(self.dtype) if isinstance(out, torch.Tensor) else out)
        return out

    def similarity(self, queries, docs):
        return self.model.similarity(queries, docs)


def _stack(parts: list):
    import scipy.sparse

    if scipy.sparse.issparse(parts[0]):
        return scipy.sparse.vstack(parts, format="csr")
    return torch.cat(parts)


def _search_ops(queries, corpus) -> list[float]:
    """Multiply-adds of each query's search: a dense exhaustive one ``n_docs * dim``; a sparse one the postings
    its active terms visit (the documents in which each is active)."""
    import scipy.sparse

    if scipy.sparse.issparse(corpus):
        df = np.bincount(corpus.tocsr().indices, minlength=corpus.shape[1])
        q = queries.tocsr()
        return [float(df[q.indices[q.indptr[i]:q.indptr[i + 1]]].sum()) for i in range(q.shape[0])]
    return [float(corpus.shape[0] * corpus.shape[1])] * queries.shape[0]


def retriever_pass(model, evalset, k: int, timed: Sequence[str], batch_queries: int, batch_size: int = 64,
                   chunk: int | None = None, dtype: str = "float32") -> dict:
    """A saved retriever's first-stage record of ``evalset`` (module docstring)."""
    from dataclasses import replace

    from rerank_scaling.evaluation.retrieval import CHUNK_DOCS

    queries = evalset.collection.queries
    qids = sorted(queries)
    model.eval()
    model.warm([queries[q] for q in qids], ())
    keep = _KeepCorpus(model, dtype)
    plain = replace(evalset, contrastive={}, variants={})  # the ranking only
    rankings, _, encoded, _ = search_corpus(keep, evalset.collection.docs, [plain], k, batch_size,
                                            chunk or CHUNK_DOCS, dtype)
    corpus = _stack(keep.docs)
    tokens = [len(ids) for ids in model.texts.encode([queries[q] for q in qids], True)]
    k = min(k, corpus.shape[0])

    def search(texts: list[str]) -> None:
        encoded = model.encode(texts, "query", batch_size=len(texts))
        if isinstance(encoded, torch.Tensor):
            encoded = encoded.to(corpus.dtype)
        scores = model.similarity(encoded, corpus).float()
        torch.topk(scores, k, dim=1).indices.cpu()

    with torch.inference_mode():
        for q in timed[:WARMUP]:
            search([queries[q]])
        ms = [_ms(lambda q=q: search([queries[q]])) for q in timed]
        batch = [queries[q] for q in timed_queries(qids, batch_queries)]
        search(batch)
        batched = _ms(lambda: search(batch)) / len(batch)
    params, total = model.parameter_counts()
    return {"ranking": {q: [[d, float(s)] for d, s in rankings[0][q]] for q in qids},
            "query_tokens": dict(zip(qids, map(float, tokens))),
            "search_ops": dict(zip(qids, _search_ops(encoded[0], corpus))),
            "encode_params": model.training_flops(1) / 6.0, "params": params, "total_params": total,
            "timed": list(timed), "ms": ms, "ms_batched": batched}


def bm25_pass(index, evalset, k: int, timed: Sequence[str], batch_queries: int, threads: int = 1) -> dict:
    """BM25's first-stage record of ``evalset`` from its saved index: no query encoding; the search's
    multiply-adds are the postings its query tokens visit (each token's, in query order)."""
    from rerank_scaling.data.types import sorted_ids

    queries = evalset.collection.queries
    qids = sorted(queries)
    ids = sorted_ids(evalset.collection.docs)
    rows, scores = index.search([queries[q] for q in qids], k, threads=threads)
    ranking = {q: [[ids[r], float(s)] for r, s in zip(rows[i], scores[i]) if r >= 0] for i, q in enumerate(qids)}
    lengths = np.diff(np.asarray(index.indptr))
    ops = [float(lengths[np.asarray(t, dtype=np.int64)].sum()) if t else 0.0
           for t in index.query_tokens([queries[q] for q in qids])]
    for q in timed[:WARMUP]:
        index.search([queries[q]], k, threads=1)
    ms = [_ms(lambda q=q: index.search([queries[q]], k, threads=1)) for q in timed]
    batch = [queries[q] for q in timed_queries(qids, batch_queries)]
    batched = _ms(lambda: index.search(batch, k, threads=threads)) / len(batch)
    return {"ranking": ranking, "query_tokens": {q: 0.0 for q in qids}, "search_ops": dict(zip(qids, ops)),
            "encode_params": 0.0, "params": 0, "total_params": 0, "timed": list(timed), "ms": ms,
            "ms_batched": batched}


def _lists(record: dict) -> dict[str, list[tuple[str, float]]]:
    return {q: [(d, s) for d, s in lst] for q, lst in record["ranking"].items()}


def _fs_recall(lists, evalset, depth: int) -> dict[str, float]:
    cut = {q: lst[:depth] for q, lst in lists.items() if lst}
    return evaluate_per_query(cut, evalset.collection.qrels, (f"recall@{depth}",),
                              evalset.relevance_level)[f"recall@{depth}"]


def alone_values(record: dict, evalset, metrics: tuple[str, ...]) -> tuple[dict, dict[str, float]]:
    """A first stage alone (depth 0): ``metric -> qid -> value`` (ranking metrics, fs-recall, chain-flops) and
    the timed costs (``chain-ms``: median over the timed queries, ``chain-ms-batched``)."""
    lists = _lists(record)
    per_query = evaluate_per_query({q: lst for q, lst in lists.items() if lst}, evalset.collection.qrels, metrics,
                                   evalset.relevance_level)
    per_query[FS_RECALL] = _fs_recall(lists, evalset, ALONE_RECALL_DEPTH)
    per_query[CHAIN_FLOPS] = {q: chain_flops(record["encode_params"], record["query_tokens"][q],
                                             record["search_ops"][q], 0.0, ()) for q in per_query[FS_RECALL]}
    return per_query, {CHAIN_MS: statistics.median(record["ms"]), CHAIN_MS_BATCHED: record["ms_batched"]}


def rerank_pass(reranker, record: dict, evalset, depths: Sequence[int], metrics: tuple[str, ...],
                batch_queries: int, batch_size: int = 64) -> dict[int, tuple[dict, dict[str, float]]]:
    """Each depth's ``(metric -> qid -> value, timed costs)`` of ``reranker`` over a first stage's record."""
    queries, docs = evalset.collection.queries, evalset.collection.docs
    lists = _lists(record)
    deepest = max(depths)
    pairs = [(q, d) for q in sorted(lists) for d, _ in lists[q][:deepest]]
    reranker.eval()
    reranker.warm([queries[q] for q in lists], sorted({docs[d] for _, d in pairs}))
    values = reranker.score([queries[q] for q, _ in pairs], [docs[d] for _, d in pairs], batch_size=batch_size)
    scores: dict[str, dict[str, float]] = {q: {} for q in lists}
    for (q, d), v in zip(pairs, values):
        scores[q][d] = float(v)
    params = reranker.training_flops(1) / 6.0  # the parameters a token passes (6 N per trained token)
    out = {}
    for depth in depths:
        ranking = {q: chain_list(lst, scores[q], depth) for q, lst in lists.items() if lst}
        per_query = evaluate_per_query(ranking, evalset.collection.qrels, metrics, evalset.relevance_level)
        per_query[FS_RECALL] = _fs_recall(lists, evalset, depth)
        flops = {}
        for q in per_query[FS_RECALL]:
            head = lists.get(q, [])[:depth]
            encoded = reranker.pairs.encode([queries[q]] * len(head), [docs[d] for d, _ in head])
            tokens = [len(ids) for ids, _ in encoded]
            flops[q] = chain_flops(record["encode_params"], record["query_tokens"].get(q, 0.0),
                                   record["search_ops"].get(q, 0.0), params, tokens)
        per_query[CHAIN_FLOPS] = flops
        out[depth] = (per_query, _rerank_times(reranker, record, lists, queries, docs, depth, batch_queries,
                                               batch_size))
    return out


def _rerank_times(reranker, record, lists, queries, docs, depth, batch_queries, batch_size) -> dict[str, float]:
    def rerank(qs: list[str], size: int) -> None:
        pairs = [(q, d) for q in qs for d, _ in lists.get(q, [])[:depth]]
        if pairs:
            reranker.score([queries[q] for q, _ in pairs], [docs[d] for _, d in pairs], batch_size=size)

    timed = record["timed"]
    for q in timed[:WARMUP]:
        rerank([q], depth)
    one = [fs + _ms(lambda q=q: rerank([q], depth)) for q, fs in zip(timed, record["ms"])]
    batch = timed_queries(list(lists), batch_queries)
    rerank(batch, batch_size)
    batched = _ms(lambda: rerank(batch, batch_size)) / len(batch)
    return {CHAIN_MS: statistics.median(one), CHAIN_MS_BATCHED: record["ms_batched"] + batched}


def rows_of(per_query: dict, timed: dict[str, float], columns: dict, eval_set: str, in_domain: bool,
            run: str) -> tuple[list[dict], list[dict]]:
    """Tidy rows (each metric's mean over the set's queries, and the timed costs, with ``columns``) and the
    per-query rows behind them, under the run name ``run``."""
    means = {**mean_values(per_query), **timed}
    return ([{**columns, "eval_set": eval_set, "in_domain": in_domain, "metric": m, "value": float(v)}
             for m, v in means.items()], per_query_rows(run, eval_set, per_query))
