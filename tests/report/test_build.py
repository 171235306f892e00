"""Building a report (report/build.py, analysis.py, caveats.py): determinism, degradation, atomicity."""

from __future__ import annotations

import pytest

from synthetic_study import N_BOOT, make_study, section


def test_rerun_gives_identical_markdown_and_figures(report):
    from rerank_scaling.report import build_report

    study, path, text = report
    pngs = {p.name: p.read_bytes() for p in (study / "figures").iterdir()}
    again = build_report(study, n_boot=N_BOOT)
    assert again.read_text() == text
    assert {p.name: p.read_bytes() for p in (study / "figures").iterdir()} == pngs


def test_three_sizes_degrade_gracefully_with_a_caveat(tmp_path):
    from rerank_scaling.report import build_report
    from rerank_scaling.scaling.calibration import default_estimator

    study = make_study(tmp_path / "study", n_sizes=3, checkpoints=3)
    text = build_report(study, n_boot=N_BOOT).read_text()
    caveats = text[text.index("## 6. Caveats"):]
    assert "**Too few sizes**: only 3 distinct model size(s) (53.3K, 410K, 3.21M), fewer than 4" in caveats
    assert "the default estimator needs 3 to forecast a held-out size at all" in caveats
    # two sizes below the cut: no default forecast, no size verdict, and the reader is told why
    assert ("**No size forecast**: only 2 model size(s) at or below the fit cut; the default estimator "
            f"(`{default_estimator()}`) needs 3") in caveats
    assert "Not judged: only 2 model size(s) at or below the fit cut" in section(text, "### Size check",
                                                                                "### Exposure check")
    # 3 checkpoints: nothing early enough to fit the exposure law, said in its section
    assert "Not possible: no run has at least 2 checkpoints in the first half" in section(
        text, "### Exposure check", "## 5.")
    # the appendix's two-point log-linear laws: no R², no parameter interval (they pass through both points)
    laws = section(text, "### A. Size laws", "### C.")
    rows = [line for line in laws.splitlines() if line.startswith("| ndcg@10 |")]
    assert rows and all("| `loglinear` | 2 (2) | n/a |" in r and r.count("[n/a]") == 2 for r in rows)


def test_one_size_says_not_enough_sizes_to_fit(tmp_path):
    from rerank_scaling.report import build_report

    study = make_study(tmp_path / "study", n_sizes=1, checkpoints=3)
    text = build_report(study, n_boot=0).read_text()
    fitted = section(text, "### A. Size laws", "### C.")
    assert "| ndcg@10 | — | — | not enough sizes to fit |" in fitted
    assert "No forecast: only 1 model size(s) at or below the fit cut" in text
    assert "Not possible: the joint law's size term needs at least 3 model sizes" in text


def test_an_error_midway_leaves_nothing_half_written(tmp_path, monkeypatch):
    from rerank_scaling.report import build_report
    from rerank_scaling.report import figures

    study = make_study(tmp_path / "study", n_sizes=4, checkpoints=3, failed=False)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(figures, "metrics_figure", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        build_report(study, n_boot=0)
    assert not (study / "REPORT.md").exists()
    assert not (study / "figures").exists()
    assert not list(study.glob(".report-*"))


def test_size_verdicts_and_default_table_use_the_calibrated_default(tmp_path, monkeypatch):
    """The report forecasts the held-out size with the backtest's default estimator widened by its
    conformal rule -- the numbers ``forecast`` prints -- and its size verdicts judge those forecasts."""
    from rerank_scaling.report import build_report
    from rerank_scaling.results import read_table
    from rerank_scaling.scaling import calibration
    from rerank_scaling.scaling.backtest import WidthRule
    from rerank_scaling.scaling.estimate import estimator_forecasts

    rule = WidthRule("pooled-objectives", 0.9, 2.5, 50)
    monkeypatch.setattr(calibration, "default_estimator", lambda: "pooled-objectives")
    monkeypatch.setattr(calibration, "width_rule",
                        lambda name, level=0.9, axis="size": rule if (name, axis) == ("pooled-objectives", "size") else None)
    study = make_study(tmp_path / "study", n_sizes=5, checkpoints=3, failed=False)
    text = build_report(study, n_boot=N_BOOT).read_text()
    table = section(text, "### Forecasts of the held-out sizes (`pooled-objectives`) vs actual", "## 4.")
    results = read_table(study / "results.parquet")
    cut = sorted(results["params"].unique())[-2]  # the report's default cut: the largest size is held out
    rows = estimator_forecasts(results, "ndcg@10", cut, "pooled-objectives", n_boot=N_BOOT, width_rule=rule)
    assert rows and all(r["calibrated"] for r in rows)
    for r in rows:  # the synthetic values are far from 0 and 1: nothing is cut at the metric's bounds
        assert f"| {r['predicted']:.4f} | [{r['lower']:.4f}, {r['upper']:.4f}] | {r['actual']:.4f} |" in table
    verdicts = section(text, "## 4.", "## 5.")
    assert "Forecasts: the default estimator's (`pooled-objectives`, calibrated intervals)" in verdicts
    assert "Every forecast is the default estimator's (`pooled-objectives`)" in text
