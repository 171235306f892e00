"""The report's whole-pipeline section on a study with chained runs (synthetic chains from the chain law)."""

from __future__ import annotations

import re

from benchmarks.synthetic_chains import chain_table
from rerank_scaling.report.build import build_report


def test_pipeline_section_renders(tmp_path):
    """Two eval sets (each its own law, budgets and rows; the figure draws the first)."""
    import polars as pl

    pl.concat([chain_table(seed=1), chain_table(seed=2, eval_set="vaswani", with_ordinary_rows=False)]).write_parquet(
        tmp_path / "results.parquet")
    text = build_report(tmp_path, n_boot=60).read_text()
    section = text[text.index("Whole pipeline"):]
    assert "**Best chain under a budget**" in section and "chains_frontier.png" in section
    assert (tmp_path / "figures" / "chains_frontier.png").stat().st_size > 10_000
    assert re.search(r"\*\*Backtest\*\*: the law fitted without the largest reranker size forecasts its 42 chains",
                     section)
    # no impossible number: every interval of the section inside [0, 1]
    for lo, hi in re.findall(r"\[(-?[0-9.]+), (-?[0-9.]+)\]", section):
        assert 0.0 <= float(lo) <= float(hi) <= 1.0
    # every measured chain is a row: 7 first stages alone + 63 chains
    for name in ("cranfield", "vaswani"):
        assert len(re.findall(rf"^\| {name} \| .* \(held out\) \|", section, re.M)) == 21
        assert len(re.findall(rf"^\| {name} \| ", section, re.M)) == 70  # 7 first stages alone, 63 chains
        assert len(re.findall(rf"^\| [0-9.]+ \| {name} \| ", section, re.M)) == 3  # its best chain, 3 budgets


def test_no_section_without_chain_rows(tmp_path):
    table = chain_table(seed=1)
    table.filter(table["stage"].is_null()).write_parquet(tmp_path / "results.parquet")
    assert "Whole pipeline" not in build_report(tmp_path, n_boot=20).read_text()
