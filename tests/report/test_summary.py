"""The report's first screen (report/summary.py) and the adapter's trust line (report/analysis.py): the answer
table's numbers from the per-query values, the next-size forecast with its trust line, findings, confounds;
and regenerating a report from its own folder."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import polars as pl
import pytest

from synthetic_study import N_BOOT, make_study, section
from test_dense_report import BM25, QUERIES, SIZES, make_dense_study


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    from rerank_scaling.report import build_report

    root = make_dense_study(tmp_path_factory.mktemp("dense") / "study")
    return root, build_report(root, n_boot=40).read_text()


def _row(table: str, start: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(start))
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def test_the_summary_comes_first(dense):
    _, text = dense
    assert text.index("## Summary") < text.index("## 1. The study")
    first_screen = text[:text.index("## 1. The study")]
    for part in ("- **Trained**: 48 bi-encoders", "**ndcg@10 on cranfield-test** (in-domain)", "**Next size**",
                 "*Trust*:", "**Findings**", "**Confounds the study knows about**"):
        assert part in first_screen


def test_answer_table_is_mean_se_and_holm_test_against_bm25(dense):
    """Each cell: the mean over queries (final checkpoint), its standard error over queries, the difference to
    BM25 and the Holm p of the paired test over the largest budget's lists -- recomputed here from the files."""
    from rerank_scaling.report import significance as sig
    from rerank_scaling.report.study import load_study

    root, text = dense
    table = section(text, "**ndcg@10 on cranfield-test**", "**Next size**")
    header = _row(table, "| model |")
    assert header == ["model", "N", "infonce (human)", "infonce (ict)", "infonce (weak)"]
    pq = pl.read_parquet(root / "per_query.parquet")
    bm25 = pq.filter((pl.col("run") == "bm25") & (pl.col("metric") == "ndcg@10"))
    se_bm25 = float(bm25["value"].std()) / math.sqrt(QUERIES)
    assert _row(table, "| BM25 |")[2] == f"{BM25['ndcg@10']:.3f} ± {se_bm25:.3f}"
    study = load_study(root)
    shown = study.finals.filter((pl.col("metric") == "ndcg@10") & (pl.col("budget") == 240))
    tests = sig.versus_bm25_by_system(study.per_query, shown, "cranfield-test", "ndcg@10")
    for size, n in SIZES:
        row = _row(table, f"| `minilm-{size}` |")
        for col, sup in zip(row[2:], ("human", "ict", "weak")):
            run = f"bi-encoder__minilm-{size}__infonce__{sup}__b240__s0"
            values = pq.filter((pl.col("run") == run) & (pl.col("metric") == "ndcg@10"))["value"]
            mean = float(shown.filter(pl.col("run") == run)["value"][0])
            test = next(t for k, t in tests.items() if k[0] == f"minilm-{size}" and sup in k)
            p = f"p {test.p_holm:.2g}"
            assert col == (f"{mean:.3f} ± {float(values.std()) / math.sqrt(QUERIES):.3f} "
                           f"({test.delta:+.3f}, {'**' + p + '**' if test.significant else p})")
    slopes = _row(table, "| *gain per doubling of N* |")
    means = [float(_row(table, f"| `minilm-{s}` |")[2].split(" ")[0]) for s, _ in SIZES]
    slope = np.polyfit(np.log2([n for _, n in SIZES]), means, 1)[0]
    assert slopes[2] == f"{slope:+.3f} per doubling"


def test_next_size_forecast_is_in_range_with_its_trust_line(dense):
    from rerank_scaling.report.analysis import trust
    from rerank_scaling.scaling import calibration

    _, text = dense
    block = section(text, "**Next size**", "**Findings**")
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in block.splitlines()
            if line.startswith("| infonce")]
    assert len(rows) == 3
    for r in rows:
        assert r[2] == "14.2M"  # 2x the largest N (7.1M)
        lo, hi = (float(v) for v in r[4].strip("[]").split(", "))
        assert 0 <= lo <= float(r[3]) <= hi <= 1
    line = trust(calibration.default_estimator()).line()
    assert f"*Trust*: {line}" in block
    assert re.search(r"\*In this study\*: with the largest size held out, \d+/\d+ actual ndcg@10 values", block)


def test_trust_is_the_analyzers_record(monkeypatch):
    """The report's trust line reads `scaling.calibration.trust(name)`, the backtest's record of the default."""
    from rerank_scaling.report.analysis import trust
    from rerank_scaling.scaling import calibration

    name = calibration.default_estimator()
    record = calibration.trust(name)
    t = trust(name)
    assert (t.coverage, t.median_width, t.mae, t.mae_carry_forward, t.cases) == (
        record["coverage"], record["median_width"], record["mae"], record["mae_carry_forward"], record["n"])
    assert t.ladders == tuple(record["ladders"]) and t.ratio < 1  # it beats carrying the largest value forward
    monkeypatch.setattr(calibration, "trust", lambda n: {"coverage": 0.88, "median_width": 0.05, "mae": 0.02,
                                                          "mae_carry_forward": 0.04, "n": 40, "ladders": ["a", "b"]})
    t = trust(name)
    assert t.line() == ("on 2 real ladders, its calibrated 90% intervals held 88% of 40 held-out actuals out of "
                        "sample (median width 0.050); with the largest one or two sizes hidden its mean absolute "
                        "error was 0.020, 0.50x that of carrying the largest fitted value forward (0.040).")
    monkeypatch.setattr(calibration, "trust", lambda n: None)
    assert trust("mixture").line() == "`mixture` has no backtest record here: treat its forecasts as untested."


