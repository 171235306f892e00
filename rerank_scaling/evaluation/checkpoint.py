"""Evaluate one checkpoint of a model on every evaluation set: tidy rows out.

A reranker (the default ``stage``) reorders each set's candidates; a retriever
(``model.stage == "retrieval"``) searches the whole corpus
(:mod:`rerank_scaling.evaluation.retrieval`), which it encodes once per
checkpoint for all the sets over that corpus.
"""

from __future__ import annotations

from rerank_scaling.data.types import Ranking
from rerank_scaling.evaluation.metrics import mean_values
from rerank_scaling.evaluation.rerank import EvalSet, rerank_per_query, score_pairs
from rerank_scaling.evaluation.retrieval import CHUNK_DOCS, retrieve_sets


def per_query_rows(run: str, eval_set: str, per_query: dict[str, dict[str, float]]) -> list[dict]:
    """``{run, eval_set, metric, qid, value}`` rows (the per-query table)."""
    return [{"run": run, "eval_set": eval_set, "metric": m, "qid": q, "value": float(v)}
            for m, values in per_query.items() for q, v in sorted(values.items())]


def evaluate_checkpoint(model, evalsets: list[EvalSet], metrics: tuple[str, ...], row: dict,
                        batch_size: int = 64, depth: int = 100, chunk: int = CHUNK_DOCS,
                        dtype: str = "float32") -> tuple[list[dict], dict[str, Ranking], list[dict]]:
    """Rows ``{**row, eval_set, in_domain, metric, value}`` for every set and metric (contrastive
    entropy included), each set's reranked lists, and the per-query values behind the rows
    (:func:`per_query_rows`); a retriever's lists are its top ``depth`` of the corpus, searched
    ``chunk`` documents at a time (embeddings in ``dtype``), once for all the sets over one corpus.
    ``row`` holds the run's columns at this checkpoint (run, model, params, step, tokens_seen, ...)."""
    rows: list[dict] = []
    rankings: dict[str, Ranking] = {}
    queries: list[dict] = []
    retrieved = {}  # eval set -> (ranking, per-query values): a retriever searches each corpus once
    if getattr(model, "stage", "rerank") == "retrieval":
        by_corpus: dict[int, list[EvalSet]] = {}
        for es in evalsets:
            by_corpus.setdefault(id(es.collection.docs), []).append(es)
        for sets in by_corpus.values():
            for es, result in zip(sets, retrieve_sets(model, sets, metrics, depth, batch_size, chunk, dtype)):
                retrieved[es.name] = result
    for es in evalsets:
        if es.name in retrieved:
            rankings[es.name], per_query = retrieved[es.name]
        else:
            scores = score_pairs(lambda q, d: model.score(q, d, batch_size=batch_size), es)
            rankings[es.name], per_query = rerank_per_query(scores, es, metrics)
        rows.extend({**row, "eval_set": es.name, "in_domain": es.in_domain, "metric": metric, "value": float(value)}
                    for metric, value in mean_values(per_query).items())
        queries.extend(per_query_rows(row.get("run", ""), es.name, per_query))
    return rows, rankings, queries
