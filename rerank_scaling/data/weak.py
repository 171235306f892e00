"""Weak supervision from the corpus itself: pseudo-queries that need no annotator and no network.

This is the **annotation quality** axis of the scaling study: a run trains on
``supervision="human"`` (the collection's judged queries), ``"weak"``
(document titles as queries, :func:`weak_queries`), ``"ict"`` (the inverse
cloze task, :func:`ict_queries`) or ``"mixed"`` (human + titles); keep them
apart and label every run with ``Collection.info["supervision"]``.
"""

from __future__ import annotations

import random
import re
from collections import Counter

from rerank_scaling.data.types import Collection
from rerank_scaling.data.util import normalise_ws
from rerank_scaling.errors import UserError

WEAK_PREFIX = "title:"
ICT_PREFIX = "ict:"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


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


def ict_queries(collection: Collection, seed: int = 0, min_sentence_words: int = 5) -> Collection:
    """The inverse cloze task (Lee et al., 2019): a random sentence of each document is the query
    for the rest of that document.

    Query ids are ``f"ict:{doc_id}"`` and the query text is the sentence; its one positive
    (grade 1) is a new document ``f"ict:{doc_id}"`` holding the document *without* that sentence,
    so the query is not a verbatim part of its positive. The new documents are added to a new
    ``docs`` dict (the collection's own dict is not changed): they are training-only, never
    retrieved at evaluation. Sentences end at ``.``, ``!`` or ``?`` followed by white space; the
    sentence is drawn (seeded by ``seed`` and the doc id, the same in every run) among those with
    at least ``min_sentence_words`` words. Skipped: documents with a single sentence, or no
    sentence long enough. Its source document stays in the corpus and would be a false hard
    negative: :func:`ict_source` names it so that candidate lists can drop it. Raises
    :class:`UserError` if no document qualifies (e.g. Vaswani, whose abstracts have no
    punctuation).
    """
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    rests: dict[str, str] = {}
    single = short = 0
    for doc_id in sorted(collection.docs):
        sentences = [t for t in (normalise_ws(x) for x in _SENTENCE_END.split(collection.docs[doc_id])) if t]
        if len(sentences) < 2:
            single += 1
            continue
        eligible = [i for i, t in enumerate(sentences) if len(_words(t)) >= min_sentence_words]
        if not eligible:
            short += 1
            continue
        pick = random.Random(f"ict:{seed}:{doc_id}").choice(eligible)
        qid = f"{ICT_PREFIX}{doc_id}"
        queries[qid] = sentences[pick]
        rests[qid] = " ".join(t for i, t in enumerate(sentences) if i != pick)
        qrels[qid] = {qid: 1}
    if not queries:
        raise UserError(f"collection '{collection.name}' has no document with two sentences or more"
                        " (sentences end at . ! or ?); the inverse cloze task needs them")
    info = {"supervision": "ict", "weak_from": collection.name, "ict_seed": seed,
            "min_sentence_words": min_sentence_words, "docs_skipped_one_sentence": single,
            "docs_skipped_short_sentences": short}
    return Collection(name=f"{collection.name}-ict", docs={**collection.docs, **rests}, titles=collection.titles,
                      queries=queries, qrels=qrels, source=collection.source, info=info)


def ict_source(qid: str) -> str | None:
    """The corpus document an inverse-cloze query was cut from (None for any other query)."""
    return qid[len(ICT_PREFIX):] if qid.startswith(ICT_PREFIX) else None
