"""What kind of number each metric of a study is, and the range it lives in: the report's one place for it.

* **quality** -- what a scaling law is about (ndcg@10, map, contrastive entropy, retained quality):
  fitted, forecast, judged, counted in the verdicts;
* **cost** -- what a model costs to run (query latency, a sparse retriever's active terms and FLOPS):
  shown as measured, never fitted as a quality law nor counted in a verdict;
* **invariant** -- a metric no model can move (recall@100 when the rerankers reorder only BM25's top 20:
  every model keeps BM25's top 100): shown once as the constant it is.

Both read the metric registry (:mod:`rerank_scaling.evaluation.registry`, through
:mod:`rerank_scaling.scaling.metrics`): each metric declares its kind and bounds beside the code that
computes it; the study's values add one thing only a study knows -- a metric no run moved is invariant.
"""

from __future__ import annotations

import math

import polars as pl

from rerank_scaling.scaling.metrics import bounds, kind

QUALITY, COST, INVARIANT = "quality", "cost", "invariant"
_SAME = 1e-9  # relative spread under which every model's value is the same number


def metric_kind(metric: str, finals: pl.DataFrame | None = None) -> str:
    """``quality``, ``cost`` or ``invariant`` (see the module doc). ``finals``: the study's final values
    (one row per run x eval set x metric); a metric with the same value in every model run on every eval set
    is invariant (it needs two runs or more to tell)."""
    declared = kind(metric)
    if declared in (COST, INVARIANT):
        return declared
    if finals is not None:
        rows = finals.filter(pl.col("metric") == metric)
        if rows.height >= 2 and rows["run"].n_unique() >= 2:
            spread = rows.group_by("eval_set").agg((pl.col("value").max() - pl.col("value").min()).alias("d"),
                                                    pl.col("value").abs().max().alias("scale"))
            if all(d <= _SAME * max(1.0, s) for d, s in zip(spread["d"].to_list(), spread["scale"].to_list())):
                return INVARIANT
    return QUALITY


def metric_range(metric: str) -> tuple[float, float]:
    """The values ``metric`` can take, as the registry declares them: ``[0, 1]`` for rank metrics,
    ``[0, inf)`` for entropies, costs and retained fractions, unbounded for an undeclared metric."""
    lo, hi = bounds(metric)
    return (-math.inf if lo is None else lo), (math.inf if hi is None else hi)


def bounded(metric: str) -> bool:
    """A rank metric in [0, 1]."""
    return metric_range(metric) == (0.0, 1.0)
