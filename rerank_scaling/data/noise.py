"""Noisy supervision: a stated fraction of training labels replaced by random first-stage candidates.

The robustness axis of Zeng et al. (2025): ``supervision = "human-noise20"`` trains on the
human judgments with 20% of the (query, positive) labels corrupted (the value is read by
``RunConfig.label_noise``). A label is corrupted when
``stable_hash(seed, query, document) / 2^64 < fraction`` -- so the labels corrupted at 20% are among
those corrupted at 50% (nested, like the data budgets) -- and its document is replaced by one of the
query's candidates that is not relevant (drawn with a generator seeded by the same key, so a corrupted
label gets the same replacement at every fraction; two labels of a query may draw the same one). The
replaced document stops being a
positive (unjudged: it may then be drawn as a negative, as a missed relevant document would be).
A query whose candidates are all relevant keeps its labels. Only training labels change: evaluation
sets keep the collection's qrels.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from rerank_scaling.data.types import Collection
from rerank_scaling.data.util import stable_hash


def corrupt_labels(collection: Collection, candidates: Mapping[str, list[tuple[str, float]]], fraction: float,
                   seed: int = 0) -> Collection:
    """``collection`` with ``fraction`` of its (query, positive) labels replaced (module docstring);
    ``info["label_noise"]`` holds the fraction, ``info["labels_replaced"]`` / ``info["labels"]`` the counts."""
    qrels: dict[str, dict[str, int]] = {}
    replaced = total = 0
    threshold = fraction * 2.0**64
    for qid in sorted(collection.queries):
        grades = dict(collection.qrels.get(qid, {}))
        positives = sorted(d for d, g in grades.items() if g > 0)
        pool = sorted({d for d, _ in candidates.get(qid, ()) if grades.get(d, 0) <= 0})
        total += len(positives)
        for doc in positives:
            key = f"label-noise:{seed}:{qid}:{doc}"
            if stable_hash(key) >= threshold or not pool:
                continue
            new = random.Random(stable_hash(key + ":replacement")).choice(pool)
            grades[new] = max(grades.pop(doc), grades.get(new, 0))
            replaced += 1
        qrels[qid] = grades
    info = {**collection.info, "label_noise": fraction, "labels_replaced": replaced, "labels": total}
    return Collection(name=collection.name, docs=collection.docs, titles=collection.titles,
                      queries=collection.queries, qrels=qrels,
                      source=collection.source, info=info)
