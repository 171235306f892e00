"""Rerank an evaluation set's candidate lists with a model and score the result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rerank_scaling.data.types import Collection, Ranking, rank
from rerank_scaling.evaluation.contrastive import contrastive_entropy
from rerank_scaling.evaluation.metrics import evaluate


@dataclass
class EvalSet:
    """A prepared evaluation set: queries, the candidate lists to rerank, CE sets."""

    name: str
    collection: Collection  # restricted to the evaluation queries
    candidates: Ranking  # the top ``rerank_k`` first-stage candidates per query
    contrastive: dict  # qid -> ContrastiveSet (fixed negatives, shared by all models)
    ce_metric: str  # e.g. "ce@64"
    in_domain: bool = False
    relevance_level: int = 1  # grade >= this is relevant for the binary metrics (see metrics.py)

    def pairs(self) -> list[tuple[str, str]]:
        """Every distinct (qid, doc_id) a model must score for this set, in sorted order.

        The order is canonical because batch composition (and so padding width)
        moves scores in the last float bits: whatever order the candidates were
        loaded in, a model must get the same scores.
        """
        seen = {(qid, doc) for qid, docs in self.candidates.items() for doc, _ in docs}
        seen.update((qid, doc) for qid, cs in self.contrastive.items() for doc in (*cs.positives, *cs.negatives))
        return sorted(seen)


def score_pairs(
    score_fn: Callable[[list[str], list[str]], "list[float]"], evalset: EvalSet
) -> dict[str, dict[str, float]]:
    """Scores of every pair of ``evalset`` as ``qid -> doc -> score``."""
    pairs = evalset.pairs()
    q = evalset.collection.queries
    d = evalset.collection.docs
    scores = score_fn([q[qid] for qid, _ in pairs], [d[doc] for _, doc in pairs])
    out: dict[str, dict[str, float]] = {}
    for (qid, doc), s in zip(pairs, scores):
        out.setdefault(qid, {})[doc] = float(s)
    return out


def rerank_and_evaluate(
    scores: dict[str, dict[str, float]], evalset: EvalSet, metrics: tuple[str, ...]
) -> tuple[Ranking, dict[str, float]]:
    """The reranked candidate lists and their metric values (plus contrastive entropy)."""
    ranking: Ranking = {
        qid: rank({doc: scores[qid][doc] for doc, _ in docs}) for qid, docs in evalset.candidates.items() if docs
    }
    values = evaluate(ranking, evalset.collection.qrels, metrics, evalset.relevance_level)
    if evalset.contrastive:
        values[evalset.ce_metric] = contrastive_entropy(scores, evalset.contrastive)
    return ranking, values
