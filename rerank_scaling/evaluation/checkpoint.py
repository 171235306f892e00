"""Evaluate one checkpoint of a model on every evaluation set: tidy rows out."""

from __future__ import annotations

from rerank_scaling.data.types import Ranking
from rerank_scaling.evaluation.rerank import EvalSet, rerank_and_evaluate, score_pairs


def evaluate_checkpoint(model, evalsets: list[EvalSet], metrics: tuple[str, ...], row: dict,
                        batch_size: int = 64) -> tuple[list[dict], dict[str, Ranking]]:
    """Rows ``{**row, eval_set, in_domain, metric, value}`` for every set and metric (contrastive
    entropy included), and each set's reranked lists. ``row`` holds the run's columns at
    this checkpoint (run, model, params, step, tokens_seen, ...)."""
    rows: list[dict] = []
    rankings: dict[str, Ranking] = {}
    for es in evalsets:
        scores = score_pairs(lambda q, d: model.score(q, d, batch_size=batch_size), es)
        rankings[es.name], values = rerank_and_evaluate(scores, es, metrics)
        rows.extend({**row, "eval_set": es.name, "in_domain": es.in_domain, "metric": metric, "value": float(value)}
                    for metric, value in values.items())
    return rows, rankings
