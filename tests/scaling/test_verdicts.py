import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from rerank_scaling.errors import UserError
from rerank_scaling.scaling import exposure_verdicts, verdicts
from rerank_scaling.scaling.baselines import carry_forward, inside, interval_score, loglinear
from rerank_scaling.scaling.evidence import moves, noise_estimate
from rerank_scaling.scaling.verdicts import judge, make_unit

MINILM = (5.3e6, 7.1e6, 8.9e6, 10.7e6, 14.2e6)  # five sizes, non-embedding params of a 1..6-layer ladder


def flat_table(seeds=(0, 1, 2), checkpoints=4, seed=0) -> pl.DataFrame:
    """The issue's table: p@10 = 0.055 +- 0.0007 and ce@64 = 3.96 +- 0.005 at every size, no trend."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in MINILM:
        for sd in seeds:
            for k in range(1, checkpoints + 1):
                for metric, mean, noise in (("p@10", 0.055, 0.0007), ("ce@64", 3.96, 0.005),
                                            ("recall@100", 0.8, 0.0)):
                    rows.append(dict(objective="listwise", model=f"m{n:g}", params=n, seed=sd, step=20 * k,
                                     metric=metric, value=mean + rng.normal(0, noise) if noise else mean))
    return pl.DataFrame(rows)


def test_size_verdicts_side_by_side(study):
    vs = verdicts(study, 150e6, metrics=["ndcg@10", "ce@64"], estimator="mixture")
    assert {(v.metric, v.objective) for v in vs} == {
        (m, o) for m in ("ndcg@10", "ce@64") for o in ("pointwise", "pairwise", "listwise")
    }
    for v in vs:
        assert v.kind == "size" and v.n_targets == 4 and v.n_fits == 2  # 400M and 1B, two budgets
        assert "MAE" in v.reason and "median q" in v.reason and "mean |rel err|" in v.reason
        assert v.noise_source == "seeds" and v.moves  # 2 seeds per size; the truth spans 0.14
    ndcg = [v for v in vs if v.metric == "ndcg@10"]
    # the truth follows the law with 0.4% run noise: every forecast holds and forecasts a change
    assert all(v.status == "extrapolates" and v.extrapolates for v in ndcg)
    assert all(v.checks["covered"] and v.checks["informative"] for v in ndcg)


def test_flat_noise_table_is_not_informative():
    """Issue 11: flat p@10 and ce@64 were judged 'extrapolates: yes' in every group."""
    vs = verdicts(flat_table(), 10.7e6, metrics=["p@10", "ce@64"], estimator="mixture")
    assert len(vs) == 2
    for v in vs:
        assert v.status == "not informative" and v.extrapolates is False
        assert v.reason.startswith("not informative: span") and "within run-to-run noise" in v.reason
        assert v.noise_source == "seeds" and v.moves_q <= v.moves_threshold
        assert f"q = {v.moves_q:.3g} <= {v.moves_threshold:.3g}" in v.reason


def test_one_seed_needs_three_late_checkpoints():
    """Without seeds the noise comes from >= 3 checkpoints in the second half of each run; with fewer it is
    not measured and nothing is judged on it ('not testable')."""
    vs = verdicts(flat_table(seeds=(0,), checkpoints=8), 10.7e6, metrics=["p@10", "ce@64"], estimator="mixture")
    assert all(v.status == "not informative" and v.noise_source == "checkpoints" for v in vs)
    vs = verdicts(flat_table(seeds=(0,), checkpoints=4), 10.7e6, metrics=["p@10"], estimator="mixture")
    assert vs[0].noise_source == "checkpoints"  # steps 40, 60, 80 of 80: three in the second half
    vs = verdicts(flat_table(seeds=(0,), checkpoints=3), 10.7e6, metrics=["p@10"], estimator="mixture")
    assert [v.status for v in vs] == ["not testable"] and vs[0].extrapolates is None
    assert "noise not measured" in vs[0].reason and vs[0].noise_source == "residuals"


def test_constant_metric_is_not_informative():
    (v,) = verdicts(flat_table(), 10.7e6, metrics=["recall@100"], estimator="mixture")
    assert v.status == "not informative" and v.extrapolates is False
    assert "constant: the same value at all 4 fitted sizes" in v.reason


def test_studentized_range_by_hand():
    # three sizes, two seeds each: means .51 .61 .71, pooled sd sqrt(3 * 0.0002 / 3) = 0.01414, df 3
    levels = [1, 1, 2, 2, 3, 3]
    values = [0.50, 0.52, 0.60, 0.62, 0.70, 0.72]
    noise = noise_estimate(levels, values)
    assert noise.source == "seeds" and noise.df == 3 and noise.sd == pytest.approx(math.sqrt(0.0002))
    mv = moves(levels, values, noise)
    # se of a mean of 2 = 0.01, span 0.2 -> q = 20 against Tukey's 95% point for k=3, df=3
    assert mv.span == pytest.approx(0.2) and mv.q == pytest.approx(20.0)
    assert mv.threshold == pytest.approx(stats.studentized_range.ppf(0.95, 3, 3)) and mv.moves
    flat = moves(levels, [0.50, 0.52, 0.51, 0.53, 0.50, 0.52], noise)  # span 0.01 -> q = 1
    assert flat.q == pytest.approx(1.0) and flat.moves is False


def test_noise_from_checkpoints_and_residuals_by_hand():
    # one run per size: each run's checkpoints in its last 30% (>= 0.7 x its final exposure), >= 3 of them,
    # around their own line. Run A: 70..100 on a line plus (+.1, -.1, -.1, +.1), orthogonal to the line, so
    # the residuals are exactly those: RSS 0.04, df 2. Run B has 2 late checkpoints: not counted.
    d = np.array([10.0, 70.0, 80.0, 90.0, 100.0])
    v = 1 + 0.01 * d + np.array([5.0, 0.1, -0.1, -0.1, 0.1])
    noise = noise_estimate([1, 2], [0.5, 0.6], checkpoint_series=[(d, v), ([50.0, 100.0], [2.0, 2.2])])
    assert noise.source == "checkpoints" and noise.df == 2 and noise.measured
    assert noise.sd == pytest.approx(math.sqrt(0.04 / 2))
    # neither: residuals of a + b*ln x (not measured); points exactly on a line have zero noise
    x = np.array([1.0, 2.0, 4.0, 8.0])
    exact = noise_estimate(x, 0.1 + 0.05 * np.log(x))
    assert exact.source == "residuals" and exact.df == 2 and exact.sd == pytest.approx(0.0, abs=1e-12)
    assert not exact.measured


def test_baselines_by_hand():
    pred, lo, hi = carry_forward([1, 2, 2], [0.1, 0.3, 0.5], [4, 8], noise_sd=0.1, noise_df=10, level=0.9)
    assert np.allclose(pred, 0.4)
    half = stats.t.ppf(0.95, 10) * 0.1 * math.sqrt(1 + 1 / 2)
    assert np.allclose(hi - pred, half) and np.allclose(pred - lo, half)
    x = np.array([1.0, np.e, np.e**2])
    pred, lo, hi = loglinear(x, [1.0, 2.0, 3.0], [np.e**3])  # exact line y = 1 + ln x
    assert pred[0] == pytest.approx(4.0) and hi[0] - lo[0] == pytest.approx(0.0, abs=1e-9)
    # width 0.2 plus 2/0.1 x a miss of 0.05 = 1.2; covered: width only
    assert interval_score([0.0, 0.0], [0.2, 0.2], [0.25, 0.1], level=0.9) == pytest.approx([1.2, 0.2])
    # the one coverage test: bounds count, rounding slack is 1e-9 relative, a real miss is a miss
    assert inside([0.0, 0.0, 0.8, 0.8], [0.2, 0.2, 0.8, 0.8],
                  [0.2, 0.2000001, 0.8 + 1e-16, 0.8 + 1e-6]).tolist() == [True, False, True, False]


LEVELS, VALUES = [1, 1, 2, 2, 3, 3], [0.50, 0.52, 0.60, 0.62, 0.70, 0.72]  # seeds: noise measured, moves


def _judge(pred, lo, hi, actual, levels=LEVELS, values=VALUES, series=()):
    unit = make_unit(levels, values, list(series), [pred], [lo], [hi], [actual], [4], level=0.9, metric="ndcg@10")
    return judge([unit], level=0.9, min_coverage=0.5)


def test_judge_by_hand():
    """The last fitted mean is 0.71; the minimum effect of NDCG 0.01."""
    # the forecast holds and forecasts a change (its interval excludes 0.71)
    j = _judge(0.81, 0.78, 0.84, 0.812)
    assert j["status"] == "extrapolates" and j["checks"] == {"covered": True, "informative": True,
                                                             "noise_measured": True, "moves": True, "right_way": True}
    # the curve flattens at 0.715 and the forecast said 0.81: the actual is outside the interval
    j = _judge(0.81, 0.78, 0.84, 0.715)
    assert j["status"] == "does not extrapolate" and j["checks"]["covered"] is False
    assert j["mae"] == pytest.approx(0.095) and j["mae_carry_forward"] == pytest.approx(0.005)
    # an interval too wide to tell the forecast from carrying 0.71 forward: it says nothing
    j = _judge(0.74, 0.66, 0.82, 0.73)
    assert j["status"] == "not informative" and j["checks"]["informative"] is False
    assert "wider than the forecast change" in j["reason"]
    # a precise plateau: within the minimum effect on both sides
    j = _judge(0.712, 0.704, 0.720, 0.711)
    assert j["status"] == "extrapolates" and "within the minimum effect" in j["reason"]
    # a metric that falls with size moves the wrong way for the law
    j = _judge(0.40, 0.38, 0.42, 0.41, values=VALUES[::-1])
    assert j["status"] == "does not extrapolate" and "moves the wrong way" in j["reason"]
    # moves beyond noise but less than the minimum effect
    small = [0.500, 0.5002, 0.503, 0.5032, 0.506, 0.5062]
    j = _judge(0.509, 0.508, 0.510, 0.509, values=small)
    assert j["status"] == "not informative" and "below the minimum effect" in j["reason"]
    # one run per size and no late checkpoints: noise not measured
    j = _judge(0.81, 0.78, 0.84, 0.812, levels=[1, 2, 3], values=[0.51, 0.61, 0.71])
    assert j["status"] == "not testable" and j["extrapolates"] is None


def test_min_effect():
    from rerank_scaling.scaling.verdicts import min_effect

    assert min_effect("ndcg@10", [0.3, 0.5]) == pytest.approx(0.01)
    assert min_effect("acc", [30.0, 60.0]) == pytest.approx(1.0)  # percent: one point
    assert min_effect("ce@64", [2.0, 4.0]) == pytest.approx(0.03)  # 1% of the level


def test_strict_relative_error_threshold_still_available(study):
    vs = verdicts(study, 150e6, metrics=["mrr@10"], estimator="mixture", max_rel_error=0.001)
    assert not any(v.extrapolates for v in vs)
    assert all("> 0.1%" in v.reason or v.status != "extrapolates" for v in vs)


def test_nothing_held_out_gives_none(study):
    vs = verdicts(study, 2e9, metrics=["map"], estimator="mixture")
    assert vs and all(v.extrapolates is None and v.n_targets == 0 and v.status == "not judged" for v in vs)
    assert all("no group has runs with params <= 2e+09 and a larger size" in v.reason for v in vs)


def test_exposure_verdicts(study):
    vs = exposure_verdicts(study, metrics=["ndcg@10"], estimator="mixture")
    assert len(vs) == 3
    for v in vs:
        assert v.kind == "exposure" and v.law == "mixture"
        assert v.n_targets > 0 and v.coverage is not None
        assert v.mean_abs_rel_error < 0.03
        assert v.status in ("extrapolates", "does not extrapolate", "not informative")
        assert "fits move beyond noise" in v.reason and v.mae_carry_forward is not None
    law = exposure_verdicts(study, metrics=["ndcg@10"], law="data", n_boot=30)
    assert len(law) == 3 and all(v.law == "data" for v in law)


def test_exposure_verdict_of_flat_metric_is_not_informative():
    vs = exposure_verdicts(flat_table(checkpoints=8), metrics=["p@10"], estimator="mixture")
    assert vs and all(v.status == "not informative" for v in vs)


def test_exposure_needs_checkpoints(small_user_table):
    with pytest.raises(UserError, match="examples_seen or step"):
        exposure_verdicts(small_user_table)


def test_unfittable_metric_is_reported_not_fatal(small_user_table):
    vs = verdicts(small_user_table, 20e6, estimator="mixture")  # 1 size below the cut for every metric
    assert {v.metric for v in vs} == {"ndcg@10", "ce@64"}
    assert all(v.extrapolates is None and "no group has runs with params <= 2e+07" in v.reason for v in vs)


def test_verdict_json_has_no_nan(study):
    import json

    vs = verdicts(study, 150e6, metrics=["map"], estimator="mixture")
    text = json.dumps([v.to_dict() for v in vs], allow_nan=False)
    assert '"status"' in text and '"moves_q"' in text


def test_verdicts_judge_an_estimators_forecasts(study):
    """With ``estimator`` the verdict judges that estimator's held-out forecasts (here pooled across
    objectives), the same forecasts ``forecast --estimator`` prints."""
    from rerank_scaling.scaling.estimate import estimator_forecasts

    vs = verdicts(study, 150e6, metrics=["ndcg@10"], n_boot=100, estimator="pooled-objectives")
    rows = estimator_forecasts(study, "ndcg@10", 150e6, "pooled-objectives", n_boot=100)
    assert {v.objective for v in vs} == {"pointwise", "pairwise", "listwise"}
    for v in vs:
        mine = [r for r in rows if r["objective"] == v.objective and r["actual"] is not None]
        assert v.law == "pooled-objectives" and v.n_targets == len(mine) > 0
        assert v.mae == pytest.approx(np.mean([abs(r["error"]) for r in mine]))
        assert v.coverage == pytest.approx(np.mean([r["covered"] for r in mine]))


def test_verdict_width_rule_widens_the_judged_intervals(study):
    from rerank_scaling.scaling.backtest import WidthRule

    raw = verdicts(study, 150e6, metrics=["ndcg@10"], n_boot=100, estimator="pooled-objectives")
    wide = verdicts(study, 150e6, metrics=["ndcg@10"], n_boot=100, estimator="pooled-objectives",
                    width_rule=WidthRule("pooled-objectives", 0.9, 3.0, 100))
    for r, w in zip(raw, wide):
        assert w.law == "pooled-objectives (calibrated)" and w.mae == pytest.approx(r.mae)
        assert w.median_width == pytest.approx(3.0 * r.median_width)
        assert w.coverage >= r.coverage


def test_flat_noise_table_is_not_informative_under_the_default_estimator():
    vs = verdicts(flat_table(), 10.7e6, metrics=["p@10", "ce@64"], n_boot=100, estimator="pooled-objectives")
    assert len(vs) == 2 and all(v.status == "not informative" for v in vs)
    assert all(v.reason.startswith("not informative: span") for v in vs)


def test_a_constant_metric_is_covered_by_its_zero_width_forecast():
    """recall@100 = 0.8 at every size, seed and checkpoint: the default estimator forecasts the mean of
    identical numbers with a zero-width interval. Rounding that mean (1e-16 off) is not a miss -- the
    report's default-forecast table had counted every constant metric as "not covered"."""
    from rerank_scaling.scaling.estimate import estimator_forecasts

    for name in ("averaged", "mixture"):
        rows = estimator_forecasts(flat_table(), "recall@100", 11e6, name, n_boot=50)
        assert len(rows) == 1 and rows[0]["actual"] == pytest.approx(0.8)
        assert rows[0]["upper"] - rows[0]["lower"] < 1e-12 and rows[0]["covered"] is True, name
