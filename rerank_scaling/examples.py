"""Training examples: query groups drawn from candidates + qrels.

A training *instance* is one (query, relevant document) pair expanded into a
group ``[positive, neg_1 .. neg_n]`` whose negatives are sampled from the
query's first-stage candidates (hard negatives), excluding every document
judged relevant for the query. All objectives train on the same groups
(see :mod:`rerank_scaling.objectives`).

Conventions:

* **Data budget** = number of training *queries*. Smaller budgets are
  prefixes of one seeded permutation, so they nest inside larger ones.
* **examples_seen** = number of query groups processed (steps x batch size).
* The stream is a pure function of ``(seed, step)``: batch ``s`` always holds
  the same groups with the same negatives, so a resumed run continues exactly
  where it stopped, whatever happened in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rerank_scaling.data.types import Collection, Ranking
from rerank_scaling.errors import UserError


@dataclass(frozen=True)
class Group:
    qid: str
    doc_ids: tuple[str, ...]  # positive first
    labels: tuple[int, ...]


@dataclass
class TrainingSet:
    collection: Collection
    instances: list[tuple[str, str, int]]  # (qid, positive doc, grade)
    pools: dict[str, list[str]]  # qid -> negative candidates, best first
    n_negatives: int
    seed: int = 0
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.instances)

    def _negatives(self, rng: np.random.Generator, qid: str) -> list[str]:
        pool = self.pools[qid]
        n = self.n_negatives
        if len(pool) >= n:
            return [pool[i] for i in rng.choice(len(pool), size=n, replace=False)]
        # too few candidates: top up with random corpus documents that are not relevant
        chosen = list(pool)
        positives = self.collection.positives(qid)
        doc_ids = self._doc_ids
        while len(chosen) < n:
            doc = doc_ids[int(rng.integers(len(doc_ids)))]
            if doc not in positives and doc not in chosen:
                chosen.append(doc)
        return chosen

    @property
    def _doc_ids(self) -> list[str]:
        if "_doc_ids" not in self.__dict__:
            self.__dict__["_doc_ids"] = sorted(self.collection.docs)
        return self.__dict__["_doc_ids"]

    def group_at(self, position: int) -> Group:
        """The group at a global stream position (epochs are seeded permutations)."""
        n = len(self.instances)
        epoch, offset = divmod(position, n)
        order = np.random.default_rng([self.seed, 7, epoch]).permutation(n)
        index = int(order[offset])
        qid, pos, grade = self.instances[index]
        rng = np.random.default_rng([self.seed, 11, epoch, index])
        negatives = self._negatives(rng, qid)
        return Group(qid, (pos, *negatives), (grade, *([0] * len(negatives))))

    def batch(self, step: int, batch_size: int) -> list[Group]:
        return [self.group_at(step * batch_size + i) for i in range(batch_size)]


def build_training_set(
    collection: Collection, candidates: Ranking, n_negatives: int = 10, seed: int = 0
) -> TrainingSet:
    """Groups for every (query, positive) of ``collection`` with negatives from ``candidates``."""
    if n_negatives < 1:
        raise UserError(f"n_negatives must be >= 1, got {n_negatives}")
    instances: list[tuple[str, str, int]] = []
    pools: dict[str, list[str]] = {}
    no_positive = short_pool = 0
    for qid in sorted(collection.queries):
        positives = collection.positives(qid)
        if not positives:
            no_positive += 1
            continue
        pools[qid] = [d for d, _ in candidates.get(qid, []) if d not in positives]
        short_pool += len(pools[qid]) < n_negatives
        instances.extend((qid, d, g) for d, g in sorted(positives.items()))
    if not instances:
        raise UserError(f"no training query of '{collection.name}' has a relevant document (grade > 0)")
    info = {
        "queries": len(pools),
        "queries_without_positives": no_positive,
        "queries_with_short_candidate_pool": short_pool,
        "instances": len(instances),
    }
    return TrainingSet(collection, instances, pools, n_negatives, seed, info)
