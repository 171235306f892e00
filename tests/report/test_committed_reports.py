"""Every committed report (reports/**/REPORT.md and the ladders README) has nothing a reader must not see:
absolute machine paths, nan/inf, an R² below -1, a bounded metric's forecast or interval outside [0, 1]
(the report layer's "nothing impossible", checked on the files themselves)."""

from __future__ import annotations

from pathlib import Path

import pytest

from report_scan import problems

REPO = Path(__file__).resolve().parents[2]
COMMITTED = sorted((REPO / "reports").rglob("REPORT.md")) + [REPO / "reports" / "ladders" / "README.md"]


def test_there_are_reports_to_scan():
    names = {p.parent.name for p in COMMITTED}
    assert {"demo", "dense-demo", "sparse-dense-demo", "pipeline-demo", "scalingnote-demo", "late-interaction-demo",
            "ladders"} <= names


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(REPO)))
def test_committed_report_has_nothing_impossible(path):
    assert problems(path.read_text(encoding="utf-8")) == []


def test_the_scan_finds_each_kind_of_problem():
    """The scan is only worth its pass if it fails on each problem it names."""
    bad = "\n".join([
        "Read from /work/shared/beir/cisi and C:\\data\\x (but https://example.org/a/b is a link).",
        "median q nan vs nan; interval [-inf, 3]",
        "R² = -2500025835609 in the text",
        "",
        "**ndcg@10 forecast**",
        "",
        "| objective | forecast | 90% interval |",
        "|---|---:|---|",
        "| pointwise | -0.0500 | [-0.2400, 0.9000] |",
        "",
        "| metric | law | R² | interval |",
        "|---|---|---:|---|",
        "| mrr@10 | size | -3.2 | [0.1000, 1.3400] |",
        "| ce@7 | size | 0.91 | [-0.5, 2.0] |",
        "| retained-ndcg@10 | size | n/a | [0.9, 1.2] |",
    ])
    found = problems(bad)
    text = "\n".join(found)
    assert "absolute path '/work/shared/beir/cisi'" in text and "C:\\\\data\\\\x" in text
    assert "example.org" not in text
    assert sum("'nan'" in p for p in found) == 2 and "'-inf'" in text
    assert "R² -2500025835609" in text and "R² -3.2" in text
    assert "ndcg@10 forecast -0.0500 outside [0, 1]" in text
    assert "ndcg@10 90% interval [-0.2400, 0.9000] outside [0, 1]" in text
    assert "mrr@10 interval [0.1000, 1.3400] outside [0, 1]" in text
    assert "ce@7 interval [-0.5, 2.0] outside [0, inf]" in text
    assert "retained-ndcg@10" not in text  # a student may beat its teacher: retained is not bounded by 1
    assert problems("| metric | interval |\n|---|---|\n| map | [0.1000, 0.9000] |\n") == []
