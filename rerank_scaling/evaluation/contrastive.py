"""Contrastive entropy ``CE_m`` (Fang et al., 2024, "Scaling Laws for Dense Retrieval").

Definition.  For a query ``q`` with relevant documents ``P`` (grade >=
the eval set's ``relevance_level``, default 1: grade > 0) and
``m`` sampled negatives ``N = {n_1..n_m}``, a model's scores ``s(q, d)`` give,
for each positive ``p``::

    CE(q, p) = -log( exp(s_p) / (exp(s_p) + sum_{j=1..m} exp(s_{n_j})) )
             = logsumexp([s_p, s_{n_1}, .., s_{n_m}]) - s_p

``CE_m`` averages ``CE(q, p)`` over the positives of each query, then over
queries.  Lower is better; it is a continuous proxy for ranking quality used
to fit scaling laws.  Name in tables: ``f"ce@{m}"`` (e.g. ``ce@64``).

Sampling (:func:`sample_contrastive_sets`).  Negatives are drawn without
replacement from the query's candidate list minus its relevant documents
(i.e. judged non-relevant or unjudged candidates), with a random generator
seeded by a stable hash of ``(seed, qid)`` over the doc_id-sorted pool: every
model is scored on the SAME negatives, whatever the order of the candidate
list, so values are comparable across models.  With fewer than ``m``
candidates available, all are used (``len(negatives) < m``).  Positives are all relevant documents of the
qrels, even those missing from the candidate list (a model can score any
document).  Queries with no relevant document, or no available negative, are
left out (they carry no contrastive signal).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from rerank_scaling.data.types import Ranking
from rerank_scaling.data.util import stable_hash
from rerank_scaling.evaluation.registry import MetricInfo, parse

# ce@M: M negatives from the candidate list (ce-candidates@M is the same); ce-corpus@M: from the whole corpus
METRICS = (
    MetricInfo("ce", "quality", -1, (0.0, None), "cutoff", doc="contrastive entropy, negatives from the candidates"),
    MetricInfo("ce-candidates", "quality", -1, (0.0, None), "cutoff-required", doc="ce@M, spelled out"),
    MetricInfo("ce-corpus", "quality", -1, (0.0, None), "cutoff-required",
               doc="contrastive entropy, negatives from the whole corpus (Fang et al.)"),
)


@dataclass(frozen=True)
class ContrastiveSet:
    """The documents one query is scored on: its positives and sampled negatives."""

    positives: list[str]
    negatives: list[str]


def ce_name(m: int) -> str:
    """Metric name in tables, e.g. ``ce@64``."""
    return f"ce@{m}"


def parse_variant(name: str) -> tuple[str, int]:
    """``ce@31`` -> ("candidates", 31); ``ce-corpus@256`` -> ("corpus", 256); ``ValueError`` for another name."""
    parsed = parse(name)
    if parsed is None or parsed.info not in METRICS or f"{parsed.info.name}@{parsed.k}" != name:
        raise ValueError(f"not a contrastive-entropy name: {name!r}")
    return ("corpus" if parsed.info.name == "ce-corpus" else "candidates"), parsed.k


def sample_contrastive_sets(
    candidates: Ranking,
    qrels: dict[str, dict[str, int]],
    m: int = 64,
    seed: int = 0,
    relevance_level: int = 1,
    corpus: list[str] | None = None,
    salt: str = "",
) -> dict[str, ContrastiveSet]:
    """Positives (grade >= ``relevance_level``) and ``m`` seeded negatives drawn from the other
    candidates (a grade below the level is not relevant) per judged query (see module docstring).

    With ``corpus`` (every doc id of the collection) the negatives are drawn from the whole
    corpus minus the positives instead (Fang et al.'s random negatives; one seeded draw shared
    by every model). ``salt`` gives a variant its own draw; the base set has none."""
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"m must be a positive integer, got {m!r}")
    out: dict[str, ContrastiveSet] = {}
    for qid in sorted(qrels):
        rels = qrels[qid]
        positives = sorted(str(d) for d, g in rels.items() if g > 0 and g >= relevance_level)
        if not positives:
            continue
        pos_set = set(positives)
        if corpus is not None:
            pool = [d for d in corpus if d not in pos_set]
        else:
            pool = sorted({str(d) for d, _s in candidates.get(qid, []) if str(d) not in pos_set})
        if not pool:
            continue
        rng = random.Random(stable_hash(f"contrastive:{seed}:{qid}" + (f":{salt}" if salt else "")))
        negatives = pool if len(pool) <= m else rng.sample(pool, m)
        out[qid] = ContrastiveSet(positives=positives, negatives=sorted(negatives))
    return out


def _logsumexp(xs: list[float]) -> float:
    mx = max(xs)
    if math.isinf(mx):
        return mx
    return mx + math.log(sum(math.exp(x - mx) for x in xs))


def contrastive_entropy_per_query(
    scores: dict[str, dict[str, float]], sets: dict[str, ContrastiveSet]
) -> dict[str, float]:
    """``qid -> mean over positives of CE(q, p)``; every needed score must be present."""
    out: dict[str, float] = {}
    for qid, cs in sets.items():
        q_scores = scores.get(qid)
        if q_scores is None:
            raise ValueError(f"no scores for query '{qid}'")
        try:
            neg = [float(q_scores[d]) for d in cs.negatives]
            pos = [float(q_scores[d]) for d in cs.positives]
        except KeyError as exc:
            raise ValueError(f"query '{qid}': no score for document {exc.args[0]!r}") from None
        vals = [_logsumexp([p, *neg]) - p for p in pos]
        out[qid] = sum(vals) / len(vals)
    return out


def contrastive_entropy(scores: dict[str, dict[str, float]], sets: dict[str, ContrastiveSet]) -> float:
    """``CE_m``: mean over queries of the per-query mean over positives (see module docstring)."""
    if not sets:
        raise ValueError("no contrastive sets (no judged query with candidates)")
    per_q = contrastive_entropy_per_query(scores, sets)
    return sum(per_q.values()) / len(per_q)
