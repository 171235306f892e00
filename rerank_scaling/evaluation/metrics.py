"""Ranking metrics via ranx, with the project's conventions stated once.

Conventions
-----------
* **Grades**: judgments with grade ``<= 0`` are non-relevant and are dropped
  before ranx sees the qrels; grades ``> 0`` are the gain of NDCG.
* **Relevance level** (``relevance_level``, default 1): a document is
  relevant for the binary metrics (MAP, MRR, recall, precision, R-precision,
  hit rate) when its grade is ``>= relevance_level`` (ranx's ``-l`` suffix,
  trec_eval's ``-l``); TREC DL 2019/2020's official level is 2. NDCG keeps
  every grade ``> 0`` as its gain whatever the level.
* **Which queries**: the mean is over the queries of ``qrels`` that have at
  least one relevant document (grade ``>= relevance_level``).  A judged
  query that is absent from the ranking (or has an empty list) scores 0 on
  every metric (like ``trec_eval -c``); queries of the ranking without
  relevant judgments are ignored.  Pass qrels restricted to the split you evaluate.
* **NDCG** is ranx's ``ndcg``: linear gain (= grade) and ``log2(rank + 1)``
  discount, i.e. Järvelin & Kekäläinen as in trec_eval (not the exponential
  "Burges" gain).  **MAP** (``map``) is over the whole ranking; ``map@k``
  cuts it.  **MRR@k** is the reciprocal rank of the first relevant document
  within the top k, 0 if none.  ``recall@k`` and ``p@k`` (precision) as usual.
* **Ties**: ranx orders documents by score only, so each ranking is first
  ordered with :func:`rerank_scaling.data.types.rank` (score descending, ties
  by doc_id ascending) and its scores replaced by strictly decreasing
  rank-based scores ``n - position``: the result does not depend on dict or
  list order.

Metric names: ``ndcg``, ``ndcg@k``, ``map``, ``map@k``, ``mrr``, ``mrr@k``,
``recall``, ``recall@k``, ``p@k`` (or ``precision@k``), ``r-precision``,
``hit_rate@k``; each declared (:data:`METRICS`: a quality in [0, 1], higher is
better) for the analysis side (:mod:`rerank_scaling.evaluation.registry`).
"""

from __future__ import annotations

import warnings

from rerank_scaling.data.types import Ranking, rank
from rerank_scaling.data.util import keep_library_caches_in_cache
from rerank_scaling.errors import UserError
from rerank_scaling.evaluation.registry import MetricInfo

DEFAULT_METRICS = ("ndcg@10", "map", "mrr@10", "recall@100", "p@10")  # every run's, unless [train] metrics says


def _rank_metric(name: str, form: str = "cutoff", set_based: bool = False, doc: str = "") -> MetricInfo:
    return MetricInfo(name, "quality", 1, (0.0, 1.0), form, set_based, doc)


METRICS = (
    _rank_metric("ndcg", doc="NDCG, linear gain (the grade), log2 discount"),
    _rank_metric("map", doc="mean average precision (over the whole list; map@k cuts it)"),
    _rank_metric("mrr", doc="reciprocal rank of the first relevant document (within the top k)"),
    _rank_metric("recall", set_based=True, doc="relevant documents in the top k over all relevant ones"),
    _rank_metric("p", "cutoff-required", set_based=True, doc="precision at k"),
    _rank_metric("precision", "cutoff-required", set_based=True, doc="precision at k"),
    _rank_metric("r-precision", "exact", doc="precision at R, the query's number of relevant documents"),
    _rank_metric("hit_rate", "cutoff-required", set_based=True, doc="a relevant document in the top k"),
)
_RANX = {"p": "precision"}  # our names that ranx spells otherwise
_VALID = "ndcg, ndcg@k, map, map@k, mrr, mrr@k, recall, recall@k, p@k, precision@k, r-precision, hit_rate@k"


