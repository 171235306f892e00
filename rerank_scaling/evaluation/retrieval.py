"""First-stage (dense) retrieval of an evaluation set: encode the corpus, exact top-k, the same metrics.

A retriever (a model with ``stage = "retrieval"``, e.g. the bi-encoder) is not
given candidates: every document of the collection is encoded once per
checkpoint (:func:`encode_corpus`; eval sets over the same corpus share it,
see :func:`rerank_scaling.evaluation.checkpoint.evaluate_checkpoint`), every
eval query is encoded and scored against the whole corpus, and its ``k`` best
documents (``k`` = the candidate depth, ``[candidates] k``, the depth BM25's
baseline row is computed at) are its ranked list. The metrics are the same
as for reranking (ranx, :mod:`rerank_scaling.evaluation.metrics`, ties by
doc id), and contrastive entropy ``ce@m`` / ``ce-corpus@m`` reads the model's
scores of the same fixed positives and negatives as every other model.

Exact search in torch: ``Q @ D^T`` in chunks of queries, then ``torch.topk``.
On the shared collections (Cranfield 1.4K, CISI 1.5K, Vaswani 11K documents;
11K x 384 float32 = 17 MB) it is exact and takes milliseconds, so no index is
needed. An approximate index (FAISS IVF / HNSW) becomes worth it when the
corpus embeddings no longer fit the device memory or the dot products
dominate evaluation -- tens of millions of documents (MS MARCO passages,
8.8M x 384 float32 = 13.5 GB, still fit one GPU exactly, in chunks).

A sparse retriever (:mod:`rerank_scaling.models.sparse`) encodes to
``scipy.sparse`` rows and scores a block of queries by the sparse product
``Q @ D^T`` (an inverted-index traversal: work in proportion to the postings
of the queries' terms), the same top-k after it; its rows also report the
vectors' sparsity (:mod:`rerank_scaling.evaluation.sparsity`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rerank_scaling.data.types import Ranking
from rerank_scaling.evaluation.metrics import evaluate_per_query
from rerank_scaling.evaluation.rerank import EvalSet, contrastive_per_query
from rerank_scaling.evaluation.sparsity import sparsity_per_query


@dataclass
class CorpusIndex:
    """A corpus encoded by one checkpoint: doc ids (sorted) and their embeddings ``[D, d]`` (a tensor;
    a ``scipy.sparse`` matrix for a sparse retriever)."""

    doc_ids: list[str]
    embeddings: Any


def encode_corpus(model, docs: dict[str, str], batch_size: int = 64) -> CorpusIndex:
    doc_ids = sorted(docs)
    return CorpusIndex(doc_ids, model.encode([docs[d] for d in doc_ids], "doc", batch_size=batch_size))


def retrieve_per_query(model, evalset: EvalSet, metrics: tuple[str, ...], index: CorpusIndex, k: int,
                       batch_size: int = 64, chunk: int = 256) -> tuple[Ranking, dict[str, dict[str, float]]]:
    """Each eval query's top ``k`` of the whole corpus, and ``metric -> qid -> value`` (metrics on
    those lists, contrastive entropies on the model's scores of the eval set's fixed sets)."""
    qids = sorted(evalset.collection.queries)
    queries = model.encode([evalset.collection.queries[q] for q in qids], "query", batch_size=batch_size)
    position = {d: i for i, d in enumerate(index.doc_ids)}
    wanted = {q: set() for q in qids}  # documents the contrastive sets need a score of
    for sets in (evalset.contrastive, *evalset.variants.values()):
        for q, cs in sets.items():
            wanted.setdefault(q, set()).update(cs.positives, cs.negatives)
    k = min(k, len(index.doc_ids))
    ranking: Ranking = {}
    scores: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        for start in range(0, len(qids), chunk):
            block = model.similarity(queries[start : start + chunk], index.embeddings).float()
            top = torch.topk(block, k, dim=1)
            values, indices = top.values.cpu().tolist(), top.indices.cpu().tolist()
            for row, q in enumerate(qids[start : start + chunk]):
                ranking[q] = [(index.doc_ids[i], v) for i, v in zip(indices[row], values[row])]
                needed = sorted(d for d in wanted.get(q, ()) if d in position)
                if needed:
                    cols = torch.as_tensor([position[d] for d in needed], device=block.device)
                    scores[q] = dict(zip(needed, block[row, cols].cpu().tolist()))
    per_query = evaluate_per_query(ranking, evalset.collection.qrels, metrics, evalset.relevance_level)
    per_query.update(contrastive_per_query(scores, evalset))
    if hasattr(index.embeddings, "indptr"):  # scipy.sparse: a sparse retriever reports its sparsity too
        per_query.update(sparsity_per_query(qids, queries, index.embeddings))
    return ranking, per_query
