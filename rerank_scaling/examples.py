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
* Memory does not grow with the training queries' candidates: a query's pool
  of negatives (:class:`Pools`) and its instances (:class:`Instances`) are read
  from the candidate lists and qrels when a group needs them -- memory-mapped
  arrays and stores at MS MARCO scale -- not held as Python lists per query.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rerank_scaling.data.types import Collection, Ranking, sorted_ids
from rerank_scaling.errors import UserError


@dataclass(frozen=True)
class Group:
    qid: str
    doc_ids: tuple[str, ...]  # positive first
    labels: tuple[int, ...]


class Pools(Mapping):
    """``qid -> its negative candidates, best first``: its candidate list without its positives (grade > 0),
    computed when asked; the keys are the training queries (sorted)."""

    def __init__(self, collection: Collection, candidates: Ranking, qids: Sequence[str]):
        self.collection, self.candidates, self.qids = collection, candidates, qids

    def __getitem__(self, qid: str) -> list[str]:
        if qid not in self.collection.queries:
            raise KeyError(qid)
        positives = self.collection.positives(qid)
        return [d for d, _ in self.candidates.get(qid, ()) if d not in positives]

    def __iter__(self) -> Iterator[str]:
        return iter(self.qids)

    def __len__(self) -> int:
        return len(self.qids)


class Instances(Sequence):
    """The ``(qid, positive doc, grade)`` of every training query, query by query (sorted ids), each
    query's positives by doc id: read from the qrels when asked, one offset per query held."""

    def __init__(self, collection: Collection, qids: Sequence[str], starts: np.ndarray):
        self.collection, self.qids, self.starts = collection, qids, starts  # starts[i]: query i's first

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        q = int(np.searchsorted(self.starts, index, side="right")) - 1
        qid = self.qids[q]
        doc, grade = sorted(self.collection.positives(qid).items())[index - int(self.starts[q])]
        return qid, doc, grade

    def __iter__(self):
        for qid in self.qids:
            for doc, grade in sorted(self.collection.positives(qid).items()):
                yield qid, doc, grade


@dataclass
class TrainingSet:
    collection: Collection
    instances: Sequence[tuple[str, str, int]]  # (qid, positive doc, grade)
    pools: Mapping[str, list[str]]  # qid -> negative candidates, best first
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
    def _doc_ids(self) -> Sequence[str]:
        if "_doc_ids" not in self.__dict__:
            self.__dict__["_doc_ids"] = sorted_ids(self.collection.docs)
        return self.__dict__["_doc_ids"]

    def group_at(self, position: int) -> Group:
        """The group at a global stream position (epochs are seeded permutations)."""
        n = len(self.instances)
        epoch, offset = divmod(position, n)
        index = int(self._epoch_order(epoch, n)[offset])
        qid, pos, grade = self.instances[index]
        rng = np.random.default_rng([self.seed, 11, epoch, index])
        negatives = self._negatives(rng, qid)
        return Group(qid, (pos, *negatives), (grade, *([0] * len(negatives))))

    def _epoch_order(self, epoch: int, n: int) -> np.ndarray:
        """Epoch ``epoch``'s seeded permutation of the instances, drawn once per epoch (not per group: at
        500k instances a permutation per group would cost more than the group)."""
        cached = self.__dict__.get("_order")
        if cached is None or cached[0] != (epoch, n):
            cached = ((epoch, n), np.random.default_rng([self.seed, 7, epoch]).permutation(n))
            self.__dict__["_order"] = cached
        return cached[1]

    def batch(self, step: int, batch_size: int) -> list[Group]:
        return [self.group_at(step * batch_size + i) for i in range(batch_size)]


def build_training_set(
    collection: Collection, candidates: Ranking, n_negatives: int = 10, seed: int = 0
) -> TrainingSet:
    """Groups for every (query, positive) of ``collection`` with negatives from ``candidates``."""
    if n_negatives < 1:
        raise UserError(f"n_negatives must be >= 1, got {n_negatives}")
    qids: list[str] = []
    counts: list[int] = []
    no_positive = short_pool = 0
    depth = getattr(candidates, "rows", None)
    valid = None if depth is None else (np.asarray(depth) >= 0).sum(axis=1)  # candidate-array lists' lengths
    for qid in sorted(collection.queries):
        positives = collection.positives(qid)
        if not positives:
            no_positive += 1
            continue
        qids.append(qid)
        counts.append(len(positives))
        if valid is not None:  # a pool is short only if its list minus every positive could be
            row = candidates.position(qid)
            if row >= 0 and valid[row] - len(positives) >= n_negatives:
                continue
        short_pool += sum(1 for d, _ in candidates.get(qid, ()) if d not in positives) < n_negatives
    if not qids:
        raise UserError(f"no training query of '{collection.name}' has a relevant document (grade > 0)")
    starts = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    instances = Instances(collection, qids, starts)
    info = {
        "queries": len(qids),
        "queries_without_positives": no_positive,
        "queries_with_short_candidate_pool": short_pool,
        "instances": len(instances),
    }
    return TrainingSet(collection, instances, Pools(collection, candidates, qids), n_negatives, seed, info)
