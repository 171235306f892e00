"""One qrels reader for both layouts users bring (TREC and BEIR)."""

from pathlib import Path

import pytest

from rerank_scaling.data import read_qrels
from rerank_scaling.data.qrels import qrel_lines
from rerank_scaling.errors import UserError


def test_trec_layout(tmp_path: Path):
    path = tmp_path / "qrels.txt"
    path.write_text("1 0 184 2\n1 0 486 -1\n\n2 0 12 1.0\n")
    assert read_qrels(path) == {"1": {"184": 2, "486": -1}, "2": {"12": 1}}


def test_beir_layout_with_and_without_header(tmp_path: Path):
    path = tmp_path / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\td1\t2\n")
    assert qrel_lines(path) == [("q1", "d1", 1), ("q1", "d2", 0), ("q2", "d1", 2)]
    path.write_text("q1\td1\t1\n")
    assert read_qrels(path) == {"q1": {"d1": 1}}


def test_real_cisi_qrels_match_the_beir_loader(shared_root, cisi):
    qrels = read_qrels(shared_root / "beir" / "cisi" / "qrels" / "test.tsv")
    judged = {q: {d: g for d, g in docs.items()} for q, docs in qrels.items() if q in cisi.queries}
    assert judged == cisi.qrels


@pytest.mark.parametrize(
    "content,message",
    [
        ("1 0 184\n", r"qrels\.txt:1: expected 4 fields"),
        ("1 0 184 high\n", r"qrels\.txt:1: grade 'high' is not an integer"),
        ("q\td\t1\nq\td\n", r"qrels\.txt:2: expected 3 tab-separated fields, got 2"),
        ("q\td\t1.5\n", r"qrels\.txt:1: score '1.5' is not an integer"),
        ("\td\t1\n", r"qrels\.txt:1: empty query-id or corpus-id"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, content: str, message: str):
    path = tmp_path / "qrels.txt"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        read_qrels(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(UserError, match="file not found"):
        read_qrels(tmp_path / "nope.tsv")
