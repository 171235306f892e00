"""Metric conventions, as the metric registry declares them: direction, bounds and kind.

Every metric is declared once, beside the code that computes it
(:mod:`rerank_scaling.evaluation.registry`); this module only reads those
declarations, so the analyzer fits every metric the way its declaration says.
Everything else in :mod:`rerank_scaling.scaling` asks :func:`direction`
(``+1`` = the metric increases with scale, ``-1`` = it decreases).

A metric nobody declared has no direction: :func:`direction` and
:func:`lower_is_better` raise :class:`UserError` naming it (fitting a law the
wrong way round gives a confident wrong forecast, worse than none), while
:func:`kind` says ``"unknown"`` and :func:`bounds` ``(None, None)`` (no bound
is imposed). Another toolkit's metric is declared with
:func:`rerank_scaling.evaluation.registry.declare`.
"""

from __future__ import annotations

from rerank_scaling.errors import UserError
from rerank_scaling.evaluation import registry


def _declared(metric: str) -> registry.MetricInfo:
    info = registry.metric_info(metric)
    if info is None:
        known = ", ".join(i.name + ("@k" if i.form.startswith("cutoff") else "*" if i.form == "prefix" else "")
                          for i in registry.declared())
        raise UserError(f"metric '{metric}' is not declared: whether it rises or falls with scale is unknown, so "
                        f"no law is fitted to it (declared: {known}; another toolkit's metric: "
                        "rerank_scaling.evaluation.registry.declare)")
    return info


def lower_is_better(metric: str) -> bool:
    """True for the metrics declared to fall with scale: contrastive entropy (``ce@M``, ``ce-corpus@M``), a
    language model's ``loss``, and the costs (``active-q``, ``active-d``, ``flops``, ``query-ms-<device>``)."""
    return _declared(metric).direction < 0


def direction(metric: str) -> int:
    """``+1`` if the metric increases with scale (NDCG, MAP, ...), ``-1`` if it decreases."""
    return _declared(metric).direction


def bounds(metric: str) -> tuple[float | None, float | None]:
    """``(lo, hi)`` the metric lives in (``None``: open, or undeclared)."""
    info = registry.metric_info(metric)
    return (None, None) if info is None else info.bounds


def natural_bound(metric: str) -> float | None:
    """The value a metric approaches with unlimited scale at best: the upper bound of a metric that rises
    (``1.0`` for rank metrics), the lower of one that falls (``0.0`` for entropies, losses and costs),
    ``None`` when open or undeclared. Used as a hard bound on a fitted asymptote and by the ``bounded`` law."""
    info = registry.metric_info(metric)
    return None if info is None else info.natural_bound


def kind(metric: str, rerank_depth: int | None = None) -> str:
    """``"quality"``, ``"cost"``, ``"invariant"`` or ``"unknown"``; with ``rerank_depth``, a set-based metric
    at a cut-off a reranker of that depth cannot change is ``"invariant"``
    (:func:`rerank_scaling.evaluation.registry.kind`)."""
    return registry.kind(metric, rerank_depth)


def usual_range(metric: str) -> tuple[float, float] | None:
    """Where an open-ended metric's values usually stay (a retained fraction: (0, 1)); ``None`` otherwise."""
    info = registry.metric_info(metric)
    return None if info is None else info.usual
