"""Query groups of real Cranfield judgments for the retriever families' tests (importable)."""

from rerank_scaling.examples import Group


def judged(cranfield, n):
    """``n`` Cranfield queries with their first positive and two unjudged documents each."""
    out = []
    for qid in sorted(cranfield.queries, key=int):
        pos = sorted(d for d, g in cranfield.qrels.get(qid, {}).items() if g > 0)
        if pos:
            negs = [d for d in sorted(cranfield.docs, key=int) if d not in cranfield.qrels[qid]][:2]
            out.append(Group(qid, (pos[0], *negs), (cranfield.qrels[qid][pos[0]], 0, 0)))
        if len(out) == n:
            return out
