"""Backtest, estimators and conformal calibration on small tables with hand-checkable numbers."""

import json
import math
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from rerank_scaling.cli import main
from rerank_scaling.scaling.backtest import WidthRule, backtest
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
                  exposure=True, exposure_estimators=["carry-forward"], n_boot=20)
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
    bt = backtest(sub, holdouts=(1,), n_boot=20, exposure=True)
    size = bt.summary.filter(pl.col("axis") == "size")
    assert set(size["estimator"]) == set(SIZE_ESTIMATORS)
    assert set(bt.summary.filter(pl.col("axis") == "exposure")["estimator"]) == set(EXPOSURE_ESTIMATORS)
    for r in size.iter_rows(named=True):
        assert r["n"] == 6 and r["n_failed"] == 0, r  # 3 objectives x 2 budgets, 1 hidden size
        assert math.isfinite(r["mae"]) and 0 <= r["coverage"] <= 1 and r["median_width"] > 0
    # the saturating truth: a fitted law beats carrying 400M forward to 1B
    mae = dict(zip(size["estimator"], size["mae"]))
    assert mae["auto"] < mae["carry-forward"] and mae["curve-fit"] < mae["carry-forward"]
    assert mae["mixture"] < mae["carry-forward"] and mae["mixture-pooled"] < mae["carry-forward"]


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


def _runs(ladders, scores, level=0.9, role="scaling"):
    """A hand-made backtest run of one Fixed-interval estimator: per ladder, targets whose actual sits
    ``score`` half-widths from the forecast (half-width 1)."""
    from rerank_scaling.scaling.backtest import _Runs
    from rerank_scaling.scaling.estimators import Fixed

    r = _Runs([], [], level)
    for lad, ss in zip(ladders, scores):
        for s in ss:
            r.rows.append(dict(ladder=lad, role=role, actual=float(s)))
            r.dists.append((Fixed(np.zeros(1), -np.ones(1), np.ones(1), level), 0))
    return r


def test_width_is_the_smallest_with_ladder_averaged_coverage():
    """Coverage is averaged over ladders (each ladder weighs as one, whatever its target count): ladder a's
    3 targets sit 0.5, 1.5 and 3 half-widths out, b's one target 1.2. At factor 1.5 coverage is
    (2/3 + 1) / 2 = 0.83; at 3 it is 1. For level 0.8 the smallest grid factor >= 1.5 wins."""
    from rerank_scaling.scaling.backtest import FACTOR_GRID, fit_index

    r = _runs(["a", "b"], [[0.5, 1.5, 3.0], [1.2]], level=0.8)
    k = fit_index(r, 0.8, np.ones(4, bool))
    assert FACTOR_GRID[k] >= 1.5 and FACTOR_GRID[k - 1] < 1.5
    k = fit_index(r, 0.95, np.ones(4, bool))
    assert FACTOR_GRID[k] >= 3.0 and FACTOR_GRID[k - 1] < 3.0
    # trained on ladder b alone (what a's left-out fold sees): 1.2 half-widths covers all of b
    k = fit_index(r, 0.95, np.array([False, False, False, True]))
    assert FACTOR_GRID[k] >= 1.2 and FACTOR_GRID[k - 1] < 1.2


def test_width_rule_scales_each_side():
    rule = WidthRule("e", 0.9, 2.0, 4)
    lo, hi = rule.apply([0.0], [-1.0], [0.5])  # sides widened separately
    assert lo[0] == pytest.approx(-2.0) and hi[0] == pytest.approx(1.0)
    assert rule.to_dict()["factor"] == 2.0 and rule.to_dict()["kind"] == "factor"


