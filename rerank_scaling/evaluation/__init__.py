"""Evaluation: ranking metrics (ranx) and contrastive entropy."""

from rerank_scaling.evaluation.contrastive import (
    ContrastiveSet,
    ce_name,
    contrastive_entropy,
    contrastive_entropy_per_query,
    sample_contrastive_sets,
)
from rerank_scaling.evaluation.metrics import DEFAULT_METRICS, evaluate, evaluate_per_query, ranx_metric_name

__all__ = [
    "DEFAULT_METRICS",
    "ContrastiveSet",
    "ce_name",
    "contrastive_entropy",
    "contrastive_entropy_per_query",
    "evaluate",
    "evaluate_per_query",
    "ranx_metric_name",
    "sample_contrastive_sets",
]
