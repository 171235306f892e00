"""Metric conventions: which way a metric moves with scale, and its natural bounds.

Direction is decided in exactly one place, :func:`lower_is_better`.  Everything
else in :mod:`rerank_scaling.scaling` asks :func:`direction` (``+1`` = the metric
increases with scale, ``-1`` = it decreases).
"""

from __future__ import annotations

import re

_CE = re.compile(r"^ce(-candidates|-corpus)?(@\d+)?$")
# rank metrics that live in [0, 1]
_BOUNDED = re.compile(r"^(ndcg|map|mrr|recall|r|p|precision|hit|hits|success|acc|accuracy)(@\d+)?$")


# the costs of a sparse retriever (evaluation.sparsity): active dimensions, FLOPS per query-doc pair;
# a distilled query tower's latency (evaluation.distilled): ms per query on a device
_COST = re.compile(r"^(active-q|active-d|flops|query-ms-\w+)$")


def lower_is_better(metric: str) -> bool:
    """True for losses: ``ce``/``ce@K`` (contrastive entropy), ``*entropy*``, ``*loss*``; and for the
    sparsity costs ``active-q``, ``active-d``, ``flops`` and the latency ``query-ms-<device>``."""
    name = metric.strip().lower()
    return bool(_CE.match(name)) or "entropy" in name or "loss" in name or bool(_COST.match(name))


def direction(metric: str) -> int:
    """``+1`` if the metric increases with scale (NDCG, MAP, ...), ``-1`` if it decreases."""
    return -1 if lower_is_better(metric) else 1


def natural_bound(metric: str) -> float | None:
    """The value a metric approaches with unlimited scale at best.

    ``1.0`` for rank metrics in [0, 1], ``0.0`` for entropies/losses, ``None`` when unknown.
    Used as a hard bound on a fitted asymptote and by the ``bounded`` law.
    """
    name = metric.strip().lower()
    if lower_is_better(name):
        return 0.0
    if _BOUNDED.match(name):
        return 1.0
    return None
