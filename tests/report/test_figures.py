"""The report's figures (report/figures.py): PNGs that exist and are referenced."""

from __future__ import annotations

from pathlib import Path

from synthetic_study import PNG_MAGIC


def test_figures_exist_are_pngs_and_are_referenced(report):
    study, path, text = report
    import re

    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(refs) == sorted({*refs})
    assert {"figures/size_ndcg10_cranfield-test.png", "figures/size_ndcg10_cisi.png",
            "figures/exposure_ndcg10_cranfield-test.png", "figures/metrics_cranfield-test.png",
            "figures/metrics_cisi.png"} == set(refs)
    for ref in refs:
        png = path.parent / ref
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    assert sorted(p.name for p in (path.parent / "figures").iterdir()) == sorted(Path(r).name for r in refs)
    assert not list(path.parent.glob(".report-*"))  # no temp folder left behind
