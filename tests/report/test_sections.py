"""The report's sections (report/sections.py, baselines.py, tables.py): facts, BM25, verdicts, forecasts."""

from __future__ import annotations

import json

from synthetic_study import BM25, EVALS, OBJECTIVES, SECTIONS, TRUTH, params_of, section


def test_report_has_every_section_and_the_study_facts(report):
    study, path, text = report
    assert path == study / "REPORT.md"
    assert text.startswith("# Scaling report: synthetic-scratch\n")
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert "Synthetic study with a known law" in text
    assert "| cranfield-test | in-domain | cranfield | test | 45 | 45 |" in text
    assert "| cisi | out-of-domain |" in text
    assert "BM25 top-50 candidates per query; the rerankers rescore the top 20" in text
    # ladder with non-embedding and total parameters, the largest size marked as held out
    n, total = params_of(6, 512)
    assert f"| scratch-L6-H512 | L6-H512 | {n:,} | {total:,} | 2 | held out (forecast) |" in text
    assert "the second-largest model size (7.23M non-embedding parameters), so the largest (19.1M) is held out" in text
    # wall time = sum and max of the cells' seconds (10 done cells + 2 failed at 12.5 s)
    seconds = [json.loads(p.read_text())["seconds"] for p in sorted((study / "cells").glob("*/status.json"))]
    assert f"{sum(seconds):,.0f} s summed over {len(seconds)} cells" in text
    assert f"longest cell {max(seconds):,.0f} s" in text
    peak = max(json.loads(p.read_text()).get("hardware", {}).get("peak_rss_mb", 0)
               for p in (study / "cells").glob("*/status.json"))
    assert peak > 900 and f"- **Peak memory**: {peak:,} MB resident" in text
    assert "- **Cells**: 10 done, 2 failed" in text


def test_failed_cells_are_listed_with_their_reasons(report):
    _, _, text = report
    failed = section(text, "Failed cells:", "## 2.")
    assert "`scratch-L8-H768__listwise__human__ball__s0` | non-finite loss at step 37 (lr too high?)" in failed
    assert "`scratch-L8-H768__pointwise__human__ball__s0` | out of memory: CUDA out of memory." in failed
    caveats = section(text, "## 6. Caveats", "\n- **One seed")
    assert "**Failed cells**: 2 cell(s) failed" in caveats


def test_bm25_lines_say_who_wins(report):
    study, _, text = report
    import polars as pl

    table = pl.read_parquet(study / "results.parquet")
    final = table.filter((pl.col("step") == pl.col("step").max()) & (pl.col("metric") == "ndcg@10")
                         & (pl.col("eval_set") == "cranfield-test"))
    best = final.sort("value", descending=True).row(0, named=True)
    delta = best["value"] - BM25["cranfield-test"]["ndcg@10"]
    assert (f"**A reranker beats BM25 on cranfield-test**: 10 of 10 rerankers score above BM25 on ndcg@10; the best, "
            f"`{best['model']}` ({best['objective']}), by {delta:+.4f}") in text
    assert "**No reranker beats BM25 on cisi**" in text
    assert "**No gain over BM25**: on cisi (out-of-domain)" in text
    # the best value per column is bold: BM25 on cisi, a reranker on cranfield-test
    cisi = section(text, "### cisi (out-of-domain", "**No reranker")
    assert "| BM25 | — | — | **0.9000** | **0.6000** | **0.9500** | — |" in cisi
    assert f"**{best['value']:.4f}**" in section(text, "### cranfield-test (in-domain", "**A reranker")


def test_verdict_table_has_a_row_per_metric_objective_and_eval_set(report):
    from rerank_scaling.scaling.verdicts import STATUSES

    _, _, text = report
    size = section(text, "### Size check", "### Exposure check")
    exposure = section(text, "### Exposure check", "### Side by side")
    for metric in TRUTH:
        for objective in OBJECTIVES:
            for name, _, _, in_domain, _ in EVALS:
                domain = "in-domain" if in_domain else "out-of-domain"
                row = f"| {metric} | {objective} | {name} | {domain} | "
                for part in (size, exposure):
                    lines = [ln for ln in part.splitlines() if ln.startswith(row)]
                    assert len(lines) == 1, (row, part)
                    cells = [c.strip() for c in lines[0].strip("|").split(" | ")]
                    assert cells[4].strip("*") in STATUSES
                    assert len(cells[-1]) < 200  # the why: its numbers in one short line
                    assert "MAE" in cells[-1] or cells[-1].startswith(("flat:", "noise not measured", "moves ("))


def test_forecast_table_lists_the_held_out_size_with_its_actual_value(report):
    study, _, text = report
    import polars as pl

    forecasts = section(text, "### Forecasts of the held-out sizes", "## 4.")
    table = pl.read_parquet(study / "results.parquet")
    final = table.filter((pl.col("model") == "scratch-L6-H512") & (pl.col("step") == pl.col("step").max()))
    for r in final.iter_rows(named=True):
        domain = "in-domain" if r["in_domain"] else "out-of-domain"
        head = f"| {r['metric']} | {r['eval_set']} | {domain} | {r['objective']} | `scratch-L6-H512` |"
        rows = [ln for ln in forecasts.splitlines() if ln.startswith(head)]
        assert len(rows) == 1
        cells = [c.strip() for c in rows[0].strip("|").split(" | ")]
        assert cells[5] == "19.1M"
        assert cells[8] == f"{r['value']:.4f}"  # actual
        predicted = float(cells[6])
        assert abs(float(cells[9]) - abs(predicted - r["value"])) <= 1.01e-4  # abs error (both rounded)
        lo, hi = (float(v) for v in cells[7].strip("[]").split(", "))
        assert lo <= predicted <= hi and cells[10] == ("yes" if lo <= r["value"] <= hi else "**no**")
    # no smaller (fitted) size is forecast
    assert "`scratch-L4-H384`" not in forecasts