def ranx_metric_name(name: str) -> str:
    """Map one of our metric names (:data:`METRICS`) to ranx's; :class:`UserError` for an unknown name."""
    stem, at, k = str(name).strip().lower().partition("@")
    info = next((i for i in METRICS if i.name == stem), None)
    if info is None or (at and not (k.isascii() and k.isdigit())):
        raise UserError(f"unknown metric '{name}' (valid: {_VALID})")
    if at and int(k) < 1:
        raise UserError(f"metric '{name}': cut-off must be >= 1")
    if not at and info.form == "cutoff-required":
        raise UserError(f"metric '{name}' needs a cut-off, e.g. '{stem}@10' (valid: {_VALID})")
    if at and info.form == "exact":
        raise UserError(f"metric '{name}' takes no cut-off (valid: {_VALID})")
    return _RANX.get(stem, stem) + (f"@{int(k)}" if at else "")


_BINARY = {"map", "mrr", "recall", "precision", "r-precision", "hit_rate"}  # ranx bases that read the level


def _judged(qrels: dict[str, dict[str, int]], relevance_level: int = 1) -> dict[str, dict[str, int]]:
    """Per query with a grade >= ``relevance_level``: its documents with a grade > 0 (the gains)."""
    out = {}
    for q, rels in qrels.items():
        pos = {str(d): int(g) for d, g in rels.items() if g > 0}
        if any(g >= relevance_level for g in pos.values()):
            out[str(q)] = pos
    return out


def _with_level(rname: str, relevance_level: int) -> str:
    """ranx's name for a metric at a relevance level (``map-l2``); NDCG stays graded."""
    base = rname.split("@")[0]
    return f"{rname}-l{relevance_level}" if relevance_level != 1 and base in _BINARY else rname


def check_relevance_level(relevance_level) -> int:
    if isinstance(relevance_level, bool) or not isinstance(relevance_level, int) or relevance_level < 1:
        raise UserError(f"relevance_level must be a positive integer, got {relevance_level!r}")
    return relevance_level


def evaluate_per_query(
    ranking: Ranking,
    qrels: dict[str, dict[str, int]],
    metrics=DEFAULT_METRICS,
    relevance_level: int = 1,
) -> dict[str, dict[str, float]]:
    """Per-query values: ``metric -> qid -> value`` for every judged query (see module docstring)."""
    check_relevance_level(relevance_level)
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = list(dict.fromkeys(metrics))
    if not metrics:
        raise UserError(f"no metric given (valid: {_VALID})")
    names = {m: _with_level(ranx_metric_name(m), relevance_level) for m in metrics}
    judged = _judged(qrels, relevance_level)
    if not judged:
        grade = "grade > 0" if relevance_level == 1 else f"grade >= relevance_level {relevance_level}"
        raise UserError(f"qrels contain no relevant judgment ({grade}); nothing to evaluate")
    present = sorted(q for q in judged if ranking.get(q))
    out: dict[str, dict[str, float]] = {m: {q: 0.0 for q in sorted(judged)} for m in metrics}
    if not present:
        return out
    run_dict: dict[str, dict[str, float]] = {}
    for q in present:
        ordered = rank(dict((str(d), float(s)) for d, s in ranking[q]))
        n = len(ordered)
        run_dict[q] = {d: float(n - i) for i, (d, _s) in enumerate(ordered)}
    keep_library_caches_in_cache()  # ranx JIT-compiles with numba, which caches beside the package
    from ranx import evaluate as ranx_evaluate

    # Plain dicts in the same query order (ranx pairs them by position): this
    # skips building numba typed dicts of strings, whose compilation is the
    # slowest part of a fresh process's first evaluation.
    rnames = sorted(set(names.values()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba type-safety chatter
        # a one-metric list is doubled: ranx mislabels a single per-query result
        scores = ranx_evaluate({q: judged[q] for q in present}, run_dict, rnames * (1 + (len(rnames) == 1)),
                               return_mean=False)
    for m, rname in names.items():
        for q, value in zip(present, scores[rname]):
            out[m][q] = float(value)
    return out


def evaluate(
    ranking: Ranking,
    qrels: dict[str, dict[str, int]],
    metrics=DEFAULT_METRICS,
    relevance_level: int = 1,
) -> dict[str, float]:
    """Mean of each metric over the judged queries of ``qrels`` (absent from ``ranking`` = 0)."""
    return mean_values(evaluate_per_query(ranking, qrels, metrics, relevance_level))


def mean_values(per_query: dict[str, dict[str, float]]) -> dict[str, float]:
    """``metric -> mean over queries`` of per-query values (every query weighs the same)."""
    return {m: sum(v.values()) / len(v) for m, v in per_query.items()}
