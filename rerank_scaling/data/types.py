"""Core data types shared by every pipeline stage.

Conventions (stated once, used everywhere):

* Relevance: a judgment grade ``<= 0`` is non-relevant (Cranfield's -1 means
  "no interest"); grades ``> 0`` are relevant and keep their value as the gain.
* Document text given to a model is ``title + " " + text`` when the collection
  has titles (Cranfield, CISI), otherwise the text (Vaswani).
* A ranked list is ordered by score descending, ties broken by doc_id
  ascending (string order) -- see :func:`rank`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# qid -> ranked list of (doc_id, score), best first
Ranking = dict[str, list[tuple[str, float]]]


@dataclass
class Collection:
    """A test collection: documents, judged queries and graded qrels.

    The mappings are dicts, or memory-mapped stores (:mod:`rerank_scaling.data.store`) for a
    collection read through the study's cache: read them as mappings, never change them.
    """

    name: str  # short name, e.g. "cranfield", "cisi"
    docs: Mapping[str, str]  # doc_id -> model text (title + text)
    titles: Mapping[str, str]  # doc_id -> title ("" when the collection has none)
    queries: Mapping[str, str]  # qid -> text; only queries with >= 1 judgment
    qrels: Mapping[str, dict[str, int]]  # qid -> doc_id -> raw grade
    source: str = ""  # where it was loaded from (ir_datasets id or folder)
    info: dict = field(default_factory=dict)  # e.g. dropped-query counts

    def positives(self, qid: str) -> dict[str, int]:
        """Relevant documents of ``qid`` (grade > 0) with their grades."""
        return {d: g for d, g in self.qrels.get(qid, {}).items() if g > 0}

    def subset(self, qids: list[str], name: str | None = None) -> "Collection":
        """The same collection restricted to some queries (docs shared, not copied)."""
        keep = [q for q in qids if q in self.queries]
        return Collection(
            name=name or self.name,
            docs=self.docs,
            titles=self.titles,
            queries=_restrict(self.queries, keep),
            qrels=_restrict(self.qrels, [q for q in keep if q in self.qrels]),
            source=self.source,
            info=dict(self.info),
        )


def _restrict(mapping: Mapping, keys: list[str]) -> Mapping:
    """``{k: mapping[k] for k in keys}``; a view (no copy) of a store."""
    if hasattr(mapping, "restrict"):
        return mapping.restrict(keys)
    return {k: mapping[k] for k in keys}


def sorted_ids(mapping: Mapping) -> Sequence[str]:
    """The keys of ``mapping`` in sorted order: the order documents are numbered in everywhere (BM25's
    index, candidate arrays, corpus encodings); a store's own (memory-mapped) ids, else ``sorted``."""
    ids = getattr(mapping, "ids", None)
    return ids if ids is not None else sorted(mapping)


def rank(scores: dict[str, float]) -> list[tuple[str, float]]:
    """Order (doc_id, score) by score descending, ties by doc_id ascending."""
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
