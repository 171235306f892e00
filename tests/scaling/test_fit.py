"""Fitting under noise, refusals, warnings, loss and direction handling."""

import warnings

import numpy as np
import pytest

from rerank_scaling.errors import UserError
from rerank_scaling.scaling import fit_law, fit_many
from rerank_scaling.scaling.fit import FewPointsWarning

from scaling_helpers import saturating

N = np.repeat([4e6, 8e6, 17e6, 32e6, 68e6, 150e6, 400e6], 3)


def test_noisy_recovery_within_tolerance():
    """sd 0.003 on NDCG, 7 sizes x 3 seeds: asymptote within 0.03, exponent within 0.1,
    1B forecast within 0.01 (about 3 sd of the forecast at this noise) in 20/20 repeats."""
    for rep in range(20):
        rng = np.random.default_rng(rep)
        y = saturating(N) + rng.normal(0, 0.003, N.size)
        fit = fit_law("size", N, y, metric="ndcg@10")
        assert abs(fit.params["a"] - 0.76) < 0.03
        assert abs(fit.params["c"] + 0.3) < 0.1
        assert abs(fit.predict([1e9])[0] - saturating(1e9)) < 0.01


def test_param_intervals_from_bootstrap():
    rng = np.random.default_rng(0)
    y = saturating(N) + rng.normal(0, 0.003, N.size)
    fit = fit_law("size", N, y, metric="ndcg@10", n_boot=300, seed=1)
    lo, hi = fit.param_intervals["c"]
    assert lo < fit.params["c"] < hi
    lo, hi = fit.param_intervals["a"]
    assert lo <= 0.76 <= hi
    assert fit.bootstrap_scheme == "wild"  # fewer than 5 runs per size
    assert len(fit.draws.theta) > 280


def test_decreasing_metric_signs():
    y = 0.9 + 0.5 * (N / 1e8) ** -0.35
    fit = fit_law("size", N, y, metric="ce@64")
    assert fit.direction == -1
    assert fit.params["b"] > 0 and fit.params["c"] < 0
    assert fit.params["a"] == pytest.approx(0.9, abs=1e-5)
    assert fit.predict([1e9])[0] < fit.predict([1e8])[0]


def test_refusal_below_parameter_count_names_metric():
    with pytest.raises(UserError, match=r"ndcg@10, objective=x: law 'size' has 3 parameters but only 2"):
        fit_law("size", [1e7, 1e7, 2e7], [0.3, 0.31, 0.4], metric="ndcg@10", label="ndcg@10, objective=x")


def test_warning_with_few_points():
    sizes = np.array([1e7, 2e7, 4e7, 8e7])
    with pytest.warns(FewPointsWarning, match="4 distinct points for 3 parameters"):
        fit = fit_law("size", sizes, saturating(sizes), metric="ndcg@10")
    assert fit.warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewPointsWarning)
        fit_law("loglinear", sizes, saturating(sizes), metric="ndcg@10")  # 4 >= 2 + 2: no warning


def test_huber_resists_an_outlier():
    sizes = np.array([4e6, 8e6, 17e6, 32e6, 68e6, 150e6, 400e6, 1e9])
    y = saturating(sizes) + np.random.default_rng(2).normal(0, 0.002, sizes.size)
    y[3] -= 0.08  # one broken run
    plain = fit_law("size", sizes, y, metric="ndcg@10")
    robust = fit_law("size", sizes, y, metric="ndcg@10", loss="huber")
    truth = saturating(2e9)
    assert abs(robust.predict([2e9])[0] - truth) < abs(plain.predict([2e9])[0] - truth)
    with pytest.raises(UserError, match="unknown loss"):
        fit_law("size", sizes, y, loss="cauchy")


def test_unknown_law_and_missing_exposure():
    with pytest.raises(UserError, match="unknown law 'power'"):
        fit_law("power", N, saturating(N))
    with pytest.raises(UserError, match="needs training exposure"):
        fit_law("joint", N, saturating(N), metric="ndcg@10")


def test_metric_in_percent_gets_bound_100():
    y = 100 * saturating(N)
    fit = fit_law("size", N, y, metric="ndcg@10")
    assert fit.ctx.bound == 100.0
    assert fit.params["a"] == pytest.approx(76.0, abs=1e-3)


def test_fit_many_matches_fit_law_and_reports_bad_sets():
    rng = np.random.default_rng(5)
    sets = []
    for shift in (0.0, 0.02, -0.03):
        y = saturating(N) + shift + rng.normal(0, 0.003, N.size)
        sets.append(dict(N=N, y=y, label=f"shift {shift}"))
    sets.append(dict(N=[1e7, 2e7], y=[0.3, 0.4], label="too small"))
    fits = fit_many("size", sets, metric="ndcg@10", n_boot=100)
    assert isinstance(fits[-1], UserError) and "too small" in str(fits[-1])
    for kw, fit in zip(sets[:3], fits[:3]):
        single = fit_law("size", kw["N"], kw["y"], metric="ndcg@10")
        assert fit.params == pytest.approx(single.params, rel=1e-9)
        assert fit.draws.theta.shape == (100, 3)
        lo, hi = fit.interval([1e9])
        assert lo[0] < fit.forecast([1e9])[0] < hi[0]
