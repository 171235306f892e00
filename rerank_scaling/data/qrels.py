"""Relevance judgments (qrels) files, in either layout users bring.

* TREC: ``qid iteration docid grade``, whitespace separated (trec_eval's format).
* BEIR: ``query-id<TAB>corpus-id<TAB>score``, with an optional header line.

A file is one layout or the other, told by its first judgment line (three
tab-separated fields: BEIR). Grades are integers (``2.0`` is read as 2);
malformed lines raise :class:`UserError` naming ``file:line``.
"""

from __future__ import annotations

from pathlib import Path

from rerank_scaling.errors import UserError


def _grade(path: Path, lineno: int, text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value == value and value == int(value):
        return int(value)
    raise UserError(f"{path}:{lineno}: {name} '{text}' is not an integer")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def qrel_lines(path: Path | str) -> list[tuple[str, str, int]]:
    """Every judgment of a qrels file as ``(qid, docid, grade)``, in file order."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    out: list[tuple[str, str, int]] = []
    beir: bool | None = None
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                if beir is None:
                    beir = "\t" in line and len(line.split("\t")) == 3
                    if beir and not _is_number(line.split("\t")[2].strip()):
                        continue  # header "query-id corpus-id score"
                if beir:
                    parts = [p.strip() for p in line.split("\t")]
                    if len(parts) != 3:
                        raise UserError(f"{path}:{lineno}: expected 3 tab-separated fields, got {len(parts)}")
                    qid, did, grade = parts
                    if not qid or not did:
                        raise UserError(f"{path}:{lineno}: empty query-id or corpus-id")
                    out.append((qid, did, _grade(path, lineno, grade, "score")))
                else:
                    parts = line.split()
                    if len(parts) != 4:
                        raise UserError(f"{path}:{lineno}: expected 4 fields 'qid iter docid grade', got {len(parts)}")
                    qid, _iteration, did, grade = parts
                    out.append((qid, did, _grade(path, lineno, grade, "grade")))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not valid UTF-8 ({exc.reason})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    return out


def read_qrels(path: Path | str) -> dict[str, dict[str, int]]:
    """A qrels file (TREC or BEIR layout) as ``qid -> docid -> grade``."""
    qrels: dict[str, dict[str, int]] = {}
    for qid, did, grade in qrel_lines(path):
        qrels.setdefault(qid, {})[did] = grade
    return qrels
