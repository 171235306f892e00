"""TREC run / qrels file I/O."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerank_scaling.candidates import read_trec_run, write_trec_run
from rerank_scaling.errors import UserError


def test_run_round_trip(tmp_path: Path):
    ranking = {
        "q1": [("d3", 12.5), ("d1", 3.0000000001), ("d2", 3.0000000001), ("d9", -1.25)],
        "q2": [("x", 0.1 + 0.2)],
    }
    path = tmp_path / "out" / "run.trec"
    write_trec_run(path, ranking, "bm25")
    lines = path.read_text().splitlines()
    assert lines[0] == "q1 Q0 d3 1 12.5 bm25"
    assert len(lines) == 5
    assert read_trec_run(path) == ranking
    assert not [p for p in path.parent.iterdir() if p.name != "run.trec"]  # no temp files left


def test_read_orders_by_score_then_doc_id(tmp_path: Path):
    path = tmp_path / "run.txt"
    path.write_text("q 0 b 1 1.0 t\nq 0 a 2 1.0 t\nq 0 c 3 5 t\n\n")
    assert read_trec_run(path) == {"q": [("c", 5.0), ("a", 1.0), ("b", 1.0)]}


@pytest.mark.parametrize(
    "content, message",
    [
        ("q Q0 d 1 1.0 t\nq Q0 e 2 0.5\n", r"run\.txt:2: expected 6 fields"),
        ("q Q0 d 1 high t\n", r"run\.txt:1: score 'high' is not a number"),
        ("q Q0 d 1 1 t\nq Q0 d 2 0 t\n", r"run\.txt:2: document 'd' appears twice"),
    ],
)
def test_malformed_run_lines(tmp_path: Path, content: str, message: str):
    path = tmp_path / "run.txt"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        read_trec_run(path)


def test_missing_file_and_bad_tag(tmp_path: Path):
    with pytest.raises(UserError, match="file not found"):
        read_trec_run(tmp_path / "missing.run")
    with pytest.raises(UserError, match="run tag"):
        write_trec_run(tmp_path / "r", {"q": [("d", 1.0)]}, "two words")
    assert not (tmp_path / "r").exists()
