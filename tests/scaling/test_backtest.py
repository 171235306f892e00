"""Backtest, estimators and conformal calibration on small tables with hand-checkable numbers."""

import json
import math
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from rerank_scaling.cli import main
from rerank_scaling.scaling.backtest import WidthRule, backtest, calibrate, calibration_check
from rerank_scaling.scaling.estimators import EXPOSURE_ESTIMATORS, SIZE_ESTIMATORS, pooled_fit

SIZES = (1e6, 2e6, 4e6, 8e6, 16e6)


def exact(n, a=0.8, g=0.2, c=-0.5):
    return a - g * (np.asarray(n, float) / 1e6) ** c


def exact_table(objectives=("listwise", "pointwise"), steps=(10, 20, 30, 40), ladder=None) -> pl.DataFrame:
    """y = 0.8 - 0.2*(N/1e6)^-0.5 at every checkpoint (no noise, no exposure trend)."""
    rows = []
    for obj in objectives:
        for n in SIZES:
            for s in steps:
                rows.append(dict(objective=obj, model=f"m{n:g}", params=n, step=s, metric="ndcg@10",
                                 value=float(exact(n)) + (0.01 if obj == "pointwise" else 0.0)))
    df = pl.DataFrame(rows)
    return df.with_columns(ladder=pl.lit(ladder)) if ladder else df


def test_case_counts_and_exact_law():
    bt = backtest(exact_table(), estimators=["curve-fit", "carry-forward", "loglinear", "auto"],
                  exposure_estimators=["carry-forward"], n_boot=20)
    s = {(r["axis"], r["holdout"], r["estimator"]): r for r in bt.summary.iter_rows(named=True)}
    # 2 objectives: hide 1 size -> 1 target each; hide 2 -> 2 targets each
    assert s[("size", 1, "curve-fit")]["n"] == 2 and s[("size", 2, "curve-fit")]["n"] == 4
    # exposure: 4 checkpoints per model, hiding 1 leaves 3 (kept), hiding 2 leaves 2 (skipped); 10 models
    assert s[("exposure", 1, "carry-forward")]["n"] == 10 and ("exposure", 2, "carry-forward") not in s
    # curve_fit recovers the exact law from 4 sizes
    assert s[("size", 1, "curve-fit")]["mae"] < 1e-6
    # carry-forward of 8M to 16M misses by 0.2 * (8^-0.5 - 16^-0.5) = 0.020711 (low: it is an increasing metric)
    assert s[("size", 1, "carry-forward")]["bias"] == pytest.approx(-0.2 * (8**-0.5 - 16**-0.5), abs=1e-9)
    # flat checkpoints: the exposure carry-forward is exact
    assert s[("exposure", 1, "carry-forward")]["mae"] == pytest.approx(0.0, abs=1e-12)


def test_every_estimator_runs_and_baseline_is_reported(study):
    sub = study.filter(pl.col("metric") == "ndcg@10")
    bt = backtest(sub, holdouts=(1,), n_boot=20)
    size = bt.summary.filter(pl.col("axis") == "size")
    assert set(size["estimator"]) == set(SIZE_ESTIMATORS)
    assert set(bt.summary.filter(pl.col("axis") == "exposure")["estimator"]) == set(EXPOSURE_ESTIMATORS)
    for r in size.iter_rows(named=True):
        assert r["n"] == 6 and r["n_failed"] == 0, r  # 3 objectives x 2 budgets, 1 hidden size
        assert math.isfinite(r["mae"]) and 0 <= r["coverage"] <= 1 and r["median_width"] > 0
    # the saturating truth: a fitted law beats carrying 400M forward to 1B
    mae = dict(zip(size["estimator"], size["mae"]))
    assert mae["auto"] < mae["carry-forward"] and mae["curve-fit"] < mae["carry-forward"]
    assert mae["pooled"] < mae["carry-forward"]


def test_ladders_from_tables_and_ladder_column(tmp_path):
    a = tmp_path / "a.csv"
    exact_table(("listwise",)).write_csv(a)
    both = pl.concat([exact_table(("listwise",), ladder="x"), exact_table(("listwise",), ladder="y")])
    bt = backtest([a, both], estimators=["carry-forward"], exposure=False, holdouts=(1,))
    assert sorted(bt.cases["ladder"].unique()) == ["a", "table2/x", "table2/y"]
    assert bt.summary["n"].to_list() == [3]


