"""How sparse a sparse retriever's vectors are, per eval query: the cost side beside its quality.

For query vectors ``Q[nq, V]`` and the encoded corpus ``D[nd, V]``
(``scipy.sparse``; the sparse family's :meth:`encode`), each query ``q`` gets:

* ``active-q``: its active (non-zero) dimensions;
* ``active-d``: the mean active dimensions of a corpus document (the same value
  for every query: it is the corpus's, reported per query so the table holds
  it beside the quality rows of the same set and checkpoint);
* ``flops``: the expected multiply-adds of one query-document dot product at
  query time, ``sum_{j in q} p_j`` with ``p_j`` the fraction of documents in
  which term ``j`` is active -- its mean over queries is the FLOPS measure of
  Paria et al. (2020) and SPLADE (``sum_j p_j^q p_j^d``).

All three are costs (lower is cheaper), declared so for the analysis side
(:data:`METRICS`, :mod:`rerank_scaling.evaluation.registry`).
"""

from __future__ import annotations

import numpy as np

from rerank_scaling.evaluation.registry import MetricInfo

METRICS = (
    MetricInfo("active-q", "cost", -1, (0.0, None), doc="active dimensions of a query vector"),
    MetricInfo("active-d", "cost", -1, (0.0, None), doc="mean active dimensions of a corpus document"),
    MetricInfo("flops", "cost", -1, (0.0, None), doc="expected multiply-adds of one query-document product"),
)
SPARSITY_METRICS = tuple(m.name for m in METRICS)


class SparsityStats:
    """The corpus side of the statistics, accumulated over chunks of document vectors (``add``)."""

    def __init__(self):
        self.docs = 0
        self.active = 0
        self.df: np.ndarray | None = None  # documents in which each term is active

    def add(self, docs) -> None:
        d = docs.tocsr()
        self.docs += d.shape[0]
        self.active += int(d.indptr[-1])
        counts = np.bincount(d.indices, minlength=d.shape[1])
        self.df = counts if self.df is None else self.df + counts

    def per_query(self, qids: list[str], queries) -> dict[str, dict[str, float]]:
        """``metric -> qid -> value`` for :data:`SPARSITY_METRICS` (module docstring)."""
        q = queries.tocsr()
        active_d = self.active / self.docs if self.docs else 0.0
        share = (self.df if self.df is not None else np.zeros(q.shape[1])) / max(self.docs, 1)
        flops = [float(share[q.indices[q.indptr[i]:q.indptr[i + 1]]].sum()) for i in range(q.shape[0])]
        return {"active-q": {qid: float(n) for qid, n in zip(qids, np.diff(q.indptr))},
                "active-d": {qid: active_d for qid in qids},
                "flops": dict(zip(qids, flops))}


def sparsity_per_query(qids: list[str], queries, docs) -> dict[str, dict[str, float]]:
    """``metric -> qid -> value`` for :data:`SPARSITY_METRICS` (module docstring) over the whole ``docs``."""
    stats = SparsityStats()
    stats.add(docs)
    return stats.per_query(qids, queries)