def test_findings_and_confounds_are_written_from_the_data(dense):
    _, text = dense
    findings = section(text, "**Findings**", "**Confounds")
    assert "**Best bi-encoder on cranfield-test**: `minilm-4L` (infonce, human) beats BM25 on ndcg@10" in findings
    assert "**Does size help?** Largest vs smallest model, paired over the 40 queries of cranfield-test" in findings
    assert "Significantly better in 3 of 3" in findings
    confounds = section(text, "**Confounds the study knows about**", "caveat(s) in [Caveats]")
    assert "**Truncated models**: every size (1L, 2L, 3L, 4L) is the first layers of the pretrained " \
           "all-MiniLM-L6-v2" in confounds
    assert "**One seed**" in confounds


def test_confounds_name_the_whole_pretrained_model_and_under_training(tmp_path):
    """A ladder whose largest rung is the whole pretrained model; runs that saw a fraction of an epoch while
    their curves still rose."""
    from rerank_scaling.report.analysis import analyse
    from rerank_scaling.report.study import load_study
    from rerank_scaling.report.summary import confounds

    root = make_study(tmp_path / "study", n_sizes=4, checkpoints=6, failed=False)
    for cell in (root / "cells").iterdir():
        config = json.loads((cell / "config.json").read_text())
        (cell / "config.json").write_text(json.dumps({**config, "steps": 150, "batch_size": 8}))
        data = json.loads((cell / "data.json").read_text())
        (cell / "data.json").write_text(json.dumps({**data, "train": {**data["train"], "instances": 4800}}))
    table = pl.read_parquet(root / "results.parquet")
    sizes = {"scratch-L1-H64": "1L", "scratch-L2-H128": "2L", "scratch-L4-H256": "3L", "scratch-L4-H384": "6L"}
    table = table.with_columns(
        ladder=pl.when(pl.col("run") == "bm25").then(pl.col("ladder")).otherwise(pl.lit("minilm")),
        size=pl.col("model").replace_strict(sizes, default=pl.col("size")))
    table.write_parquet(root / "results.parquet")
    study = load_study(root)
    text = "\n".join(confounds(study, analyse(study, n_boot=0)))
    assert ("**Pretrained vs truncated**: `minilm-6L` is the whole pretrained all-MiniLM-L6-v2; 1L, 2L, 3L are its "
            "first layers") in text
    assert "**Under-trained**: each run saw 25% of one epoch of its training groups" in text
    assert re.search(r"ndcg@10 on cranfield-test still rose over the last checkpoint interval in \d+ of 8 runs", text)


def test_a_report_folder_regenerates_without_the_study(tmp_path):
    """Written elsewhere, a report carries its table, per-query values, experiment file and a digest of its
    cells (no absolute path in it): `rerank-scaling report` on that folder writes the same report."""
    from rerank_scaling.report import build_report

    study = make_study(tmp_path / "runs" / "study", n_sizes=4, checkpoints=4, failed=True)
    out = build_report(study, tmp_path / "reports" / "study" / "REPORT.md", n_boot=N_BOOT)
    folder = out.parent
    assert {p.name for p in folder.iterdir()} == {"REPORT.md", "figures", "results.parquet", "experiment.toml",
                                                 "cells.json"}
    digest = (folder / "cells.json").read_text()
    assert str(tmp_path) not in digest and json.loads(digest)["cells"]
    first = out.read_text()
    figures = {p.name: p.read_bytes() for p in (folder / "figures").iterdir()}
    again = build_report(folder, n_boot=N_BOOT)
    assert again == out and again.read_text() == first
    assert {p.name: p.read_bytes() for p in (folder / "figures").iterdir()} == figures
    assert "- **Cells**: 8 done, 2 failed" in first and "**Failed cells**" in first  # from the digest, too


def test_a_sparse_model_that_expands_each_token_into_a_few_terms_is_sparse():
    """The report's "not sparse" confound: the new sparse demo's 55 active terms for 48-token documents (lexical
    head, expansion) are sparse; the earlier demo's ~30,000 of 30,522 are not."""
    from rerank_scaling.report.summary import not_sparse

    assert not not_sparse(55.0, 48) and not not_sparse(480.0, 48)
    assert not_sparse(30_205.0, 48) and not_sparse(481.0, 48)
    assert not not_sparse(30_205.0, None)  # no length recorded: no claim


def test_a_forecast_interval_narrower_than_a_measured_means_standard_error_is_not_credible():
    """The pipeline demo's default forecast at 2x N came with [0.43252, 0.43268] around 0.43247 (three sizes, a
    law through every point, one run each): 200x narrower than the 0.035 standard error of a mean over its 45
    queries, so the report calls it not identified and claims no gain from it."""
    from rerank_scaling.report.summary import credible

    collapsed = {"predicted": 0.43247, "lower": 0.43252, "upper": 0.43268}
    assert not credible(collapsed, 0.035) and not credible(collapsed | {"upper": 0.43252}, 0.0)
    assert credible({"predicted": 0.365, "lower": 0.304, "upper": 0.430}, 0.035)  # the default study's
    assert credible({"predicted": 0.365, "lower": 0.36, "upper": 0.37}, 0.035)  # narrower than the error, not 10x
    assert not credible({"predicted": 0.4, "lower": float("nan"), "upper": 0.5}, 0.0)