def test_pooled_fit_shares_the_exponent():
    t = np.log(np.array(SIZES) / 4e6)
    ys = [0.8 - 0.2 * np.exp(-0.5 * t), 0.6 - 0.1 * np.exp(-0.5 * t)]
    c, a, g = pooled_fit([(t, ys[0]), (t, ys[1])], s=1, bound=1.0)
    assert c[0] == pytest.approx(-0.5, abs=0.02)  # the grid's spacing
    assert a[0][0] == pytest.approx(0.8, abs=0.01) and a[1][0] == pytest.approx(0.6, abs=0.01)
    assert g[0][0] == pytest.approx(0.2, rel=0.05) and g[1][0] == pytest.approx(0.1, rel=0.05)


def _cases(actuals, pred=0.0, lo=-1.0, hi=1.0, metric="m", ladder="l"):
    n = len(actuals)
    return pl.DataFrame(dict(ladder=[ladder] * n, metric=[metric] * n, axis=["size"] * n, estimator=["e"] * n,
                             predicted=[pred] * n, lower=[lo] * n, upper=[hi] * n, actual=list(actuals),
                             width=[hi - lo] * n, covered=[lo <= y <= hi for y in actuals]))


def test_conformal_factor_by_hand():
    # scores |y - pred| / half-width = 0.5, 1.5, 2, 3; n = 4, level 0.5: ceil(5 * 0.5) = 3rd smallest = 2
    rule = calibrate(_cases([0.5, 1.5, -2.0, -3.0]), "e", level=0.5)
    assert rule.factor == pytest.approx(2.0) and rule.n == 4
    lo, hi = rule.apply([0.0], [-1.0], [0.5])  # sides widened separately
    assert lo[0] == pytest.approx(-2.0) and hi[0] == pytest.approx(1.0)
    # too few cases for 90%: ceil(5 * 0.9) = 5 > 4 -> unbounded
    assert calibrate(_cases([0.5, 1.5, -2.0, -3.0]), "e", level=0.9).factor == math.inf
    assert isinstance(rule, WidthRule) and rule.to_dict()["factor"] == 2.0


def test_calibration_check_leaves_each_ladder_out():
    # ladder l1 misses by 2 half-widths, l2 by 0.5: each fold's rule comes from the other ladder
    cases = pl.concat([_cases([2.0] * 9, ladder="l1"), _cases([0.5] * 9, ladder="l2")])
    out = calibration_check(cases, "e", level=0.9)
    assert out["folds_by"] == "ladder" and out["n"] == 18
    assert out["coverage_raw"] == pytest.approx(0.5)
    # l1 tested with factor 0.5 (all miss), l2 with factor 2 (all covered)
    assert out["coverage_calibrated"] == pytest.approx(0.5)
    assert out["median_width_calibrated"] == pytest.approx((1.0 + 4.0) / 2)


