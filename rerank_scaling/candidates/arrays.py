"""Candidate lists as compact arrays: int32 document rows and float32 scores, memory-mapped.

``qids.npy`` (the queries' ids, sorted, fixed-width UTF-8), ``rows.npy``
(``[n, k]`` int32: each query's candidates as rows of the corpus's sorted
document ids, -1 past the end of a short list) and ``scores.npy`` (``[n, k]``
float32). 8 bytes a candidate on disk and nothing in a process until it reads
a query's list -- the JSON cache they replace cost ~178 bytes a candidate in
every process that loaded it (~9 GB for MS MARCO's 500k training queries at
depth 100).

:class:`CandidateLists` reads them as a :data:`~rerank_scaling.data.types.Ranking`
(``qid -> [(doc_id, score), ...]``, best first), built per query when asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

ARRAYS_FORMAT = 1


class CandidateLists(Mapping):
    """``qid -> [(doc_id, score), ...]`` over candidate arrays (module docstring); ``doc_ids``: the
    corpus's document ids in sorted order (what the rows number)."""

    def __init__(self, qids: np.ndarray, rows: np.ndarray, scores: np.ndarray, doc_ids: Sequence[str]):
        self.qids, self.rows, self.scores, self.doc_ids = qids, rows, scores, doc_ids

    @classmethod
    def open(cls, folder: Path, doc_ids: Sequence[str]) -> "CandidateLists":
        from rerank_scaling.data.store import mapped

        folder = Path(folder)
        return cls(mapped(folder / "qids.npy"), mapped(folder / "rows.npy"), mapped(folder / "scores.npy"), doc_ids)

    def save(self, folder: Path, meta: dict | None = None) -> None:
        """Write the arrays into ``folder`` (a temporary folder renamed; another process's identical
        folder is kept)."""
        from rerank_scaling.data.store import atomic_folder

        def fill(tmp: Path) -> None:
            np.save(tmp / "qids.npy", np.asarray(self.qids))
            np.save(tmp / "rows.npy", np.ascontiguousarray(self.rows, dtype=np.int32))
            np.save(tmp / "scores.npy", np.ascontiguousarray(self.scores, dtype=np.float32))
            (tmp / "candidates.json").write_text(json.dumps({"format": ARRAYS_FORMAT, **(meta or {})}, indent=1))
        atomic_folder(Path(folder), fill, marker="candidates.json")

    @property
    def depth(self) -> int:
        return int(self.rows.shape[1]) if self.rows.ndim == 2 else 0

    def position(self, qid: str) -> int:
        """The row of ``qid`` in the arrays, or -1."""
        if not isinstance(qid, str) or not len(self.qids):
            return -1
        raw = qid.encode("utf-8")
        if len(raw) > self.qids.dtype.itemsize:
            return -1
        i = int(np.searchsorted(self.qids, raw))
        return i if i < len(self.qids) and self.qids[i] == raw else -1

    def doc_rows(self, qid: str) -> np.ndarray:
        """``qid``'s candidates as document rows (int32), best first."""
        i = self.position(qid)
        if i < 0:
            raise KeyError(qid)
        row = np.asarray(self.rows[i])
        return row[row >= 0]

    def __getitem__(self, qid: str) -> list[tuple[str, float]]:
        i = self.position(qid)
        if i < 0:
            raise KeyError(qid)
        rows, scores = self.rows[i], self.scores[i]
        n = int((rows >= 0).sum())
        take = getattr(self.doc_ids, "take", None)
        ids = take(rows[:n]) if take is not None else [self.doc_ids[r] for r in rows[:n].tolist()]
        return list(zip(ids, scores[:n].tolist()))

    def __contains__(self, qid) -> bool:
        return self.position(qid) >= 0

    def __iter__(self) -> Iterator[str]:
        return (q.decode("utf-8") for q in self.qids)

    def __len__(self) -> int:
        return len(self.qids)

    def __repr__(self) -> str:
        return f"CandidateLists({len(self)} queries, depth {self.depth})"


def qid_array(qids: Sequence[str]) -> np.ndarray:
    """Query ids, sorted, as fixed-width UTF-8 bytes (the ``qids.npy`` layout)."""
    raw = sorted(q.encode("utf-8") for q in qids)
    width = max((len(q) for q in raw), default=1) or 1
    return np.array(raw, dtype=f"S{width}") if raw else np.zeros(0, dtype="S1")
