"""First-stage (dense or sparse) retrieval of evaluation sets: the corpus searched in chunks, a running top-k.

A retriever (a model with ``stage = "retrieval"``, e.g. the bi-encoder) is not
given candidates: every eval query is scored against every document of its
collection, and its ``k`` best documents (``k`` = the candidate depth,
``[candidates] k``, the depth BM25's baseline row is computed at) are its
ranked list. The metrics are the same as for reranking (ranx,
:mod:`rerank_scaling.evaluation.metrics`), and contrastive entropy ``ce@m`` /
``ce-corpus@m`` reads the model's scores of the same fixed positives and
negatives as every other model.

Exact search, in bounded memory: the corpus (documents in sorted id order,
:func:`rerank_scaling.data.types.sorted_ids`) is encoded ``chunk`` documents at
a time (``eval_chunk_docs``, default 65,536); each chunk is scored against the
queries of every eval set over that corpus (encoded once), and merged into each
query's running top ``k`` by a stable sort of ``[running top k | chunk]`` --
score descending, then document order, i.e. the project's tie rule (score
descending, doc_id ascending). Only one chunk's embeddings and one ``[queries x
chunk]`` score block are alive at a time, so the corpus embeddings never have
to fit the device: 8.8M MS MARCO passages at 768 dimensions are 27 GB in float32
(13.5 GB in float16), a chunk 0.2 GB. ``embedding_dtype = "float16"`` holds the
chunk and the queries in half precision for the dot products, halving the
chunk (scores are then rounded to float16 precision: an opt-in for GPUs). The corpus is
encoded once per checkpoint whatever the number of eval sets over it.

A sparse retriever (:mod:`rerank_scaling.models.sparse`) encodes to
``scipy.sparse`` rows and scores a chunk by the sparse product ``Q @ D^T`` (an
inverted-index traversal), the same running top-k after it; its rows also
report the vectors' sparsity (:mod:`rerank_scaling.evaluation.sparsity`),
accumulated chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from rerank_scaling.data.types import Ranking, sorted_ids
from rerank_scaling.evaluation.metrics import evaluate_per_query
from rerank_scaling.evaluation.rerank import EvalSet, contrastive_per_query
from rerank_scaling.evaluation.sparsity import SparsityStats

CHUNK_DOCS = 65536
DTYPES = {"float32": torch.float32, "float16": torch.float16}


def corpus_chunks(docs: Mapping[str, str], chunk: int = CHUNK_DOCS) -> Iterator[tuple[int, list[str]]]:
    """``(first row, texts)`` of each chunk of the corpus, documents in sorted id order: the texts a
    retriever encodes at a time (so a cache keyed by them -- a query-distill teacher's -- is shared)."""
    ids = sorted_ids(docs)
    for start in range(0, len(ids), chunk):
        yield start, [docs[d] for d in ids[start:start + chunk]]


@dataclass
class _Search:
    """One eval set's queries in a corpus search: their embeddings, running top-k, wanted scores."""

    qids: list[str]
    queries: object  # [nq, d] tensor or scipy.sparse rows
    wanted: list[dict[int, str]]  # per query: corpus row -> doc id of the documents to keep a score of
    values: torch.Tensor | None = None
    rows: torch.Tensor | None = None
    scores: list[dict[str, float]] = field(default_factory=list)


def _merge(search: _Search, block: torch.Tensor, first: int, k: int) -> None:
    """Merge a ``[nq, c]`` score block (corpus rows ``first..``) into the running top ``k``."""
    rows = torch.arange(first, first + block.shape[1], device=block.device).expand(block.shape[0], -1)
    if search.values is not None:  # running entries first: they hold lower rows, so ties keep row order
        block = torch.cat([search.values, block], dim=1)
        rows = torch.cat([search.rows, rows], dim=1)
    order = torch.sort(block, dim=1, descending=True, stable=True).indices[:, :k]
    search.values, search.rows = torch.gather(block, 1, order), torch.gather(rows, 1, order)


def search_corpus(model, docs: Mapping[str, str], evalsets: Sequence[EvalSet], k: int, batch_size: int = 64,
                  chunk: int = CHUNK_DOCS, dtype: str = "float32"):
    """Every set's top ``k`` of ``docs`` (module docstring): ``(rankings, scores, queries, sparsity)`` -- per
    set ``qid -> [(doc_id, score)]``, per set ``qid -> doc_id -> score`` of the documents its contrastive
    sets need, per set its queries' encodings (sorted qids), and the corpus's sparsity statistics (None
    for a dense retriever)."""
    ids = sorted_ids(docs)
    k = min(k, len(ids))
    cast = DTYPES[dtype]
    searches = []
    for es in evalsets:
        qids = sorted(es.collection.queries)
        queries = model.encode([es.collection.queries[q] for q in qids], "query", batch_size=batch_size)
        if isinstance(queries, torch.Tensor):
            queries = queries.to(cast)
        need: dict[str, set] = {}
        for sets in (es.contrastive, *es.variants.values()):
            for q, cs in sets.items():
                need.setdefault(q, set()).update(cs.positives, cs.negatives)
        wanted = []
        for q in qids:
            rows = {}
            for d in need.get(q, ()):
                r = _row(ids, docs, d)
                if r >= 0:
                    rows[r] = d
            wanted.append(rows)
        searches.append(_Search(qids, queries, wanted, scores=[{} for _ in qids]))
    stats = None
    with torch.inference_mode():
        for first, texts in corpus_chunks(docs, chunk):
            emb = model.encode(texts, "doc", batch_size=batch_size)
            if isinstance(emb, torch.Tensor):
                emb = emb.to(cast)
            elif _is_sparse(emb):  # scipy.sparse rows: a sparse retriever's
                stats = stats or SparsityStats()
                stats.add(emb)
            # anything else (late interaction's token vectors) is searched as its model encoded it
            for s in searches:
                block = model.similarity(s.queries, emb).float()
                for i, rows in enumerate(s.wanted):
                    inside = [r for r in rows if first <= r < first + len(texts)]
                    if inside:
                        values = block[i, torch.as_tensor([r - first for r in inside], device=block.device)]
                        s.scores[i].update(zip((rows[r] for r in inside), values.cpu().tolist()))
                _merge(s, block, first, k)
            del emb
    rankings, scores = [], []
    for s in searches:
        ranking: Ranking = {}
        if s.values is not None:
            values, rows = s.values.cpu().tolist(), s.rows.cpu().tolist()
            for i, q in enumerate(s.qids):
                ranking[q] = [(ids[r], v) for r, v in zip(rows[i], values[i])]
        else:
            ranking = {q: [] for q in s.qids}
        rankings.append(ranking)
        scores.append({q: sc for q, sc in zip(s.qids, s.scores) if sc})
    return rankings, scores, [s.queries for s in searches], stats


def _is_sparse(emb) -> bool:
    import scipy.sparse

    return scipy.sparse.issparse(emb)


def _row(ids: Sequence[str], docs: Mapping, doc_id: str) -> int:
    """The row of ``doc_id`` among the sorted ids (-1 if absent)."""
    row = getattr(docs, "row", None)
    if row is not None:
        return row(doc_id)
    import bisect

    i = bisect.bisect_left(ids, doc_id)
    return i if i < len(ids) and ids[i] == doc_id else -1


def retrieve_sets(model, evalsets: Sequence[EvalSet], metrics: tuple[str, ...], k: int, batch_size: int = 64,
                  chunk: int = CHUNK_DOCS, dtype: str = "float32") -> list[tuple[Ranking, dict]]:
    """``(ranking, metric -> qid -> value)`` of each eval set (all over one corpus: searched once)."""
    docs = evalsets[0].collection.docs
    rankings, scores, encoded, stats = search_corpus(model, docs, evalsets, k, batch_size, chunk, dtype)
    out = []
    for es, ranking, sc, queries in zip(evalsets, rankings, scores, encoded):
        per_query = evaluate_per_query(ranking, es.collection.qrels, metrics, es.relevance_level)
        per_query.update(contrastive_per_query(sc, es))
        if stats is not None:
            per_query.update(stats.per_query(sorted(es.collection.queries), queries))
        out.append((ranking, per_query))
    return out


def retrieve_per_query(model, evalset: EvalSet, metrics: tuple[str, ...], k: int, batch_size: int = 64,
                       chunk: int = CHUNK_DOCS, dtype: str = "float32") -> tuple[Ranking, dict[str, dict[str, float]]]:
    """One eval set's top ``k`` of its whole corpus, and ``metric -> qid -> value``."""
    return retrieve_sets(model, [evalset], metrics, k, batch_size, chunk, dtype)[0]
