"""TREC run and qrels files.

Run lines: ``qid Q0 docid rank score tag`` (whitespace separated).  As in
trec_eval, the order of a query's documents comes from the score (descending;
ties by doc_id ascending, :func:`rerank_scaling.data.types.rank`), not from the
rank column.  (Qrels files are read by :mod:`rerank_scaling.data.qrels`.)
"""

from __future__ import annotations

import math
from pathlib import Path

from rerank_scaling.data.types import Ranking, rank
from rerank_scaling.data.util import atomic_write_text
from rerank_scaling.errors import UserError


def _lines(path: Path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    yield lineno, line.split()
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not valid UTF-8 ({exc.reason})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None


def read_trec_run(path: Path | str) -> Ranking:
    """Read a 6-column TREC run; malformed lines raise :class:`UserError` naming ``file:line``."""
    path = Path(path)
    scores: dict[str, dict[str, float]] = {}
    for lineno, parts in _lines(path):
        if len(parts) != 6:
            raise UserError(
                f"{path}:{lineno}: expected 6 fields 'qid Q0 docid rank score tag', got {len(parts)}"
            )
        qid, _q0, did, _rank, score_s, _tag = parts
        try:
            score = float(score_s)
        except ValueError:
            raise UserError(f"{path}:{lineno}: score '{score_s}' is not a number") from None
        if math.isnan(score):
            raise UserError(f"{path}:{lineno}: score is NaN")
        per_q = scores.setdefault(qid, {})
        if did in per_q:
            raise UserError(f"{path}:{lineno}: document '{did}' appears twice for query '{qid}'")
        per_q[did] = score
    return {q: rank(s) for q, s in scores.items()}


def write_trec_run(path: Path | str, ranking: Ranking, tag: str) -> None:
    """Write ``ranking`` as a TREC run (atomically), keeping each list's order.

    Ranks are 1..n in list order; scores are written exactly (``repr``), so
    :func:`read_trec_run` gives the ranking back.  Queries with an empty list
    write no line (a run file cannot express them).
    """
    if not tag or any(c.isspace() for c in tag):
        raise UserError(f"run tag must be a non-empty word without spaces, got {tag!r}")
    out: list[str] = []
    for qid, docs in ranking.items():
        if not qid or any(c.isspace() for c in str(qid)):
            raise UserError(f"query id {qid!r} cannot be written to a TREC run (empty or has spaces)")
        for i, (did, score) in enumerate(docs, 1):
            if not did or any(c.isspace() for c in str(did)):
                raise UserError(f"doc id {did!r} cannot be written to a TREC run (empty or has spaces)")
            out.append(f"{qid} Q0 {did} {i} {float(score)!r} {tag}\n")
    atomic_write_text(path, "".join(out))
