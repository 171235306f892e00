"""Rerank an evaluation set's candidate lists with a model and score the result.

Convention: a model reorders the first ``rerank_k`` candidates of each list
(the head); the rest of the first-stage list (the tail, down to the
candidate depth ``k``) follows in first-stage order. Metrics deeper than the
head (``recall@100``, MAP) therefore see the whole candidate list, as in the
usual rerank-the-top-k pipeline, and equal the first stage's on the tail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rerank_scaling.data.types import Collection, Ranking, rank
from rerank_scaling.evaluation.contrastive import contrastive_entropy_per_query
from rerank_scaling.evaluation.metrics import evaluate_per_query


@dataclass
class EvalSet:
    """A prepared evaluation set: queries, the candidate lists to rerank, CE sets."""

    name: str
    collection: Collection  # restricted to the evaluation queries
    candidates: Ranking  # the top ``rerank_k`` first-stage candidates per query (reranked)
    contrastive: dict  # qid -> ContrastiveSet (fixed negatives, shared by all models)
    ce_metric: str  # e.g. "ce@64"
    in_domain: bool = False
    relevance_level: int = 1  # grade >= this is relevant for the binary metrics (see metrics.py)
    tail: Ranking = field(default_factory=dict)  # the rest of each first-stage list, kept below the head
    variants: dict = field(default_factory=dict)  # more contrastive entropies: name -> qid -> ContrastiveSet

    def pairs(self) -> list[tuple[str, str]]:
        """Every distinct (qid, doc_id) a model must score for this set, in sorted order.

        The order is canonical because batch composition (and so padding width)
        moves scores in the last float bits: whatever order the candidates were
        loaded in, a model must get the same scores.
        """
        seen = {(qid, doc) for qid, docs in self.candidates.items() for doc, _ in docs}
        for sets in (self.contrastive, *self.variants.values()):
            seen.update((qid, doc) for qid, cs in sets.items() for doc in (*cs.positives, *cs.negatives))
        return sorted(seen)


#: pairs whose texts are read and scored in one call: a set's memory is bounded by this block, not by its size
#: (MS MARCO dev x top-1000 is 7M pairs, ~5 GB as Python strings at once)
PAIR_BLOCK = 1 << 13


def score_pairs(
    score_fn: Callable[[list[str], list[str]], "list[float]"], evalset: EvalSet
) -> dict[str, dict[str, float]]:
    """Scores of every pair of ``evalset`` as ``qid -> doc -> score``, ``PAIR_BLOCK`` pairs a call."""
    pairs = evalset.pairs()
    q = evalset.collection.queries
    d = evalset.collection.docs
    out: dict[str, dict[str, float]] = {}
    for start in range(0, len(pairs), PAIR_BLOCK):
        block = pairs[start:start + PAIR_BLOCK]
        scores = score_fn([q[qid] for qid, _ in block], [d[doc] for _, doc in block])
        for (qid, doc), s in zip(block, scores):
            out.setdefault(qid, {})[doc] = float(s)
    return out


def rerank_per_query(
    scores: dict[str, dict[str, float]], evalset: EvalSet, metrics: tuple[str, ...]
) -> tuple[Ranking, dict[str, dict[str, float]]]:
    """The reranked lists (head by the model's scores, tail in first-stage order below it) and their
    metric values (plus contrastive entropy) per query: ``metric -> qid -> value`` (the paired
    significance tests of the report compare systems query by query; the tidy rows are their means)."""
    ranking: Ranking = {}
    for qid, docs in evalset.candidates.items():
        if not docs:
            continue
        ranking[qid] = head_and_tail({doc: scores[qid][doc] for doc, _ in docs}, evalset.tail.get(qid, ()))
    per_query = evaluate_per_query(ranking, evalset.collection.qrels, metrics, evalset.relevance_level)
    per_query.update(contrastive_per_query(scores, evalset))
    return ranking, per_query


def head_and_tail(head_scores: dict[str, float], tail) -> list[tuple[str, float]]:
    """A reranked list: the head by the model's scores (:func:`~rerank_scaling.data.types.rank`), then the
    first stage's tail in its order, with scores strictly below the head's (the module's convention)."""
    head = rank(head_scores)
    if not head:
        return []
    floor, gap = head[-1][1], max(1.0, abs(head[-1][1]) * 1e-6)
    return head + [(doc, floor - i * gap) for i, (doc, _) in enumerate(tail, 1)]


def contrastive_per_query(scores: dict[str, dict[str, float]], evalset: EvalSet) -> dict[str, dict[str, float]]:
    """The set's contrastive entropies (base ``ce@m`` and its variants): ``metric -> qid -> value``."""
    out = {}
    if evalset.contrastive:
        out[evalset.ce_metric] = contrastive_entropy_per_query(scores, evalset.contrastive)
    for name, sets in evalset.variants.items():
        if sets:
            out[name] = contrastive_entropy_per_query(scores, sets)
    return out