def test_pick_prefers_the_simpler_within_one_standard_error():
    from rerank_scaling.scaling.backtest import pick

    # complex beats simple by 0.1 on average, but the paired differences (0.3, -0.1, 0.1) have SE 0.115
    per = {"simple": {"a": 1.0, "b": 0.8, "c": 0.9}, "complex": {"a": 0.7, "b": 0.9, "c": 0.8}}
    assert pick(per, ["simple", "complex"]) == "simple"
    # now consistently better by 0.1 +- 0.01: the complex one is chosen
    per = {"simple": {"a": 1.0, "b": 0.8, "c": 0.9}, "complex": {"a": 0.89, "b": 0.71, "c": 0.8}}
    assert pick(per, ["simple", "complex"]) == "complex"
    # the best is also the simplest
    assert pick({"s": {"a": 0.5, "b": 0.5}, "c": {"a": 0.9, "b": 0.9}}, ["s", "c"]) == "s"


def test_controls_never_calibrate_and_scaling_widths_are_out_of_fold():
    """A scaling ladder's widths come from the other scaling ladders; a control ladder's from all of them,
    and adding a control changes no scaling ladder's numbers."""
    tables = [exact_table(ladder=f"s{i}").with_columns(value=pl.col("value") + pl.col("params") ** 0.5 * 1e-6 * i)
              for i in range(3)]
    both = pl.concat(tables)
    noisy = exact_table().with_columns(value=pl.col("value") * (1 + 0.05 * (pl.col("params") / 1e6).sin()))
    a = backtest(both, estimators=["mixture", "carry-forward"], holdouts=(1,), n_boot=0)
    b = backtest(both, controls=[noisy], estimators=["mixture", "carry-forward"], holdouts=(1,), n_boot=0)
    key = ["ladder", "estimator", "objective", "params"]
    sa = a.cases.sort(key).select(*key, "lower", "upper", "width_param")
    sb = b.cases.filter(pl.col("role") == "scaling").sort(key).select(*key, "lower", "upper", "width_param")
    assert sa.equals(sb)
    ctrl = b.cases.filter((pl.col("role") == "control") & (pl.col("estimator") == "mixture"))
    assert ctrl.height and (ctrl["width_param"] == b.rules[("mixture", "size")].factor).all()


def test_backtest_cli_json(tmp_path, capsys):
    path = tmp_path / "ladder.csv"
    exact_table().write_csv(path)
    assert main(["backtest", str(path), "--estimators", "curve-fit,carry-forward", "--exposure",
                 "--exposure-estimators", "carry-forward", "--bootstrap", "10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"level", "summary", "rules"} <= set(out) and "cases" not in out
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
    assert rows and all(r["estimator"] == "law:joint" and r["lower"] <= r["predicted"] <= r["upper"] for r in rows)
    assert all(abs(r["error"] / r["actual"]) < 0.05 for r in rows)


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


def test_forecast_with_an_estimator_and_a_width_rule():
    """forecast --estimator: the backtested estimator on every group, larger sizes and --predict-params sizes
    forecast; a width rule scales both half-widths by its factor and nothing else."""
    from rerank_scaling.scaling.estimate import estimator_forecasts

    table = exact_table()
    rule = WidthRule("pooled-objectives", 0.9, 2.0, 10)
    raw = estimator_forecasts(table, "ndcg@10", 4e6, "pooled-objectives", predict_params=[32e6], n_boot=20)
    wide = estimator_forecasts(table, "ndcg@10", 4e6, "pooled-objectives", predict_params=[32e6], n_boot=20,
                               width_rule=rule)
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
    assert main(["forecast", str(path), "--metric", "ndcg@10", "--fit-max-params", "8e6", "--estimator", "mixture",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["params"] for r in rows] == [16e6, 16e6] and all(r["estimator"] == "mixture" for r in rows)
    assert all(abs(r["error"]) < 2e-3 for r in rows)  # the exact law, from 4 sizes of one run each


def test_constant_metric_is_not_a_case():
    """recall@100 after reranking the top 20 is the same for every model: nothing to forecast, and its
    zero-width intervals would 'miss' by rounding error, so the backtest keeps it out of every score."""
    flat = exact_table().with_columns(metric=pl.lit("recall@100"), value=pl.lit(0.7372) + pl.lit(0.0))
    bt = backtest(pl.concat([exact_table(), flat]), estimators=["carry-forward", "loglinear"], exposure=True,
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
