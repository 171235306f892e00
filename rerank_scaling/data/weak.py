"""Weak supervision from the corpus itself: document titles as pseudo-queries.

This is the **annotation quality** axis of the scaling study: a run trains on
either ``supervision="human"`` (the collection's judged queries) or
``supervision="weak"`` (the pseudo-queries made here); keep them apart and
label every run with ``Collection.info["supervision"]``.
"""

from __future__ import annotations

from collections import Counter

from rerank_scaling.data.types import Collection
from rerank_scaling.data.util import normalise_ws
from rerank_scaling.errors import UserError

WEAK_PREFIX = "title:"


def _words(title: str) -> list[str]:
    return [w for w in title.split() if any(c.isalnum() for c in w)]


def weak_queries(collection: Collection, min_title_words: int = 3) -> Collection:
    """Turn each document title into a pseudo-query whose one positive is its document.

    Query ids are ``f"title:{doc_id}"``, query text is the whitespace-normalised
    title, and the qrels give grade 1 to the document itself (no negatives are
    judged).  Skipped: empty titles, titles with fewer than ``min_title_words``
    words (tokens holding a letter or digit), and titles shared by several
    documents (compared case-insensitively), whose positive would be ambiguous.
    Counts are in ``info`` with ``info["supervision"] = "weak"``.

    Caveat: the document text starts with its title, so these queries are
    lexically easy -- the point of the "weak" axis is lower annotation
    quality, not difficulty.  Raises :class:`UserError` if no title qualifies
    (e.g. Vaswani, which has no titles).
    """
    titles = {d: normalise_ws(t) for d, t in collection.titles.items() if d in collection.docs}
    counts = Counter(t.lower() for t in titles.values() if t)
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    empty = short = dup = 0
    for doc_id in sorted(titles):
        title = titles[doc_id]
        if not title:
            empty += 1
        elif len(_words(title)) < min_title_words:
            short += 1
        elif counts[title.lower()] > 1:
            dup += 1
        else:
            qid = f"{WEAK_PREFIX}{doc_id}"
            queries[qid] = title
            qrels[qid] = {doc_id: 1}
    if not queries:
        raise UserError(
            f"collection '{collection.name}' has no usable document titles"
            f" (>= {min_title_words} words, unique); weak supervision needs titles"
        )
    info = {
        "supervision": "weak",
        "weak_from": collection.name,
        "min_title_words": min_title_words,
        "titles_skipped_empty": empty + (len(collection.docs) - len(titles)),
        "titles_skipped_short": short,
        "titles_skipped_duplicate": dup,
    }
    return Collection(
        name=f"{collection.name}-weak",
        docs=collection.docs,
        titles=collection.titles,
        queries=queries,
        qrels=qrels,
        source=collection.source,
        info=info,
    )