def test_backtest_cli_json(tmp_path, capsys):
    path = tmp_path / "ladder.csv"
    exact_table().write_csv(path)
    assert main(["backtest", str(path), "--estimators", "curve-fit,carry-forward", "--exposure-estimators",
                 "carry-forward", "--bootstrap", "10", "--calibrate", "carry-forward", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"level", "summary", "calibration"} <= set(out) and "cases" not in out
    rows = {(r["axis"], r["holdout"], r["estimator"]) for r in out["summary"]}
    assert ("size", 1, "curve-fit") in rows and ("size", 2, "carry-forward") in rows
    assert all({"mae", "bias", "coverage", "median_width", "n"} <= set(r) for r in out["summary"])
    assert main(["backtest", str(path), "--estimators", "nope"]) == 2


def test_forecast_joint_law_from_cli(tmp_path, study, capsys):
    path = tmp_path / "study.parquet"
    study.write_parquet(path)
    assert main(["forecast", str(path), "--metric", "ndcg@10", "--fit-max-params", "150e6", "--law", "joint",
                 "--objective", "listwise", "--bootstrap", "30", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["law"] == "joint" and r["lower"] <= r["predicted"] <= r["upper"] for r in rows)
    assert all(abs(r["rel_error"]) < 0.05 for r in rows)


def test_cli_module_imports_only_the_standard_library():
    code = ("import sys; import rerank_scaling.scaling.cli; "
            "print(sorted(m for m in ('numpy', 'scipy', 'polars', 'rich', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_choices_mirror_the_analyzer():
    from rerank_scaling.scaling import cli, forecast as fc_mod, verdicts as v_mod  # noqa: F401
    from rerank_scaling.scaling.forecast import FIT_LAWS, FORECAST_LAWS
    from rerank_scaling.scaling.laws import DATA_LAWS, JOINT_LAWS
    from rerank_scaling.scaling.table import DATA_AXES
    from rerank_scaling.scaling.verdicts import DEFAULT_MIN_COVERAGE

    assert set(cli.LAW_CHOICES) == set(FORECAST_LAWS) and cli.JOINT_LAWS == JOINT_LAWS
    assert set(cli.FIT_LAW_CHOICES) == set(FIT_LAWS) and cli.DATA_LAWS == DATA_LAWS
    assert cli.DATA_AXES == DATA_AXES
    from rerank_scaling.scaling.allocate import STAGES

    assert cli.STAGES == STAGES
    assert cli.ESTIMATOR_NAMES == tuple(SIZE_ESTIMATORS)
    assert cli.EXPOSURE_ESTIMATOR_NAMES == tuple(EXPOSURE_ESTIMATORS)
    assert cli.DEFAULT_MIN_COVERAGE == DEFAULT_MIN_COVERAGE


def _case_rows(ladder, metric, estimator, errors, holdout=1, width=0.1):
    return [dict(ladder=ladder, metric=metric, axis="size", holdout=holdout, estimator=estimator, error=e,
                 predicted=math.nan if math.isnan(e) else 0.5 + e, width=math.nan if math.isnan(e) else width)
            for e in errors]


def test_default_rule_by_hand():
    """Relative MAE per (ladder, metric, holdout) against loglinear, averaged within each ladder, then over
    ladders; a baseline or an estimator failing > 10% of its targets is not eligible."""
    from rerank_scaling.scaling.backtest import choose_default

    rows = []
    # ladder A: two metrics on scales 100x apart; loglinear MAE 0.1 and 10
    rows += _case_rows("A", "ndcg", "loglinear", [0.1, -0.1]) + _case_rows("A", "ce", "loglinear", [10.0, 10.0])
    rows += _case_rows("A", "ndcg", "pooled", [0.05, 0.05]) + _case_rows("A", "ce", "pooled", [10.0, -10.0])
    rows += _case_rows("A", "ndcg", "late-k", [0.02, 0.02]) + _case_rows("A", "ce", "late-k", [30.0, 30.0])
    # ladder B: one metric
    rows += _case_rows("B", "acc", "loglinear", [0.2, 0.2])
    rows += _case_rows("B", "acc", "pooled", [0.1, 0.1]) + _case_rows("B", "acc", "late-k", [0.3, math.nan])
    rows += _case_rows("B", "acc", "curve-fit", [0.0, 0.0])
    # a constant metric: the reference is exact to rounding error, so the group says nothing (skipped)
    rows += _case_rows("B", "recall", "loglinear", [1e-17, -1e-17]) + _case_rows("B", "recall", "pooled", [1e-3, 1e-3])
    table = choose_default(pl.DataFrame(rows))
    got = {r["estimator"]: r for r in table.iter_rows(named=True)}
    # pooled: A = mean(0.5, 1.0) = 0.75, B = 0.5 -> 0.625; late-k: A = mean(0.2, 3.0) = 1.6, B = 1.5 -> 1.55
    assert got["pooled"]["score"] == pytest.approx(0.625) and got["pooled"]["A"] == pytest.approx(0.75)
    assert got["late-k"]["score"] == pytest.approx(1.55)
    assert got["late-k"]["failed"] == pytest.approx(1 / 6) and not got["late-k"]["eligible"]
    assert got["curve-fit"]["score"] == 0 and not got["curve-fit"]["eligible"]  # a baseline, however good
    assert table["estimator"][0] == "pooled" and table["eligible"][0]


def test_forecast_with_an_estimator_and_a_width_rule():
    """forecast --estimator: the backtested estimator on every group, larger sizes and --predict-params sizes
    forecast; a width rule scales both half-widths by its factor and nothing else."""
    from rerank_scaling.scaling.estimate import estimator_forecasts

    table = exact_table()
    rule = WidthRule("pooled", 0.9, 2.0, 10)
    raw = estimator_forecasts(table, "ndcg@10", 4e6, "pooled", predict_params=[32e6], n_boot=20)
    wide = estimator_forecasts(table, "ndcg@10", 4e6, "pooled", predict_params=[32e6], n_boot=20, width_rule=rule)
    assert [(r["objective"], r["params"]) for r in raw] == [(o, n) for o in ("listwise", "pointwise")
                                                           for n in (8e6, 16e6, 32e6)]
    for r, w in zip(raw, wide):
        shift = 0.01 if r["objective"] == "pointwise" else 0.0
        assert r["predicted"] == pytest.approx(float(exact(r["params"])) + shift, abs=1e-3)  # the law, to fit tolerance
        assert (r["actual"] is None) == (r["params"] == 32e6)
        assert w["predicted"] == r["predicted"] and w["raw_lower"] == r["lower"]
        assert w["upper"] - w["predicted"] == pytest.approx(2 * (r["upper"] - r["predicted"]))
        assert w["predicted"] - w["lower"] == pytest.approx(2 * (r["predicted"] - r["lower"]))


def test_forecast_estimator_from_cli(tmp_path, capsys):
    path = tmp_path / "t.csv"
    exact_table().write_csv(path)
    assert main(["forecast", str(path), "--metric", "ndcg@10", "--fit-max-params", "8e6", "--estimator", "late-k",
                 "--bootstrap", "20", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["params"] for r in rows] == [16e6, 16e6] and all(r["estimator"] == "late-k" for r in rows)
    assert all(abs(r["error"]) < 1e-3 for r in rows)


def test_constant_metric_is_not_a_case():
    """recall@100 after reranking the top 20 is the same for every model: nothing to forecast, and its
    zero-width intervals would 'miss' by rounding error, so the backtest keeps it out of every score."""
    flat = exact_table().with_columns(metric=pl.lit("recall@100"), value=pl.lit(0.7372) + pl.lit(0.0))
    bt = backtest(pl.concat([exact_table(), flat]), estimators=["carry-forward", "loglinear"],
                  exposure_estimators=["carry-forward"], n_boot=10)
    assert set(bt.cases["metric"].unique().to_list()) == {"ndcg@10"}
    nearly = flat.with_columns(value=pl.col("value") + pl.col("params") * 1e-9)  # moves a little: a real case
    bt = backtest(nearly, estimators=["carry-forward"], exposure=False, n_boot=10)
    assert set(bt.cases["metric"].unique().to_list()) == {"recall@100"}


def test_pooled_objectives_pools_objectives_not_families():
    """The shared exponent is shared by objectives of one family: adding a second family whose curve
    bends differently leaves the first family's forecasts unchanged (``pooled`` would mix them)."""
    from rerank_scaling.scaling.estimate import estimator_forecasts

    def table(family, c):
        return exact_table().with_columns(family=pl.lit(family),
                                          value=0.8 - 0.2 * (pl.col("params") / 1e6) ** c
                                          + pl.col("objective").eq("pointwise").cast(pl.Float64) * 0.01)

    dense = table("bi-encoder", -0.5)
    both = pl.concat([dense, table("sparse", -1.5)])
    alone = estimator_forecasts(dense, "ndcg@10", 8e6, "pooled-objectives", n_boot=20)
    mixed = [r for r in estimator_forecasts(both, "ndcg@10", 8e6, "pooled-objectives", n_boot=20)
             if r["family"] == "bi-encoder"]
    assert len(alone) == len(mixed) == 2
    assert [r["predicted"] for r in mixed] == pytest.approx([r["predicted"] for r in alone], abs=1e-12)
    assert mixed[0]["predicted"] == pytest.approx(float(exact(16e6)), abs=2e-3)
