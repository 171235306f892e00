"""A chain's own metrics: a first stage's top ``k`` reordered by a reranker, measured end to end.

A chain (``[chain]`` of an experiment file, :mod:`rerank_scaling.grid.chains`)
is a first stage (BM25, a bi-encoder, a sparse retriever) whose top ``depth``
documents of each query a reranker reorders; the rest of the first stage's
list follows in its order (the convention of
:func:`rerank_scaling.evaluation.rerank.head_and_tail`). Depth 0 is the first
stage alone. Beside the ranking metrics of the chain's final list, each chain
row set holds:

* ``fs-recall``: the first stage's recall at ``depth`` (binary relevance:
  grade >= the eval set's level) -- what the reranker can at best recover; at
  depth 0 its recall@100;
* ``chain-flops``: FLOPs per query, :func:`chain_flops`: the query's encoding by
  the first stage, the search, and the reranker's ``depth`` pairs (document
  encoding is offline and excluded);
* ``chain-ms``: measured milliseconds per query, one query at a time (encode,
  search, rerank its ``depth`` pairs in one forward), the median over the timed
  queries;
* ``chain-ms-batched``: measured milliseconds per query when ``batch_queries``
  queries are encoded, searched and reranked together.

Declared here (:data:`METRICS`) for the analysis side, which imports this
module without torch.
"""

from __future__ import annotations

from collections.abc import Sequence

from rerank_scaling.evaluation.registry import MetricInfo

FS_RECALL, CHAIN_FLOPS, CHAIN_MS, CHAIN_MS_BATCHED = "fs-recall", "chain-flops", "chain-ms", "chain-ms-batched"
METRICS = (
    MetricInfo(FS_RECALL, "quality", 1, (0.0, 1.0), set_based=True,
               doc="the first stage's recall at the chain's depth (depth 0: recall@100)"),
    MetricInfo(CHAIN_FLOPS, "cost", -1, (0.0, None), doc="FLOPs per query of a chain: encode + search + rerank"),
    MetricInfo(CHAIN_MS, "cost", -1, (0.0, None), doc="measured ms per query of a chain, one query at a time"),
    MetricInfo(CHAIN_MS_BATCHED, "cost", -1, (0.0, None), doc="measured ms per query of a chain, queries batched"),
)
ALONE_RECALL_DEPTH = 100  # fs-recall of a first stage alone (depth 0)


def chain_flops(encode_params: float, query_tokens: float, search_ops: float, rerank_params: float,
                pair_tokens: Sequence[float]) -> float:
    """FLOPs of one query through a chain: ``2 * N_fs * query tokens`` (the first stage's query encoding;
    ``N_fs`` = 0 for BM25) + ``2 * search_ops`` (multiply-adds of the search: a dense exhaustive search
    ``n_docs * dim``, a sparse or BM25 one the postings it visits) + ``2 * N_rr * tokens`` of each reranked
    pair (``pair_tokens``: one entry per pair, ``depth`` of them). N: the parameters a token passes
    (non-embedding, plus a sparse encoder's vocabulary head)."""
    return 2.0 * encode_params * query_tokens + 2.0 * search_ops + 2.0 * rerank_params * float(sum(pair_tokens))


def chain_list(first_stage: list[tuple[str, float]], scores: dict[str, float] | None, depth: int):
    """A query's final list: the first stage's top ``depth`` ordered by the reranker's ``scores``, then the
    rest of the first stage's list in its order (depth 0 or no scores: the first stage's list)."""
    from rerank_scaling.evaluation.rerank import head_and_tail

    if depth == 0 or scores is None or not first_stage:
        return list(first_stage)
    return head_and_tail({doc: scores[doc] for doc, _ in first_stage[:depth]}, first_stage[depth:])
